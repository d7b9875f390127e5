"""Tell an archive from an error page by its first bytes.

Rule: these checks run on the first bytes of a body before any of it is kept; the service answers bad
credentials with a page and status 200 (see docs/service.md, "Failure modes reported by users").
"""

import re
from typing import Optional, Tuple

HEAD_SIZE = 512

# Magic numbers by archive suffix; suffixes not listed here are not checked.
_MAGIC = {
    ".tar.gz": (b"\x1f\x8b",),
    ".tgz": (b"\x1f\x8b",),
    ".gz": (b"\x1f\x8b",),
    ".zip": (b"PK\x03\x04", b"PK\x05\x06"),
    ".tar.bz2": (b"BZh",),
    ".tbz2": (b"BZh",),
    ".bz2": (b"BZh",),
    ".tar.xz": (b"\xfd7zXZ\x00",),
    ".xz": (b"\xfd7zXZ\x00",),
}

# Suffixes whose real content is text: a short text body is plausible for them.
TEXT_SUFFIXES = (".sh", ".patch", ".diff", ".txt", ".md")

_HTML = re.compile(rb"^\s*(<!doctype\s+html|<html|<head|<body|<\?xml|<!--)", re.IGNORECASE)
_AUTH_WORDS = re.compile(r"login|log in|password|credential|unauthori[sz]ed|access denied|token", re.I)


def expected_magic(suffix: str) -> Optional[Tuple[bytes, ...]]:
    """Magic prefixes for *suffix*, or ``None`` when we know none."""
    return _MAGIC.get(suffix.lower())


def magic_matches(suffix: str, head: bytes) -> Optional[bool]:
    """True/False when *suffix* has a known magic number, else ``None``."""
    magics = expected_magic(suffix)
    if magics is None:
        return None
    return any(head.startswith(m) for m in magics)


def is_html(head: bytes, content_type: str = "") -> bool:
    """Whether a body is an HTML (or XML) page rather than a file."""
    ctype = (content_type or "").split(";")[0].strip().lower()
    return ctype in ("text/html", "application/xhtml+xml") or bool(_HTML.match(head))


def is_text(head: bytes) -> bool:
    """Whether *head* is plain printable text (an error message, say)."""
    if not head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\r\n\t" for c in text)


def excerpt(head: bytes, limit: int = 60) -> str:
    """A short, printable, one-line excerpt of a body for error messages."""
    text = head[:limit * 2].decode("utf-8", "replace")
    text = re.sub(r"<[^>]*>", " ", text)
    text = "".join(c if c.isprintable() else " " for c in text)
    text = " ".join(text.split())
    return text[:limit] + ("..." if len(text) > limit else "")


def mentions_credentials(text: str) -> bool:
    """Whether a page's text reads like a login or bad-credentials answer."""
    return bool(_AUTH_WORDS.search(text))


def refuse_reason(suffix: str, head: bytes, content_type: str = "", total_size: Optional[int] = None,
                  have_md5: bool = True) -> Optional[str]:
    """Why the body starting with *head* is not the archive, or ``None``.

    Parameters
    ----------
    suffix : str
        The file's suffix from its catalogue name (``.tar.gz`` ...).
    head : bytes
        The first bytes of the body (up to :data:`HEAD_SIZE`).
    content_type : str
        The response's Content-Type.
    total_size : int, optional
        The full body length when known.
    have_md5 : bool
        Whether an md5 will check the file afterwards. Without one the magic
        number is all we have, so a mismatch is refused.
    """
    if is_html(head, content_type):
        return f"the server sent an HTML page instead of the file ({excerpt(head)!r})"
    text_file = suffix.lower() in TEXT_SUFFIXES
    small = total_size is not None and total_size < 4096
    if not text_file and is_text(head) and (small or len(head) < HEAD_SIZE):
        return f"the server sent a short text page instead of the file ({excerpt(head)!r})"
    if not have_md5 and magic_matches(suffix, head) is False:
        return f"the body does not start like a {suffix} archive ({excerpt(head)!r})"
    return None
