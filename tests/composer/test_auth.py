"""Finding Marketplace keys as Composer does: sources, order, host forms, shapes, secrecy."""

import json
import logging
import os
import secrets
from pathlib import Path

import pytest

from magedl.composer import auth
from magedl.composer.auth import (
    NOTE,
    WARNING,
    Source,
    composer_home,
    composer_origin,
    find_keys,
    global_auth_path,
    host_key,
    key_shape_problems,
    mask_public,
    project_auth_path,
)
from magedl.config import redact
from magedl.errors import ConfigError, UsageError

HOST = "repo.magento.com"


def pair():
    """A fresh (public, private) pair of Marketplace-shaped keys."""
    return secrets.token_hex(16), secrets.token_hex(16)


def auth_data(host=HOST, keys=None):
    user, password = keys
    return {"http-basic": {host: {"username": user, "password": password}}}


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


class World:
    """A Composer home, a project with composer.json, and an environment naming them."""

    def __init__(self, root):
        self.home = root / "home"
        self.chome = self.home / ".composer"
        self.project = root / "project"
        write(self.project / "composer.json", {"name": "acme/shop"})
        self.env = {"HOME": str(self.home), "COMPOSER_HOME": str(self.chome)}

    @property
    def global_auth(self):
        return self.chome / "auth.json"

    @property
    def project_auth(self):
        return self.project / "auth.json"

    def find(self, url="https://repo.magento.com/", **kwargs):
        return find_keys(url, project_dir=self.project, env=self.env, **kwargs)


@pytest.fixture
def world(tmp_path):
    return World(tmp_path)


@pytest.fixture
def no_etc_xdg(monkeypatch, tmp_path):
    monkeypatch.setattr(auth, "_ETC_XDG", str(tmp_path / "no-etc-xdg"))


# ---------------------------------------------------------------- each source alone


def test_nothing_anywhere(world):
    result = world.find()
    assert result.credentials is None and not result.found
    assert result.source is None and result.path is None and result.others == ()
    assert [s.source for s in result.searched] == [
        Source.GLOBAL_CONFIG, Source.GLOBAL_AUTH, Source.COMPOSER_AUTH,
        Source.PROJECT_CONFIG, Source.PROJECT_AUTH]
    present = {s.source: s.present for s in result.searched}
    assert present[Source.PROJECT_CONFIG] and not present[Source.GLOBAL_AUTH]


def test_global_auth_only(world):
    keys = pair()
    write(world.global_auth, auth_data(keys=keys))
    result = world.find()
    assert result.credentials == keys
    assert (result.source, result.path, result.entry_key) == (Source.GLOBAL_AUTH,
                                                              world.global_auth, HOST)
    assert result.findings == () and result.others == ()


def test_global_config_json_only(world):
    keys = pair()
    write(world.chome / "config.json", {"config": auth_data(keys=keys)})
    result = world.find()
    assert result.credentials == keys and result.source is Source.GLOBAL_CONFIG


def test_env_only(world):
    keys = pair()
    world.env["COMPOSER_AUTH"] = json.dumps(auth_data(keys=keys))
    result = world.find()
    assert result.credentials == keys
    assert result.source is Source.COMPOSER_AUTH and result.path is None


def test_project_auth_only(world):
    keys = pair()
    write(world.project_auth, auth_data(keys=keys))
    result = world.find()
    assert result.credentials == keys
    assert (result.source, result.path) == (Source.PROJECT_AUTH, world.project_auth)


def test_composer_json_config_only(world):
    keys = pair()
    write(world.project / "composer.json", {"name": "acme/shop", "config": auth_data(keys=keys)})
    result = world.find()
    assert result.credentials == keys
    assert (result.source, result.path) == (Source.PROJECT_CONFIG,
                                            world.project / "composer.json")


# ---------------------------------------------------------------- order


def test_every_source_env_wins_then_project_auth_composer_json_global(world):
    k = {name: pair() for name in ("gconf", "gauth", "env", "pconf", "pauth")}
    write(world.chome / "config.json", {"config": auth_data(keys=k["gconf"])})
    write(world.global_auth, auth_data(keys=k["gauth"]))
    world.env["COMPOSER_AUTH"] = json.dumps(auth_data(keys=k["env"]))
    write(world.project / "composer.json", {"config": auth_data(keys=k["pconf"])})
    write(world.project_auth, auth_data(keys=k["pauth"]))

    result = world.find()
    assert result.credentials == k["env"] and result.source is Source.COMPOSER_AUTH
    assert [c.source for c in result.others] == [
        Source.PROJECT_AUTH, Source.PROJECT_CONFIG, Source.GLOBAL_AUTH, Source.GLOBAL_CONFIG]
    assert not any(c.agrees or c.same_public for c in result.others)
    assert [c.public_masked for c in result.others] == [
        k[n][0][:4] + "…" for n in ("pauth", "pconf", "gauth", "gconf")]
    notes = [f.message for f in result.findings if f.level == NOTE]
    assert len(notes) == 1
    assert "2.7.8" in notes[0] and str(world.project_auth) in notes[0]

    del world.env["COMPOSER_AUTH"]
    assert world.find().source is Source.PROJECT_AUTH
    world.project_auth.unlink()
    assert world.find().source is Source.PROJECT_CONFIG
    write(world.project / "composer.json", {})
    assert world.find().source is Source.GLOBAL_AUTH
    world.global_auth.unlink()
    assert world.find().source is Source.GLOBAL_CONFIG


def test_env_and_project_agreeing_has_no_note(world):
    keys = pair()
    write(world.project_auth, auth_data(keys=keys))
    world.env["COMPOSER_AUTH"] = json.dumps(auth_data(keys=keys))
    result = world.find()
    assert result.source is Source.COMPOSER_AUTH and result.credentials == keys
    (other,) = result.others
    assert other.source is Source.PROJECT_AUTH and other.agrees and other.same_public
    assert result.findings == ()


def test_env_and_project_disagreeing_notes_older_composer(world):
    env_keys, file_keys = pair(), pair()
    write(world.project_auth, auth_data(keys=file_keys))
    world.env["COMPOSER_AUTH"] = json.dumps(auth_data(keys=env_keys))
    result = world.find()
    assert result.credentials == env_keys
    (other,) = result.others
    assert not other.agrees and not other.same_public
    (note,) = result.findings
    assert note.level == NOTE
    assert "COMPOSER_AUTH" in note.message and "older versions use the project auth.json" \
        in note.message
    assert env_keys[1] not in note.message and file_keys[1] not in note.message


def test_same_public_different_private_is_told_apart(world):
    public = secrets.token_hex(16)
    write(world.global_auth, auth_data(keys=(public, secrets.token_hex(16))))
    write(world.project_auth, auth_data(keys=(public, secrets.token_hex(16))))
    (other,) = world.find().others
    assert other.same_public and not other.agrees


def test_env_beats_composer_json_with_note_for_older_composer(world):
    env_keys, conf_keys = pair(), pair()
    write(world.project / "composer.json", {"config": auth_data(keys=conf_keys)})
    world.env["COMPOSER_AUTH"] = json.dumps(auth_data(keys=env_keys))
    result = world.find()
    assert result.source is Source.COMPOSER_AUTH
    assert "older versions use the project composer.json" in result.findings[0].message


def test_global_and_env_disagreeing_has_no_version_note(world):
    write(world.global_auth, auth_data(keys=pair()))
    world.env["COMPOSER_AUTH"] = json.dumps(auth_data(keys=pair()))
    result = world.find()
    assert result.source is Source.COMPOSER_AUTH and result.findings == ()


def test_other_hosts_do_not_count(world):
    write(world.global_auth, {"http-basic": {"example.com": {"username": "u", "password": "pw"}},
                              "github-oauth": {"github.com": "ghp_x"}})
    assert world.find().credentials is None


# ---------------------------------------------------------------- malformed input


@pytest.mark.parametrize("value", ['{"http-basic": {', "null", "  ", "{'http-basic': {}}", "NaN"])
def test_malformed_composer_auth_is_an_error(world, value):
    world.env["COMPOSER_AUTH"] = value
    with pytest.raises(ConfigError) as info:
        world.find()
    assert "COMPOSER_AUTH environment variable is malformed" in str(info.value)
    assert info.value.exit_code == 1


def test_malformed_composer_auth_message_holds_no_key(world):
    keys = pair()
    world.env["COMPOSER_AUTH"] = json.dumps(auth_data(keys=keys))[:-2]
    with pytest.raises(ConfigError) as info:
        world.find()
    assert keys[0] not in str(info.value) and keys[1] not in str(info.value)
    assert "line 1 column" in str(info.value)


def test_empty_composer_auth_is_ignored(world):
    world.env["COMPOSER_AUTH"] = ""
    result = world.find()
    assert {s.source: s.present for s in result.searched}[Source.COMPOSER_AUTH] is False


def test_composer_auth_not_an_object_is_a_warning(world):
    world.env["COMPOSER_AUTH"] = '"repo.magento.com"'
    result = world.find()
    (finding,) = result.findings
    assert finding.level == WARNING and "COMPOSER_AUTH holds a JSON string" in finding.message


@pytest.mark.parametrize("where", ["global", "project"])
def test_auth_json_not_json_is_an_error_naming_the_file(world, where):
    keys = pair()
    path = world.global_auth if where == "global" else world.project_auth
    write(path, '{"http-basic": {"repo.magento.com": {"username": "%s", "password": "%s",}}}'
          % keys)
    with pytest.raises(ConfigError) as info:
        world.find()
    message = str(info.value)
    assert str(path) in message and "not valid JSON" in message and "line 1" in message
    assert keys[0] not in message and keys[1] not in message


def test_auth_json_with_bom_is_an_error(world):
    write(world.global_auth, "\ufeff" + json.dumps(auth_data(keys=pair())))
    with pytest.raises(ConfigError, match="byte-order mark"):
        world.find()


def test_auth_json_that_is_a_folder_is_an_error(world):
    world.project_auth.mkdir()
    with pytest.raises(ConfigError, match="is a folder"):
        world.find()


def test_malformed_composer_json_is_an_error(world):
    write(world.project / "composer.json", "{")
    with pytest.raises(ConfigError, match="composer.json is not valid JSON"):
        world.find()


@pytest.mark.parametrize("content, kind", [("[1, 2]", "list"), ('"x"', "string"), ("3", "number"),
                                           ("null", "null")])
def test_auth_json_not_an_object_is_a_warning_and_skipped(world, content, kind):
    keys = pair()
    write(world.global_auth, auth_data(keys=keys))
    write(world.project_auth, content)
    result = world.find()
    assert result.credentials == keys
    (finding,) = result.findings
    assert finding.level == WARNING and finding.path == world.project_auth
    assert f"holds a JSON {kind}, not an object" in finding.message


def test_empty_php_array_is_an_empty_object(world):
    write(world.project_auth, "[]")
    write(world.global_auth, {"http-basic": []})
    result = world.find()
    assert result.findings == () and result.credentials is None


@pytest.mark.parametrize("entry, problem", [
    ("a string", "is a string, not an object"),
    (["u", "p"], "is a list, not an object"),
    ({"username": 12345678, "password": "x" * 32}, "username that is a number"),
    ({"username": "u" * 32, "password": None}, "password that is a null"),
    ({"username": "u" * 32}, "has no password"),
    ({"password": "p" * 32}, "has no username"),
])
def test_wrong_typed_entry_is_reported_and_skipped(world, entry, problem):
    keys = pair()
    write(world.global_auth, auth_data(keys=keys))
    write(world.project_auth, {"http-basic": {HOST: entry}})
    result = world.find()
    assert result.credentials == keys and result.source is Source.GLOBAL_AUTH
    (finding,) = result.findings
    assert finding.level == WARNING and finding.source is Source.PROJECT_AUTH
    assert str(world.project_auth) in finding.message and problem in finding.message
    assert "skipped" in finding.message and "x" * 32 not in finding.message


def test_http_basic_not_an_object_is_a_warning(world):
    write(world.project_auth, {"http-basic": "repo.magento.com"})
    (finding,) = world.find().findings
    assert "'http-basic' is a string, not an object" in finding.message


def test_http_basic_under_config_in_auth_json_is_flagged(world):
    write(world.project_auth, {"config": auth_data(keys=pair())})
    result = world.find()
    assert result.credentials is None
    (finding,) = result.findings
    assert "belongs at the top level" in finding.message


# ---------------------------------------------------------------- project files


def test_project_auth_json_without_composer_json_is_not_read(world):
    (world.project / "composer.json").unlink()
    write(world.project_auth, auth_data(keys=pair()))
    result = world.find()
    assert result.credentials is None
    (finding,) = result.findings
    assert finding.level == NOTE and "only next to a composer.json" in finding.message


def test_composer_env_var_names_the_composer_file(world):
    keys = pair()
    (world.project / "composer.json").unlink()
    write(world.project / "composer-alt.json", {"config": auth_data(keys=keys)})
    world.env["COMPOSER"] = "composer-alt.json"
    result = world.find()
    assert result.credentials == keys and result.path == world.project / "composer-alt.json"


def test_project_auth_is_next_to_the_real_composer_json(world, tmp_path):
    keys = pair()
    real = tmp_path / "real"
    write(real / "composer.json", {})
    write(real / "auth.json", auth_data(keys=keys))
    (world.project / "composer.json").unlink()
    (world.project / "composer.json").symlink_to(real / "composer.json")
    write(world.project_auth, auth_data(keys=pair()))  # not the one Composer reads
    result = world.find()
    assert result.credentials == keys and result.path == real / "auth.json"
    assert project_auth_path(world.project, world.env) == real / "auth.json"


def test_project_in_composer_home_reads_auth_json_once(world):
    keys = pair()
    write(world.chome / "composer.json", {})
    write(world.global_auth, auth_data(keys=keys))
    result = find_keys(project_dir=world.chome, env=world.env)
    assert result.source is Source.GLOBAL_AUTH and result.others == ()


def test_project_dir_defaults_to_cwd(world, monkeypatch):
    keys = pair()
    write(world.project_auth, auth_data(keys=keys))
    monkeypatch.chdir(world.project)
    assert find_keys(env=world.env).path == world.project_auth


# ---------------------------------------------------------------- hosts


@pytest.mark.parametrize("url, origin, canonical", [
    ("https://repo.magento.com/", "repo.magento.com", "repo.magento.com"),
    ("https://repo.magento.com", "repo.magento.com", "repo.magento.com"),
    ("repo.magento.com", "repo.magento.com", "repo.magento.com"),
    ("https://REPO.magento.com:443/", "REPO.magento.com:443", "repo.magento.com"),
    ("http://127.0.0.1:8080/", "127.0.0.1:8080", "127.0.0.1:8080"),
    ("http://127.0.0.1:80/", "127.0.0.1:80", "127.0.0.1"),
    ("https://repo.magento.com:8443/p/", "repo.magento.com:8443", "repo.magento.com:8443"),
    ("http://[::1]:8080/", "[::1]:8080", "[::1]:8080"),
    ("https://user:pw@repo.magento.com/", "repo.magento.com", "repo.magento.com"),
])
def test_origin_and_canonical_host(url, origin, canonical):
    assert composer_origin(url) == origin
    assert host_key(url) == canonical


@pytest.mark.parametrize("url", ["ftp://repo.magento.com/", "https:///x", "https://h:99999/"])
def test_bad_repository_url_is_a_usage_error(url):
    with pytest.raises(UsageError):
        composer_origin(url)


@pytest.mark.parametrize("url, key, kind", [
    ("https://repo.magento.com/", "repo.magento.com", "exact"),
    ("https://repo.magento.com/", "REPO.Magento.com", "lenient"),
    ("https://repo.magento.com/", "repo.magento.com:443", "lenient"),
    ("https://repo.magento.com/", "https://repo.magento.com/", "url"),
    ("https://REPO.magento.com:443/", "repo.magento.com", "lenient"),
    ("https://REPO.magento.com:443/", "REPO.magento.com:443", "exact"),
    ("http://127.0.0.1:8080/", "127.0.0.1:8080", "exact"),
    ("http://127.0.0.1/", "127.0.0.1:80", "lenient"),
    ("http://[::1]:8080/", "[::1]:8080", "exact"),
    ("http://[::1]:8080/", "[0:0::1]:8080", None),
    ("https://repo.magento.com/", "repo.magento.com:8443", None),
    ("http://127.0.0.1:8080/", "127.0.0.1", None),
    ("http://127.0.0.1/", "127.0.0.1:443", None),
    ("https://repo.magento.com/", "magento.com", None),
    ("https://repo.magento.com/", "repo.magento.com:x", None),
])
def test_host_forms(world, url, key, kind):
    keys = pair()
    write(world.project_auth, auth_data(host=key, keys=keys))
    result = world.find(url)
    if kind is None:
        assert result.credentials is None
        return
    assert result.credentials == keys and result.entry_key == key
    notes = [f.message for f in result.findings if f.level == NOTE]
    if kind == "exact":
        assert notes == []
    else:
        assert len(notes) == 1 and f"'{key}'" in notes[0] and "rename" in notes[0]


def test_entry_composer_uses_beats_a_later_one_it_would_miss(world):
    exact, other = pair(), pair()
    write(world.global_auth, auth_data(host=HOST, keys=exact))
    write(world.project_auth, auth_data(host="REPO.magento.com", keys=other))
    result = world.find()
    assert result.credentials == exact and result.source is Source.GLOBAL_AUTH
    (candidate,) = result.others
    assert candidate.key == "REPO.magento.com" and not candidate.composer_match


def test_exact_entry_beats_other_spelling_in_the_same_file(world):
    exact, other = pair(), pair()
    write(world.project_auth, {"http-basic": {
        "repo.magento.com:443": {"username": other[0], "password": other[1]},
        HOST: {"username": exact[0], "password": exact[1]}}})
    result = world.find()
    assert result.credentials == exact
    assert [c.key for c in result.others] == ["repo.magento.com:443"]


def test_credentials_in_url_are_noted_and_registered(world):
    result = world.find("https://user:s3cr3t-pw@repo.magento.com/")
    assert result.url == "https://repo.magento.com/"
    assert any("holds credentials" in f.message for f in result.findings)
    assert redact("x s3cr3t-pw") == "x ***"


# ---------------------------------------------------------------- COMPOSER_HOME


def test_composer_home_env_var_wins(tmp_path):
    env = {"COMPOSER_HOME": str(tmp_path / "ch"), "HOME": str(tmp_path), "APPDATA": "x"}
    assert composer_home(env, "linux") == tmp_path / "ch"
    assert composer_home(env, "win32") == tmp_path / "ch"
    assert global_auth_path(env, "linux") == tmp_path / "ch" / "auth.json"


def test_xdg_dir_when_neither_exists(tmp_path, no_etc_xdg):
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert composer_home(env, "linux") == tmp_path / "xdg" / "composer"


def test_existing_dot_composer_beats_missing_xdg_dir(tmp_path, no_etc_xdg):
    (tmp_path / ".composer").mkdir()
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert composer_home(env, "linux") == tmp_path / ".composer"


def test_existing_xdg_dir_beats_dot_composer(tmp_path, no_etc_xdg):
    (tmp_path / ".composer").mkdir()
    (tmp_path / "xdg" / "composer").mkdir(parents=True)
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert composer_home(env, "linux") == tmp_path / "xdg" / "composer"


def test_any_xdg_variable_means_xdg_with_default_config_dir(tmp_path, no_etc_xdg):
    env = {"HOME": str(tmp_path) + "/", "XDG_RUNTIME_DIR": "/run/user/1000"}
    assert composer_home(env, "linux") == tmp_path / ".config" / "composer"


@pytest.mark.parametrize("platform", ["linux", "darwin"])
def test_no_xdg_means_dot_composer(tmp_path, no_etc_xdg, platform):
    assert composer_home({"HOME": str(tmp_path)}, platform) == tmp_path / ".composer"


def test_etc_xdg_means_xdg(tmp_path, monkeypatch):
    (tmp_path / "etc-xdg").mkdir()
    monkeypatch.setattr(auth, "_ETC_XDG", str(tmp_path / "etc-xdg"))
    assert composer_home({"HOME": str(tmp_path)}, "darwin") == tmp_path / ".config" / "composer"


def test_windows_uses_appdata():
    env = {"APPDATA": "C:\\Users\\ann\\AppData\\Roaming\\"}
    assert str(composer_home(env, "win32")) == "C:/Users/ann/AppData/Roaming/Composer"


def test_windows_without_appdata_is_an_error():
    with pytest.raises(ConfigError, match="APPDATA"):
        composer_home({"HOME": "/x"}, "win32")


def test_no_home_is_an_error():
    with pytest.raises(ConfigError, match="HOME"):
        composer_home({}, "linux")


def test_default_environment(monkeypatch, isolated_home, no_etc_xdg):
    monkeypatch.delenv("COMPOSER_HOME", raising=False)
    assert composer_home() == isolated_home / ".config" / "composer"
    monkeypatch.setenv("COMPOSER_HOME", str(isolated_home / "ch"))
    assert global_auth_path() == isolated_home / "ch" / "auth.json"


def test_find_keys_reads_os_environ_by_default(monkeypatch, tmp_path):
    keys = pair()
    monkeypatch.setenv("COMPOSER_HOME", str(tmp_path / "ch"))
    monkeypatch.setenv("COMPOSER_AUTH", json.dumps(auth_data(keys=keys)))
    monkeypatch.delenv("COMPOSER", raising=False)
    result = find_keys(project_dir=tmp_path)
    assert result.credentials == keys and result.composer_home == tmp_path / "ch"


# ---------------------------------------------------------------- key shapes


def test_good_keys_have_no_shape_problems():
    assert key_shape_problems(*pair()) == ()
    assert key_shape_problems("A" * 16 + "b" * 16, "0" * 32) == ()


@pytest.mark.parametrize("public, private, expected", [
    (" " + "a" * 32, "b" * 32, "public key has spaces or a line break at its start or end"),
    ("a" * 32, "b" * 32 + "\n", "private key has spaces or a line break"),
    ('"' + "a" * 32 + '"', "b" * 32, "public key is wrapped in quotes"),
    ("a" * 32, "b" * 31, "private key is 31 characters long, not 32"),
    ("a" * 33, "b" * 32, "public key is 33 characters long"),
    ("a" * 31 + "-", "b" * 32, "public key holds characters other than letters and digits"),
    ("a" * 16 + " " + "a" * 15, "b" * 32, "public key holds spaces or line breaks inside it"),
    ("a" * 32, "a" * 32, "the public and the private key are the same"),
    ("MAG000123456", "b" * 32, "looks like a MAGEID"),
    ("a" * 32, "0123456789abcdef0123456789abcdef01234567", "looks like a downloads access token"),
    ("", "b" * 32, "the public key is empty"),
])
def test_shape_problems(public, private, expected):
    problems = key_shape_problems(public, private)
    assert any(expected in p for p in problems), problems
    for problem in problems:
        assert (public.strip() not in problem or not public.strip()) and private.strip() not in problem


def test_stripped_key_is_said_to_be_fine_without_extras():
    problems = key_shape_problems("'" + "a" * 32 + "'", "b" * 32)
    assert any("valid 32-character key without the extra characters" in p for p in problems)


def test_shape_is_checked_for_marketplace_only_by_default(world):
    write(world.project_auth, {"http-basic": {
        HOST: {"username": "short-user", "password": "short-password"},
        "127.0.0.1:8080": {"username": "short-user", "password": "short-password"}}})
    warnings = world.find().warnings
    assert any("10 characters long, not 32" in w.message for w in warnings)
    assert all(str(world.project_auth) in w.message for w in warnings)
    assert world.find("http://127.0.0.1:8080/").warnings == ()
    assert world.find("http://127.0.0.1:8080/", check_shape=True).warnings


# ---------------------------------------------------------------- secrecy


def test_mask_public():
    assert mask_public("abcdef0123456789abcdef0123456789") == "abcd…"
    assert mask_public("abcdefgh") == "…"
    assert mask_public("") == "…"


def test_found_keys_are_registered_and_never_shown(world, caplog):
    caplog.set_level(logging.DEBUG)
    keys, env_keys, other_host = pair(), pair(), pair()
    write(world.project_auth, {"http-basic": {
        HOST: {"username": keys[0], "password": keys[1]},
        "example.com": {"username": other_host[0], "password": other_host[1]}}})
    world.env["COMPOSER_AUTH"] = json.dumps(auth_data(keys=env_keys))
    result = world.find()
    text = " ".join([repr(result), str(result), *(repr(o) for o in result.others),
                     *(f.message for f in result.findings), caplog.text])
    for secret in (*keys, *env_keys, other_host[1]):
        assert secret not in text
        assert redact(f"<{secret}>") == "<***>"
    assert result.public_masked == env_keys[0][:4] + "…"


def test_errors_and_warnings_never_hold_keys(world, caplog):
    caplog.set_level(logging.DEBUG)
    keys = pair()
    messages = []
    write(world.project_auth, {"http-basic": {HOST: {"username": keys[0], "password": 7}}})
    messages += [f.message for f in world.find().findings]
    write(world.project_auth, '{"http-basic": {"%s": {"username": "%s", "password": "%s"}' % (
        HOST, *keys))
    with pytest.raises(ConfigError) as info:
        world.find()
    messages += [str(info.value), repr(info.value)]
    world.project_auth.unlink()
    world.env["COMPOSER_AUTH"] = "{" + json.dumps(auth_data(keys=keys))
    with pytest.raises(ConfigError) as info:
        world.find()
    messages += [str(info.value), repr(info.value)]
    joined = " ".join(messages) + caplog.text
    assert messages and keys[0] not in joined and keys[1] not in joined


def test_paths_are_absolute(world, monkeypatch):
    monkeypatch.chdir(world.project.parent)
    write(world.project_auth, auth_data(keys=pair()))
    result = find_keys(project_dir="project", env=world.env)
    assert result.path == world.project_auth and Path(result.path).is_absolute()
    assert os.path.isabs(auth.composer_file("project", world.env))
