"""Untrusted metadata (feeds, tables, Composer files): bounded reads and guarded JSON.

Rule: every metadata read goes through here, so an endless body, a huge Content-Length, JSON nested
too deep or a huge number becomes a :class:`~magedl.errors.FeedError` naming where it came from, never
a MemoryError, RecursionError or traceback.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from magedl.errors import FeedError

#: Largest metadata file read (64 MiB).  The whole packages.json of a large
#: private repository is a few MiB; anything far bigger is a broken or hostile
#: server, and the limit keeps it from exhausting memory.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
#: Deepest JSON nesting accepted.  Real metadata nests about 5 levels; the
#: check runs before json.loads so a hostile body cannot exhaust the stack.
MAX_DEPTH = 64
#: Most digits in a JSON number: sizes and timestamps need about 20; Python's
#: own limit (4,300) would cost time on a hostile 5,000-digit number first.
MAX_DIGITS = 100


class NotJSON(FeedError):
    """The body is not JSON at all (an HTML page, a short text): callers may word it better."""


def read_bounded(body: bytes | Iterable[bytes], max_bytes: int, where: str) -> bytes:
    """Return *body* (bytes or an iterable of chunks) joined, at most *max_bytes* long.

    Raises
    ------
    FeedError
        The body is longer than *max_bytes*; a stream is closed unread.
    """
    if isinstance(body, (bytes, bytearray, memoryview)):
        data = bytes(body)
        if len(data) > max_bytes:
            raise FeedError(f"{where}: larger than the {max_bytes}-byte limit for metadata")
        return data
    chunks, total = [], 0
    try:
        for chunk in body:
            total += len(chunk)
            if total > max_bytes:
                raise FeedError(f"{where}: larger than the {max_bytes}-byte limit for metadata")
            chunks.append(bytes(chunk))
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()  # releases the connection of a streamed response
    return b"".join(chunks)


def parse_json(data, where: str, object_pairs_hook=None):
    """Parse untrusted JSON (bytes or text), refusing nesting deeper than :data:`MAX_DEPTH`.

    *object_pairs_hook*, when given, makes each object from its ``(key, value)`` pairs (as ``json.loads``).

    Raises
    ------
    NotJSON
        Not UTF-8, or not JSON (NaN and Infinity included).
    FeedError
        Nested too deep, or a number of more than :data:`MAX_DIGITS` digits;
        every message names *where*.
    """
    if isinstance(data, str):
        text = data.lstrip("\ufeff")
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise NotJSON(f"{where}: not UTF-8 JSON") from None
    if _too_deep(text, MAX_DEPTH):
        raise FeedError(f"{where}: the JSON is nested deeper than {MAX_DEPTH} levels; this is not metadata")
    try:
        return json.loads(text, parse_constant=_no_constant, parse_int=_bounded_int,
                          object_pairs_hook=object_pairs_hook)
    except _TooManyDigits as exc:
        raise FeedError(f"{where}: the JSON holds a number of {exc.args[0]} digits; this is not metadata") from None
    except RecursionError:  # unreachable after _too_deep; kept as a last line
        raise FeedError(f"{where}: the JSON is nested too deeply; this is not metadata") from None
    except ValueError as exc:
        raise NotJSON(f"{where}: not valid JSON ({exc})") from None


class _TooManyDigits(Exception):
    pass


def _bounded_int(text):
    if len(text) > MAX_DIGITS:
        raise _TooManyDigits(len(text))
    return int(text)


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


# Every byte but the brackets and the quote: deleted from the text before strings are found.
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
_QUOTED = re.compile(rb'"[^"]*"')
_EMPTY_PAIR = re.compile(rb"\[\]|\{\}")


def _brackets_outside_strings(text: str) -> bytes:
    """The brackets of JSON *text* that are not inside a string, in order (exact for valid JSON).

    In C throughout, as a feed of 100,000 entries needs: escaped backslashes, then escaped
    quotes go (inside a string they are its content), then every byte but brackets and
    quotes; adjacent quotes go next (an empty string, or the end of one string and the start
    of the next: the brackets outside are the same), and what is left between quotes last.
    """
    data = text.encode("utf-8", "surrogatepass").replace(b"\\\\", b"").replace(b'\\"', b"")
    return _QUOTED.sub(b"", data.translate(None, _NOT_STRUCTURE).replace(b'""', b""))


def _too_deep(text: str, limit: int) -> bool:
    """Tell whether brackets outside strings nest deeper than *limit*."""
    if text.count("[") + text.count("{") <= limit:
        return False  # the common case costs two counts
    brackets = _brackets_outside_strings(text)
    # Each pass removes the innermost pairs, one level of nesting everywhere: nothing left within
    # *limit* passes means properly nested and no deeper. Otherwise count each bracket.
    left = brackets
    for _ in range(limit):
        shorter = _EMPTY_PAIR.sub(b"", left)
        if not shorter:
            return False
        if len(shorter) == len(left):
            break
        left = shorter
    depth = 0
    for char in brackets:
        if char in b"[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False
