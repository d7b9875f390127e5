"""``magedl doctor`` against the emulator and the emulated repo.magento.com: every line OK or FAIL with a fix,
exit 0 only when all are OK, ``--json``, and no key or token in anything it prints."""

import json
import os
import shutil

import pytest
from clirun import run

from magedl.cli import doctor

BIG = "Magento-CE-2.4.7.tar.gz"


@pytest.fixture
def host(env, magento_repo, marketplace_keys, tmp_path, monkeypatch):
    """A healthy build host: downloads credentials, Marketplace keys, an empty target folder."""
    url, _ = magento_repo("providers")
    home = tmp_path / "composer-home"
    home.mkdir()
    auth = home / "auth.json"
    public, private = marketplace_keys["commerce"]
    auth.write_text(json.dumps({"http-basic": {url.split("://")[1].rstrip("/"): {"username": public,
                                                                                 "password": private}}}))
    os.chmod(auth, 0o600)
    monkeypatch.setenv("COMPOSER_HOME", str(home))
    monkeypatch.delenv("COMPOSER_AUTH", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(doctor, "LOW_SPACE", 1)  # the test machine's free space is not under test
    target = tmp_path / "dist"
    target.mkdir()
    return url, target


def doctor_run(capsys, host, *argv):
    url, target = host
    return run(capsys, "--retries", "1", "doctor", "--repo-url", url, "-o", str(target), *argv)


def lines_of(out):
    return {line.split(":", 1)[0].split(None, 1)[1]: line for line in out.splitlines() if not line.startswith(" ")}


def secrets_absent(env, marketplace_keys, *texts):
    for text in texts:
        assert env.token not in text
        for public, private in marketplace_keys.values():
            assert public not in text and private not in text


def test_a_healthy_host_is_all_ok(env, host, capsys, marketplace_keys):
    code, out, err = doctor_run(capsys, host)
    assert code == 0, out + err
    lines = lines_of(out)
    for name in ("versions", "downloads credentials", "TLS", "proxies", "downloads feed", "clock",
                 "Marketplace keys", "free space", "leftovers"):
        assert lines[name].startswith("OK"), lines.get(name)
    assert "MAGEDL_MAGEID" in lines["downloads credentials"] and "40 characters" in lines["downloads credentials"]
    assert "ce-full" in lines["downloads feed"]
    assert "1b2c…" in lines["Marketplace keys"] and "Commerce: 2" in lines["Marketplace keys"]
    secrets_absent(env, marketplace_keys, out, err)


def test_json_for_scripts(env, host, capsys, marketplace_keys):
    code, out, err = doctor_run(capsys, host, "--json")
    rows = json.loads(out)
    assert code == 0 and all(r["ok"] for r in rows)
    assert {r["check"] for r in rows} >= {"downloads feed", "Marketplace keys", "clock", "free space"}
    secrets_absent(env, marketplace_keys, out, err)


def test_a_refused_token_fails_with_exit_3(env, host, capsys, monkeypatch, marketplace_keys):
    monkeypatch.setenv("MAGEDL_TOKEN", "f" * 40)
    code, out, err = doctor_run(capsys, host)
    assert code == 3
    assert lines_of(out)["downloads feed"].startswith("FAIL") and "401" in out
    assert lines_of(out)["Marketplace keys"].startswith("OK")  # the other checks still ran
    secrets_absent(env, marketplace_keys, out, err)


def test_missing_marketplace_keys_fail_with_the_fix(env, host, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("COMPOSER_HOME", str(tmp_path / "empty-home"))
    code, out, err = doctor_run(capsys, host)
    assert code == 3 and "keys store" in lines_of(out)["Marketplace keys"]


def test_a_partial_download_and_a_stale_lock_are_reported(env, host, capsys):
    url, target = host
    (target / (BIG + ".magedl-part")).write_bytes(b"x")
    (target / ("other.zip.magedl-lock")).write_text("")
    code, out, err = doctor_run(capsys, host)
    assert code == 1
    line = lines_of(out)["leftovers"]
    assert line.startswith("FAIL") and BIG in line and "other.zip.magedl-lock" in line
    assert f"magedl get {BIG}" in out  # the fix line


def test_a_clock_far_off_fails(env, host, capsys, monkeypatch):
    class Later:
        @staticmethod
        def time():
            import time

            return time.time() + 3600

    monkeypatch.setattr(doctor, "time", Later)
    code, out, err = doctor_run(capsys, host)
    assert code == 1 and lines_of(out)["clock"].startswith("FAIL") and "s ahead of the server" in out
    assert "timedatectl" in out


def test_low_free_space_fails(env, host, capsys, monkeypatch):
    monkeypatch.setattr(doctor, "LOW_SPACE", 1 << 60)
    code, out, err = doctor_run(capsys, host)
    assert code == 1 and lines_of(out)["free space"].startswith("FAIL") and "-o DIR" in out


def test_the_service_without_credentials_fails(host, capsys, monkeypatch):
    for name in ("MAGEDL_BASE_URL", "MAGEDL_MAGEID", "MAGEDL_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    url, target = host
    code, out, err = run(capsys, "--retries", "1", "--timeout", "0.5", "doctor", "--repo-url", url,
                         "-o", str(target))
    line = lines_of(out)["downloads credentials"]
    assert code == 3 and line.startswith("FAIL") and "Downloads Access Token" in out


def test_ssh_keygen_found_is_ok(env, host, capsys, tmp_path, monkeypatch):
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "ssh-keygen").write_text("#!/bin/sh\nexit 0\n")
    os.chmod(tools / "ssh-keygen", 0o755)
    monkeypatch.setenv("PATH", str(tools))
    code, out, err = doctor_run(capsys, host)
    assert code == 0, out + err
    assert lines_of(out)["ssh-keygen"].startswith("OK") and str(tools / "ssh-keygen") in out


def test_ssh_keygen_missing_is_a_warning_with_the_next_step_not_a_failure(env, host, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))
    code, out, err = doctor_run(capsys, host)
    assert code == 0, out + err  # only signing needs it
    line = lines_of(out)["ssh-keygen"]
    assert line.startswith("WARN") and "--sign-key" in line and "--allowed-signers" in line
    assert "fix: install OpenSSH's client" in out and "openssh-client" in out
    code, out, err = doctor_run(capsys, host, "--json")
    row = next(r for r in json.loads(out) if r["check"] == "ssh-keygen")
    assert code == 0 and row["ok"] and row["warning"] and "openssh-client" in row["fix"]


# -- a server that plays the service (the emulator says so in X-Magedl-Plays) is judged as the service ---------


def test_no_credentials_for_a_server_that_plays_the_service_fail_as_for_the_service(env, host, capsys, monkeypatch):
    monkeypatch.delenv("MAGEDL_MAGEID")
    monkeypatch.delenv("MAGEDL_TOKEN")
    code, out, err = doctor_run(capsys, host)
    line = lines_of(out)["downloads credentials"]
    assert code == 3 and line.startswith("FAIL") and "no MAGEID and token found" in line
    assert "Downloads Access Token" in out and "none needed" not in out


def test_a_badly_shaped_token_or_mageid_is_named_for_a_server_that_plays_the_service(env, host, capsys, monkeypatch,
                                                                                     marketplace_keys):
    monkeypatch.setenv("MAGEDL_TOKEN", "abc123")
    code, out, err = doctor_run(capsys, host)
    line = lines_of(out)["downloads credentials"]
    assert code == 2 and line.startswith("FAIL") and "a downloads access token is 40 letters" in out
    monkeypatch.setenv("MAGEDL_TOKEN", env.token)
    monkeypatch.setenv("MAGEDL_MAGEID", "x")
    code, out, err = doctor_run(capsys, host)
    assert code == 2 and "the MAGEID does not look like one" in out
    secrets_absent(env, marketplace_keys, out, err)


def test_a_mirror_that_does_not_play_the_service_needs_no_credentials(host, capsys, monkeypatch, demo_mirror):
    from magedl.server import ApiServer, DirStore

    for name in ("MAGEDL_MAGEID", "MAGEDL_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with ApiServer(DirStore(demo_mirror)) as server:  # magedl serve: no X-Magedl-Plays
        monkeypatch.setenv("MAGEDL_BASE_URL", server.base_url)
        code, out, err = doctor_run(capsys, host)
    assert lines_of(out)["downloads credentials"].startswith("OK") and "none needed" in out
    assert lines_of(out)["downloads feed"].startswith("OK") and lines_of(out)["clock"].startswith("OK")


@pytest.mark.parametrize("refusal", [
    'case "$2" in find-principals|check-novalidate) echo "Unsupported operation for -Y: \\"$2\\"" >&2; exit 1;; '
    'esac; echo "Too few arguments for $2" >&2; exit 1',  # as OpenSSH 8.0 and 8.1 answer
    'echo "ssh-keygen: illegal option -- Y" >&2; exit 1',  # as OpenSSH 7 answers: no -Y at all
])
def test_an_ssh_keygen_too_old_to_sign_or_check_is_a_warning_naming_what_it_lacks(env, host, capsys, tmp_path,
                                                                                   monkeypatch, refusal):
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "ssh-keygen").write_text(f"#!/bin/sh\n{refusal}\n")
    os.chmod(tools / "ssh-keygen", 0o755)
    monkeypatch.setenv("PATH", str(tools))
    code, out, err = doctor_run(capsys, host)
    assert code == 0, out + err  # only signing needs it
    line = lines_of(out)["ssh-keygen"]
    assert line.startswith("WARN") and "too old" in line and "find-principals" in line and "check-novalidate" in line
    assert ("'ssh-keygen -Y' sign," in line) == ("illegal option" in refusal)  # 8.0 signs; 7 does not
    assert "fix: install OpenSSH's client (8.2 or later" in out


def test_the_installed_ssh_keygen_has_every_operation_magedl_uses(env, host, capsys):
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen is not installed here")
    code, out, err = doctor_run(capsys, host)
    assert lines_of(out)["ssh-keygen"].startswith("OK"), out
