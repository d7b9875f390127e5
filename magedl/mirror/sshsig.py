"""The SSH signature format (SSHSIG, as ``ssh-keygen -Y sign`` writes it) and public key words: parsing only.

magedl reads a signature itself only to say what is wrong with it (malformed,
another namespace, which key); whether it verifies is ssh-keygen's answer
(:mod:`magedl.mirror.signature`). Nothing here runs a process or trusts a byte.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass
from typing import Tuple

from magedl.text import printable

BEGIN, END = "-----BEGIN SSH SIGNATURE-----", "-----END SSH SIGNATURE-----"
KEY_NAMES = {"ssh-ed25519": "ED25519", "ssh-rsa": "RSA", "ssh-dss": "DSA",
              "sk-ssh-ed25519@openssh.com": "ED25519-SK", "sk-ecdsa-sha2-nistp256@openssh.com": "ECDSA-SK"}


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
        name = KEY_NAMES.get(self.key_type) or ("ECDSA" if self.key_type.startswith("ecdsa-") else self.key_type)
        return f"{printable(name)} key {self.fingerprint}"


def wire_strings(data: bytes, count: int) -> Tuple[list, bytes]:
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
    (key, namespace, _reserved, hash_alg, sig), rest = wire_strings(blob[10:], 5)
    if rest:
        raise ValueError("bytes follow its end")
    if hash_alg not in (b"sha256", b"sha512"):
        raise ValueError(f"its hash algorithm is {printable(hash_alg.decode('ascii', 'replace'))!r}, "
                         "not sha256 or sha512")
    (key_type,), _ = wire_strings(key, 1)
    wire_strings(sig, 2)
    try:
        return SignedBy(key_type.decode("ascii"), key, namespace.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError("its key type or namespace is not text") from None


def is_key(key_type: str, data: str) -> bool:
    """Whether *data* is the base64 of a public key blob of *key_type* (as in a .pub or allowed_signers line)."""
    try:
        blob = base64.b64decode(data, validate=True)
        return wire_strings(blob, 1)[0][0] == key_type.encode()
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return False


__all__ = ["BEGIN", "END", "KEY_NAMES", "SignedBy", "is_key", "parse_signature", "wire_strings"]
