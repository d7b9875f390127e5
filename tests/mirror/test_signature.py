"""SHA256SUMS.sig: made and checked by magedl, interoperable both ways with the real ``ssh-keygen -Y``.

A small mirror folder is enough here (a SHA256SUMS and its signature);
the command line over real mirrors is tests/cli/test_sign.py.
"""

import os
import subprocess

import pytest
from sshkit import KEY_TYPES, Agent, allowed_line, make_key, needs_ssh_keygen, write_allowed

from magedl.errors import ConfigError, SignatureError, UsageError
from magedl.mirror import signature
from magedl.mirror.signature import NAMESPACE

pytestmark = needs_ssh_keygen

SUMS = b"0" * 63 + b"1  file/Magento-CE-2.4.7.tar.gz\n" + b"a" * 64 + b"  info/json\n"


@pytest.fixture
def keys(tmp_path):
    return tmp_path / "keys"


@pytest.fixture
def mirror(tmp_path):
    root = tmp_path / "mirror"
    root.mkdir()
    (root / "SHA256SUMS").write_bytes(SUMS)
    return root


@pytest.fixture
def ops(keys, mirror):
    """An Ed25519 key 'ops@example.com', the mirror signed with it, and an allowed_signers file listing it."""
    key = make_key(keys, "ops@example.com")
    signature.sign(mirror, signature.sign_key(key, "--key"))
    allowed = write_allowed(keys / "allowed_signers", allowed_line("ops@example.com", key))
    return key, signature.read_allowed_signers(allowed, "--allowed-signers")


def ssh_verify(mirror, allowed, principal):
    with open(mirror / "SHA256SUMS", "rb") as data:
        return subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", principal, "-n", NAMESPACE,
                               "-s", str(mirror / "SHA256SUMS.sig")], stdin=data, capture_output=True, text=True)


@pytest.mark.parametrize("kind", sorted(KEY_TYPES))
def test_each_key_type_signs_and_verifies_both_ways_with_ssh_keygen(kind, keys, mirror):
    key = make_key(keys, f"{kind}@example.com", kind)
    allowed_path = write_allowed(keys / "allowed_signers", allowed_line(f"{kind}@example.com", key))
    allowed = signature.read_allowed_signers(allowed_path, "--allowed-signers")
    # magedl signs, ssh-keygen verifies.
    signed = signature.sign(mirror, signature.sign_key(key, "--key"))
    check = ssh_verify(mirror, allowed_path, f"{kind}@example.com")
    assert check.returncode == 0, check.stderr
    assert f'Good "{NAMESPACE}" signature for {kind}@example.com' in check.stdout
    assert signed.fingerprint in check.stdout
    # ssh-keygen signs, magedl verifies and names the signer.
    (mirror / "SHA256SUMS.sig").unlink()
    subprocess.run(["ssh-keygen", "-Y", "sign", "-f", str(key), "-n", NAMESPACE, str(mirror / "SHA256SUMS")],
                   check=True, capture_output=True, stdin=subprocess.DEVNULL)
    signer = signature.check(mirror, allowed)
    assert signer.principals == (f"{kind}@example.com",)
    assert f"{kind}@example.com" in str(signer) and signed.fingerprint in str(signer)


def flip_sums_byte(mirror, keys):
    data = bytearray(SUMS)
    data[5] ^= 1
    (mirror / "SHA256SUMS").write_bytes(bytes(data))


def remove_signature(mirror, keys):
    (mirror / "SHA256SUMS.sig").unlink()


def sign_with_another_key(mirror, keys):
    other = make_key(keys, "intruder@example.net")
    signature.sign(mirror, signature.sign_key(other, "--key"))


def sign_for_another_namespace(mirror, keys):
    (mirror / "SHA256SUMS.sig").unlink()
    subprocess.run(["ssh-keygen", "-Y", "sign", "-f", str(keys / "ops@example.com"), "-n", "git",
                    str(mirror / "SHA256SUMS")], check=True, capture_output=True, stdin=subprocess.DEVNULL)


def garble_signature(mirror, keys):
    (mirror / "SHA256SUMS.sig").write_text("-----BEGIN SSH SIGNATURE-----\nbm90IGEgc2lnbmF0dXJl\n"
                                           "-----END SSH SIGNATURE-----\n")


def replace_signature_with_text(mirror, keys):
    (mirror / "SHA256SUMS.sig").write_text("looks fine to me\n")


@pytest.mark.parametrize("tamper, message", [
    (flip_sums_byte, "does not match SHA256SUMS (signed by ops@example.com (ED25519 key SHA256:"),
    (remove_signature, "SHA256SUMS.sig is missing: the mirror is not signed"),
    (sign_with_another_key, "is signed by ED25519 key SHA256:"),
    (sign_for_another_namespace, "was made for namespace 'git', not 'magedl-mirror'"),
    (garble_signature, "is malformed: it does not start with the SSHSIG magic"),
    (replace_signature_with_text, "is malformed: it is not framed by"),
])
def test_each_tampering_is_caught_with_its_own_message(tamper, message, ops, keys, mirror):
    signature.check(mirror, ops[1])  # untampered: passes
    tamper(mirror, keys)
    with pytest.raises(SignatureError) as caught:
        signature.check(mirror, ops[1])
    assert message in str(caught.value) and "the files are not trusted" in str(caught.value)
    assert caught.value.exit_code == 6 and "\n" not in str(caught.value)
    if tamper is sign_with_another_key:
        assert "which allowed signers" in str(caught.value) and "does not list" in str(caught.value)


@pytest.mark.parametrize("options, message", [
    ('namespaces="git"', 'not permitted for use in signature namespace "magedl-mirror"'),
    ('valid-before="20200101"', "key has expired"),
])
def test_a_listed_key_that_may_not_sign_mirrors_now_is_refused_with_ssh_keygens_reason(options, message, ops, keys,
                                                                                        mirror):
    path = write_allowed(keys / "restricted", allowed_line("ops@example.com", ops[0], options))
    with pytest.raises(SignatureError) as caught:
        signature.check(mirror, signature.read_allowed_signers(path, "MAGEDL_ALLOWED_SIGNERS"))
    assert message in str(caught.value) and "(from MAGEDL_ALLOWED_SIGNERS)" in str(caught.value)


def test_principal_patterns_and_several_keys_are_ssh_keygens_rules(ops, keys, mirror):
    other = make_key(keys, "second")
    path = write_allowed(keys / "team", allowed_line("backup@example.com", other),
                         allowed_line('"*@example.com"', ops[0], 'namespaces="magedl-mirror,git"'))
    signer = signature.check(mirror, signature.read_allowed_signers(path, "--allowed-signers"))
    assert signer.principals == ("*@example.com",)


@pytest.mark.parametrize("text, message", [
    ("", "lists no key"),
    ("# only a comment\n", "lists no key"),
    ("ops@example.com\n", "line 1: not 'PRINCIPALS [OPTIONS] KEY-TYPE BASE64-KEY'"),
    ("# c\nops@example.com ssh-ed25519 bm9wZQ==\n", "line 2: not"),
])
def test_a_malformed_allowed_signers_file_is_a_usage_error_naming_the_line(text, message, keys):
    keys.mkdir()
    (keys / "allowed").write_text(text)
    with pytest.raises(UsageError) as caught:
        signature.read_allowed_signers(keys / "allowed", "--allowed-signers")
    assert message in str(caught.value) and "(from --allowed-signers)" in str(caught.value)


def test_a_private_key_others_can_read_is_refused_with_the_exact_chmod(keys):
    key = make_key(keys, "ops")
    os.chmod(key, 0o640)
    with pytest.raises(ConfigError) as caught:
        signature.sign_key(key, "--sign-key")
    assert f"run 'chmod 600 {key}'" in str(caught.value) and "mode 0640" in str(caught.value)
    os.chmod(f"{key}.pub", 0o644)  # a public key is no secret
    os.chmod(key, 0o600)
    assert signature.sign_key(key, "--sign-key").in_agent is False


def test_an_agent_held_key_signs_by_its_public_half(ops, keys, mirror, monkeypatch):
    key = make_key(keys, "agent@example.com")
    agent = Agent(keys)
    try:
        agent.add(key)
        key.unlink()  # only the agent holds the private half now
        monkeypatch.setenv("SSH_AUTH_SOCK", str(agent.socket))
        chosen = signature.sign_key(f"{key}.pub", "--sign-key")
        assert chosen.in_agent
        signed = signature.sign(mirror, chosen)
    finally:
        agent.stop()
    path = write_allowed(keys / "agent_signers", allowed_line("agent@example.com", key))
    signer = signature.check(mirror, signature.read_allowed_signers(path, "--allowed-signers"))
    assert signer.principals == ("agent@example.com",) and signer.key == signed


def test_a_passphrase_key_without_a_terminal_or_agent_says_to_use_the_agent(keys, mirror):
    key = make_key(keys, "locked", passphrase="correct horse battery")
    with pytest.raises(ConfigError) as caught:
        signature.sign(mirror, signature.sign_key(key, "--sign-key"))
    assert "needs its passphrase" in str(caught.value) and f"ssh-add {key}" in str(caught.value)
    assert not (mirror / "SHA256SUMS.sig").exists()


def test_a_public_key_needs_an_agent(keys, monkeypatch):
    key = make_key(keys, "ops")
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    with pytest.raises(ConfigError) as caught:
        signature.sign_key(f"{key}.pub", "MAGEDL_SIGN_KEY")
    assert "SSH_AUTH_SOCK is not set" in str(caught.value) and "(from MAGEDL_SIGN_KEY)" in str(caught.value)


def test_a_missing_key_or_a_folder_is_a_usage_error(keys):
    with pytest.raises(UsageError, match="cannot read signing key .*nope.* \\(from --key\\)"):
        signature.sign_key(keys / "nope", "--key")
    keys.mkdir()
    with pytest.raises(UsageError, match="is a folder"):
        signature.sign_key(keys, "--key")


def test_without_ssh_keygen_the_message_says_what_to_install(ops, mirror, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ConfigError, match="apt-get install openssh-client"):
        signature.check(mirror, ops[1])


def test_a_huge_signature_file_is_refused_unread(ops, mirror):
    (mirror / "SHA256SUMS.sig").write_bytes(b"x" * (signature.MAX_SIGNATURE_BYTES + 1))
    with pytest.raises(SignatureError, match="larger than 64 KiB"):
        signature.check(mirror, ops[1])


def test_a_linked_signature_is_never_followed(ops, mirror, tmp_path):
    (mirror / "SHA256SUMS.sig").rename(tmp_path / "elsewhere.sig")
    (mirror / "SHA256SUMS.sig").symlink_to(tmp_path / "elsewhere.sig")
    with pytest.raises(SignatureError, match="cannot check it"):
        signature.check(mirror, ops[1])
