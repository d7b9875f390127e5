"""Storing keys in auth.json: new files, modes, refusals, web roots, write failures, COMPOSER_AUTH."""

import io
import json
import logging
import os
import secrets
import stat

import pytest
from composer.authkit import HOST, OTHERS, entry_json, make, mode_of, no_leftovers, pair

from magedl.composer import authfile
from magedl.composer.auth import find_keys
from magedl.composer.authfile import composer_auth_json, store_keys, web_root_reason
from magedl.composer.home import project_auth_path
from magedl.composer.jsonfile import EditError
from magedl.composer.keys import read_keys
from magedl.composer.sources import Source
from magedl.errors import ConfigError, LocalFileError, UsageError

# Values given to store_keys are registered as secrets for the whole test run: keep them
# unique so that no other test's text (md5 sums like "a" * 32) gets redacted.
R1, R2, R3 = (secrets.token_hex(16) for _ in range(3))


@pytest.fixture
def umask_zero():
    old = os.umask(0)
    yield
    os.umask(old)


# ---------------------------------------------------------------- new files


def test_new_file_is_0600_even_with_umask_000(tmp_path, umask_zero):
    keys = pair()
    path = tmp_path / "auth.json"
    result = store_keys(path, HOST, *keys)
    assert (result.created, result.changed, result.rewritten) == (True, True, False)
    assert mode_of(path) == 0o600
    assert path.read_text() == (
        '{\n    "http-basic": {\n        "repo.magento.com": '
        + entry_json(keys, lead="        ") + "\n    }\n}\n")
    assert json.loads(path.read_text()) == {
        "http-basic": {HOST: {"username": keys[0], "password": keys[1]}}}
    assert no_leftovers(tmp_path)


def test_new_file_is_read_back_by_find_keys(tmp_path):
    keys = pair()
    (tmp_path / "composer.json").write_text("{}")
    store_keys(project_auth_path(tmp_path, {}), HOST, *keys)
    result = find_keys(project_dir=tmp_path, env={"COMPOSER_HOME": str(tmp_path / "ch")})
    assert result.credentials == keys and result.source is Source.PROJECT_AUTH


def test_temp_file_is_never_wider_than_0600(tmp_path, umask_zero, monkeypatch):
    # Someone who opens the temp file while it is briefly wider keeps reading it later.
    seen = []
    real = os.fchmod

    def spy(fd, mode):
        seen.append(stat.S_IMODE(os.fstat(fd).st_mode))
        real(fd, mode)

    monkeypatch.setattr(authfile.os, "fchmod", spy)
    store_keys(tmp_path / "auth.json", HOST, *pair())
    store_keys(tmp_path / "auth.json", HOST, *pair())
    assert seen == [0o600, 0o600]


def test_empty_existing_file_is_filled(tmp_path):
    keys = pair()
    path = make(tmp_path / "auth.json", "\n")
    result = store_keys(path, HOST, *keys)
    assert not result.created and json.loads(path.read_text())["http-basic"][HOST]["username"] \
        == keys[0]


def test_missing_folder_is_an_error_unless_asked(tmp_path, umask_zero):
    path = tmp_path / "ch" / "auth.json"
    with pytest.raises(LocalFileError, match="does not exist"):
        store_keys(path, HOST, *pair())
    store_keys(path, HOST, *pair(), create_parent=True)
    assert mode_of(path.parent) == 0o700 and mode_of(path) == 0o600


def test_file_appearing_meanwhile_is_not_replaced(tmp_path, monkeypatch):
    path = tmp_path / "auth.json"
    real = authfile._read_existing

    def racing(p):
        answer = real(p)
        make(path, '{"theirs": true}')
        return answer

    monkeypatch.setattr(authfile, "_read_existing", racing)
    with pytest.raises(ConfigError, match="appeared while"):
        store_keys(path, HOST, *pair())
    assert path.read_text() == '{"theirs": true}' and no_leftovers(tmp_path)


# ---------------------------------------------------------------- existing files: refusals


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o660, 0o666])
def test_file_others_can_access_is_refused(tmp_path, mode):
    keys = pair()
    before = '{"http-basic": {}}'
    path = make(tmp_path / "auth.json", before, mode)
    with pytest.raises(ConfigError) as info:
        store_keys(path, HOST, *keys)
    message = str(info.value)
    assert str(path) in message and f"{mode:04o}" in message and f"chmod 600 {path}" in message
    assert info.value.exit_code == 1 and keys[1] not in message
    assert path.read_text() == before and mode_of(path) == mode


def test_symlink_is_refused(tmp_path):
    target = make(tmp_path / "real.json", "{}")
    link = tmp_path / "auth.json"
    link.symlink_to(target)
    with pytest.raises(ConfigError, match="symbolic link"):
        store_keys(link, HOST, *pair())
    assert target.read_text() == "{}" and link.is_symlink()


def test_symlink_swapped_in_after_the_check_is_not_followed(tmp_path, monkeypatch):
    target = make(tmp_path / "real.json", "{}")
    link = tmp_path / "auth.json"
    link.symlink_to(target)
    real_lstat = os.lstat
    # The link appears between the lstat check and the open: lstat still sees a file.
    monkeypatch.setattr(authfile.os, "lstat",
                        lambda p, *a, **k: os.stat(target) if str(p) == str(link)
                        else real_lstat(p, *a, **k))
    with pytest.raises(ConfigError):
        store_keys(link, HOST, *pair())
    assert target.read_text() == "{}"


def test_dangling_symlink_is_refused(tmp_path):
    link = tmp_path / "auth.json"
    link.symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(ConfigError, match="symbolic link"):
        store_keys(link, HOST, *pair())
    assert not (tmp_path / "elsewhere.json").exists()


def test_folder_named_auth_json_is_refused(tmp_path):
    (tmp_path / "auth.json").mkdir()
    with pytest.raises(ConfigError, match="not a regular file"):
        store_keys(tmp_path / "auth.json", HOST, *pair())


@pytest.mark.parametrize("text, match", [
    ('{"http-basic": {', "not valid JSON"),
    ("\ufeff{}", "byte-order mark"),
    ('["x"]', "holds a JSON list, not an object"),
    ("[" * 100000 + "]" * 100000, "nested too deeply"),
    ('{"http-basic": "x"}', "'http-basic' is not an object"),
    (b'{"a": "\xff"}', "not UTF-8"),
])
def test_unusable_content_is_refused_and_kept(tmp_path, text, match):
    path = make(tmp_path / "auth.json", text)
    before = path.read_bytes()
    with pytest.raises(ConfigError, match=match) as info:
        store_keys(path, HOST, *pair())
    assert str(path) in str(info.value)
    assert path.read_bytes() == before and no_leftovers(tmp_path)


# ---------------------------------------------------------------- web roots


@pytest.fixture
def shop(tmp_path):
    root = tmp_path / "shop"
    (root / "pub").mkdir(parents=True)
    (root / "pub" / "index.php").write_text("<?php")
    (root / "app" / "etc").mkdir(parents=True)
    return root


@pytest.mark.parametrize("folder", [".", "pub", "app", "app/etc", "pub/media/x"])
def test_web_root_is_refused(shop, folder):
    target = shop / folder
    target.mkdir(parents=True, exist_ok=True)
    path = target / "auth.json"
    with pytest.raises(ConfigError) as info:
        store_keys(path, HOST, *pair())
    message = str(info.value)
    assert str(path) in message and "web server could serve" in message
    assert "COMPOSER_AUTH" in message and "global auth.json" in message
    assert not path.exists()


def test_pub_folder_is_a_web_root_beyond_the_ancestor_window(tmp_path):
    (tmp_path / "site" / "pub").mkdir(parents=True)
    (tmp_path / "site" / "pub" / "index.php").write_text("<?php")
    assert "holds pub/index.php" in web_root_reason(tmp_path / "site")
    # Four levels below the Magento root: only the pub/ rule still sees it.
    deep = tmp_path / "site" / "pub" / "a" / "b" / "c"
    deep.mkdir(parents=True)
    assert "is the pub/ folder" in web_root_reason(deep)
    with pytest.raises(ConfigError, match="web server could serve"):
        store_keys(deep / "auth.json", HOST, *pair())


def test_far_below_a_magento_root_is_allowed(shop):
    deep = shop / "a" / "b" / "c" / "d"
    deep.mkdir(parents=True)
    assert web_root_reason(deep) is None
    assert web_root_reason(shop / "a" / "b" / "c") is not None
    store_keys(deep / "auth.json", HOST, *pair())


def test_outside_a_web_root_is_allowed(tmp_path):
    assert web_root_reason(tmp_path) is None
    (tmp_path / "pub").mkdir()  # a pub folder without index.php is not a web root
    assert web_root_reason(tmp_path) is None


# ---------------------------------------------------------------- write failures


def test_failed_rename_leaves_original_and_no_temp(tmp_path, monkeypatch):
    path = make(tmp_path / "auth.json", OTHERS)

    def fail(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(authfile.os, "replace", fail)
    with pytest.raises(LocalFileError, match="No space left on device") as info:
        store_keys(path, HOST, *pair())
    assert str(path) in str(info.value)
    assert path.read_text() == OTHERS and no_leftovers(tmp_path)


def test_failed_create_removes_the_claimed_name(tmp_path, monkeypatch):
    path = tmp_path / "auth.json"

    def fail(*args):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(authfile.os, "replace", fail)
    with pytest.raises(LocalFileError):
        store_keys(path, HOST, *pair())
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- inputs


@pytest.mark.parametrize("public, private, match", [
    ("", R1, "public key is empty"),
    (R2, "", "private key is empty"),
    (R2, R3[:16] + " " + R3[16:], "private key holds spaces"),
    (R2 + "\n", R3, "public key holds spaces"),
])
def test_bad_keys_are_refused_without_echo(tmp_path, public, private, match):
    with pytest.raises(UsageError, match=match) as info:
        store_keys(tmp_path / "auth.json", HOST, public, private)
    assert info.value.exit_code == 2
    for value in (public.strip(), private.strip()):
        if value:
            assert value not in str(info.value)
    assert not (tmp_path / "auth.json").exists()


@pytest.mark.parametrize("host", ["", "repo magento", "repo.magento.com/x", "u@repo", "h:port"])
def test_bad_host_is_refused(tmp_path, host):
    with pytest.raises(UsageError):
        store_keys(tmp_path / "auth.json", host, *pair())


def test_composer_auth_json_is_one_line_and_found(tmp_path):
    keys = pair()
    value = composer_auth_json(HOST, *keys)
    assert "\n" not in value and " " not in value
    assert json.loads(value) == {"http-basic": {HOST: {"username": keys[0], "password": keys[1]}}}
    result = find_keys(project_dir=tmp_path, env={"COMPOSER_HOME": str(tmp_path / "ch"),
                                                  "COMPOSER_AUTH": value})
    assert result.credentials == keys
    assert json.loads(composer_auth_json("http://127.0.0.1:8080/", *keys))["http-basic"] == {
        "127.0.0.1:8080": {"username": keys[0], "password": keys[1]}}


# ---------------------------------------------------------------- secrecy


def test_no_private_key_in_any_message_repr_or_log(tmp_path, shop, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    keys = pair()
    texts = []

    def attempt(path, *args, **kwargs):
        try:
            result = store_keys(path, *args, **kwargs)
            texts.append(repr(result))
        except (ConfigError, UsageError, LocalFileError) as exc:
            texts.extend([str(exc), repr(exc)])

    good = tmp_path / "auth.json"
    attempt(good, HOST, *keys)
    attempt(good, HOST, *keys)
    attempt(make(tmp_path / "loose.json", "{}", 0o644), HOST, *keys)
    attempt(make(tmp_path / "bad.json", '{"x": "' + keys[1] + '"'), HOST, *keys)
    attempt(shop / "auth.json", HOST, *keys)
    attempt(tmp_path / "auth.json", HOST, keys[0], keys[1] + " x")
    monkeypatch.setattr(authfile, "set_entry", lambda *a: (_ for _ in ()).throw(
        EditError("boom")))
    attempt(good, HOST, *pair())
    try:
        read_keys(io.StringIO(keys[1]), prompt=False)
    except UsageError as exc:
        texts.append(str(exc))
    joined = " ".join(texts) + caplog.text
    assert len(texts) >= 8
    assert keys[1] not in joined and keys[0] not in joined
