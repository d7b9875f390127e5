"""Finding Marketplace keys as Composer does: sources, order, project files, host forms, secrecy."""

import json
import logging
import os
import secrets
from pathlib import Path

import pytest
from composer.authkit import HOST, World, auth_data, pair, write

from magedl.composer.auth import find_keys
from magedl.composer.home import composer_file, project_auth_path
from magedl.composer.sources import NOTE, Source
from magedl.errors import ConfigError
from magedl.secrecy import redact


@pytest.fixture
def world(tmp_path):
    return World(tmp_path)


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


def test_find_keys_reads_os_environ_by_default(monkeypatch, tmp_path):
    keys = pair()
    monkeypatch.setenv("COMPOSER_HOME", str(tmp_path / "ch"))
    monkeypatch.setenv("COMPOSER_AUTH", json.dumps(auth_data(keys=keys)))
    monkeypatch.delenv("COMPOSER", raising=False)
    result = find_keys(project_dir=tmp_path)
    assert result.credentials == keys and result.composer_home == tmp_path / "ch"


# ---------------------------------------------------------------- key shapes


def test_shape_is_checked_for_marketplace_only_by_default(world):
    short = {"username": secrets.token_hex(5), "password": secrets.token_hex(7)}
    write(world.project_auth, {"http-basic": {HOST: short, "127.0.0.1:8080": short}})
    warnings = world.find().warnings
    assert any("10 characters long, not 32" in w.message for w in warnings)
    assert all(str(world.project_auth) in w.message for w in warnings)
    assert world.find("http://127.0.0.1:8080/").warnings == ()
    assert world.find("http://127.0.0.1:8080/", check_shape=True).warnings


# ---------------------------------------------------------------- secrecy


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
    write(world.project_auth, json.dumps(auth_data(keys=keys))[:-1])
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
    assert os.path.isabs(composer_file("project", world.env))


def test_an_auth_json_others_can_read_is_reported_not_refused(tmp_path):
    home = tmp_path / "composer-home"
    home.mkdir()
    auth = home / "auth.json"
    public, private = "p" * 32, "s" * 32
    auth.write_text(json.dumps({"http-basic": {"repo.magento.com": {"username": public, "password": private}}}))
    os.chmod(auth, 0o644)
    lookup = find_keys(env={"COMPOSER_HOME": str(home), "HOME": str(tmp_path)}, project_dir=tmp_path)
    assert lookup.found  # Composer reads it, so the keys are found
    [warning] = [f for f in lookup.warnings if "chmod 600" in f.message]
    assert "0644" in warning.message and private not in warning.message
    os.chmod(auth, 0o600)
    lookup = find_keys(env={"COMPOSER_HOME": str(home), "HOME": str(tmp_path)}, project_dir=tmp_path)
    assert not [f for f in lookup.warnings if "chmod 600" in f.message]
