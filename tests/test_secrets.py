"""The token never appears in output, logs, exceptions or files we write.

Real ``magedl`` processes run every kind of command, successful and failing,
with ``-vv``; then every byte they printed and every file under the output
folder is searched for the token. In-process tests here also run under the
suite-wide secret scan (:mod:`secretscan`), and the scan itself is tested:
a test that leaks a registered secret by any route fails.
"""

import os
import signal
import subprocess
import sys

import pytest
from secretscan import secret_scan  # noqa: F401 (autouse here even before conftest enables it suite-wide)

BIG = "Magento-CE-2.4.7.tar.gz"
WRONG_TOKEN = "feedfacecafebeef" * 2 + "01234567"


@pytest.fixture
def world(emulator, tmp_path):
    home = tmp_path / "home"
    (home / ".config" / "magedl").mkdir(parents=True)
    config = home / ".config" / "magedl" / "config"
    config.write_text(f"[magedl]\nmageid = {emulator.mageid}\ntoken = {emulator.token}\n")
    os.chmod(config, 0o600)
    token_file = tmp_path / "token"
    token_file.write_text(emulator.token)
    os.chmod(token_file, 0o600)
    out = tmp_path / "out"
    out.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAGEDL_")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"))
    return emulator, env, token_file, out, tmp_path


def run(env, *argv):
    proc = subprocess.run([sys.executable, "-m", "magedl", "--retry-wait", "0", "--retries", "2", *argv],
                          capture_output=True, env=env, timeout=120)
    return proc.returncode, proc.stdout + proc.stderr


def test_token_never_printed_or_written(world):
    emulator, env, token_file, out, root = world
    base, o = emulator.base_url, str(out)
    curl_style = base.replace("http://", f"http://{emulator.mageid}:{emulator.token}@")
    env_token = dict(env, MAGEDL_BASE_URL=base, MAGEDL_MAGEID=emulator.mageid, MAGEDL_TOKEN=emulator.token)
    wrong = dict(env_token, MAGEDL_TOKEN=WRONG_TOKEN)

    outputs = []

    def check(env_, *argv, expect):
        code, text = run(env_, "-vv", *argv)
        assert code == expect, text.decode(errors="replace")
        outputs.append(text)

    check(env_token, "versions", expect=0)
    check(env_token, "list", "--json", expect=0)
    check(dict(env, MAGEDL_BASE_URL=curl_style), "list", expect=0)
    check(env, "--base-url", curl_style, "get", "Magento-CE-2.4.6-p10.tar.gz", "-o", o, expect=0)
    check(env, "--base-url", base, "--mageid", emulator.mageid, "--token-file", str(token_file),
          "get", "Magento-CE-2.4.7.zip", "-o", o, expect=0)
    check(env, "--base-url", base, "--mageid", emulator.mageid, "--token", emulator.token,
          "get", "Magento-CE-2.4.6.tar.gz", "-o", o, expect=0)
    check(wrong, "list", expect=3)
    check(dict(env, MAGEDL_BASE_URL=curl_style.replace(emulator.token, WRONG_TOKEN)), "list", expect=3)

    emulator.set_faults(auth_failure="text-200")
    check(wrong, "list", expect=3)
    emulator.clear_faults()
    emulator.set_faults(forbidden={"Magento-EE-2.4.7.tar.gz"})
    check(env_token, "get", "Magento-EE-2.4.7.tar.gz", "-o", o, expect=4)
    emulator.clear_faults()
    emulator.set_faults(fail_status=503, fail_count=10, fail_paths="file")
    check(env_token, "get", "Magento-CE-2.4.7.tar.bz2", "-o", o, expect=7)
    emulator.clear_faults()
    # Ctrl-C part-way leaves a partial file and its sidecar, which must not hold the token either.
    size = len(emulator.store.data("Magento-CE-2.4.7.tar.gz"))
    emulator.set_faults(rate=size // 2)
    proc = subprocess.Popen([sys.executable, "-m", "magedl", "-vv", "get", "Magento-CE-2.4.7.tar.gz", "-o", o],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env_token)
    assert emulator.wait_for(lambda s: s.bytes_sent("Magento-CE-2.4.7.tar.gz") >= size // 4, timeout=30)
    proc.send_signal(signal.SIGINT)
    outputs.append(proc.communicate(timeout=30)[0])
    assert proc.returncode == 130
    emulator.clear_faults()
    emulator.store.replace("Magento-CE-2.4.6-p2.tar.gz", b"\x1f\x8b\x08" + b"z" * 9000, update_md5=False)
    check(env_token, "get", "Magento-CE-2.4.6-p2.tar.gz", "-o", o, expect=6)

    assert any(b"error" in text for text in outputs)  # the failures really printed something
    files = [p for p in root.rglob("*") if p.is_file() and p != token_file and "home" not in p.parts]
    assert any(p.name.endswith(".magedl-part.json") for p in files)
    for secret in (emulator.token, WRONG_TOKEN):
        needle = secret.encode()
        for text in outputs:
            assert needle not in text
        for path in files:
            assert needle not in path.read_bytes(), path


def test_internal_error_message_is_redacted(monkeypatch, capsys):
    """Even a bug's one-line report goes through redaction."""
    from magedl import cli
    from magedl.cli import common
    from magedl.secrecy import register_secret

    secret = "0123456789abcdef0123456789abcdef01234567"
    register_secret(secret)

    def boom(**kwargs):
        raise RuntimeError(f"failed with token {secret}")

    monkeypatch.setattr(common, "resolve", boom)  # every command that reaches the network resolves first
    code = cli.main(["list"])
    err = capsys.readouterr().err
    assert code == 1 and "internal error" in err and secret not in err and "***" in err


INNER = """
import logging, os
import pytest
from magedl.secrecy import register_secret

SECRET = "inner-secret-4f9c2a"
register_secret(SECRET)
log = logging.getLogger("magedl.inner")


def test_clean(capsys, tmp_path):
    print("nothing to see")
    (tmp_path / "out.txt").write_text("no secret here")
    assert capsys.readouterr().out == "nothing to see\\n"


def test_leak_printed():
    print("the token is", SECRET)


def test_leak_read_by_capsys(capsys):
    print(SECRET)
    capsys.readouterr()


def test_leak_in_a_log_record():
    log.warning("sending %s", SECRET)


def test_no_leak_when_the_record_is_not_emitted():
    log.debug("sending %s", SECRET)  # below the logger's level: no record exists


def test_leak_in_a_file(tmp_path):
    (tmp_path / "Magento.tar.gz.magedl-part.json").write_text(SECRET)


def test_secret_files_on_purpose_are_fine(tmp_path):
    (tmp_path / "token").write_text(SECRET)
    private = tmp_path / "state"
    private.write_text(SECRET)
    os.chmod(private, 0o600)


def test_allowed_file(tmp_path, secret_scan):
    (tmp_path / "feed.json").write_text(SECRET)
    secret_scan.allow(tmp_path / "feed.json")


LATER = "later-secret-7d1e0b"
LARGE = b"x" * 9000 + LATER.encode()  # large: the scan remembers such contents by digest once found clean


def test_a_large_file_clean_before_its_secret_is_registered(tmp_path):
    (tmp_path / "archive.bin").write_bytes(LARGE)


def test_leak_in_a_large_file_seen_clean_before(tmp_path):
    register_secret(LATER)
    (tmp_path / "archive.bin").write_bytes(LARGE)


@pytest.mark.secrets_on_purpose
def test_marked():
    print(SECRET)
"""


def test_the_secret_scan_fails_every_leaking_test(tmp_path):
    """The suite-wide fixture can fail: each route a secret can leak by is caught, and only those."""
    (tmp_path / "test_inner.py").write_text(INNER)
    tests = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([tests, os.path.dirname(tests)]))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "secretscan", "-q", "-rfE", "-p", "no:cacheprovider",
                           "test_inner.py"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)
    report = proc.stdout + proc.stderr
    failed = {line.split("::")[1].split()[0] for line in report.splitlines()
              if line.startswith(("FAILED", "ERROR")) and "::" in line}
    assert failed == {"test_leak_printed", "test_leak_read_by_capsys", "test_leak_in_a_log_record",
                      "test_leak_in_a_file", "test_leak_in_a_large_file_seen_clean_before"}, report
    assert "inner-secret-4f9c2a" not in report  # the failure names the secret without printing it
    assert "a registered secret leaked: inn... (19 characters)" in report
