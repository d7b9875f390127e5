"""Signed mirrors on the command line: ``mirror --sign-key``, ``sign``, ``verify``/``serve --allowed-signers``.

Mirrors are made from the emulator on loopback; keys and the far side's
checks are the real OpenSSH tools (tests/sshkit.py).
"""

import json
import os
import signal
import subprocess
import sys

import pytest
from clirun import run
from sshkit import allowed_line, make_key, needs_ssh_keygen, write_allowed

pytestmark = needs_ssh_keygen

SELECTION = ("--type", "ce-patch", "--version", "2.4.6*")


@pytest.fixture
def ops(tmp_path):
    """(private key, allowed_signers path) for 'ops@example.com'."""
    key = make_key(tmp_path / "keys", "ops@example.com")
    return key, write_allowed(tmp_path / "keys" / "allowed_signers", allowed_line("ops@example.com", key))


@pytest.fixture
def signed(env, ops, tmp_path, capsys):
    """A mirror of the 2.4.6 patches, signed by ops during the run; (root, delta lines, stderr)."""
    root = tmp_path / "mirror"
    code, _, err = run(capsys, "mirror", str(root), *SELECTION, "--sign-key", str(ops[0]),
                       "--diff-file", str(tmp_path / "delta"))
    assert code == 0, err
    return root, (tmp_path / "delta").read_text().splitlines(), err


def verify(capsys, root, allowed, *more):
    return run(capsys, "verify", str(root), "--allowed-signers", str(allowed), *more)


def test_a_mirror_signed_while_seeded_verifies_names_its_signer_and_ssh_keygen_agrees(signed, ops, capsys):
    root, delta, err = signed
    assert (root / "SHA256SUMS.sig").is_file()
    assert delta[-2:] == ["SHA256SUMS", "SHA256SUMS.sig"]  # the signature lands last
    public = " ".join((ops[0].parent / "ops@example.com.pub").read_text().split()[:2])
    assert f"allowed_signers line 'NAME {public}'" in err and "note it" not in err
    code, out, err = verify(capsys, root, ops[1])
    assert code == 0, err
    assert "signed by ops@example.com (ED25519 key SHA256:" in err and "all intact" in err
    # The README's command for a host without magedl.
    with open(root / "SHA256SUMS", "rb") as data:
        check = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(ops[1]), "-I", "ops@example.com", "-n",
                                "magedl-mirror", "-s", str(root / "SHA256SUMS.sig")], stdin=data,
                               capture_output=True, text=True)
    assert check.returncode == 0 and "Good" in check.stdout
    # The private key is in no output and no file the run wrote (the secret scan checks every test as well).
    public_text = (ops[0].parent / "ops@example.com.pub").read_text()
    secret = [line for line in ops[0].read_text().splitlines() if not line.startswith("-") and line not in public_text]
    written = [p.read_bytes().decode("latin-1") for p in root.rglob("*") if p.is_file()]
    assert secret and not any(line in text for line in secret for text in [err, out, signed[2], *written])


def test_verify_without_allowed_signers_says_the_signature_was_not_checked(signed, capsys):
    code, _, err = run(capsys, "verify", str(signed[0]))
    assert code == 0 and "signed, but the signature was NOT checked" in err and "--allowed-signers" in err


def test_the_allowed_signers_file_may_come_from_the_environment(signed, ops, capsys, monkeypatch):
    monkeypatch.setenv("MAGEDL_ALLOWED_SIGNERS", str(ops[1]))
    code, _, err = run(capsys, "verify", str(signed[0]))
    assert code == 0 and "signed by ops@example.com" in err


def test_a_rerun_that_changes_nothing_keeps_the_signature_and_one_that_changes_the_index_re_signs(
        signed, ops, env, capsys, tmp_path):
    root = signed[0]
    before = (root / "SHA256SUMS.sig").stat().st_mtime_ns
    code, _, err = run(capsys, "mirror", str(root), *SELECTION, "--sign-key", str(ops[0]), "--diff-file",
                       str(tmp_path / "delta"))
    assert code == 0, err
    assert (tmp_path / "delta").read_text() == "" and (root / "SHA256SUMS.sig").stat().st_mtime_ns == before
    code, _, err = run(capsys, "mirror", str(root), "--type", "ce-patch", "--type", "ce-full", "--version", "2.4.6*",
                       "--sign-key", str(ops[0]), "--diff-file", str(tmp_path / "delta"))
    assert code == 0, err
    delta = (tmp_path / "delta").read_text().splitlines()
    assert any(rel.startswith("file/Magento-CE") for rel in delta) and delta[-2:] == ["SHA256SUMS", "SHA256SUMS.sig"]
    assert verify(capsys, root, ops[1])[0] == 0
    # A run without the key that changes the index removes the signature it no longer matches, and says
    # so even with -q (a security warning: the mirror is no longer signed).
    code, _, err = run(capsys, "-q", "mirror", str(root), "--type", "ce-patch", "--version", "2.4.6*", "--prune")
    assert code == 0 and "its old signature was removed" in err and not (root / "SHA256SUMS.sig").exists()
    code, _, err = verify(capsys, root, ops[1])
    assert code == 6 and "SHA256SUMS.sig is missing" in err


def _flip(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))


def _archive(root):
    return next(p for p in (root / "file").rglob("*") if p.is_file())


def change_an_archive(root, tmp_path):
    _flip(_archive(root))
    return f"{_archive(root).relative_to(root)}: BAD (sha256 differs from SHA256SUMS"


def change_the_feed(root, tmp_path):
    """An md5 in info/json made to match a doctored archive."""
    feed = (root / "info" / "json").read_text()
    md5 = json.loads(feed)["ce-patch"]["2.4.6"][0]["md5"]
    (root / "info" / "json").write_text(feed.replace(md5, "0" * 32))
    return "info/json: BAD (sha256 differs from SHA256SUMS"


def change_an_archive_and_its_sum(root, tmp_path):
    """What a careful tamperer does: the archive and SHA256SUMS changed to match."""
    import hashlib

    archive = _archive(root)
    old = hashlib.sha256(archive.read_bytes()).hexdigest()
    _flip(archive)
    new = hashlib.sha256(archive.read_bytes()).hexdigest()
    (root / "SHA256SUMS").write_text((root / "SHA256SUMS").read_text().replace(old, new))
    return "SHA256SUMS.sig does not match SHA256SUMS (signed by ops@example.com"


def sign_with_another_key(root, tmp_path):
    other = make_key(tmp_path / "keys", "intruder")
    (root / "SHA256SUMS.sig").unlink()
    subprocess.run(["ssh-keygen", "-Y", "sign", "-f", str(other), "-n", "magedl-mirror", str(root / "SHA256SUMS")],
                   check=True, capture_output=True, stdin=subprocess.DEVNULL)
    return "is signed by ED25519 key SHA256:"


def remove_the_signature(root, tmp_path):
    (root / "SHA256SUMS.sig").unlink()
    return "SHA256SUMS.sig is missing: the mirror is not signed"


@pytest.mark.parametrize("tamper", [change_an_archive, change_the_feed, change_an_archive_and_its_sum,
                                    sign_with_another_key, remove_the_signature])
def test_each_tampering_exits_6_with_its_own_message(tamper, signed, ops, capsys, tmp_path):
    root = signed[0]
    message = tamper(root, tmp_path)
    code, out, err = verify(capsys, root, ops[1])
    assert code == 6
    assert message in out + err
    if tamper in (change_an_archive, change_the_feed):
        assert "signed by ops@example.com" in err and "NOT intact" in err  # the index is genuine; a file is not
    else:  # refused before anything else is read: no file is reported as checked
        assert out == "" and "the files are not trusted" in err and len(err.strip().splitlines()) == 1


def test_magedl_sign_signs_an_existing_mirror_with_a_key_from_the_environment(env, ops, capsys, tmp_path,
                                                                              monkeypatch):
    root = tmp_path / "mirror"
    assert run(capsys, "mirror", str(root), *SELECTION)[0] == 0
    assert not (root / "SHA256SUMS.sig").exists()
    code, _, err = run(capsys, "verify", str(root), "--allowed-signers", str(ops[1]))
    assert code == 6 and "is missing" in err
    monkeypatch.setenv("MAGEDL_SIGN_KEY", str(ops[0]))
    code, out, err = run(capsys, "sign", str(root))
    assert code == 0 and out == "" and "signed with ED25519 key" in err
    assert verify(capsys, root, ops[1])[0] == 0
    # The next mirror run's delta carries the new signature, last.
    code, _, _ = run(capsys, "mirror", str(root), *SELECTION, "--diff-file", str(tmp_path / "delta"))
    assert code == 0 and (tmp_path / "delta").read_text().splitlines()[-1] == "SHA256SUMS.sig"


def test_a_key_others_can_read_is_refused_before_anything_is_done(env, ops, capsys, tmp_path):
    os.chmod(ops[0], 0o644)
    root = tmp_path / "mirror"
    code, _, err = run(capsys, "mirror", str(root), *SELECTION, "--sign-key", str(ops[0]))
    assert code == 1 and f"run 'chmod 600 {ops[0]}'" in err and not root.exists()
    code, _, err = run(capsys, "sign", str(tmp_path), "--key", str(ops[0]))
    assert code == 1 and f"run 'chmod 600 {ops[0]}'" in err


@pytest.mark.parametrize("argv, code, message", [
    (("sign", "{tmp}/mirror"), 5, "no such folder"),
    (("sign", "{tmp}"), 2, "sign needs a key: --key PATH (or MAGEDL_SIGN_KEY)"),
    (("sign", "{tmp}", "--key", "{tmp}/nope"), 2, "cannot read signing key"),
    (("verify", "{tmp}", "--allowed-signers", "{tmp}/nope"), 2, "cannot read allowed signers file"),
])
def test_bad_signing_arguments_are_one_line_errors(argv, code, message, capsys, tmp_path):
    got, _, err = run(capsys, *(a.format(tmp=tmp_path) for a in argv))
    assert got == code and message in err and len(err.strip().splitlines()) == 1


def test_a_dry_run_checks_the_key_but_signs_nothing(env, ops, capsys, tmp_path):
    root = tmp_path / "mirror"
    code, _, err = run(capsys, "--json", "mirror", str(root), *SELECTION, "--sign-key", str(ops[0]), "--dry-run")
    assert code == 0 and json.loads(capsys.readouterr().out or "[]") is not None
    assert not (root / "SHA256SUMS.sig").exists()


def test_serve_refuses_to_start_on_a_bad_signature_and_serves_a_good_one(signed, ops, capsys, tmp_path):
    root = signed[0]
    _flip(root / "SHA256SUMS")
    code, out, err = run(capsys, "serve", str(root), "--allowed-signers", str(ops[1]), "--port", "0")
    assert code == 6 and out == "" and "does not match SHA256SUMS" in err
    _flip(root / "SHA256SUMS")
    proc = subprocess.Popen([sys.executable, "-m", "magedl", "serve", str(root), "--port", "0", "--allowed-signers",
                             str(ops[1])], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("http://127.0.0.1:")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "signed by ops@example.com" in err


def test_a_file_checked_alone_is_trusted_only_through_its_mirrors_signature(signed, ops, capsys):
    root = signed[0]
    archive = _archive(root)
    code, out, err = verify(capsys, archive, ops[1])
    assert code == 0 and "signed by ops@example.com" in err and out.endswith(": OK\n")
    (root / "SHA256SUMS.sig").unlink()
    code, out, err = verify(capsys, archive, ops[1])
    assert code == 6 and out == "" and "SHA256SUMS.sig is missing" in err


def test_a_mirror_run_that_cannot_sign_says_the_mirror_is_complete_but_unsigned(env, capsys, tmp_path):
    key = make_key(tmp_path / "keys", "locked", passphrase="correct horse battery")
    root = tmp_path / "mirror"
    code, _, err = run(capsys, "mirror", str(root), *SELECTION, "--sign-key", str(key))
    assert code == 1 and "needs its passphrase" in err and "the mirror itself is complete, but not signed" in err
    assert (root / "SHA256SUMS").is_file() and not (root / "SHA256SUMS.sig").exists()
    assert run(capsys, "verify", str(root))[0] == 0


def _doctor_consistently(root):
    """A careful tamperer's whole job: an archive changed, its md5 in info/json and every sum in SHA256SUMS to match."""
    import hashlib

    archive = _archive(root)
    old_md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    _flip(archive)
    feed = root / "info" / "json"
    feed.write_text(feed.read_text().replace(old_md5, hashlib.md5(archive.read_bytes()).hexdigest()))
    lines = [line.split("  ", 1) for line in (root / "SHA256SUMS").read_text().splitlines()]
    (root / "SHA256SUMS").write_text("".join(f"{hashlib.sha256((root / rel).read_bytes()).hexdigest()}  {rel}\n"
                                             for _, rel in lines))


def test_files_are_checked_against_the_very_sums_whose_signature_verified(signed, ops, capsys, monkeypatch):
    """A medium that answers a second read of SHA256SUMS with other bytes (here: swapped right after the check)."""
    from magedl.mirror import signature

    root = signed[0]
    real_check = signature.check

    def check_then_swap(*args):
        signer = real_check(*args)
        _doctor_consistently(root)
        return signer

    monkeypatch.setattr(signature, "check", check_then_swap)  # cli/sign.py imports it when it checks
    code, out, err = verify(capsys, root, ops[1])
    assert code == 6 and f"{_archive(root).relative_to(root)}: BAD (sha256 differs from SHA256SUMS" in out + err


def test_a_run_with_a_new_key_re_signs_an_index_that_did_not_change(signed, env, capsys, tmp_path):
    """Key rotation: the far side lists only the new key, so the old key's signature must not be kept."""
    root = signed[0]
    new = make_key(tmp_path / "keys", "new@example.com")
    allowed = write_allowed(tmp_path / "keys" / "new_signers", allowed_line("new@example.com", new))
    code, _, err = run(capsys, "mirror", str(root), *SELECTION, "--sign-key", str(new))
    assert code == 0, err
    code, _, err = verify(capsys, root, allowed)
    assert code == 0 and "signed by new@example.com" in err


@pytest.mark.parametrize("where", ["--allowed-signers", "MAGEDL_ALLOWED_SIGNERS"])
def test_a_private_key_given_as_allowed_signers_is_refused_and_never_quoted(where, signed, ops, capsys, monkeypatch):
    argv = ["verify", str(signed[0])]
    if where == "MAGEDL_ALLOWED_SIGNERS":
        monkeypatch.setenv(where, str(ops[0]))
    else:
        argv += [where, str(ops[0])]
    code, out, err = run(capsys, *argv)
    assert code == 2 and "line 1: not 'PRINCIPALS" in err and f"(from {where})" in err and out == ""
    body = [line for line in ops[0].read_text().splitlines() if not line.startswith("-")]
    assert body and not any(line in err for line in body)


def _sign_on_a_terminal(root, key, passphrase):
    """``magedl sign`` with a pseudo-terminal as its stdin and controlling terminal; (exit code, stderr)."""
    import fcntl
    import pty
    import select
    import termios

    master, slave = pty.openpty()

    def take_terminal():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen([sys.executable, "-m", "magedl", "sign", str(root), "--key", str(key)], stdin=slave,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=take_terminal)
    os.close(slave)
    seen = b""
    try:
        while b"passphrase" not in seen.lower():  # ssh-keygen's prompt, on the terminal
            assert select.select([master], [], [], 120)[0], seen
            seen += os.read(master, 1024)
        os.write(master, passphrase.encode() + b"\n")
        _, err = proc.communicate(timeout=120)
    finally:
        os.close(master)
    return proc.returncode, err.decode()


def test_signing_on_a_terminal_asks_for_the_passphrase_and_says_when_it_is_wrong(env, capsys, tmp_path):
    key = make_key(tmp_path / "keys", "locked@example.com", passphrase="correct horse battery")
    root = tmp_path / "mirror"
    assert run(capsys, "mirror", str(root), *SELECTION)[0] == 0
    code, err = _sign_on_a_terminal(root, key, "wrong horse")
    assert code == 1 and "its passphrase was not accepted" in err and "none was given" not in err
    assert "wrong horse" not in err and not (root / "SHA256SUMS.sig").exists()
    code, err = _sign_on_a_terminal(root, key, "correct horse battery")
    assert code == 0 and "signed with ED25519 key" in err and "correct horse" not in err
    allowed = write_allowed(tmp_path / "keys" / "allowed", allowed_line("locked@example.com", key))
    assert verify(capsys, root, allowed)[0] == 0


def test_serve_refuses_an_index_file_changed_under_a_genuine_signature(signed, ops, tmp_path):
    """An archive and its md5 in info/json changed, SHA256SUMS and its signature left alone: clients would trust
    the served md5, so the served index files must be the signed ones."""
    import hashlib

    root = signed[0]
    archive = _archive(root)
    old_md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    _flip(archive)
    feed = root / "info" / "json"
    feed.write_text(feed.read_text().replace(old_md5, hashlib.md5(archive.read_bytes()).hexdigest()))
    proc = subprocess.Popen([sys.executable, "-m", "magedl", "serve", str(root), "--port", "0", "--allowed-signers",
                             str(ops[1])], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline()  # the base URL once serving, or nothing once it exited
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert url == "" and proc.returncode == 6
    assert "info/json: bad (sha256 differs from SHA256SUMS) under a genuine signature: not served" in err
