"""A mirror's signature: ``SHA256SUMS.sig``, an SSH signature (SSHSIG) over ``SHA256SUMS``, made and checked.

``SHA256SUMS`` vouches for every file of a mirror by its sha256 (and
``info/json`` and the Composer p2 files, listed in it, vouch for md5 and
SHA-1); the signature vouches for ``SHA256SUMS``. It is the format of
``ssh-keygen -Y sign`` (OpenSSH 8.1 and later), namespace ``magedl-mirror``,
checked against an OpenSSH ``allowed_signers`` file: keys ops people
already hold, and a check anyone can repeat by hand::

    ssh-keygen -Y verify -f allowed_signers -I PRINCIPAL -n magedl-mirror -s SHA256SUMS.sig < SHA256SUMS

Why OpenSSH's own ``ssh-keygen`` rather than a crypto library: it already
handles every key ops people use (Ed25519, ECDSA, RSA, FIDO keys,
passphrases, ssh-agent) and the whole ``allowed_signers`` language
(patterns, ``namespaces=``, ``valid-after=``, ``cert-authority``), where a
library would mean a new compiled dependency plus our own SSHSIG framing,
agent protocol and allowed_signers rules: more code, and security code
written here instead of by OpenSSH. magedl parses the signature itself only
to say what is wrong with it (malformed, other namespace, which key).

The private key never passes through magedl: ssh-keygen is given its path,
asks for a passphrase on the terminal itself (or uses the agent), and gets
no secret on its command line or in its environment.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

from magedl.errors import ConfigError, SignatureError, UnsafeSourceError, UsageError
from magedl.fsutil import atomic_write
from magedl.mirror.index import MAX_INDEX_BYTES
from magedl.mirror.layout import SIG, SUMS
from magedl.secrecy import SECRET_FILE_LIMIT, check_private
from magedl.service.fileadapter import open_published
from magedl.text import printable

NAMESPACE = "magedl-mirror"
# An RSA-16384 signature is under 5 KiB; anything much bigger is not a signature.
MAX_SIGNATURE_BYTES = 64 * 1024
BEGIN, END = "-----BEGIN SSH SIGNATURE-----", "-----END SSH SIGNATURE-----"
# Seconds ssh-keygen may take to check a signature (signing may wait for a passphrase or a key touch).
CHECK_TIMEOUT = 60
INSTALL = "install OpenSSH's client (8.2 or later; Debian/Ubuntu: apt-get install openssh-client)"
_KEY_NAMES = {"ssh-ed25519": "ED25519", "ssh-rsa": "RSA", "ssh-dss": "DSA",
              "sk-ssh-ed25519@openssh.com": "ED25519-SK", "sk-ecdsa-sha2-nistp256@openssh.com": "ECDSA-SK"}


# -- the SSHSIG format ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedBy:
    """What a signature says of itself (not yet whether it verifies)."""

    key_type: str  # as in a public key line: ssh-ed25519, ecdsa-sha2-nistp256, ssh-rsa...
    key_blob: bytes
    namespace: str

    @property
    def fingerprint(self) -> str:
        """``SHA256:...``, as ``ssh-keygen -l`` and ``ssh-add -l`` show it."""
        return "SHA256:" + base64.b64encode(hashlib.sha256(self.key_blob).digest()).decode().rstrip("=")

    @property
    def public_key(self) -> str:
        """The key as an ``allowed_signers`` or ``authorized_keys`` line gives it: ``TYPE BASE64``."""
        return f"{self.key_type} {base64.b64encode(self.key_blob).decode()}"

    def __str__(self) -> str:
        name = _KEY_NAMES.get(self.key_type) or ("ECDSA" if self.key_type.startswith("ecdsa-") else self.key_type)
        return f"{printable(name)} key {self.fingerprint}"


def _strings(data: bytes, count: int) -> Tuple[list, bytes]:
    """*count* SSH wire strings (uint32 length, bytes) from the start of *data*, and what follows."""
    out = []
    for _ in range(count):
        if len(data) < 4:
            raise ValueError("it ends early")
        (length,) = struct.unpack(">I", data[:4])
        if length > len(data) - 4:
            raise ValueError("a field runs past its end")
        out.append(data[4:4 + length])
        data = data[4 + length:]
    return out, data


def parse_signature(text: bytes) -> SignedBy:
    """The key and namespace of an armored SSH signature.

    Raises
    ------
    ValueError
        Not an SSH signature; the message says what is wrong (never quotes the bytes).
    """
    try:
        lines = text.decode("ascii").strip().splitlines()
    except UnicodeDecodeError:
        raise ValueError("it is not text") from None
    if len(lines) < 3 or lines[0].strip() != BEGIN or lines[-1].strip() != END:
        raise ValueError(f"it is not framed by '{BEGIN}' ... '{END}'")
    try:
        blob = base64.b64decode("".join(line.strip() for line in lines[1:-1]), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("its body is not base64") from None
    if blob[:6] != b"SSHSIG" or len(blob) < 10:
        raise ValueError("it does not start with the SSHSIG magic")
    (version,) = struct.unpack(">I", blob[6:10])
    if version != 1:
        raise ValueError(f"it is SSHSIG version {version}, not 1")
    (key, namespace, _reserved, hash_alg, sig), rest = _strings(blob[10:], 5)
    if rest:
        raise ValueError("bytes follow its end")
    if hash_alg not in (b"sha256", b"sha512"):
        raise ValueError(f"its hash algorithm is {printable(hash_alg.decode('ascii', 'replace'))!r}, "
                         "not sha256 or sha512")
    (key_type,), _ = _strings(key, 1)
    _strings(sig, 2)
    try:
        return SignedBy(key_type.decode("ascii"), key, namespace.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError("its key type or namespace is not text") from None


# -- allowed_signers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AllowedSigners:
    """An OpenSSH ``allowed_signers`` file, checked to be one; ssh-keygen applies its rules."""

    path: str
    where: str  # "--allowed-signers" or "MAGEDL_ALLOWED_SIGNERS": named in messages
    principals: Tuple[str, ...]

    def __str__(self) -> str:
        return f"allowed signers {printable(self.path)} (from {self.where})"


def _words(line: str) -> list:
    """Split at blanks outside double quotes (principals and options may be quoted)."""
    words, word, quoted = [], "", False
    for c in line:
        if c == '"':
            quoted = not quoted
        if c in " \t" and not quoted:
            if word:
                words.append(word)
            word = ""
        else:
            word += c
    return words + [word] if word else words


def _is_key(key_type: str, data: str) -> bool:
    try:
        blob = base64.b64decode(data, validate=True)
        return _strings(blob, 1)[0][0] == key_type.encode()
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return False


def read_allowed_signers(path, where: str) -> AllowedSigners:
    """Read and check an ``allowed_signers`` file: each line ``PRINCIPALS [OPTIONS] KEYTYPE BASE64 [COMMENT]``.

    Raises
    ------
    UsageError
        Unreadable, empty, or a line that is not an entry; the message names the line.
    """
    shown = f"allowed signers file {printable(path)} (from {where})"
    try:
        with open(path, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise UsageError(f"{shown} is not a file")
            data = f.read(SECRET_FILE_LIMIT + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {shown}: {exc.strerror or exc}") from None
    if len(data) > SECRET_FILE_LIMIT:
        raise UsageError(f"{shown} is larger than {SECRET_FILE_LIMIT >> 10} KiB; is it the right file?")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{shown} is not UTF-8 text") from None
    principals = []
    for number, line in enumerate(text.splitlines(), 1):
        words = _words(line.strip())
        if not words or words[0].startswith("#"):
            continue
        key_at = 1 if len(words) > 2 and _is_key(*words[1:3]) else 2
        if len(words) < key_at + 2 or not _is_key(*words[key_at:key_at + 2]):
            raise UsageError(f"{shown}, line {number}: not 'PRINCIPALS [OPTIONS] KEY-TYPE BASE64-KEY' (as in "
                             "'ops@example.com ssh-ed25519 AAAA...', the line of a .pub file after a name)")
        principals.append(words[0].strip('"'))
    if not principals:
        raise UsageError(f"{shown} lists no key; add a line 'NAME KEY-TYPE BASE64-KEY' per key allowed to sign")
    return AllowedSigners(str(path), where, tuple(principals))


# -- running ssh-keygen -------------------------------------------------------------------------


def ssh_keygen() -> str:
    """The path of ``ssh-keygen``; ConfigError when it is not installed."""
    found = shutil.which("ssh-keygen")
    if not found:
        raise ConfigError(f"mirror signatures are made and checked by OpenSSH's ssh-keygen, not found on PATH: "
                          f"{INSTALL}")
    return found


def _child_env() -> dict:
    """The environment ssh-keygen runs in: ours (it needs SSH_AUTH_SOCK), without magedl's own secrets."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAGEDL_")}
    env["LC_ALL"] = "C"  # its messages, which ours quote, in one language
    return env


def _run(argv: list, *, stdin=subprocess.DEVNULL, data: Optional[bytes] = None,
         timeout: Optional[float] = CHECK_TIMEOUT) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([ssh_keygen(), *argv], input=data, stdin=None if data is not None else stdin,
                              capture_output=True, env=_child_env(), timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ConfigError(f"ssh-keygen {argv[1]} gave no answer within {timeout:g} s") from None
    except OSError as exc:
        raise ConfigError(f"cannot run ssh-keygen: {exc.strerror or exc}; {INSTALL}") from None


def _detail(result: subprocess.CompletedProcess, *drop: str) -> str:
    """ssh-keygen's own words on stderr (its progress lines dropped), as one printable line."""
    text = result.stderr.decode("utf-8", "replace").replace("Enter passphrase:", "")
    lines = [line.strip() for line in text.splitlines()]
    noise = ("Signing ", "Write signature", "Could not verify signature", "No principal matched", *drop)
    return printable("; ".join(line for line in lines if line and not line.startswith(noise)))[:300]


# -- signing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignKey:
    """A signing key (``--sign-key``, ``--key``): a private key file, or a public key whose half ssh-agent holds."""

    path: str
    where: str
    in_agent: bool


def sign_key(path, where: str) -> SignKey:
    """Check a signing key before any work is done: it exists, and a private key file is private.

    Only the first bytes are read, to tell a public key (its private half in
    ssh-agent) from a private key; the key itself is read by ssh-keygen.

    Raises
    ------
    UsageError
        No such file, or a folder.
    ConfigError
        A private key file other users may read (with the ``chmod`` that fixes it), or a
        public key without an agent to hold its private half.
    """
    shown = printable(path)
    try:
        with open(path, "rb") as f:
            info = os.fstat(f.fileno())
            head = f.read(64)
    except IsADirectoryError:
        raise UsageError(f"signing key {shown} (from {where}) is a folder; give the key file") from None
    except OSError as exc:
        raise UsageError(f"cannot read signing key {shown} (from {where}): {exc.strerror or exc}") from None
    word = head.split(b" ", 1)[0].decode("ascii", "replace")
    in_agent = " " in head.decode("ascii", "replace") and (word in _KEY_NAMES or word.startswith("ecdsa-"))
    if not in_agent:
        check_private(path, info.st_mode, "signing key")
    elif not os.environ.get("SSH_AUTH_SOCK"):
        raise ConfigError(f"signing key {shown} (from {where}) is a public key, so its private half must be in "
                          "ssh-agent, and SSH_AUTH_SOCK is not set: start the agent and 'ssh-add' the key, or "
                          "give the private key file")
    return SignKey(str(path), where, in_agent)


def sign(root, key: SignKey) -> SignedBy:
    """Write ``root/SHA256SUMS.sig`` over the ``SHA256SUMS`` as it is now; return who signed.

    ssh-keygen signs a private copy of the index (so the signature covers
    exactly the bytes read, and nothing but the signature is written into
    the mirror), with a terminal for its passphrase prompt when there is one.

    Raises
    ------
    ConfigError
        ssh-keygen could not sign (wrong passphrase, key not in the agent...).
    LocalFileError, SignatureError
        No ``SHA256SUMS`` to sign.
    """
    sums = _read(Path(root), SUMS, MAX_INDEX_BYTES, "sign")
    interactive = sys.stdin is not None and sys.stdin.isatty()
    with tempfile.TemporaryDirectory(prefix="magedl-sign-") as tmp:
        copy = Path(tmp) / SUMS
        copy.write_bytes(sums)
        result = _run(["-Y", "sign", "-f", key.path, "-n", NAMESPACE, str(copy)],
                      stdin=None if interactive else subprocess.DEVNULL, timeout=None if interactive else 300)
        made = copy.with_name(SIG)
        signature = made.read_bytes() if result.returncode == 0 and made.is_file() else None
    if signature is None:
        detail = _detail(result)
        shown = f"signing key {printable(key.path)} (from {key.where})"
        if "passphrase" in detail:
            raise ConfigError(f"{shown} needs its passphrase and none was given ({detail}): load it into "
                              f"ssh-agent ('ssh-add {printable(key.path)}') and give its .pub, or sign on a terminal")
        raise ConfigError(f"ssh-keygen could not sign with {shown}: {detail or f'exit {result.returncode}'}")
    signed = parse_signature(signature)
    atomic_write(Path(root) / SIG, signature)
    return signed


def is_current(root) -> bool:
    """Whether ``SHA256SUMS.sig`` exists and is no older than ``SHA256SUMS`` (cheap: no signature check)."""
    try:
        return os.lstat(Path(root) / SIG).st_mtime_ns >= os.lstat(Path(root) / SUMS).st_mtime_ns
    except OSError:
        return False


def discard(root) -> bool:
    """Remove ``SHA256SUMS.sig`` (it no longer matches the index); whether there was one."""
    try:
        os.unlink(Path(root) / SIG)
        return True
    except FileNotFoundError:
        return False


def is_signed(root) -> bool:
    return os.path.lexists(Path(root) / SIG)


# -- checking -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signer:
    """Who signed a mirror, as the allowed signers file names them."""

    principals: Tuple[str, ...]
    key: SignedBy

    def __str__(self) -> str:
        return f"{', '.join(printable(p) for p in self.principals)} ({self.key})"


def _read(root: Path, rel: str, limit: int, doing: str) -> bytes:
    shown = printable(root / rel)
    try:
        f, info = open_published(root, rel)
    except FileNotFoundError:
        if rel == SIG:
            raise SignatureError(f"{shown} is missing: the mirror is not signed, or the signature was lost on the "
                                 "way; the files are not trusted (the seeding side signs with 'magedl sign DIR "
                                 "--key KEY')") from None
        raise SignatureError(f"{shown} is missing: nothing to {doing}; the files are not trusted") from None
    except (UnsafeSourceError, OSError) as exc:
        raise SignatureError(f"{shown}: cannot {doing} it: {getattr(exc, 'reason', None) or exc.strerror}") from None
    with f:
        if info.st_size > limit:
            raise SignatureError(f"{shown} is larger than {limit >> 10} KiB: not a mirror's; the files are not "
                                 "trusted")
        return f.read(limit)


def check(root, allowed: AllowedSigners) -> Signer:
    """Check ``SHA256SUMS.sig`` over ``SHA256SUMS`` against *allowed*; who signed it.

    Raises
    ------
    SignatureError
        Missing, malformed, for another namespace, by a key *allowed* does
        not list (or not for this namespace, or not now), or not matching
        ``SHA256SUMS``: each with its own message. Exit 6.
    ConfigError
        ssh-keygen is missing or failed to run.
    """
    root = Path(root)
    shown = printable(root / SIG)
    raw = _read(root, SIG, MAX_SIGNATURE_BYTES, "check")
    try:
        signed = parse_signature(raw)
    except ValueError as exc:
        raise SignatureError(f"{shown} is malformed: {exc}; the files are not trusted") from None
    if signed.namespace != NAMESPACE:
        raise SignatureError(f"{shown} was made for namespace {printable(signed.namespace)!r}, not {NAMESPACE!r}: "
                             "it is not a mirror signature (sign with 'magedl sign' or 'ssh-keygen -Y sign -n "
                             f"{NAMESPACE}'); the files are not trusted")
    sums = _read(root, SUMS, MAX_INDEX_BYTES, "check")
    with tempfile.TemporaryDirectory(prefix="magedl-verify-") as tmp:
        sig_copy = Path(tmp) / SIG
        sig_copy.write_bytes(raw)  # ssh-keygen checks the very bytes parsed above
        found = _run(["-Y", "find-principals", "-s", str(sig_copy), "-f", allowed.path])
        principals = tuple(p for p in found.stdout.decode("utf-8", "replace").splitlines() if p.strip())
        if found.returncode != 0 or not principals:
            detail = _detail(found)
            why = f"does not allow: {detail}" if detail else "does not list"
            raise SignatureError(f"{shown} is signed by {signed}, which {allowed} {why}; the files are not trusted")
        checked = _run(["-Y", "verify", "-f", allowed.path, "-I", principals[0], "-n", NAMESPACE, "-s",
                        str(sig_copy)], data=sums)
    signer = Signer(principals, signed)
    if checked.returncode != 0:
        detail = _detail(checked, "Signature verification failed: incorrect signature")
        if detail:  # the key is listed, but not for this namespace, or not at this time
            raise SignatureError(f"{shown} is signed by {signer}, which {allowed} does not allow: {detail}; "
                                 "the files are not trusted")
        raise SignatureError(f"{shown} does not match {SUMS} (signed by {signer}): {SUMS} was changed after it "
                             "was signed; the files are not trusted")
    return signer


__all__ = ["NAMESPACE", "AllowedSigners", "SignKey", "SignedBy", "Signer", "check", "discard", "is_current",
           "is_signed", "parse_signature", "read_allowed_signers", "sign", "sign_key"]
