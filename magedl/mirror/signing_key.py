"""The public half of a signing key, read before anything is signed and without its passphrase.

The front page names the key and is written before ``SHA256SUMS`` is signed, so the public half is read
from what ``--sign-key`` names: see docs/design.md, "Notes: the mirror".
"""

from __future__ import annotations

import base64
import binascii
import struct
from typing import Optional

from magedl.mirror.signature import SignKey
from magedl.mirror.sshsig import SignedBy

_PRIVATE_BEGIN = b"-----BEGIN OPENSSH PRIVATE KEY-----"
_MAGIC = b"openssh-key-v1\0"


def _string(data: bytes) -> tuple:
    """One SSH wire string (uint32 length, bytes) from the start of *data*, and what follows."""
    (length,) = struct.unpack(">I", data[:4])
    if length > len(data) - 4:
        raise ValueError("a field runs past its end")
    return data[4:4 + length], data[4 + length:]


def _key(blob: bytes) -> SignedBy:
    return SignedBy(_string(blob)[0].decode("ascii"), blob, "")


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(64 << 10)
    except OSError:
        return b""


def _from_line(raw: bytes) -> Optional[SignedBy]:
    """A public key line (``TYPE BASE64 [comment]``)."""
    words = raw.split()
    try:
        key = _key(base64.b64decode(words[1], validate=True))
        return key if key.key_type.encode() == words[0] else None
    except (IndexError, ValueError, binascii.Error, struct.error, UnicodeDecodeError):
        return None


def public_key(key: SignKey) -> Optional[SignedBy]:
    """The public key of *key* (its ``str`` names type and fingerprint); None when it cannot be told."""
    raw = _read(key.path)
    if key.in_agent:
        return _from_line(raw)
    if raw.lstrip().startswith(_PRIVATE_BEGIN):
        try:
            blob = base64.b64decode(b"".join(line.strip() for line in raw.strip().splitlines()[1:-1]), validate=True)
            if blob.startswith(_MAGIC):
                rest = blob[len(_MAGIC):]
                for _ in range(3):  # cipher, KDF, KDF options
                    _, rest = _string(rest)
                return _key(_string(rest[4:])[0])  # past the key count: the first public key
        except (ValueError, binascii.Error, struct.error, UnicodeDecodeError):
            pass
    return _from_line(_read(f"{key.path}.pub"))
