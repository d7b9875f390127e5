"""``magedl keys check|store`` against repo.magento.com played on loopback (every layout, every kind of key).

Every test also checks that neither key of any pair appears in anything the
command printed or in any file it wrote, apart from the auth.json meant to
hold them.
"""

import io
import json
import os
import socket
import stat
import sys

import pytest
from clirun import run

COMMERCE_ONLY = "magento/module-staging:101.1.7"


@pytest.fixture
def composer_home(tmp_path, monkeypatch):
    home = tmp_path / "composer-home"
    home.mkdir()
    monkeypatch.setenv("COMPOSER_HOME", str(home))
    monkeypatch.delenv("COMPOSER_AUTH", raising=False)
    monkeypatch.delenv("COMPOSER", raising=False)
    monkeypatch.chdir(tmp_path)
    return home


def auth_json(host, pair):
    return json.dumps({"http-basic": {host: {"username": pair[0], "password": pair[1]}}})


def write_private(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, 0o600)


def host_of(url):
    return url.split("://", 1)[1].rstrip("/")


def no_key_in(texts, keys):
    for public, private in keys.values():
        for text in texts:
            assert private not in text
            assert public not in text  # shown masked only: its first four characters


@pytest.fixture
def repo(magento_repo, composer_home, marketplace_keys):
    """providers-layout repository; ``use(kind)`` puts that kind's keys in the global auth.json."""
    url, app = magento_repo("providers")

    def use(kind, where=None):
        write_private(where or composer_home / "auth.json", auth_json(host_of(url), marketplace_keys[kind]))

    return url, use


def check(capsys, url, *argv):
    return run(capsys, "keys", "check", "--repo-url", url, "--retries", "1", *argv)


@pytest.mark.parametrize("layout", ["providers", "inline", "metadata-url"])
def test_open_source_keys_in_every_layout(magento_repo, composer_home, marketplace_keys, capsys, layout):
    url, _ = magento_repo(layout)
    write_private(composer_home / "auth.json", auth_json(host_of(url), marketplace_keys["open-source"]))
    code, out, err = check(capsys, url)
    assert code == 0, err
    assert "public key 0a1b…" in out and "the global auth.json" in out
    assert "unlocks" in out and "8 packages" in out
    assert "archives" in out and ": OK" in out  # one archive fetched (one byte of it)
    if layout == "providers":
        assert "Open Source: 8 packages" in out and "Commerce" not in out
    no_key_in([out, err], marketplace_keys)


def test_commerce_keys_unlock_both_groups(repo, capsys, marketplace_keys):
    url, use = repo
    use("commerce")
    code, out, err = check(capsys, url, "--package", COMMERCE_ONLY)
    assert code == 0, err
    assert "Open Source: 8 packages, Commerce: 2 packages" in out
    assert "magento/module-staging 101.1.7: OK" in out
    no_key_in([out, err], marketplace_keys)


def test_disabled_keys_exit_3_relaying_the_servers_warning(repo, capsys, marketplace_keys):
    url, use = repo
    use("disabled")
    code, out, err = check(capsys, url)
    assert code == 3 and out == ""
    assert "Your Magento authentication keys are invalid" in err and "Access Keys" in err
    assert "public key 2c3d…" in err and "the global auth.json" in err
    no_key_in([out, err], marketplace_keys)


def test_no_keys_anywhere_exit_3_saying_where_it_looked(repo, capsys, composer_home):
    url, _ = repo
    code, out, err = check(capsys, url)
    assert code == 3
    assert "no Marketplace keys" in err and str(composer_home / "auth.json") in err and "keys store" in err


def test_lapsed_entitlement_lists_but_fetches_nothing_exit_4(repo, capsys, marketplace_keys):
    url, use = repo
    use("lapsed")
    code, out, err = check(capsys, url)
    assert code == 4
    assert "NOT ENTITLED" in out and "lapsed" in err
    no_key_in([out, err], marketplace_keys)


def test_a_commerce_package_with_open_source_keys_exit_4(repo, capsys, marketplace_keys):
    url, use = repo
    use("open-source")
    code, out, err = check(capsys, url, "--package", COMMERCE_ONLY)
    assert code == 4 and "module-staging" in err and "Commerce" in err
    code, out, err = check(capsys, url, "--package", "magento/product-enterprise-edition")
    assert code == 4 and "Open Source" in err


def test_a_package_typo_exit_5_with_the_closest_name(repo, capsys):
    url, use = repo
    use("open-source")
    code, out, err = check(capsys, url, "--package", "magento/product-comunity-edition")
    assert code == 5 and "did you mean magento/product-community-edition?" in err


def test_a_version_that_does_not_exist_exit_5(repo, capsys):
    url, use = repo
    use("open-source")
    code, out, err = check(capsys, url, "--package", "magento/framework:9.9.9")
    assert code == 5 and "no version 9.9.9" in err and "103.0.7" in err


def test_a_package_and_version_that_may_be_fetched(repo, capsys, magento_repo):
    url, use = repo
    use("open-source")
    code, out, err = check(capsys, url, "--package", "magento/framework:103.0.7", "--package", "magento/module-eav")
    assert code == 0 and "magento/framework 103.0.7: OK" in out and "magento/module-eav 102.1.7-p1: OK" in out


def test_the_archive_is_never_downloaded_whole(magento_repo, composer_home, marketplace_keys, capsys):
    url, app = magento_repo("providers")
    write_private(composer_home / "auth.json", auth_json(host_of(url), marketplace_keys["open-source"]))
    code, out, err = check(capsys, url, "--package", "magento/framework:103.0.7")
    assert code == 0
    archives = [path for method, path in app.requests if path.startswith("/archives/")]
    assert len(archives) == 1  # one ranged GET (the emulator logs it; the test server answers 206 with one byte)


def test_an_unreachable_repository_exit_7(composer_home, capsys, marketplace_keys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    write_private(composer_home / "auth.json", auth_json(f"127.0.0.1:{port}", marketplace_keys["open-source"]))
    code, out, err = check(capsys, url)
    assert code == 7 and f"127.0.0.1:{port}" in err


def test_composer_auth_wins_over_the_project_file_and_the_difference_is_told(repo, capsys, tmp_path, monkeypatch,
                                                                           marketplace_keys):
    url, use = repo
    project = tmp_path / "project"
    write_private(project / "composer.json", "{}")
    use("disabled", project / "auth.json")
    monkeypatch.setenv("COMPOSER_AUTH", auth_json(host_of(url), marketplace_keys["commerce"]))
    code, out, err = check(capsys, url, "--project", str(project))
    assert code == 0, err
    assert "COMPOSER_AUTH" in out and "public key 1b2c…" in out
    assert "project auth.json" in err  # the disagreeing file is named, with its masked key
    assert "2.7.8" in err  # older Composer versions let the project file win
    no_key_in([out, err], marketplace_keys)


def test_a_malformed_composer_auth_exit_1_naming_it(repo, capsys, monkeypatch):
    url, use = repo
    use("open-source")
    monkeypatch.setenv("COMPOSER_AUTH", "{not json")
    code, out, err = check(capsys, url)
    assert code == 1 and "COMPOSER_AUTH" in err and "Traceback" not in err


def test_json_for_scripts(repo, capsys, marketplace_keys):
    url, use = repo
    use("open-source")
    code, out, err = check(capsys, url, "--json", "--package", COMMERCE_ONLY)
    report = json.loads(out)
    assert code == 4 and report["ok"] is False and report["exit_code"] == 4
    assert report["keys"]["public_key"] == "0a1b…" and report["keys"]["source"] == "global-auth"
    assert report["groups"] == {"Open Source": 8} and report["packages"][0]["exit_code"] == 4
    use("disabled")
    code, out, err = check(capsys, url, "--json")
    report = json.loads(out)
    assert code == 3 and report["exit_code"] == 3 and "invalid" in report["error"]
    no_key_in([out, err], marketplace_keys)


# -- store -------------------------------------------------------------------------------------


def store(capsys, monkeypatch, url, pair, *argv):
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{pair[0]}\n{pair[1]}\n"))
    return run(capsys, "keys", "store", "--repo-url", url, "--retries", "1", *argv)


def test_store_global_checks_then_writes_a_private_file(repo, capsys, monkeypatch, composer_home, marketplace_keys):
    url, _ = repo
    pair = marketplace_keys["open-source"]
    code, out, err = store(capsys, monkeypatch, url, pair, "--global")
    assert code == 0, err
    path = composer_home / "auth.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["http-basic"][host_of(url)] == {"username": pair[0], "password": pair[1]}
    assert "accepts the keys" in err and str(path) in err
    no_key_in([out, err], marketplace_keys)
    code, out, err = check(capsys, url)  # and keys check finds them there
    assert code == 0 and "the global auth.json" in out


def test_store_keeps_the_rest_of_the_file(repo, capsys, monkeypatch, composer_home, marketplace_keys):
    url, _ = repo
    before = '{\n    "github-oauth": {"github.com": "x"},\n    "http-basic": {}\n}\n'
    write_private(composer_home / "auth.json", before)
    assert store(capsys, monkeypatch, url, marketplace_keys["commerce"], "--global")[0] == 0
    text = (composer_home / "auth.json").read_text()
    assert '"github-oauth": {"github.com": "x"}' in text


def test_refused_keys_are_not_stored(repo, capsys, monkeypatch, composer_home, marketplace_keys):
    url, _ = repo
    code, out, err = store(capsys, monkeypatch, url, marketplace_keys["disabled"], "--global")
    assert code == 3 and not (composer_home / "auth.json").exists()
    no_key_in([out, err], marketplace_keys)


def test_store_refuses_a_web_root_without_a_composer_project_before_reading_keys(repo, capsys, monkeypatch, tmp_path,
                                                                                 marketplace_keys):
    url, _ = repo
    site = tmp_path / "site"
    write_private(site / "pub" / "index.php", "<?php")
    code, out, err = store(capsys, monkeypatch, url, marketplace_keys["open-source"], "--project", str(site))
    assert code == 2 and "web server could serve it" in err and not (site / "auth.json").exists()


def test_store_needs_a_place(repo, capsys, monkeypatch, marketplace_keys):
    url, _ = repo
    code, out, err = store(capsys, monkeypatch, url, marketplace_keys["open-source"])
    assert code == 2 and "--global" in err and "--project" in err


def test_keys_are_never_taken_from_the_command_line(capsys, marketplace_keys):
    public, private = marketplace_keys["open-source"]
    code, out, err = run(capsys, "keys", "store", "--global", public, private)
    assert code == 2 and public not in err and private not in err


def test_store_refuses_a_file_others_can_read(repo, capsys, monkeypatch, composer_home, marketplace_keys):
    url, _ = repo
    path = composer_home / "auth.json"
    path.write_text("{}")
    os.chmod(path, 0o644)
    code, out, err = store(capsys, monkeypatch, url, marketplace_keys["open-source"], "--global", "--no-check")
    assert code == 1 and "chmod 600" in err and path.read_text() == "{}"


def test_print_env_writes_composer_auth_to_the_chosen_descriptor(repo, capsys, monkeypatch, marketplace_keys):
    url, _ = repo
    pair = marketplace_keys["commerce"]
    read_end, write_end = os.pipe()
    try:
        code, out, err = store(capsys, monkeypatch, url, pair, "--print-env", str(write_end))
    finally:
        os.close(write_end)
    with os.fdopen(read_end) as pipe:
        value = json.loads(pipe.read())
    assert code == 0, err
    assert value == {"http-basic": {host_of(url): {"username": pair[0], "password": pair[1]}}}
    no_key_in([out, err], marketplace_keys)


def test_print_env_into_a_file_left_readable_by_the_umask_makes_it_private(repo, capsys, monkeypatch, marketplace_keys,
                                                                          tmp_path, secret_scan):
    url, _ = repo
    target = tmp_path / "composer-auth.json"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT, 0o644)  # what `3>composer-auth.json` gives under umask 022
    secret_scan.allow(target)
    try:
        code, _, err = store(capsys, monkeypatch, url, marketplace_keys["commerce"], "--print-env", str(fd))
    finally:
        os.close(fd)
    assert code == 0, err
    assert oct(os.stat(target).st_mode & 0o777) == oct(0o600) and json.loads(target.read_text())["http-basic"]


def test_print_env_refuses_a_terminal(repo, capsys, monkeypatch, marketplace_keys):
    url, _ = repo
    master, slave = os.openpty()
    try:
        code, out, err = store(capsys, monkeypatch, url, marketplace_keys["commerce"], "--print-env", str(slave))
    finally:
        os.close(master)
        os.close(slave)
    assert code == 2 and "terminal" in err


def test_keys_that_do_not_look_like_marketplace_keys(capsys, monkeypatch, composer_home):
    monkeypatch.setattr(sys, "stdin", io.StringIO("MAG000987654 0123456789abcdef0123456789abcdef01234567\n"))
    code, out, err = run(capsys, "keys", "store", "--global", "--no-check")
    assert code == 2 and "MAGEID" in err and "downloads access token" in err
    assert "0123456789abcdef" not in err and not (composer_home / "auth.json").exists()


def test_no_key_in_a_debug_trace_or_any_file(repo, capsys, monkeypatch, tmp_path, composer_home, marketplace_keys):
    url, use = repo
    pair = marketplace_keys["commerce"]
    code, out, err = store(capsys, monkeypatch, url, pair, "--global", "-vv")
    assert code == 0
    texts = [out, err]
    for argv in (["-vv"], ["-vv", "--json", "--package", COMMERCE_ONLY]):
        code, out, err = check(capsys, url, *argv)
        assert code == 0
        texts += [out, err]
    assert any("GET /packages.json" in t or "packages.json" in t for t in texts)  # the trace was on
    no_key_in(texts, marketplace_keys)
    auth = composer_home / "auth.json"
    for path in tmp_path.rglob("*"):
        if path.is_file() and path != auth:
            data = path.read_bytes()
            assert pair[1].encode() not in data and pair[0].encode() not in data, path


@pytest.mark.parametrize("url", ["notaurl", "ftp://repo.example/", "https://", "https://h:port/"])
@pytest.mark.parametrize("command", [("keys", "check"), ("keys", "store", "--global"), ("doctor",)])
def test_a_repository_url_that_is_not_one_is_a_usage_error(capsys, url, command):
    code, _, err = run(capsys, *command, "--repo-url", url)
    assert code == 2 and "not a repository URL" in err and "internal error" not in err
