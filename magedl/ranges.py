"""HTTP byte ranges and validators, as pure functions shared by every side.

Rule: the server, the ``file://`` adapter and the transfer all parse these headers here, so one reading
of RFC 9110 holds everywhere. A number from the network is ASCII digits only, read up to
:data:`MAX_DIGITS` significant digits, so a 5,000-digit header never becomes a huge integer.
"""

import email.utils
import re
from dataclasses import dataclass
from typing import Mapping, Optional, Tuple, Union

#: Significant digits read from a header number: 10**18 bytes is far beyond any file.
MAX_DIGITS = 18
#: What :func:`parse_range` returns when the answer must be 416 Range Not Satisfiable.
UNSATISFIABLE = "unsatisfiable"
_HUGE = 10**MAX_DIGITS  # stands for any number with more digits: "beyond every file"
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+([0-9]+)-([0-9]+)/([0-9]+|\*)\s*$", re.I | re.A)


def _number(text: str, clamp: bool) -> Optional[int]:
    """*text* as a non-negative integer, or ``None`` when it is not plain ASCII digits.

    A number with more than :data:`MAX_DIGITS` significant digits becomes
    :data:`_HUGE` when *clamp* is true (a Range position past any file) and
    ``None`` otherwise (a response header that cannot be a real size).
    """
    if not text or not text.isascii() or not text.isdigit():
        return None
    significant = text.lstrip("0")
    if len(significant) > MAX_DIGITS:
        return _HUGE if clamp else None
    return int(significant or "0")


def parse_length(value: Optional[str]) -> Optional[int]:
    """A ``Content-Length`` value as an int, or ``None`` when absent or not a sane number."""
    if value is None:
        return None
    return _number(value.strip(), clamp=False)


def parse_range(value: Optional[str], size: int) -> Union[None, str, Tuple[int, int]]:
    """Interpret a request's ``Range`` header against a file of *size* bytes.

    Returns
    -------
    None
        Ignore the header (absent, malformed, another unit, several ranges):
        answer 200 with the whole file, as RFC 9110 allows.
    UNSATISFIABLE
        Answer 416.
    (start, end)
        Inclusive byte positions, ``0 <= start <= end < size``.
    """
    if not value:
        return None
    unit, _, spec = value.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    start = _number(first, clamp=True) if first else None
    end = _number(last, clamp=True) if last else None
    if not dash or (first and start is None) or (last and end is None) or (start is None and end is None):
        return None
    if start is None:  # a suffix: the last *end* bytes
        if end == 0 or size == 0:
            return UNSATISFIABLE
        return max(0, size - end), size - 1
    if end is not None and end < start:
        return None  # an invalid spec is ignored, not refused (RFC 9110, 14.1.1)
    if start >= size:
        return UNSATISFIABLE
    return start, size - 1 if end is None else min(end, size - 1)


def parse_content_range(value: Optional[str]) -> Optional[Tuple[int, int, Optional[int]]]:
    """A 206 answer's ``Content-Range: bytes START-END/TOTAL`` as ``(start, end, total)``.

    *end* is inclusive; *total* is ``None`` for ``*`` (size unknown). Returns
    ``None`` for anything else, including numbers no file can have and
    ranges that end before they start or past the total.
    """
    match = _CONTENT_RANGE.match(value or "")
    if not match:
        return None
    start, end = _number(match.group(1), clamp=False), _number(match.group(2), clamp=False)
    total = None if match.group(3) == "*" else _number(match.group(3), clamp=False)
    if start is None or end is None or end < start or (match.group(3) != "*" and (total is None or end >= total)):
        return None
    return start, end, total


@dataclass(frozen=True)
class Validators:
    """What identifies one version of a file on a server: ``ETag`` and ``Last-Modified``."""

    etag: Optional[str] = None
    last_modified: Optional[str] = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> "Validators":
        return cls(headers.get("ETag") or None, headers.get("Last-Modified") or None)

    def __bool__(self):
        return bool(self.etag or self.last_modified)

    def if_range(self) -> Optional[str]:
        """The value for ``If-Range``: a strong ETag, else the Last-Modified date, else ``None``.

        A weak ETag (``W/...``) may not be used: If-Range needs a strong
        comparison, and a server would answer 200 with the whole file.
        """
        if self.etag and not self.etag.startswith("W/"):
            return self.etag
        return self.last_modified


def changed(old: Validators, headers: Mapping[str, str], size: Optional[int], total: Optional[int], *,
            strict: bool = False) -> Optional[str]:
    """Why a response is not from the file version we hold part of, or ``None`` if it may be.

    Parameters
    ----------
    old : Validators
        What the partial file was fetched under.
    headers : mapping
        The new response's headers.
    size, total : int or None
        The size we expect and the size the response states (Content-Range
        total or Content-Length of a 200); unknown ones are not compared.
    strict : bool
        The response must show a validator equal to one of *old*'s (used when
        nothing else vouches for the data, e.g. a resume from another source
        with no md5 in the feed); by default a missing validator is no proof
        of change.
    """
    new = Validators.from_headers(headers)
    if size is not None and total is not None and size != total:
        return "the file changed upstream (size differs)"
    if old.etag and new.etag and old.etag != new.etag:
        return "the file changed upstream (ETag differs)"
    if not (old.etag and new.etag) and old.last_modified and new.last_modified \
            and old.last_modified != new.last_modified:
        return "the file changed upstream (Last-Modified differs)"
    if strict and not ((old.etag and old.etag == new.etag)
                       or (old.last_modified and old.last_modified == new.last_modified)):
        return "nothing shows the source has the same file (no matching ETag or Last-Modified)"
    return None


def parse_http_date(value: Optional[str]) -> Optional[float]:
    """An HTTP date (``Date``, ``Last-Modified``, ``Retry-After``) as epoch seconds, or None when it is not one.

    Dates come from the network too: a malformed or absurd one is None, never an exception.
    """
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError, AttributeError):
        return None

