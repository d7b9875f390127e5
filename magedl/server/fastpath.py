"""The common request, answered on the connection loop's thread: a whole archive from a mirror folder.

Rule: the loop never waits for a client. It answers only a GET or HEAD of ``file/<name>`` (or of
``info/json``) with no condition and no range, on a server without hooks, when the feed is the
version parsed last and the file is small; the file's descriptor and its reply head are kept while
the file is unchanged. All else, and the part of a reply the socket does not take at once, goes to
a worker, which answers as before. Why: see docs/design.md, "Notes: the server".
"""

from __future__ import annotations

import os
import socket
from collections import OrderedDict
from typing import Callable, Optional
from urllib.parse import unquote

from magedl.server.connections import Connection
from magedl.server.http import BadRequest, Reply, head_parts, now_bytes, parse_head
from magedl.server.routes import BINARY, JSON, file_headers
from magedl.server.stores import DirStore, fingerprint
from magedl.server.writer import send_file

__all__ = ["OpenFiles", "QuickPath", "QUICK_MAX", "Rest", "open_files_budget"]

#: Larger files go to a worker: their body would not fit a socket's buffer at once anyway.
QUICK_MAX = 1 << 20
#: Headers whose answer is not the plain 200 (a 304, a 206, a 416): the full path answers them.
_ASIDE = ("range", "if-range", "if-none-match", "if-modified-since")
_MORE = getattr(socket, "MSG_MORE", 0)


def open_files_budget(most: int = 64) -> int:
    """How many files to keep open: *most*, fewer when RLIMIT_NOFILE is low (the connections need theirs)."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, ValueError, OSError):
        return most
    return most if soft == resource.RLIM_INFINITY else max(0, min(most, soft // 16))


class OpenFile:
    """A published file kept open: its descriptor, the fingerprint it was opened with, its 200's head."""

    __slots__ = ("fh", "fd", "path", "key", "size", "before", "after")

    def __init__(self, fh, path: str, st: os.stat_result, content_type: str):
        self.fh = fh
        self.fd = fh.fileno()
        self.path = path
        self.key = fingerprint(st)
        self.size = st.st_size
        reply = Reply(200, file_headers(DirStore.file_info(st), content_type), stream=fh, length=st.st_size)
        self.before, self.after = head_parts(reply, close=False)


class OpenFiles:
    """The last *size* small files served from *store*, kept open; the loop thread's alone.

    A file is used again only while a ``stat`` of its path gives the
    fingerprint it was opened with (same inode, size, modification and
    change time) and one name: a file replaced, edited, or given a second
    name is opened again, under the publishing rules.
    """

    def __init__(self, store: DirStore, size: int):
        self.size = size
        self._store = store
        self._files: "OrderedDict[str, OpenFile]" = OrderedDict()
        self.opened = 0  # how many files were opened (the tests count them)

    def get(self, rel: str, content_type: str = BINARY) -> Optional[OpenFile]:
        """The open file ``<mirror>/<rel>`` as it is now, or None (missing, refused, or too large).

        Raises
        ------
        OSError
            A shortage (out of descriptors): the caller leaves the request to a worker.
        """
        entry = self._files.get(rel)
        if entry is not None:
            try:
                st = os.stat(entry.path, follow_symlinks=False)
                # The link count too: where times are coarse, a second name may leave the change time as it was.
                same = st.st_nlink == 1 and fingerprint(st) == entry.key
            except OSError:
                same = False
            if same:
                self._files.move_to_end(rel)
                return entry
            self._files.pop(rel).fh.close()
        opened = self._store.open(rel)
        if opened is None:
            return None
        fh, st = opened
        self.opened += 1
        if st.st_size > QUICK_MAX or self.size <= 0:
            fh.close()
            return None
        entry = OpenFile(fh, os.path.join(self._store.root, *rel.split("/")), st, content_type)
        self._files[rel] = entry
        while len(self._files) > self.size:
            self._files.popitem(last=False)[1].fh.close()
        return entry

    def close(self) -> None:
        while self._files:
            self._files.popitem()[1].fh.close()


class QuickPath:
    """Answers the common request on the loop's thread (see the module's rule).

    Parameters
    ----------
    files : OpenFiles
    prefix : str
        The server's URL prefix (``"/"``).
    authorized : callable or None
        ``authorized(header_value) -> bool``, or None for an open server.
    log_line : callable
        ``log_line(client, what, status, sent, aborted)``: the access log.
    """

    def __init__(self, files: OpenFiles, prefix: str, authorized: Optional[Callable], log_line: Callable):
        self.files = files
        self._store = files._store
        self._file_prefix = prefix + "file/"
        self._feed_path = prefix + self._store.FEED
        self._authorized = authorized
        self._log_line = log_line

    def answer(self, conn: Connection, head_bytes: bytes):
        """Answer the request in *head_bytes* if it is the common one.

        Returns None (not answered: a worker answers it), True (answered; the
        connection waits for its next request), False (the connection ends),
        or a :class:`Rest` a worker must run, on the connection made blocking, to
        send the rest of the reply (it returns whether the connection goes on).
        """
        try:
            head = parse_head(head_bytes)
        except BadRequest:
            return None  # the worker's answer to it is the one place for errors
        method, headers = head.method, head.headers
        if (method != "GET" and method != "HEAD") or head.body_length or not head.keep_alive \
                or headers.any_of(_ASIDE):
            return None
        decoded = unquote(head.target.split("?", 1)[0].split("#", 1)[0])
        if decoded.startswith(self._file_prefix):
            name = decoded[len(self._file_prefix):]
        elif decoded.rstrip("/") == self._feed_path:
            name = None
        else:
            return None
        if self._authorized is not None and not self._authorized(headers.get("Authorization")):
            return None
        snapshot = self._store.current()
        if snapshot is None or (name not in snapshot.names if name is not None else not snapshot.readable):
            return None  # a new version of the feed to parse, a 404, the empty feed: each a worker's
        try:
            if name is not None:
                entry = self.files.get("file/" + name)
            else:  # the feed's file itself, the version the snapshot parsed
                entry = self.files.get(self._store.FEED, JSON)
                entry = entry if entry is not None and entry.key == snapshot.fingerprint else None
        except OSError:
            return None
        if entry is None:
            return None
        return self._send(conn, entry, method == "GET", f"{method} {head.target}")

    def _send(self, conn: Connection, entry: OpenFile, body: bool, what: str):
        sock = conn.sock
        head = entry.before + now_bytes() + entry.after
        length = entry.size if body else 0
        try:
            head_sent = sock.send(head, _MORE if length else 0)
            sent = send_file(sock, entry.fd, 0, length) if head_sent == len(head) and length else 0
        except BlockingIOError:
            head_sent, sent = 0, 0
        except OSError:  # the client left
            self._log_line(conn.client, what, 200, 0, True)
            return False
        if head_sent == len(head) and sent == length:
            self._log_line(conn.client, what, 200, sent, False)
            return True
        # The socket is full (or the file shrank: the worker finds its end and cuts the connection).
        # A descriptor of its own, as this one may be closed when another file takes its place.
        try:
            fd = os.dup(entry.fd)
        except OSError:
            self._log_line(conn.client, what, 200, sent, True)
            return False
        return Rest(lambda: self._finish(conn, head[head_sent:], fd, sent, length, what), fd)

    def _finish(self, conn: Connection, head_left: bytes, fd: int, sent: int, length: int, what: str) -> bool:
        """On a worker: the rest of a reply the socket did not take at once."""
        sock = conn.sock
        try:
            if head_left:
                sock.sendall(head_left, _MORE if length else 0)
            sent += send_file(sock, fd, sent, length - sent)
        except OSError:
            pass
        aborted = sent < length
        if aborted:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._log_line(conn.client, what, 200, sent, aborted)
        return not aborted


class Rest:
    """The rest of a reply, for a worker to send: call it once, or :meth:`cancel` it (no worker will)."""

    __slots__ = ("_send", "_fd")

    def __init__(self, send: Callable[[], bool], fd: int):
        self._send, self._fd = send, fd

    def __call__(self) -> bool:
        try:
            return self._send()
        finally:
            self.cancel()

    def cancel(self) -> None:
        """Close the reply's descriptor (once)."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)
