"""An HTTP server that answers in the shape of Magento's downloads API.

It serves whatever a *store* holds: an in-memory catalogue (tests, the
emulator) or a mirror folder (``magedl serve DIR``).  It is stdlib only and
speaks HTTP/1.1 with keep-alive, so every response carries a Content-Length
(or closes the connection).

Tests observe it through a request log and synchronise on it with
:meth:`ApiServer.wait_for`, which wakes on every body chunk written and on
every finished request, so no test has to sleep and hope.

Fault injection lives elsewhere (:mod:`magedl.emulator`); this module only
offers :class:`Hooks` at the few points where a fault has to act.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import hashlib
import hmac
import io
import json
import logging
import os
import socket
import socketserver
import stat as stat_mod
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import BinaryIO, Callable, Dict, List, Optional, Protocol, Tuple
from urllib.parse import unquote

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
TEXT = "text/plain; charset=utf-8"
REALM = "Magento downloads"

__all__ = [
    "FileInfo", "Store", "MemoryStore", "DirStore", "feed_file_names",
    "Request", "Reply", "Pacing", "FilePolicy", "Hooks",
    "RequestRecord", "ApiServer", "http_date",
]


# --------------------------------------------------------------------------
# Stores


@dataclass(frozen=True)
class FileInfo:
    """What a store knows about one file.

    Attributes
    ----------
    size : int
        Length in bytes.
    etag : str
        Strong entity tag, quotes included (``'"5f2a-1c"'``).
    last_modified : float
        Modification time, epoch seconds.
    """

    size: int
    etag: str
    last_modified: float


class Store(Protocol):
    """What :class:`ApiServer` needs from a catalogue and its files."""

    def feed(self) -> dict:
        """Return the JSON feed (the body of ``info/json``)."""

    def releases(self) -> list:
        """Return the feed parsed into :class:`magedl.catalog.Release`."""

    def stat(self, file_name: str) -> Optional[FileInfo]:
        """Return the file's info, or None when it is not served."""

    def open(self, file_name: str) -> BinaryIO:
        """Open the file for reading (binary, seekable)."""


def feed_file_names(feed: dict) -> set:
    """Collect every ``file_name`` in a feed, whatever its shape.

    Walks categories that map versions to lists as well as list-shaped
    ones, and unknown categories too, without needing the catalog parser:
    the server must decide what it may serve even from an odd feed.

    Parameters
    ----------
    feed : dict
        The JSON feed.

    Returns
    -------
    set of str
    """
    names = set()

    def walk(node):
        if isinstance(node, dict):
            name = node.get("file_name")
            if isinstance(name, str):
                names.add(name)
                return
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(feed)
    return names


def _parse_releases(feed):
    # Imported late: the catalog module is optional for serving files.
    from magedl.service.catalog import parse_feed

    return parse_feed(feed, warn=lambda *a, **k: None)


class MemoryStore:
    """A thread-safe in-memory catalogue: a feed and the files' bytes.

    Parameters
    ----------
    feed : dict
        The JSON feed.  Copied; :meth:`replace` keeps its md5s current.
    files : dict of str to bytes
        Content by file name.  Only names present here are served.
    """

    def __init__(self, feed: dict, files: Dict[str, bytes]):
        self._lock = threading.Lock()
        self._feed = json.loads(json.dumps(feed))
        self._files = dict(files)
        start = int(time.time())
        self._meta = {name: self._make_info(name, data, 1, start)
                      for name, data in self._files.items()}
        self._generation = {name: 1 for name in self._files}

    @staticmethod
    def _make_info(name, data, generation, mtime):
        digest = hashlib.md5(data).hexdigest()[:16]
        return FileInfo(len(data), f'"{digest}-{generation}"', float(mtime))

    def feed(self) -> dict:
        with self._lock:
            return json.loads(json.dumps(self._feed))

    def releases(self) -> list:
        return _parse_releases(self.feed())

    def names(self) -> List[str]:
        """Return the names of the files held."""
        with self._lock:
            return sorted(self._files)

    def data(self, file_name: str) -> bytes:
        """Return a file's current bytes (KeyError when absent)."""
        with self._lock:
            return self._files[file_name]

    def stat(self, file_name: str) -> Optional[FileInfo]:
        with self._lock:
            return self._meta.get(file_name)

    def open(self, file_name: str) -> BinaryIO:
        with self._lock:
            return io.BytesIO(self._files[file_name])

    def get(self, file_name: str) -> Optional[Tuple[FileInfo, BinaryIO]]:
        """Return info and an open file taken together (no torn reads)."""
        with self._lock:
            if file_name not in self._files:
                return None
            return self._meta[file_name], io.BytesIO(self._files[file_name])

    def replace(self, file_name: str, data: bytes, update_md5: bool = True):
        """Swap a file's content, as when Adobe re-publishes a release.

        The ETag changes and Last-Modified moves forward by at least one
        second (HTTP dates have whole-second resolution, and a client
        comparing dates must see the change).

        Parameters
        ----------
        file_name : str
        data : bytes
        update_md5 : bool
            Also rewrite the md5 of every feed entry for this file; False
            simulates a feed that lags behind the files.
        """
        with self._lock:
            old = self._meta.get(file_name)
            gen = self._generation.get(file_name, 0) + 1
            mtime = int(time.time())
            if old is not None:
                mtime = max(mtime, int(old.last_modified) + 1)
            self._files[file_name] = bytes(data)
            self._generation[file_name] = gen
            self._meta[file_name] = self._make_info(file_name, data, gen, mtime)
            if update_md5:
                md5 = hashlib.md5(data).hexdigest()
                _set_feed_md5(self._feed, file_name, md5)

    def remove(self, file_name: str):
        """Forget a file's bytes (the feed still lists it)."""
        with self._lock:
            self._files.pop(file_name, None)
            self._meta.pop(file_name, None)


def _set_feed_md5(node, file_name, md5):
    if isinstance(node, dict):
        if node.get("file_name") == file_name:
            node["md5"] = md5
            return
        for value in node.values():
            _set_feed_md5(value, file_name, md5)
    elif isinstance(node, list):
        for value in node:
            _set_feed_md5(value, file_name, md5)


class DirStore:
    """A mirror folder: ``root/info/json`` and ``root/file/<file_name>``.

    Everything is re-read on each request, so a mirror updated in place is
    served as it is now.  Only names listed in the feed are served: partial
    files or stray names in ``file/`` stay private.

    Parameters
    ----------
    root : str or os.PathLike
    """

    def __init__(self, root):
        self.root = os.path.abspath(os.fspath(root))
        self._files = os.path.join(self.root, "file")

    def feed(self) -> dict:
        path = os.path.join(self.root, "info", "json")
        try:
            with open(path, "rb") as fh:
                feed = json.load(fh)
        except FileNotFoundError:
            return {}
        return feed if isinstance(feed, dict) else {}

    def releases(self) -> list:
        return _parse_releases(self.feed())

    def _path(self, file_name):
        if file_name not in feed_file_names(self.feed()):
            return None
        parts = file_name.split("/")
        if any(p in ("", ".", "..") for p in parts) or "\\" in file_name \
                or "\0" in file_name:
            return None
        path = os.path.realpath(os.path.join(self._files, *parts))
        top = os.path.realpath(self._files)
        # realpath also defeats symlinks that point out of the mirror.
        if not path.startswith(top + os.sep):
            return None
        return path

    @staticmethod
    def _info(st):
        # Like nginx (mtime-size in hex), but with nanoseconds so a file
        # rewritten within the same second still gets a new tag.
        return FileInfo(st.st_size, f'"{st.st_mtime_ns:x}-{st.st_size:x}"',
                        float(int(st.st_mtime)))

    def stat(self, file_name: str) -> Optional[FileInfo]:
        path = self._path(file_name)
        if path is None:
            return None
        try:
            st = os.stat(path)
        except OSError:
            return None
        return self._info(st) if stat_mod.S_ISREG(st.st_mode) else None

    def open(self, file_name: str) -> BinaryIO:
        path = self._path(file_name)
        if path is None:
            raise FileNotFoundError(file_name)
        return open(path, "rb")

    def get(self, file_name: str) -> Optional[Tuple[FileInfo, BinaryIO]]:
        """Open first, then fstat, so info and bytes belong together."""
        path = self._path(file_name)
        if path is None:
            return None
        try:
            # O_NONBLOCK: opening a FIFO planted in the folder must not hang this thread;
            # it is refused just below as not a regular file.
            fh = os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb")
        except OSError:
            return None
        st = os.fstat(fh.fileno())
        if not stat_mod.S_ISREG(st.st_mode):
            fh.close()
            return None
        return self._info(st), fh


# --------------------------------------------------------------------------
# Requests, replies, hooks


@dataclass
class Request:
    """One parsed request, as hooks see it.

    Attributes
    ----------
    method : str
    path : str
        The raw request target, query included.
    route : str
        The decoded path below the prefix (``"file/x.zip"``), or None when
        the path is outside the prefix.
    headers : email.message.Message
    client : tuple
    file_name : str or None
        Set for ``file/`` requests.
    """

    method: str
    path: str
    route: Optional[str]
    headers: object
    client: tuple
    file_name: Optional[str] = None

    def header(self, name, default=None):
        return self.headers.get(name, default)


@dataclass
class Pacing:
    """How a body goes out: throttled, cut short, or stalled.

    Attributes
    ----------
    rate : int or None
        Bytes per second for this connection.
    cut_after : int or None
        Close the connection after this many body bytes.
    pause_after : int or None
        Stop sending after this many bytes for ``pause_seconds``.
    pause_seconds : float
    """

    rate: Optional[int] = None
    cut_after: Optional[int] = None
    pause_after: Optional[int] = None
    pause_seconds: float = 0.0


@dataclass
class FilePolicy:
    """Per-request choices for a ``file/`` answer.

    Attributes
    ----------
    ranges : bool
        Honour Range / If-Range and advertise Accept-Ranges.
    validators : bool
        Send ETag and Last-Modified.
    pacing : Pacing
    """

    ranges: bool = True
    validators: bool = True
    pacing: Pacing = field(default_factory=Pacing)


@dataclass
class Reply:
    """A response before it is written.

    The body is either ``body`` bytes or ``length`` bytes of ``stream``
    from ``offset``.  ``send_body`` is False for HEAD.
    """

    status: int
    headers: List[Tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    stream: Optional[BinaryIO] = None
    offset: int = 0
    length: int = 0
    send_body: bool = True
    close: bool = False
    pacing: Pacing = field(default_factory=Pacing)

    @classmethod
    def text(cls, status, text, content_type=TEXT, headers=()):
        """Build a reply with a small in-memory body."""
        body = text.encode("utf-8") if isinstance(text, str) else text
        return cls(status, [("Content-Type", content_type), *headers], body)

    def get_header(self, name, default=None):
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return default

    def set_header(self, name, value):
        self.del_header(name)
        self.headers.append((name, value))

    def del_header(self, name):
        self.headers = [(k, v) for k, v in self.headers
                        if k.lower() != name.lower()]

    @property
    def content_length(self):
        return self.length if self.stream is not None else len(self.body)

    def read_body(self) -> bytes:
        """Materialise the body (closing any stream)."""
        if self.stream is not None:
            self.stream.seek(self.offset)
            data = self.stream.read(self.length)
            self.stream.close()
            self.stream, self.body, self.offset, self.length = None, data, 0, 0
        return self.body


class Hooks:
    """Points where a subclass may change how the server answers.

    Every method has a neutral default; :mod:`magedl.emulator` overrides
    them to inject faults.  Hooks run on handler threads, concurrently.
    """

    def before(self, req: Request) -> Optional[Reply]:
        """Answer a request before authentication (None: carry on)."""
        return None

    def unauthorized(self, req: Request) -> Reply:
        """Answer a request whose credentials are missing or wrong."""
        return Reply.text(401, "Unauthorized\n", headers=[
            ("WWW-Authenticate", f'Basic realm="{REALM}"')])

    def before_file(self, req: Request, file_name: str) -> Optional[Reply]:
        """Answer a ``file/`` request instead of the store (None: carry on)."""
        return None

    def file_policy(self, req: Request, file_name: str) -> FilePolicy:
        """Choose ranges, validators and pacing for a ``file/`` answer."""
        return FilePolicy()

    def finish(self, req: Request, reply: Reply) -> Reply:
        """Last look at any reply before it is written."""
        return reply


# --------------------------------------------------------------------------
# The request log


@dataclass
class RequestRecord:
    """One request as the server saw and answered it.

    Attributes
    ----------
    method, path : str
        ``path`` is the raw request target.
    file_name : str or None
        Decoded name for ``file/`` requests.
    range, if_range : str or None
        The request's ``Range`` and ``If-Range`` headers.
    status : int or None
    bytes_sent : int
        Body bytes actually written (fewer when the client went away or
        the body was cut on purpose).
    had_authorization : bool
    client : tuple
        (address, port) of the client.
    headers : dict
        Request headers, Authorization redacted.
    aborted : bool
        The body was not completely written.
    finished : bool
    """

    method: str
    path: str
    file_name: Optional[str] = None
    range: Optional[str] = None
    if_range: Optional[str] = None
    status: Optional[int] = None
    bytes_sent: int = 0
    had_authorization: bool = False
    client: tuple = ()
    headers: dict = field(default_factory=dict)
    aborted: bool = False
    finished: bool = False


def http_date(epoch: float) -> str:
    """Format epoch seconds as an IMF-fixdate (``Sun, 06 Nov 1994 ...``)."""
    return email.utils.formatdate(epoch, usegmt=True)


def _parse_http_date(value):
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _digits(text):
    return text.isascii() and text.isdigit()


def _parse_range(value, size):
    """Interpret a Range header against a size.

    Returns
    -------
    None
        Ignore the header (absent, malformed, multi-range): send it all.
    "unsatisfiable"
        Answer 416.
    (start, end)
        Inclusive byte positions.
    """
    if not value:
        return None
    unit, _, spec = value.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    # ASCII digits only: str.isdigit() also accepts '²', which int() then refuses.
    if not dash or not (_digits(first) or _digits(last)):
        return None
    if first and not _digits(first) or last and not _digits(last):
        return None
    if not first:
        n = int(last)
        if n == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - n), size - 1
    start = int(first)
    if last and int(last) < start:
        return None  # invalid spec: RFC 9110 says ignore the header
    if start >= size:
        return "unsatisfiable"
    end = int(last) if last else size - 1
    return start, min(end, size - 1)


def _if_range_matches(value, info, validators):
    if not validators:
        return False
    value = value.strip()
    if value.startswith('"') or value.startswith("W/"):
        # Strong comparison: a weak tag never allows a partial answer.
        return not value.startswith("W/") and value == info.etag
    when = _parse_http_date(value)
    return when is not None and int(when) == int(info.last_modified)


# --------------------------------------------------------------------------
# The handler


class _ClientGone(Exception):
    """The peer closed the connection while we were writing."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "magedl-server"
    # Idle keep-alive connections must not hold a thread forever.
    timeout = 60

    # -- plumbing --------------------------------------------------------

    def setup(self):
        super().setup()
        self.server.api._connection_opened(self.connection)

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.api._connection_closed(self.connection)

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):
        self.server.api._access_log(self, fmt % args)

    def log_request(self, code="-", size="-"):
        # The ApiServer logs requests itself (see _respond).
        pass

    def do_GET(self):
        self._serve()

    def do_HEAD(self):
        self._serve()

    def _other(self):
        self._drain_body()
        req = self._request()
        reply = Reply.text(405, "Method Not Allowed\n",
                           headers=[("Allow", "GET, HEAD")])
        reply.close = True
        self._respond(req, reply, self._new_record(req))

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _other

    def _drain_body(self):
        # GET bodies are meaningless here, but left unread they would be
        # parsed as the next request on this keep-alive connection.
        length = self.headers.get("Content-Length", "")
        left = int(length) if _digits(length) else 0
        if left > 2**20:
            self.close_connection = True
            return
        while left > 0:
            chunk = self.rfile.read(min(left, CHUNK))
            if not chunk:
                break
            left -= len(chunk)

    # -- request handling ------------------------------------------------

    def _request(self):
        api = self.server.api
        raw = self.path.split("?", 1)[0].split("#", 1)[0]
        decoded = unquote(raw)
        route = None
        if decoded.startswith(api.prefix):
            route = decoded[len(api.prefix):]
        elif decoded + "/" == api.prefix:
            route = ""
        req = Request(self.command, self.path, route, self.headers,
                      self.client_address)
        if route is not None and route.startswith("file/"):
            req.file_name = route[len("file/"):]
        return req

    def _new_record(self, req):
        headers = {k: ("<redacted>" if k.lower() == "authorization" else v)
                   for k, v in self.headers.items()}
        return RequestRecord(
            method=req.method, path=req.path, file_name=req.file_name,
            range=self.headers.get("Range"),
            if_range=self.headers.get("If-Range"),
            had_authorization="Authorization" in self.headers,
            client=tuple(self.client_address), headers=headers)

    def _serve(self):
        self._drain_body()
        api = self.server.api
        req = self._request()
        record = self._new_record(req)
        api._started(record)
        try:
            reply = self._answer(api, req)
        except Exception:  # a bug here must not kill the connection silently
            log.exception("error answering %s %s", req.method, req.path)
            reply = Reply.text(500, "Internal Server Error\n")
            reply.close = True
        if req.method == "HEAD":
            reply.send_body = False
        reply = api.hooks.finish(req, reply)
        if req.method == "HEAD":
            reply.send_body = False
        self._respond(req, reply, record)

    def _answer(self, api, req):
        reply = api.hooks.before(req)
        if reply is not None:
            return reply
        if not api._authorized(self.headers.get("Authorization")):
            return api.hooks.unauthorized(req)
        if req.route is None:
            return _not_found()
        if req.file_name is not None:
            return self._file(api, req, req.file_name)
        return _info(api.store, req.route)

    def _file(self, api, req, name):
        parts = name.split("/")
        if not name or any(p in ("", ".", "..") for p in parts) \
                or "\\" in name or "\0" in name:
            return _not_found()
        reply = api.hooks.before_file(req, name)
        if reply is not None:
            return reply
        got = _get(api.store, name)
        if got is None:
            return _not_found()
        info, fh = got
        policy = api.hooks.file_policy(req, name)
        headers = [("Content-Type", "application/octet-stream")]
        if policy.validators:
            headers += [("ETag", info.etag),
                        ("Last-Modified", http_date(info.last_modified))]
        if policy.ranges:
            headers.append(("Accept-Ranges", "bytes"))
        span = None
        range_value = self.headers.get("Range")
        if policy.ranges and range_value:
            if_range = self.headers.get("If-Range")
            if if_range is None or _if_range_matches(if_range, info,
                                                      policy.validators):
                span = _parse_range(range_value, info.size)
        if span == "unsatisfiable":
            fh.close()
            reply = Reply.text(416, "Range Not Satisfiable\n", headers=[
                ("Content-Range", f"bytes */{info.size}")])
            return reply
        if span is None:
            reply = Reply(200, headers, stream=fh, offset=0, length=info.size)
        else:
            start, end = span
            headers.append(("Content-Range", f"bytes {start}-{end}/{info.size}"))
            reply = Reply(206, headers, stream=fh, offset=start,
                          length=end - start + 1)
        reply.pacing = policy.pacing
        return reply

    # -- writing ---------------------------------------------------------

    def _respond(self, req, reply, record):
        api = self.server.api
        record.status = reply.status
        committed = []

        def commit():
            # The record enters the log just before the last bytes leave,
            # so a client holding a complete response can already read its
            # record in server.log, without waiting.
            if not committed:
                committed.append(True)
                api._finished(record)

        try:
            self.send_response(reply.status)
            for key, value in reply.headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(reply.content_length))
            if reply.close:
                self.send_header("Connection", "close")
                self.close_connection = True
            if not reply.send_body or reply.content_length == 0:
                commit()
                self.end_headers()
            elif reply.stream is None and reply.pacing == Pacing():
                # A small body leaves in one write with the headers, and
                # is logged first: a client that stops at the status line
                # still finds its request in the log.
                api._sent(record, len(reply.body))
                commit()
                self._headers_buffer.append(b"\r\n")
                self._headers_buffer.append(bytes(reply.body))
                try:
                    self.flush_headers()
                except OSError:
                    api._sent(record, -len(reply.body))
                    raise
            else:
                self.end_headers()
                self._write_body(api, reply, record, commit)
        except (_ClientGone, BrokenPipeError, ConnectionResetError,
                ConnectionAbortedError, socket.timeout):
            record.aborted = True
            self.close_connection = True
        finally:
            if reply.stream is not None:
                reply.stream.close()
            if committed:
                api._amended(record)
            else:
                api._finished(record)

    def _write_body(self, api, reply, record, commit):
        pacing = reply.pacing
        total = reply.content_length
        if reply.stream is not None:
            reply.stream.seek(reply.offset)
            read = reply.stream.read
        else:
            view, pos = memoryview(reply.body), [0]

            def read(n):
                chunk = view[pos[0]:pos[0] + n]
                pos[0] += len(chunk)
                return chunk

        chunk_size = CHUNK
        if pacing.rate:
            # Small chunks keep a throttled stream smooth rather than bursty.
            chunk_size = max(1, min(CHUNK, pacing.rate // 20))
        cut = pacing.cut_after
        cut = cut if cut is not None and cut < total else None
        pause = pacing.pause_after
        pause = pause if pause is not None and pause < total else None
        clock_start, clock_bytes = time.monotonic(), 0
        sent = 0
        while sent < total:
            if cut is not None and sent >= cut:
                self._cut(record)
                return
            if pause is not None and sent >= pause:
                pause = None
                if api._stopping.wait(pacing.pause_seconds):
                    raise _ClientGone()
                # After a stall the pace restarts instead of bursting to
                # catch up, as a recovering server would.
                clock_start, clock_bytes = time.monotonic(), sent
            want = min(chunk_size, total - sent)
            for mark in (cut, pause):
                if mark is not None and mark > sent:
                    want = min(want, mark - sent)
            data = read(want)
            if not data:
                # The file shrank under us: the client must see a short body.
                self._cut(record)
                return
            last = sent + len(data) >= total
            if last:
                # Count the final chunk before writing it (see commit).
                api._sent(record, len(data))
                commit()
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError,
                    ConnectionAbortedError, socket.timeout) as exc:
                if last:
                    api._sent(record, -len(data))
                raise _ClientGone() from exc
            sent += len(data)
            if not last:
                api._sent(record, len(data))
            if pacing.rate:
                due = clock_start + (sent - clock_bytes) / pacing.rate
                delay = due - time.monotonic()
                if delay > 0 and api._stopping.wait(delay):
                    raise _ClientGone()

    def _cut(self, record):
        record.aborted = True
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _get(store, name):
    getter = getattr(store, "get", None)
    if getter is not None:
        return getter(name)
    info = store.stat(name)
    if info is None:
        return None
    return info, store.open(name)


def _not_found():
    return Reply.text(404, "Not Found\n")


def _info(store, route):
    route = route.rstrip("/")
    if route == "info/json":
        body = json.dumps(store.feed(), indent=1).encode("utf-8")
        return Reply.text(200, body, content_type="application/json")
    from magedl.service import textformat

    if route == "info/help":
        return Reply.text(200, textformat.HELP_TEXT)
    if route == "info/files":
        return Reply.text(200, textformat.render_table(store.releases()))
    if route == "info/versions":
        return Reply.text(200, textformat.render_versions(store.releases()))
    for kind, key in (("info/filter/version/", "versions"),
                      ("info/filter/type/", "types")):
        if route.startswith(kind) and len(route) > len(kind):
            from magedl.service.catalog import select

            chosen = select(store.releases(), **{key: (route[len(kind):],)})
            return Reply.text(200, textformat.render_table(chosen))
    return _not_found()


# --------------------------------------------------------------------------
# The server


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def server_bind(self):
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn), which
        # can stall for seconds on hosts without DNS; we need none of it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = host, port

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (BrokenPipeError, ConnectionResetError,
                            ConnectionAbortedError, socket.timeout)):
            return
        log.exception("unexpected error serving %s", client_address)


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class ApiServer:
    """Serve a store in the shape of the downloads API.

    Parameters
    ----------
    store : Store
    host : str
        Address to bind (loopback by default).
    port : int
        0 picks a free port; read it back from :attr:`port`.
    prefix : str
        URL path the API lives under, e.g. ``"/products/downloads/"``.
    auth : dict or None
        ``{username: password}`` required as HTTP Basic auth, or None for
        an open server.
    hooks : Hooks or None
        Behaviour changes (fault injection).
    access_log : callable or None
        Called with one line per request (``magedl serve -v``); by default
        lines go to the ``magedl.server`` logger at DEBUG level only.

    Examples
    --------
    >>> with ApiServer(MemoryStore(feed, files)) as srv:    # doctest: +SKIP
    ...     requests.get(srv.base_url + "info/json").json()
    """

    def __init__(self, store, host="127.0.0.1", port=0, prefix="/",
                 auth=None, hooks=None, access_log=None):
        self.store = store
        self.host = host
        self.prefix = "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/"
        self.auth = dict(auth) if auth is not None else None
        self.hooks = hooks if hooks is not None else Hooks()
        self.log: List[RequestRecord] = []
        self.in_flight: List[RequestRecord] = []
        self._access = access_log
        self._cond = threading.Condition(threading.RLock())
        self._sent_by_file: Dict[str, int] = {}
        self._connections = set()
        self._stopping = threading.Event()
        self._thread = None
        server_class = _HTTPServer6 if ":" in host else _HTTPServer  # an IPv6 literal
        self._httpd = server_class((host, port), _Handler, bind_and_activate=True)
        self._httpd.api = self

    # -- lifecycle -------------------------------------------------------

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        """The API root, ending with ``/``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.prefix}"

    def start(self):
        """Serve on a daemon thread; returns at once (already listening)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                name=f"magedl-server-{self.port}", daemon=True)
            self._thread.start()
        return self

    def stop(self):
        """Stop serving and drop open connections (idempotent)."""
        self._stopping.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(5)
            self._thread = None
        # Keep-alive connections would otherwise outlive the server.
        with self._cond:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- the log ---------------------------------------------------------

    def wait_for(self, predicate: Callable[["ApiServer"], bool],
                 timeout: float = 10) -> bool:
        """Block until ``predicate(self)`` is true, or the timeout passes.

        Re-evaluated whenever a body chunk is written or a request ends.

        Returns
        -------
        bool
            The predicate's last value.
        """
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    def bytes_sent(self, file_name: Optional[str] = None) -> int:
        """Body bytes written so far for ``file_name`` (all files if None),
        requests still in flight included."""
        with self._cond:
            if file_name is None:
                return sum(self._sent_by_file.values())
            return self._sent_by_file.get(file_name, 0)

    def requests_for(self, file_name: str, method: Optional[str] = None):
        """Finished records for one file (optionally one method)."""
        with self._cond:
            return [r for r in self.log if r.file_name == file_name
                    and (method is None or r.method == method)]

    def clear_log(self):
        """Forget finished requests and byte counts."""
        with self._cond:
            self.log.clear()
            self._sent_by_file.clear()
            self._cond.notify_all()

    def _started(self, record):
        with self._cond:
            self.in_flight.append(record)
            self._cond.notify_all()

    def _sent(self, record, n):
        with self._cond:
            record.bytes_sent += n
            if record.file_name is not None:
                self._sent_by_file[record.file_name] = (
                    self._sent_by_file.get(record.file_name, 0) + n)
            self._cond.notify_all()

    def _finished(self, record):
        with self._cond:
            record.finished = True
            if record in self.in_flight:
                self.in_flight.remove(record)
            self.log.append(record)
            self._cond.notify_all()
        line = (f'{record.client[0] if record.client else "-"} '
                f'"{record.method} {record.path}" {record.status} '
                f"{record.bytes_sent}{' aborted' if record.aborted else ''}")
        if self._access is not None:
            self._access(line)
        else:
            log.debug("%s", line)

    def _amended(self, record):
        # A committed record changed after the fact (client left during
        # the last chunk): wake waiters so they see it.
        with self._cond:
            self._cond.notify_all()

    def _access_log(self, handler, message):
        # Protocol-level complaints from http.server (bad request lines).
        log.debug("%s %s", handler.client_address[0], message)

    def _connection_opened(self, conn):
        with self._cond:
            self._connections.add(conn)

    def _connection_closed(self, conn):
        with self._cond:
            self._connections.discard(conn)

    # -- auth ------------------------------------------------------------

    def _authorized(self, header) -> bool:
        if self.auth is None:
            return True
        if not header:
            return False
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, sep, password = decoded.partition(b":")
        if not sep:
            return False
        ok = False
        # Compare against every account so timing says nothing about which
        # user names exist.
        for name, secret in self.auth.items():
            same_user = hmac.compare_digest(user, name.encode("utf-8"))
            same_pass = hmac.compare_digest(password, secret.encode("utf-8"))
            ok |= same_user & same_pass
        return ok
