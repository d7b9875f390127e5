"""``verify -q`` and ``verify --json`` say whether a mirror's signature was checked; exit codes stay.

--json carries ``"signature"`` on every object ("valid", "not checked", "unsigned"); -q keeps the
"signature was NOT checked" warning (a security warning) and the exit codes. Keys are made by the real
ssh-keygen (tests/sshkit.py), mirrors by the emulator on loopback.
"""

import json

import pytest
from clirun import run
from sshkit import allowed_line, make_key, needs_ssh_keygen, write_allowed

pytestmark = needs_ssh_keygen

SELECTION = ("--type", "ce-patch", "--version", "2.4.6*")


@pytest.fixture
def signed(env, tmp_path, capsys):
    """(a mirror signed by ops@example.com, the allowed_signers file naming that key)."""
    key = make_key(tmp_path / "keys", "ops@example.com")
    allowed = write_allowed(tmp_path / "keys" / "allowed_signers", allowed_line("ops@example.com", key))
    root = tmp_path / "mirror"
    code, _, err = run(capsys, "mirror", str(root), *SELECTION, "--sign-key", str(key))
    assert code == 0, err
    return root, allowed


def signatures(out):
    return {row["signature"] for row in json.loads(out)}


def test_json_says_the_signature_was_not_checked(signed, capsys):
    code, out, _ = run(capsys, "--json", "verify", str(signed[0]))
    assert code == 0 and signatures(out) == {"not checked"}


def test_json_says_the_signature_is_valid_when_checked(signed, capsys):
    code, out, err = run(capsys, "--json", "verify", str(signed[0]), "--allowed-signers", str(signed[1]))
    assert code == 0, err
    assert signatures(out) == {"valid"}


def test_json_says_an_unsigned_mirror_is_unsigned(env, tmp_path, capsys):
    root = tmp_path / "mirror"
    assert run(capsys, "mirror", str(root), *SELECTION)[0] == 0
    code, out, _ = run(capsys, "--json", "verify", str(root))
    assert code == 0 and signatures(out) == {"unsigned"}


def test_quiet_still_says_the_signature_was_not_checked(signed, capsys):
    code, out, err = run(capsys, "-q", "verify", str(signed[0]))
    assert code == 0 and "signature was NOT checked" in err and "--allowed-signers" in err
    assert "intact" not in err  # the summary stays quiet


def test_quiet_with_allowed_signers_is_silent_and_keeps_the_exit_codes(signed, capsys):
    root, allowed = signed
    code, out, err = run(capsys, "-q", "verify", str(root), "--allowed-signers", str(allowed))
    assert code == 0 and err == ""
    sums = (root / "SHA256SUMS").read_bytes()
    (root / "SHA256SUMS").write_bytes(sums.replace(b"  ", b"  ./", 1))  # any change breaks the signature
    code, out, err = run(capsys, "-q", "--json", "verify", str(root), "--allowed-signers", str(allowed))
    assert code == 6 and out == "" and "error:" in err
