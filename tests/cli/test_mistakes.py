"""Mistakes a tired person makes, each against the emulator: the documented exit code, a message that names
the problem (the value, option or file at fault), and never a traceback or ``internal error``.

Each row: an id, the command line (``{tmp}`` a scratch folder, ``{url}`` the emulator's base URL, ``{root}``
its scheme, host and port), files to create first (path -> (text, mode)), environment changes
(``None`` removes), the exit code, and what the message must contain.
"""

import os

import pytest
from clirun import run

TOKEN_FILE = "{tmp}/token"

MISTAKES = [
    # -- selection ---------------------------------------------------------------------
    ("type typo in list", ["list", "--type", "ce-ful"], {}, {}, 5, ["'ce-ful'", "ce-full"]),
    ("type typo in versions", ["versions", "--type", "ce-ful"], {}, {}, 5, ["ce-ful", "ce-full"]),
    ("type typo in get", ["get", "--type", "ee-ful", "-o", "{tmp}/out"], {}, {}, 5, ["ee-ful", "ee-full"]),
    ("glob never closed", ["list", "--version", "2.4.[7"], {}, {}, 5, ["2.4.[7"]),
    ("version that does not exist", ["get", "--type", "ce-full", "--version", "2.5.0", "-o", "{tmp}/out"], {}, {},
     5, ["2.5.0"]),
    ("format nobody publishes", ["get", "--type", "ce-full", "--format", "tgz", "-o", "{tmp}/out"], {}, {},
     5, ["tgz", "tar.gz"]),
    ("file name missing its suffix", ["get", "Magento-CE-2.4.7.tar", "-o", "{tmp}/out"], {}, {},
     5, ["Magento-CE-2.4.7.tar", "not in the catalogue", "magedl list"]),
    ("get with nothing to get", ["get"], {}, {}, 2, ["nothing to get"]),
    ("names and a selection at once", ["get", "Magento-CE-2.4.7.zip", "--version", "2.4.7"], {}, {},
     2, ["not both"]),
    ("-o naming a file", ["get", "Magento-CE-2.4.7.zip", "-o", "{tmp}/afile"], {"{tmp}/afile": ("x", 0o644)}, {},
     2, ["{tmp}/afile", "not a folder"]),
    ("-o without its folder", ["get", "Magento-CE-2.4.7.zip", "-o"], {}, {}, 2, ["-o/--output"]),
    ("a path as the file name", ["get", "../Magento-CE-2.4.7.zip", "-o", "{tmp}/out"], {}, {}, 2, ["unsafe"]),
    # -- the base URL ------------------------------------------------------------------------
    ("the feed's URL pasted as the base", ["--base-url", "{url}info/json", "list"], {}, {},
     5, ["{url}info/json", "info/"]),
    ("two URLs pasted as one", ["--base-url", "{url} {root}", "list"], {}, {}, 2,
     ["--base-url", "space", "one URL"]),
    ("a URL with a line break from the environment", ["list"], {}, {"MAGEDL_BASE_URL": "{url}\nrepo.magento.com"}, 2,
     ["MAGEDL_BASE_URL", "line break"]),
    ("the bare host as the base", ["--base-url", "{root}", "list"], {}, {}, 5, ["{root}info/json"]),
    ("a typo in the base path", ["--base-url", "{url}x/", "list"], {}, {}, 5, ["{url}x/info/json"]),
    ("a mirror folder that is not there", ["--base-url", "file:///nonexistent-magedl-mirror/", "list"], {}, {},
     5, ["/nonexistent-magedl-mirror/"]),
    ("a broken IPv6 address", ["--base-url", "http://[::1", "list"], {}, {}, 2, ["IPv6"]),
    ("a scheme typo", ["--base-url", "htp://example.com/", "list"], {}, {}, 2, ["htp://example.com/"]),
    ("https to a plain HTTP server", ["--base-url", "{url_https}", "--retries", "1", "list"], {}, {},
     7, ["TLS", "http://"]),
    ("a mistyped port", ["--base-url", "http://127.0.0.1:1/products/downloads/", "list"], {}, {}, 7,
     ["127.0.0.1:1", "nothing listens there", "port"]),
    ("a host that does not resolve", ["--base-url", "http://no-such-host.invalid/", "--retries", "1", "list"], {}, {},
     7, ["no-such-host.invalid"]),
    # -- credentials ---------------------------------------------------------------------------
    ("a wrong token", ["list"], {}, {"MAGEDL_TOKEN": "f" * 40}, 3, ["MAGEDL_TOKEN", "401"]),
    ("a MAGEID without a token", ["list"], {}, {"MAGEDL_TOKEN": None}, 3, ["MAGEDL_MAGEID", "token"]),
    ("no credentials at all", ["list"], {}, {"MAGEDL_TOKEN": None, "MAGEDL_MAGEID": None}, 3, ["none were sent"]),
    ("a token file that is not there", ["--token-file", "{tmp}/nope", "list"], {}, {"MAGEDL_TOKEN": None},
     2, ["{tmp}/nope"]),
    ("an empty token file", ["--token-file", TOKEN_FILE, "list"], {TOKEN_FILE: ("", 0o600)}, {"MAGEDL_TOKEN": None},
     2, [TOKEN_FILE, "empty"]),
    ("a folder as the token file", ["--token-file", "{tmp}", "list"], {}, {"MAGEDL_TOKEN": None}, 2, ["folder"]),
    ("a token with a non-ASCII letter", ["--token-file", TOKEN_FILE, "list"], {TOKEN_FILE: ("tok\u00e9n", 0o600)},
     {"MAGEDL_TOKEN": None}, 2, ["non-ASCII"]),
    ("a token file others can read", ["--token-file", TOKEN_FILE, "list"], {TOKEN_FILE: ("{token}", 0o644)},
     {"MAGEDL_TOKEN": None}, 1, ["chmod 600"]),
    ("a config file with no section", ["list"], {"{config}": ("mageid = MAG000123456\n", 0o600)},
     {"MAGEDL_TOKEN": None, "MAGEDL_MAGEID": None}, 1, ["line 1", "[magedl]"]),
    ("a CA bundle that is not there", ["--ca-bundle", "{tmp}/ca.pem", "list"], {}, {}, 2, ["{tmp}/ca.pem"]),
    # -- options ---------------------------------------------------------------------------------
    ("--timeout nan", ["--timeout", "nan", "list"], {}, {}, 2, ["--timeout", "nan"]),
    ("--timeout 1e400", ["--timeout", "1e400", "list"], {}, {}, 2, ["--timeout", "1e400"]),
    ("--retries 0", ["--retries", "0", "list"], {}, {}, 2, ["--retries", "at least 1"]),
    ("17 connections", ["get", "x.zip", "--connections", "17"], {}, {}, 2, ["--connections", "16"]),
    ("a rate with a typo", ["get", "x.zip", "--limit-rate", "5q"], {}, {}, 2, ["--limit-rate", "5q"]),
    ("an option before its command", ["--jobs", "3", "get", "x.zip"], {}, {}, 2, ["--jobs", "after the command"]),
    ("an option of another command", ["list", "--jobs", "3"], {}, {}, 2, ["--jobs", "not of 'list'"]),
    ("a mistyped option", ["--tokn", "ABCSECRET", "list"], {}, {}, 2, ["--tokn", "--token"]),
    ("a mistyped command", ["lsit"], {}, {}, 2, ["'lsit'", "'list'"]),
    # -- mirror, verify, serve ---------------------------------------------------------------------
    ("mirror without its folder", ["mirror"], {}, {}, 2, ["DIR"]),
    ("verify of a folder that is no mirror", ["verify", "{tmp}"], {}, {}, 5, ["{tmp}", "not a mirror"]),
    ("verify of a path that is not there", ["verify", "{tmp}/nope"], {}, {}, 5, ["{tmp}/nope"]),
    ("serve of a folder that is no mirror", ["serve", "{tmp}"], {}, {}, 5, ["{tmp}", "magedl mirror"]),
    ("serve on port 99999", ["serve", "{tmp}", "--port", "99999"], {}, {}, 2, ["--port", "99999"]),
    ("mirror of a type typo", ["mirror", "{tmp}/m", "--type", "ce-ful"], {}, {}, 5, ["ce-ful", "ce-full"]),
    # -- the second hour (issue 20) -----------------------------------------------------------------
    ("a bare type after list", ["list", "ce-full"], {}, {}, 2,
     ["'ce-full'", "--type ce-full", "magedl list --help"]),
    ("a rate with a space", ["get", "x.zip", "--limit-rate", "5", "MB"], {}, {}, 2,
     ["'MB'", "--limit-rate 5MB", "magedl get --help"]),
    ("a stray word after an option's value", ["keys", "check", "--project", "{tmp}", "extra"], {}, {}, 2,
     ["(word ", "not shown", "magedl keys check --help"]),
    ("a wrong token, told as the service would", ["list"], {}, {"MAGEDL_TOKEN": "f" * 40}, 3,
     ["Account Settings > Downloads Access Token"]),
    ("a MAGEID of the wrong shape", ["list"], {}, {"MAGEDL_MAGEID": "123456"}, 3,
     ["'123456'", "does not look like one", "MAG followed by 9 digits"]),
    ("a mirror folder under a file", ["mirror", "{tmp}/afile/sub", "--type", "ce-patch"],
     {"{tmp}/afile": ("hi", 0o644)}, {}, 2, ["{tmp}/afile is a file, not a folder"]),
    ("-o under a file", ["get", "Magento-CE-2.4.7.zip", "-o", "{tmp}/afile/sub"], {"{tmp}/afile": ("hi", 0o644)}, {},
     2, ["{tmp}/afile is a file"]),
    ("serve of a file", ["serve", "{tmp}/afile"], {"{tmp}/afile": ("hi", 0o644)}, {}, 5,
     ["{tmp}/afile is a file, not a mirror folder"]),
    ("a type in capitals", ["list", "--type", "CE-full"], {}, {}, 5, ["'CE-full'", "did you mean 'ce-full'"]),
]


@pytest.mark.parametrize("what, argv, files, environ, code, needles", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_a_mistake_gets_its_exit_code_and_a_message_naming_it(env, capsys, monkeypatch, tmp_path, isolated_home,
                                                               what, argv, files, environ, code, needles):
    root = env.base_url.split("/products/")[0] + "/"
    values = {"tmp": str(tmp_path), "url": env.base_url, "root": root, "token": env.token,
              "url_https": env.base_url.replace("http://", "https://"),
              "config": str(isolated_home / ".config" / "magedl" / "config")}
    for path, (text, mode) in files.items():
        path = path.format(**values)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text.format(**values))
        os.chmod(path, mode)
    for name, value in environ.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value.format(**values))
    got, out, err = run(capsys, *[a.format(**values) for a in argv])
    assert got == code, err
    assert "Traceback" not in err and "internal error" not in err
    assert err.strip().splitlines()[-1].startswith("magedl: error: "), err
    for needle in needles:
        assert needle.format(**values) in err, needle
    if what == "a mistyped option":
        assert "ABCSECRET" not in err
    if what.startswith("a wrong token"):
        assert "--auth-file" not in err  # the emulator plays the service: no mirror advice
    if what == "mirror of a type typo":
        assert not (tmp_path / "m").exists()  # refused before the mirror folder is made


def test_the_table_has_at_least_25_mistakes():
    assert len(MISTAKES) >= 25


def test_a_stray_word_that_looks_like_a_token_is_not_echoed(env, capsys):
    secret = "0123456789abcdef0123456789abcdef"
    got, out, err = run(capsys, "list", secret)
    assert got == 2
    assert secret not in err and "not shown" in err and "(word " in err


def test_get_takes_names_after_its_options(env, capsys, tmp_path):
    got, out, err = run(capsys, "get", "Magento-CE-2.4.7.zip", "-o", str(tmp_path), "Magento-CE-2.4.6-p1.zip")
    assert got == 0, err
    assert (tmp_path / "Magento-CE-2.4.7.zip").is_file() and (tmp_path / "Magento-CE-2.4.6-p1.zip").is_file()


def test_every_help_fits_the_terminal(monkeypatch, capsys):
    from magedl.cli import main
    from magedl.cli.app import _all_commands, build_parser

    commands = [""] + [path for path, _ in _all_commands(build_parser())]
    for columns in ("80", "120"):  # 80: the narrowest terminal the issue was tried at
        monkeypatch.setenv("COLUMNS", columns)
        for command in commands:
            try:
                main([*command.split(), "--help"])
            except SystemExit:
                pass
            text = capsys.readouterr().out
            too_long = [line for line in text.splitlines() if len(line) > int(columns)]
            assert not too_long, f"'magedl {command} --help' at {columns} columns: {too_long}"


def test_keys_store_help_says_print_env_writes_instead(capsys):
    from magedl.cli import main

    try:
        main(["keys", "store", "--help"])
    except SystemExit:
        pass
    text = " ".join(capsys.readouterr().out.split())
    assert "instead of storing" in text


@pytest.mark.parametrize("attempt", range(3))
def test_a_reader_that_goes_away_ends_the_run_quietly(emulator, cli_env, attempt):
    """``magedl --json list | head -1``: the pipe closes before the output is written; never a bare 1."""
    import subprocess
    import sys

    read, write = os.pipe()
    os.close(read)  # the reader is gone before magedl writes a byte
    try:
        done = subprocess.run([sys.executable, "-m", "magedl", "--json", "list"], stdout=write,
                              stderr=subprocess.PIPE, env=cli_env(emulator), timeout=60)
    finally:
        os.close(write)
    assert done.returncode == 141, done.stderr
    assert done.stderr == b""


def test_adobes_curl_url_pasted_whole_works_and_its_token_stays_secret(env, capsys, monkeypatch):
    """``https://MAGEID:TOKEN@host/products/downloads/info/help``, as Adobe documents it for curl."""
    monkeypatch.delenv("MAGEDL_MAGEID")
    monkeypatch.delenv("MAGEDL_TOKEN")
    scheme, rest = env.base_url.split("://", 1)
    pasted = f"{scheme}://{env.mageid}:{env.token}@{rest}info/help"
    got, out, err = run(capsys, "-vv", "--base-url", pasted, "versions")
    assert got == 0, err
    assert "2.4.7" in out
    assert env.token not in out + err
    assert any(r.had_authorization for r in env.log)


def test_a_server_that_answered_once_is_waited_for_when_it_refuses():
    """A refusal from a server that answered earlier in the run is a restart: retried, not final."""
    import requests

    from magedl.errors import TransientError
    from magedl.service.neterrors import answered, transient_from

    url = "http://127.0.0.2:9/products/downloads/info/json"
    refused = requests.exceptions.ConnectionError(ConnectionRefusedError(111, "Connection refused"))
    assert not isinstance(transient_from(refused, "info/json", url), TransientError)
    answered(url)
    assert isinstance(transient_from(refused, "info/json", url), TransientError)


def test_retries_say_once_how_long_they_go_on(env, capsys, monkeypatch, sleeps):
    from magedl.service import retry

    monkeypatch.setattr(retry, "_told", [])
    env.set_faults(fail_status=503, fail_count=2)
    got, out, err = run(capsys, "--retry-wait", "1", "versions")
    assert got == 0, err
    assert err.count("retrying failed requests: up to 5 attempts in a row without progress, about 19 s") == 1


def _composer_auth(repos, kind="open-source"):
    import json

    public, private = repos.keys[kind]
    host = repos.magento_url.split("://", 1)[1].rstrip("/")
    return json.dumps({"http-basic": {host: {"username": public, "password": private}}})


@pytest.mark.parametrize("argv", [
    ["mirror", "{tmp}/m", "--composer-require", "magento/product-comunity-edition",
     "--composer-repo", "{magento}", "--composer-repo", "{packagist}"],
    ["keys", "check", "--repo-url", "{magento}", "--package", "magento/product-comunity-edition"],
], ids=["mirror", "keys check"])
def test_a_package_name_typo_is_not_found_with_a_suggestion_everywhere(composer_repos, capsys, monkeypatch,
                                                                        tmp_path, argv):
    monkeypatch.setenv("COMPOSER_AUTH", _composer_auth(composer_repos))
    values = {"tmp": str(tmp_path), "magento": composer_repos.magento_url, "packagist": composer_repos.packagist_url}
    got, out, err = run(capsys, *[a.format(**values) for a in argv])
    assert got == 5, err
    assert "did you mean magento/product-community-edition?" in err
    assert "entitle" not in err and "licence" not in err


def test_a_commerce_package_with_open_source_keys_is_still_not_theirs(composer_repos, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("COMPOSER_AUTH", _composer_auth(composer_repos))
    got, out, err = run(capsys, "mirror", str(tmp_path / "m"), "--composer-require",
                        "magento/product-enterprise-edition", "--composer-repo", composer_repos.magento_url,
                        "--composer-repo", composer_repos.packagist_url)
    assert got == 4 and "Open Source" in err


def _auth_with(repos, public, private):
    import json

    host = repos.magento_url.split("://", 1)[1].rstrip("/")
    return json.dumps({"http-basic": {host: {"username": public, "password": private}}})


@pytest.mark.parametrize("how, needle", [
    ("swapped", "the keys look swapped"),
    ("33", "the private key is 33 characters long, not 32"),
    ("31", "the public key is 31 characters long, not 32"),
])
def test_keys_of_the_wrong_shape_or_order_are_named(composer_repos, capsys, monkeypatch, how, needle):
    public, private = composer_repos.keys["open-source"]
    pair = {"swapped": (private, public), "33": (public, private + "a"), "31": (public[:-1], private)}[how]
    monkeypatch.setenv("COMPOSER_AUTH", _auth_with(composer_repos, *pair))
    got, out, err = run(capsys, "keys", "check", "--repo-url", composer_repos.magento_url)
    assert got == 3, err
    assert needle in err
    assert public not in err and private not in err and public[:-1] not in err


def test_keys_store_names_swapped_keys_and_stores_nothing(composer_repos, capsys, monkeypatch, isolated_home):
    import io

    public, private = composer_repos.keys["open-source"]
    monkeypatch.setenv("COMPOSER_HOME", str(isolated_home / "composer"))
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{private} {public}\n"))
    got, out, err = run(capsys, "keys", "store", "--global", "--repo-url", composer_repos.magento_url)
    assert got == 3 and "the keys look swapped" in err
    assert not (isolated_home / "composer" / "auth.json").exists()


def test_ctrl_c_at_the_keys_prompt_says_so_on_a_new_line(capsys, monkeypatch, isolated_home):
    import getpass

    from magedl.cli import keys as keys_cli

    prompts = []

    def interrupted(prompt):
        prompts.append(prompt)
        raise KeyboardInterrupt

    monkeypatch.setattr(keys_cli, "_interactive", lambda: True)
    monkeypatch.setattr(getpass, "getpass", interrupted)
    monkeypatch.setenv("COMPOSER_HOME", str(isolated_home / "composer"))
    got, out, err = run(capsys, "keys", "store", "--global", "--no-check")
    assert got == 130
    assert err == "\nmagedl: interrupted; nothing was stored\n"
    assert prompts == ["Marketplace public key (hidden): "]  # labelled as hidden, as the private one is
    assert not (isolated_home / "composer" / "auth.json").exists()


def test_ctrl_c_elsewhere_says_what_it_left(env, capsys, monkeypatch):
    from magedl.cli import listing

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(listing, "select_releases", interrupted)
    got, out, err = run(capsys, "list")
    assert got == 130 and err == "magedl: interrupted\n"


@pytest.fixture
def magento_root(tmp_path):
    root = tmp_path / "shop"
    (root / "pub").mkdir(parents=True)
    (root / "pub" / "index.php").write_text("<?php")
    (root / "index.php").write_text("<?php")  # the root-docroot variant has one too
    (root / "composer.json").write_text('{"name": "magento/project-community-edition"}')
    return root


def test_keys_store_project_in_a_magento_root_stores_and_says_what_to_check(magento_root, capsys, monkeypatch):
    import io
    import stat

    monkeypatch.setattr("sys.stdin", io.StringIO("0a1b2c3d4e5f60718293a4b5c6d7e8f9 f9e8d7c6b5a4938271605f4e3d2c1b0a\n"))
    got, out, err = run(capsys, "keys", "store", "--project", str(magento_root), "--no-check")
    assert got == 0, err
    auth = magento_root / "auth.json"
    assert stat.S_IMODE(auth.stat().st_mode) == 0o600
    assert "pub/index.php" in err and "auth.json must answer 403 or 404" in err


def test_keys_store_project_in_a_web_root_without_composer_is_refused(magento_root, capsys, monkeypatch):
    import io

    (magento_root / "composer.json").unlink()
    monkeypatch.setattr("sys.stdin", io.StringIO("0a1b2c3d4e5f60718293a4b5c6d7e8f9 f9e8d7c6b5a4938271605f4e3d2c1b0a\n"))
    got, out, err = run(capsys, "keys", "store", "--project", str(magento_root), "--no-check")
    assert got == 2 and "refusing to write" in err and "composer.json" in err
    assert not (magento_root / "auth.json").exists()
