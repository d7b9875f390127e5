"""HTTP/1.1 for the server, as pure functions: request heads in, reply heads out.

Rule: header lines are parsed strictly (RFC 9112 sections 3.2, 5 and 6.3), and every limit on a head
is checked here, in one place; what a lenient parser accepts and a proxy reads differently is how one
connection's bytes become two requests. Why not h11: see docs/design.md, "Notes: the server".
"""

from __future__ import annotations

import email.utils
import functools
import re
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import BinaryIO, Dict, List, Optional, Tuple

from magedl.ranges import parse_http_date, parse_length

#: Largest request head accepted (request line and headers); nginx's default is 8 KiB per line.
MAX_HEAD = 32 * 1024
SERVER = "magedl-server"
TEXT = "text/plain; charset=utf-8"

__all__ = ["BadRequest", "Head", "HeadReader", "Headers", "Request", "Reply", "parse_fields", "parse_head",
           "reply_head", "http_date", "parse_http_date", "MAX_HEAD", "TEXT"]


class BadRequest(Exception):
    """A request the server answers with an error status and then closes the connection.

    Attributes
    ----------
    status : int
        400, 413, 431, 501 or 505.
    """

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class Head:
    """A parsed request head.

    Attributes
    ----------
    method, target, version : str
        From the request line; ``target`` is raw (percent-encoded, query included).
    headers : Headers
        Case-insensitive ``get``.
    keep_alive : bool
        Whether the connection may carry another request after this one.
    body_length : int
        Bytes of request body that follow the head (``Content-Length``).
    """

    method: str
    target: str
    version: str
    headers: Headers
    keep_alive: bool
    body_length: int = 0


def _request_line(line: bytes) -> Tuple[str, str, str]:
    words = line.decode("latin-1").split()
    if len(words) == 2:
        raise BadRequest(400, "HTTP/0.9 requests are not served")
    if len(words) != 3:
        raise BadRequest(400, "malformed request line")
    method, target, version = words
    if not version.startswith("HTTP/") or version[5:] not in ("1.0", "1.1"):
        if version[5:6].isdigit() and version[5:6] >= "2":
            raise BadRequest(505, "only HTTP/1.0 and HTTP/1.1 are served")
        raise BadRequest(400, "malformed HTTP version")
    if not method.isascii() or not method.isalpha() or not method.isupper():
        raise BadRequest(400, "malformed method")
    return method, target, version


class HeadReader:
    """Collects a connection's bytes until a whole request head is in.

    Each byte is scanned once, however slowly the head arrives, so a client
    sending a byte at a time costs no more than a fast one. Empty lines
    before the request line are skipped, as RFC 9112 allows. As soon as the
    request line is complete it is checked, so a hopeless request (HTTP/0.9,
    garbage) is refused without waiting for headers that will never come.

    Attributes
    ----------
    buf : bytearray
        Everything received so far; after :meth:`feed` returns an end, the
        bytes past it belong to the request body or the next request.
    """

    def __init__(self, limit: int = MAX_HEAD):
        self.buf = bytearray()
        self.limit = limit
        self._start: Optional[int] = None  # first byte of the request line
        self._line_end: Optional[int] = None
        self._scanned = 0

    def feed(self, data: bytes) -> Optional[int]:
        """Add *data*; return where the head ends (just past its blank line), or None if not yet.

        Raises
        ------
        BadRequest
            431 when the head grows past the limit; 400 or 505 for a bad request line.
        """
        self.buf += data
        buf = self.buf
        if self._start is None:
            i = self._scanned
            while i < len(buf) and buf[i] in b"\r\n":
                i += 1
            self._scanned = i
            if i == len(buf):
                return self._too_big(i)
            self._start = i
        if self._line_end is None:
            j = buf.find(b"\n", self._scanned)
            if j < 0:
                self._scanned = len(buf)
                return self._too_big(len(buf) - self._start)
            _request_line(bytes(buf[self._start:j]))
            self._line_end = self._scanned = j
        # The blank line is a newline followed by an optional CR and a newline.
        since = max(self._line_end, self._scanned - 2)
        found = [(i, len(p)) for p in (b"\n\r\n", b"\n\n") for i in (buf.find(p, since),) if i >= 0]
        if not found:
            self._scanned = len(buf)
            return self._too_big(len(buf) - self._start)
        index, size = min(found)
        end = index + size
        self._too_big(end - self._start)
        return end

    def _too_big(self, size: int) -> None:
        if size > self.limit:
            raise BadRequest(431, "request head too large")
        return None


# RFC 9110 section 5.6.2: a field name is a token.
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# RFC 9110 section 5.5: no control character in a field value but HTAB (a CR or NUL is refused, not replaced).
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
#: Most header lines in one request (http.client's limit; nginx allows its buffer's worth).
MAX_HEADERS = 100
#: Fields a request may carry once only: a second value is what a front proxy and this server
#: could each pick differently (RFC 9112 section 3.2 for Host).
_SINGLE = ("host", "authorization", "transfer-encoding")


class Headers:
    """A request's header fields in order; names compare case-insensitively.

    The subset of :class:`email.message.Message` that hooks use: ``get``
    (the first value), ``in``, ``del`` (every line of that name), ``items``.
    """

    __slots__ = ("_fields", "_values")

    def __init__(self, fields=()):
        self._fields: List[Tuple[str, str]] = []
        self._values: Dict[str, List[str]] = {}  # lower-cased name -> its values, in order
        for name, value in fields:
            self[name] = value

    def get(self, name: str, default: Optional[str] = None) -> Optional[str]:
        values = self._values.get(name.lower())
        return values[0] if values else default

    def get_all(self, name: str) -> List[str]:
        return list(self._values.get(name.lower(), ()))

    def count(self, name: str) -> int:
        """How many lines carry *name*."""
        return len(self._values.get(name.lower(), ()))

    def any_of(self, lower_names) -> bool:
        """Whether a line carries one of *lower_names* (lower case)."""
        return any(name in self._values for name in lower_names)

    def __getitem__(self, name: str) -> Optional[str]:
        return self.get(name)

    def __setitem__(self, name: str, value: str) -> None:
        self._fields.append((name, value))
        self._values.setdefault(name.lower(), []).append(value)

    def __delitem__(self, name: str) -> None:
        name = name.lower()
        if self._values.pop(name, None) is not None:
            self._fields = [(k, v) for k, v in self._fields if k.lower() != name]

    def __contains__(self, name) -> bool:
        return isinstance(name, str) and name.lower() in self._values

    def __len__(self) -> int:
        return len(self._fields)

    def items(self) -> List[Tuple[str, str]]:
        return list(self._fields)

    def keys(self) -> List[str]:
        return [key for key, _ in self._fields]


def parse_fields(lines: List[bytes]) -> Headers:
    """Header lines (line ends removed) as :class:`Headers`, strictly as RFC 9112 section 5 asks.

    Raises
    ------
    BadRequest
        400 for a folded line, a line without a colon, a name that is not a
        token (``Host :`` included), a control character in a value; 431 for
        too many lines.
    """
    if len(lines) > MAX_HEADERS:
        raise BadRequest(431, "too many header lines")
    headers = Headers()
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            raise BadRequest(400, "a folded header line (obsolete line folding)")
        name, colon, value = line.partition(b":")
        if not colon:
            raise BadRequest(400, "a header line without a colon")
        if not _TOKEN.fullmatch(name):
            raise BadRequest(400, "a malformed header name (a space before the colon?)")
        value = value.strip(b" \t")
        if _CONTROL.search(value):
            raise BadRequest(400, "a control character in a header value")
        headers[name.decode("ascii")] = value.decode("latin-1")
    return headers


def _body_length(headers: Headers) -> int:
    """The request body's length from ``Content-Length`` (0 without), refusing any doubt about it."""
    values = [v.strip() for line in headers.get_all("Content-Length") for v in line.split(",")]
    if not values:
        return 0
    lengths = {parse_length(v) for v in values}
    if None in lengths:
        raise BadRequest(400, "malformed Content-Length")
    if len(lengths) > 1:
        raise BadRequest(400, "conflicting Content-Length values")
    return lengths.pop()


def parse_head(data: bytes) -> Head:
    """Parse a complete head (as delimited by :class:`HeadReader`).

    Strict where leniency lets a front proxy and this server read one byte
    stream as different requests (request smuggling): see :func:`parse_fields`,
    plus one ``Host`` (required in HTTP/1.1), one ``Authorization``, one
    ``Content-Length`` value, and no ``Content-Length`` beside
    ``Transfer-Encoding``, each a 400.

    Raises
    ------
    BadRequest
    """
    lines = data.lstrip(b"\r\n").split(b"\n")
    method, target, version = _request_line(lines[0])
    end = len(lines)
    while end > 1 and lines[end - 1] in (b"", b"\r"):
        end -= 1
    headers = parse_fields([line[:-1] if line.endswith(b"\r") else line for line in lines[1:end]])
    for name in _SINGLE:
        if headers.count(name) > 1:
            raise BadRequest(400, f"more than one {name.title()} header")
    if version == "HTTP/1.1" and headers.get("Host") is None:
        raise BadRequest(400, "an HTTP/1.1 request without a Host header")
    tokens = {t.strip() for t in (headers.get("Connection") or "").lower().split(",")}
    keep_alive = "close" not in tokens if version == "HTTP/1.1" else "keep-alive" in tokens
    body_length = _body_length(headers)
    if headers.get("Transfer-Encoding") is not None:
        if headers.get("Content-Length") is not None:
            raise BadRequest(400, "both Content-Length and Transfer-Encoding")
        # No request here has a body worth reading; a chunked one would be
        # misread as the next request, so the connection ends after the reply.
        keep_alive = False
    return Head(method, target, version, headers, keep_alive, body_length)


@dataclass
class Request:
    """One parsed request, as the server and its hooks see it.

    Attributes
    ----------
    method : str
    path : str
        The raw request target, query included (client text: escape before printing).
    route : str or None
        The decoded path below the server's prefix (``"file/x.zip"``), None when
        the path is outside the prefix.
    headers : Headers
        Hooks may change them (e.g. drop ``Range``) before the server answers.
    client : tuple
        (address, port).
    file_name : str or None
        Set for ``file/`` requests.
    context : dict
        Free space for a hook's per-request state.
    """

    method: str
    path: str
    route: Optional[str]
    headers: Headers
    client: tuple
    file_name: Optional[str] = None
    context: dict = field(default_factory=dict)

    def header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        return self.headers.get(name, default)


@dataclass
class Reply:
    """A response before it is written.

    The body is either ``body`` bytes or ``length`` bytes read from ``stream``
    after seeking to ``offset``; a stream that ends early cuts the connection
    (the client sees a short body, never a wrong one). ``send_body`` is False
    for HEAD; ``close`` ends the connection after this reply.
    """

    status: int
    headers: List[Tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    stream: Optional[BinaryIO] = None
    offset: int = 0
    length: int = 0
    send_body: bool = True
    close: bool = False

    @classmethod
    def text(cls, status: int, text, content_type: str = TEXT, headers=()) -> "Reply":
        """A reply with a small in-memory body (str or bytes)."""
        body = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        return cls(status, [("Content-Type", content_type), *headers], body)

    def get_header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return default

    def set_header(self, name: str, value: str) -> None:
        self.del_header(name)
        self.headers.append((name, value))

    def del_header(self, name: str) -> None:
        self.headers = [(k, v) for k, v in self.headers if k.lower() != name.lower()]

    @property
    def content_length(self) -> int:
        return self.length if self.stream is not None else len(self.body)

    def read_body(self) -> bytes:
        """Materialise the body (closing any stream)."""
        if self.stream is not None:
            self.stream.seek(self.offset)
            data = self.stream.read(self.length)
            self.stream.close()
            self.stream, self.body, self.offset, self.length = None, data, 0, 0
        return self.body


def reply_head(reply: Reply, close: bool) -> bytes:
    """The status line and headers of *reply*, Content-Length and Date included."""
    before, after = head_parts(reply, close)
    return before + now_bytes() + after


def head_parts(reply: Reply, close: bool) -> Tuple[bytes, bytes]:
    """:func:`reply_head` in two parts, before and after the Date header's value (kept to answer again)."""
    try:
        phrase = HTTPStatus(reply.status).phrase
    except ValueError:
        phrase = ""
    lines = [f"{key}: {value}" for key, value in reply.headers if key.lower() != "content-length"]
    if reply.status != 304:  # a 304's length would be the 200's (RFC 9110 section 8.6): none is simpler
        lines.append(f"Content-Length: {reply.content_length}")
    if close:
        lines.append("Connection: close")
    before = f"{f'HTTP/1.1 {reply.status} {phrase}'.rstrip()}\r\nServer: {SERVER}\r\nDate: "
    return before.encode("latin-1"), ("\r\n" + "\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


_date_now = (-1, b"")  # (this second, its Date value), replaced whole so threads never see half of it


def now_bytes() -> bytes:
    """The Date header's value for this second (formatted once per second)."""
    global _date_now
    second = int(time.time())
    cached = _date_now
    if cached[0] != second:
        cached = _date_now = (second, http_date(second).encode("latin-1"))
    return cached[1]


@functools.lru_cache(maxsize=4096)  # the same few modification times, over and over
def http_date(epoch: float) -> str:
    """Format epoch seconds as an IMF-fixdate (``Sun, 06 Nov 1994 08:49:37 GMT``)."""
    return email.utils.formatdate(epoch, usegmt=True)

