"""A mirror's signature: ``SHA256SUMS.sig``, an SSH signature (SSHSIG) over ``SHA256SUMS``, made and checked.

The rule a reader must not break: the private key never passes through magedl (ssh-keygen gets its
path, no secret on its command line or in its environment). Why ssh-keygen and not a crypto library,
and how to check by hand: see docs/design.md, "Notes: the mirror".
"""

from __future__ import annotations

import base64
import logging
import os
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Tuple

from magedl.errors import ConfigError, SignatureError, UnsafeSourceError, UsageError
from magedl.fsutil import atomic_write, read_if_regular
from magedl.mirror.index import MAX_INDEX_BYTES
from magedl.mirror.layout import SIG, SUMS
from magedl.mirror.sshsig import KEY_NAMES, SignedBy, is_key, parse_signature
from magedl.secrecy import SECRET_FILE_LIMIT, SECURITY, check_private
from magedl.service.fileadapter import open_published
from magedl.text import printable

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import subprocess

NAMESPACE = "magedl-mirror"
# An RSA-16384 signature is under 5 KiB; anything much bigger is not a signature.
MAX_SIGNATURE_BYTES = 64 * 1024
# Seconds ssh-keygen may take to check a signature (signing may wait for a passphrase or a key touch).
CHECK_TIMEOUT = 60
# Lines of an allowed_signers file listing the signing key that are tried (each is one ssh-keygen run).
MAX_PRINCIPALS_TRIED = 8
INSTALL = "install OpenSSH's client (8.2 or later; Debian/Ubuntu: apt-get install openssh-client)"


# -- allowed_signers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AllowedSigners:
    """An OpenSSH ``allowed_signers`` file, checked to be one; ssh-keygen applies its rules.

    ssh-keygen is given *data*, the bytes read and checked here, never the
    path again: the file checked is the file used.
    """

    path: str
    where: str  # "--allowed-signers" or "MAGEDL_ALLOWED_SIGNERS": named in messages
    data: bytes = field(repr=False)
    signers: Tuple[Tuple[str, bytes], ...] = ()  # (principals field, key blob) per line

    def __str__(self) -> str:
        return f"allowed signers {printable(self.path)} (from {self.where})"


def _open_regular(path, shown: str):
    """*path* open for reading, and its fstat; UsageError unless a regular file (never blocks on a FIFO)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise UsageError(f"cannot read {shown}: {exc.strerror or exc}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise UsageError(f"{shown} is {'a folder' if stat.S_ISDIR(info.st_mode) else 'not a regular file'}; "
                         "give the file itself")
    return os.fdopen(fd, "rb"), info


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


def read_allowed_signers(path, where: str) -> AllowedSigners:
    """Read and check an ``allowed_signers`` file: each line ``PRINCIPALS [OPTIONS] KEYTYPE BASE64 [COMMENT]``.

    Raises
    ------
    UsageError
        Unreadable, empty, or a line that is not an entry; the message names the line.
    """
    shown = f"allowed signers file {printable(path)} (from {where})"
    f, _ = _open_regular(path, shown)
    try:
        with f:
            data = f.read(SECRET_FILE_LIMIT + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {shown}: {exc.strerror or exc}") from None
    if len(data) > SECRET_FILE_LIMIT:
        raise UsageError(f"{shown} is larger than {SECRET_FILE_LIMIT >> 10} KiB; is it the right file?")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{shown} is not UTF-8 text") from None
    signers = []
    for number, line in enumerate(text.split("\n"), 1):  # lines as OpenSSH reads them (\v, \f, U+2028 end none)
        words = _words(line.strip())
        if not words or words[0].startswith("#"):
            continue
        key_at = 1 if len(words) > 2 and is_key(*words[1:3]) else 2
        if len(words) < key_at + 2 or not is_key(*words[key_at:key_at + 2]):
            raise UsageError(f"{shown}, line {number}: not 'PRINCIPALS [OPTIONS] KEY-TYPE BASE64-KEY' (as in "
                             "'ops@example.com ssh-ed25519 AAAA...', the line of a .pub file after a name)")
        signers.append((words[0].strip('"'), base64.b64decode(words[key_at + 1])))
    if not signers:
        raise UsageError(f"{shown} lists no key; add a line 'NAME KEY-TYPE BASE64-KEY' per key allowed to sign")
    return AllowedSigners(str(path), where, data, tuple(signers))


# -- running ssh-keygen -------------------------------------------------------------------------


def ssh_keygen() -> str:
    """The path of ``ssh-keygen``; ConfigError when it is not installed."""
    import shutil  # this and subprocess, tempfile: a run that signs or checks, not every run's index write

    found = shutil.which("ssh-keygen")
    if not found:
        raise ConfigError(f"mirror signatures are made and checked by OpenSSH's ssh-keygen, not found on PATH: "
                          f"{INSTALL}")
    return found


# The 'ssh-keygen -Y' operations signing and checking use; an ssh-keygen older than INSTALL's lacks some.
OPERATIONS = ("sign", "verify", "find-principals", "check-novalidate")
# How an ssh-keygen says it lacks one: 8.0 and 8.1 name the operation, older ones refuse '-Y' itself.
_UNSUPPORTED = ("unsupported operation", "illegal option", "invalid option", "unknown option")


def missing_operations(timeout: float = 5) -> list:
    """The :data:`OPERATIONS` the installed ssh-keygen lacks (ConfigError when it cannot be run).

    Each is asked with no arguments, which a current ssh-keygen answers with
    "too few arguments" and an older one by refusing the operation or ``-Y``.
    Words nobody expects count as supported: a real signing or check then says what failed.
    """
    missing = []
    for operation in OPERATIONS:
        result = _run(["-Y", operation], timeout=timeout)
        said = (result.stdout + result.stderr).decode("utf-8", "replace").lower()
        if any(words in said for words in _UNSUPPORTED):
            missing.append(operation)
    return missing


# All ssh-keygen is given of our environment: nothing else of it (tokens, cloud keys, SSH_ASKPASS...) is its business.
_ENV_KEPT = ("PATH", "HOME", "USER", "LOGNAME", "TMPDIR")
# Signing may also use the agent, and a FIDO key file its middleware.
_ENV_KEPT_SIGNING = ("SSH_AUTH_SOCK", "SSH_SK_PROVIDER")


def _child_env(signing: bool) -> dict:
    """The environment ssh-keygen runs in: a short allow-list of ours, messages in one language."""
    kept = _ENV_KEPT + (_ENV_KEPT_SIGNING if signing else ())
    return {**{k: os.environ[k] for k in kept if k in os.environ}, "LC_ALL": "C"}  # messages ours quote


def _run(argv: list, *, data: Optional[bytes] = None, terminal: bool = False,
         timeout: Optional[float] = CHECK_TIMEOUT) -> subprocess.CompletedProcess:
    """Run ssh-keygen with *argv*, *data* on its stdin.

    Without *terminal* it runs in a session of its own, with no terminal to
    prompt on: a key that needs a passphrase fails at once (reading an empty
    stdin) instead of waiting on the terminal for an answer nobody gives.
    """
    import subprocess

    stdin = None if data is not None or terminal else subprocess.DEVNULL  # None: a pipe of data, or our terminal
    try:
        return subprocess.run([ssh_keygen(), *argv], input=data, stdin=stdin, capture_output=True,
                              env=_child_env(argv[1] == "sign"), timeout=timeout, start_new_session=not terminal)
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

    def public_blob(self) -> Optional[bytes]:
        """The key's public half, from the key itself (agent) or the ``.pub`` beside it; None when unknown."""
        data = read_if_regular(self.path if self.in_agent else f"{self.path}.pub", MAX_SIGNATURE_BYTES) or b""
        words = data.decode("ascii", "replace").split()
        return base64.b64decode(words[1]) if len(words) > 1 and is_key(words[0], words[1]) else None


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
    shown = f"signing key {printable(path)} (from {where})"
    f, info = _open_regular(path, shown)
    try:
        with f:
            head = f.read(64)
    except OSError as exc:
        raise UsageError(f"cannot read {shown}: {exc.strerror or exc}") from None
    word = head.split(b" ", 1)[0].decode("ascii", "replace")
    in_agent = " " in head.decode("ascii", "replace") and (word in KEY_NAMES or word.startswith("ecdsa-"))
    beside = str(path)[:-4] if in_agent and str(path).endswith(".pub") else None
    if not in_agent:
        check_private(path, info.st_mode, "signing key")
    elif beside and os.path.isfile(beside):  # ssh-keygen signs with it when the agent lacks the key
        check_private(beside, os.stat(beside).st_mode, "signing key")
    if in_agent and not os.environ.get("SSH_AUTH_SOCK"):
        raise ConfigError(f"{shown} is a public key, so its private half must be in "
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
    import tempfile

    with tempfile.TemporaryDirectory(prefix="magedl-sign-") as tmp:
        copy = Path(tmp) / SUMS
        copy.write_bytes(sums)
        result = _run(["-Y", "sign", "-f", key.path, "-n", NAMESPACE, str(copy)], terminal=interactive,
                      timeout=None if interactive else 300)
        made = copy.with_name(SIG)
        signature = made.read_bytes() if result.returncode == 0 and made.is_file() else None
    if signature is None:
        detail = _detail(result)
        shown = f"signing key {printable(key.path)} (from {key.where})"
        if "passphrase" in detail and interactive:
            raise ConfigError(f"{shown}: its passphrase was not accepted ({detail}); try again")
        if "passphrase" in detail:
            raise ConfigError(f"{shown} needs its passphrase and none was given ({detail}): load it into "
                              f"ssh-agent ('ssh-add {printable(key.path)}') and give its .pub, or sign on a terminal")
        raise ConfigError(f"ssh-keygen could not sign with {shown}: {detail or f'exit {result.returncode}'}")
    signed = parse_signature(signature)
    atomic_write(Path(root) / SIG, signature)
    return signed


def is_current(root, key: Optional[SignKey] = None) -> bool:
    """Whether ``SHA256SUMS.sig`` exists, is no older than ``SHA256SUMS`` and, when *key*'s public half is
    known, was made by *key* (a new key given to a run that changed nothing re-signs). Cheap: no signature check.
    """
    try:
        if os.lstat(Path(root) / SIG).st_mtime_ns < os.lstat(Path(root) / SUMS).st_mtime_ns:
            return False
        wanted = key.public_blob() if key is not None else None
        return wanted is None or parse_signature(read_if_regular(Path(root) / SIG, MAX_SIGNATURE_BYTES)
                                                 or b"").key_blob == wanted
    except (OSError, ValueError):
        return False


def discard(root) -> bool:
    """Remove ``SHA256SUMS.sig`` (it no longer matches the index); whether there was one."""
    try:
        os.unlink(Path(root) / SIG)
        return True
    except FileNotFoundError:
        return False


def discard_changed(root, resigned: bool) -> bool:
    """:func:`discard` for an index that changed: the signature vouched for it as it was. Unless the run signs
    it again (*resigned*), say so: a mirror that was signed no longer is. Whether there was one."""
    gone = discard(root)
    if gone and not resigned:
        log.warning("%s changed, so its old signature was removed; sign it again (--sign-key, or "
                    "'magedl sign DIR --key KEY')", SUMS, extra=SECURITY)
    return gone


def is_signed(root) -> bool:
    return os.path.lexists(Path(root) / SIG)


# -- checking -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signer:
    """Who signed a mirror, as the allowed signers file names them, and the ``SHA256SUMS`` bytes the signature covers.

    Files are checked against *sums*, never against ``SHA256SUMS`` read again:
    a carried disk can answer a second read with other bytes.
    """

    principals: Tuple[str, ...]
    key: SignedBy
    sums: bytes = field(default=b"", repr=False, compare=False)

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
    import tempfile

    with tempfile.TemporaryDirectory(prefix="magedl-verify-") as tmp:
        sig_copy, allowed_copy = Path(tmp) / SIG, Path(tmp) / "allowed_signers"
        sig_copy.write_bytes(raw)  # ssh-keygen checks the very bytes parsed above
        allowed_copy.write_bytes(allowed.data)  # and the very allowed_signers read and checked
        found = _run(["-Y", "find-principals", "-s", str(sig_copy), "-f", str(allowed_copy)])
        found_detail = _detail(found).replace(str(allowed_copy), printable(allowed.path))
        # find-principals names the first line listing the key only, which may allow another namespace
        # (namespaces="git"); every line listing it is tried, as 'ssh-keygen -Y verify -I' would be by hand.
        listed = [p for names, blob in allowed.signers if blob == signed.key_blob for p in names.split(",")]
        candidates = list(dict.fromkeys(found.stdout.decode("utf-8", "replace").splitlines() + listed))
        refusals = []
        for principal in [p for p in candidates if p.strip() and p[0] != "!"][:MAX_PRINCIPALS_TRIED]:
            checked = _run(["-Y", "verify", "-f", str(allowed_copy), "-I", principal, "-n", NAMESPACE, "-s",
                            str(sig_copy)], data=sums)
            if checked.returncode == 0:
                return Signer((principal,), signed, sums)
            refusals.append(_detail(checked, "Signature verification failed").replace(str(allowed_copy),
                                                                                      printable(allowed.path)))
        # Whether the signature matches SHA256SUMS at all tells a changed index from a key not allowed.
        intact = _run(["-Y", "check-novalidate", "-n", NAMESPACE, "-s", str(sig_copy)], data=sums).returncode == 0
    if not intact:
        signer = Signer(tuple(p for p in candidates if p.strip()), signed) if candidates else signed
        raise SignatureError(f"{shown} does not match {SUMS} (signed by {signer}): {SUMS} was changed after it was "
                             "signed; the files are not trusted")
    why = next((f"does not allow: {r}" for r in refusals + [found_detail] if r), "does not list")
    raise SignatureError(f"{shown} is signed by {signed}, which {allowed} {why}; the files are not trusted")


__all__ = ["INSTALL", "NAMESPACE", "AllowedSigners", "SignKey", "Signer", "check", "discard", "is_current", "is_signed",
           "missing_operations", "read_allowed_signers", "sign", "sign_key", "ssh_keygen"]
