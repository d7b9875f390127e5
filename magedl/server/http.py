"""HTTP/1.1 for the server, as pure functions: request heads in, reply heads out.

The server reads a whole request head before it gives the connection a
thread (see :mod:`magedl.server.connections`), so parsing works on bytes
already in memory and every limit is checked here, in one place: the head's
size, the shape of the request line (HTTP/1.0 and 1.1 only; an HTTP/0.9
line is answered 400 at once, without waiting for headers it will never
send), the number of header lines, and a ``Content-Length`` that must be a
sane number.
"""

from __future__ import annotations

import email.message
import email.utils
import http.client
import io
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import BinaryIO, List, Optional, Tuple

from magedl.ranges import parse_http_date, parse_length  # noqa: F401  (parse_http_date re-exported)

#: Largest request head accepted (request line and headers); nginx's default is 8 KiB per line.
MAX_HEAD = 32 * 1024
SERVER = "magedl-server"
TEXT = "text/plain; charset=utf-8"

__all__ = ["BadRequest", "Head", "HeadReader", "Request", "Reply", "parse_head", "reply_head",
           "http_date", "parse_http_date", "MAX_HEAD", "TEXT"]


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
    headers : email.message.Message
        Case-insensitive ``get``.
    keep_alive : bool
        Whether the connection may carry another request after this one.
    body_length : int
        Bytes of request body that follow the head (``Content-Length``).
    """

    method: str
    target: str
    version: str
    headers: email.message.Message
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


def parse_head(data: bytes) -> Head:
    """Parse a complete head (as delimited by :class:`HeadReader`).

    Raises
    ------
    BadRequest
    """
    data = data.lstrip(b"\r\n")
    line, _, rest = data.partition(b"\n")
    method, target, version = _request_line(line)
    try:
        headers = http.client.parse_headers(io.BytesIO(rest))
    except http.client.HTTPException:  # more than 100 header lines, or one too long
        raise BadRequest(431, "too many or too long header lines") from None
    tokens = {t.strip() for t in (headers.get("Connection") or "").lower().split(",")}
    keep_alive = "close" not in tokens if version == "HTTP/1.1" else "keep-alive" in tokens
    length_text = headers.get("Content-Length")
    body_length = 0
    if length_text is not None:
        length = parse_length(length_text)
        if length is None:
            raise BadRequest(400, "malformed Content-Length")
        body_length = length
    if headers.get("Transfer-Encoding") is not None:
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
    headers : email.message.Message
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
    headers: email.message.Message
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
    try:
        phrase = HTTPStatus(reply.status).phrase
    except ValueError:
        phrase = ""
    lines = [f"HTTP/1.1 {reply.status} {phrase}".rstrip(), f"Server: {SERVER}",
             f"Date: {email.utils.formatdate(usegmt=True)}"]
    lines += [f"{key}: {value}" for key, value in reply.headers if key.lower() != "content-length"]
    lines.append(f"Content-Length: {reply.content_length}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def http_date(epoch: float) -> str:
    """Format epoch seconds as an IMF-fixdate (``Sun, 06 Nov 1994 08:49:37 GMT``)."""
    return email.utils.formatdate(epoch, usegmt=True)
