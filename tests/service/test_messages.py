"""What a person is told when credentials are refused or a base URL leads nowhere, through the command line.

Runs ``cli.main`` in-process against the emulator on 127.0.0.1. For the
advice that only applies to the real service, its host name is resolved to
127.0.0.1 in this process (``as_service``), so the client believes it talks
to www.magentocommerce.com while every byte stays on loopback.
"""

import os
import socket

import pytest
from clirun import run

from magedl.config import SERVICE_HOST

WRONG = "feedfacecafebeef" * 2 + "0badf00d"


@pytest.fixture
def as_service(monkeypatch, make_emulator):
    """``(base URL on the service's host name, emulator)``: the host resolves to 127.0.0.1 here.

    The emulator gets a MAGEID of its own: the demo one may have been registered as a secret by an
    earlier test (the secret registry is process-wide), and would then show as ``***``.
    """
    emulator = make_emulator(mageid="MAG000000042")
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        return real("127.0.0.1" if host == SERVICE_HOST else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return emulator.base_url.replace("127.0.0.1", SERVICE_HOST), emulator


def write_private(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, 0o600)
    return path


def error_line(err):
    lines = [line for line in err.splitlines() if line.startswith("magedl: error:")]
    assert len(lines) == 1, err
    return lines[0]


# -- 401: say what was sent and from where; the token advice only where the token is the likely cause ----


def test_wrong_token_for_the_service_names_the_sources_and_gives_token_advice(as_service, capsys, monkeypatch):
    base, emulator = as_service
    monkeypatch.setenv("MAGEDL_MAGEID", emulator.mageid)
    monkeypatch.setenv("MAGEDL_TOKEN", WRONG)
    code, _, err = run(capsys, "--base-url", base, "list")
    line = error_line(err)
    assert code == 3
    assert f"MAGEID '{emulator.mageid}' (from MAGEDL_MAGEID)" in line
    assert f"the {len(WRONG)}-character token from MAGEDL_TOKEN" in line
    assert "the token is the likely cause" in line and "disables the old one on every build host" in line
    assert WRONG not in err


def test_mistyped_mageid_is_blamed_instead_of_the_token(as_service, capsys, tmp_path):
    base, emulator = as_service
    token = write_private(tmp_path / "token", emulator.token)
    code, _, err = run(capsys, "--base-url", base, "--mageid", "MAG12345678", "--token-file", str(token), "list")
    line = error_line(err)
    assert code == 3 and "that MAGEID does not look like one" in line and "(from --mageid)" in line
    assert f"--token-file {token}" in line
    assert "generate a new one" not in line and emulator.token not in err


def test_default_section_in_the_config_is_named(as_service, capsys, isolated_home):
    base, emulator = as_service
    cfg = write_private(isolated_home / ".config" / "magedl" / "config",
                        f"[default]\nmageid = {emulator.mageid}\ntoken = {emulator.token}\n")
    code, _, err = run(capsys, "--base-url", base, "list")
    line = error_line(err)
    assert code == 3 and "none were sent" in line
    assert f"config file {cfg} has no [magedl] section" in line and "rename that section to [magedl]" in line
    assert "generate a new one" not in line and emulator.token not in err


def test_quoted_token_in_the_config_works_with_a_warning(as_service, capsys, isolated_home):
    base, emulator = as_service
    cfg = write_private(isolated_home / ".config" / "magedl" / "config",
                        f'[magedl]\nmageid = {emulator.mageid}\ntoken = "{emulator.token}"\n')
    code, out, err = run(capsys, "--base-url", base, "list", "--json")
    assert code == 0 and out.startswith("[")
    assert f"config file {cfg}, line 3: the token is in quotes" in err and emulator.token not in err


def test_no_credentials_at_all_says_where_it_looked(emulator, capsys, isolated_home):
    code, _, err = run(capsys, "--base-url", emulator.base_url, "list")
    line = error_line(err)
    assert code == 3 and "asks for credentials (HTTP 401) and none were sent" in line
    assert str(isolated_home / ".config" / "magedl" / "config") + " (absent)" in line
    assert "no 'machine 127.0.0.1' entry" in line or ".netrc (absent)" in line
    assert "generate a new one" not in line


def test_wrong_password_for_a_mirror_points_at_its_auth_file(demo, capsys, monkeypatch):
    from magedl.server import ApiServer, MemoryStore

    monkeypatch.setenv("MAGEDL_MAGEID", "mirror-user")
    monkeypatch.setenv("MAGEDL_TOKEN", WRONG)
    with ApiServer(MemoryStore(*demo), auth={"mirror-user": "the right password"}) as mirror:  # as `serve` is
        code, _, err = run(capsys, "--base-url", mirror.base_url, "list")
    line = error_line(err)
    assert code == 3 and "the server at 127.0.0.1 refused" in line and "--auth-file" in line
    assert "your Adobe token is not involved" in line and "generate a new one" not in line and WRONG not in err


def test_half_set_credentials_work_against_an_open_mirror(make_emulator, capsys, monkeypatch):
    open_mirror = make_emulator(require_auth=False)
    monkeypatch.setenv("MAGEDL_MAGEID", "MAG000000001")
    code, out, err = run(capsys, "-vv", "--base-url", open_mirror.base_url, "list", "--json")
    assert code == 0 and out.startswith("[")
    assert "a MAGEID was found (MAGEDL_MAGEID) but no downloads token" in err
    assert open_mirror.log and not any(r.had_authorization for r in open_mirror.log)


def test_half_set_credentials_against_a_mirror_that_asks_pair_the_right_flags(emulator, capsys, monkeypatch):
    monkeypatch.setenv("MAGEDL_MAGEID", emulator.mageid)
    code, _, err = run(capsys, "--base-url", emulator.base_url, "list")
    line = error_line(err)
    assert code == 3 and "a MAGEID was found (MAGEDL_MAGEID) but no downloads token" in line
    assert "--token-file PATH or MAGEDL_TOKEN" in line and "--token-file/--mageid" not in line


def test_half_set_credentials_for_the_service_are_a_usage_error(capsys, monkeypatch):
    monkeypatch.setenv("MAGEDL_MAGEID", "MAG000000001")
    code, _, err = run(capsys, "list")
    assert code == 2 and "give the token with --token-file PATH or MAGEDL_TOKEN" in error_line(err)


# -- base URLs that lead nowhere: the URL tried, and the likely mistake ----------------------------------


@pytest.mark.parametrize("suffix, hint", [
    ("typo/", "give the URL of the folder that holds info/json and file/"),
    ("info/files", "the base URL must stop before info/: try --base-url http://127.0.0.1:"),
    ("file/", "the base URL must stop before file/"),
])
def test_base_url_mistakes_name_the_url_and_the_fix(env, capsys, suffix, hint):
    base = env.base_url + suffix
    code, _, err = run(capsys, "--base-url", base, "list")
    line = error_line(err)
    assert code == 5 and f"{base.rstrip('/')}/info/json is not there (HTTP 404" in line and hint in line
    assert "trying the text table" not in err


@pytest.mark.parametrize("path, hint", [
    ("/", "the API lives under /products/downloads/"),
    ("/products/download/", "did you mean https://www.magentocommerce.com/products/downloads/?"),
])
def test_service_base_url_mistakes(as_service, capsys, monkeypatch, path, hint):
    base, emulator = as_service
    monkeypatch.setenv("MAGEDL_MAGEID", emulator.mageid)
    monkeypatch.setenv("MAGEDL_TOKEN", emulator.token)
    host = base.split("/")[2]
    code, _, err = run(capsys, "--base-url", f"http://{host}{path}", "list")
    assert code == 5 and hint in error_line(err)


def test_file_base_url_that_does_not_exist(capsys, tmp_path):
    code, _, err = run(capsys, "--base-url", (tmp_path / "nonexistent").as_uri(), "list")
    assert code == 5 and f"the folder {tmp_path / 'nonexistent'} does not exist" in error_line(err)
    code, _, err = run(capsys, "--base-url", tmp_path.as_uri(), "list")
    assert code == 5 and f"{tmp_path} is not a mirror (it has no info/json)" in error_line(err)


@pytest.mark.parametrize("url", ["http://[::1/products/", "http://[127.0.0.1]/", "http://::1/x/"])
def test_broken_ipv6_base_url_is_one_line_exit_2(capsys, url):
    code, _, err = run(capsys, "--base-url", url, "list")
    assert code == 2 and error_line(err).startswith(f"magedl: error: --base-url '{url}'")
    assert "internal error" not in err


# -- network failures that retrying cannot fix fail fast and say why ------------------------------------


def test_unresolvable_host_fails_fast_naming_it(capsys, monkeypatch, sleeps):
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host == "mirror.nowhere.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    code, _, err = run(capsys, "-vv", "--base-url", "http://mirror.nowhere.invalid/m/", "list")
    assert code == 7 and "could not resolve host mirror.nowhere.invalid" in error_line(err)
    assert sleeps == [] and "retrying" not in err  # no retries
    assert "Name or service not known" in err  # the cause, at -v (VERBOSE; -vv until the CLI maps -v to it)


@pytest.mark.parametrize("insecure", [False, True])
def test_https_to_a_plain_http_server_says_it_does_not_speak_tls(emulator, capsys, sleeps, insecure):
    base = emulator.base_url.replace("http://", "https://")
    code, _, err = run(capsys, *(["--insecure"] if insecure else []), "--base-url", base, "list")
    line = error_line(err)
    assert code == 7 and "does not speak TLS" in line and "use http://" in line
    assert "verification" not in line and sleeps == []


def test_ca_bundle_pointing_nowhere_is_one_line_exit_2(emulator, capsys, tmp_path):
    code, _, err = run(capsys, "--base-url", emulator.base_url, "--ca-bundle", str(tmp_path / "ca.pem"), "list")
    assert code == 2 and f"CA bundle {tmp_path / 'ca.pem'} (from --ca-bundle): no such file" in error_line(err)


def test_token_with_a_non_ascii_character_shows_no_part_of_it(emulator, capsys, tmp_path):
    token = write_private(tmp_path / "token", emulator.token[:10] + "\u00a0" + emulator.token[10:])
    code, _, err = run(capsys, "--base-url", emulator.base_url, "--mageid", emulator.mageid,
                       "--token-file", str(token), "list")
    line = error_line(err)
    assert code == 2 and "non-ASCII character (character 11 of" in line and str(token) in line
    assert emulator.token[:6] not in err and emulator.token[-6:] not in err


def test_secret_file_open_to_others_is_refused_through_the_cli(emulator, capsys, tmp_path):
    token = tmp_path / "token"
    token.write_text(emulator.token)
    os.chmod(token, 0o644)
    code, _, err = run(capsys, "--base-url", emulator.base_url, "--mageid", emulator.mageid,
                       "--token-file", str(token), "list")
    assert code == 1 and f"run 'chmod 600 {token}'" in error_line(err) and "mode 0644" in err


def test_netrc_entry_used_is_named_at_v(emulator, capsys, isolated_home):
    write_private(isolated_home / ".netrc", f"default login x password {WRONG}\n"
                  f"machine 127.0.0.1 login {emulator.mageid} password {emulator.token}\n")
    code, _, err = run(capsys, "-vv", "--base-url", emulator.base_url, "list", "--json")
    assert code == 0
    assert f"{isolated_home / '.netrc'}, 'machine 127.0.0.1' entry" in err and WRONG not in err


def test_a_swapped_mageid_and_token_never_print_the_token_and_are_called_swapped(as_service, capsys, monkeypatch,
                                                                                 tmp_path):
    """Issue 19 item 14: MAGEDL_MAGEID held the token, MAGEDL_TOKEN the MAGEID: ``list`` and ``doctor`` printed it."""
    from magedl.config import registered_secrets

    base, emulator = as_service
    monkeypatch.setenv("MAGEDL_MAGEID", emulator.token)
    monkeypatch.setenv("MAGEDL_TOKEN", emulator.mageid)
    code, out, err = run(capsys, "--base-url", base, "list")
    line = error_line(err)
    assert code == 3 and "look swapped" in line and "(from MAGEDL_MAGEID)" in line
    assert emulator.token not in out + err and emulator.token[:8] not in out + err
    assert [w for w in err.splitlines() if "warning" in w and "look swapped" in w]  # said before the request too
    code, out, err = run(capsys, "--base-url", base, "doctor", "-o", str(tmp_path))
    assert "look swapped" in out + err and emulator.token not in out + err and emulator.token[:8] not in out + err
    assert emulator.token in registered_secrets()  # masked in every log record too


def test_a_long_mageid_is_masked_and_a_token_shaped_one_is_called_so(as_service, capsys, tmp_path):
    base, emulator = as_service
    token = write_private(tmp_path / "token", emulator.token)
    code, _, err = run(capsys, "--base-url", base, "--mageid", "deadbeef" * 5, "--token-file", str(token), "list")
    line = error_line(err)
    assert code == 3 and "looks like a downloads token, not a MAGEID" in line and "deadbeef" not in err
