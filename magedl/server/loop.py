"""The server's connection loop: accepts under the cap, reads request heads, hands each to a worker.

Rule: a connection gets a thread only once its whole head is in (or the loop answers it itself, see
:mod:`magedl.server.fastpath`), so an idle or slow client costs a socket and a small buffer, never a
thread. The cap, the deadlines and keep-alive: see docs/design.md, "Notes: the server".
"""

from __future__ import annotations

import errno
import logging
import selectors
import socket
import threading
import time
from typing import Callable, Optional

from magedl.server.connections import Connection, Limits, connection_budget
from magedl.server.http import BadRequest, HeadReader
from magedl.server.writer import prepare

log = logging.getLogger(__name__)


# dispatch(conn, head_bytes, rest[, pending]) runs the request (or pending(), the rest of a reply) on a worker;
# reject(conn, BadRequest) answers an error; quick(conn, head_bytes) may answer on the loop (QuickPath.answer).
Dispatch = Callable[..., None]
Reject = Callable[[Connection, BadRequest], None]
Quick = Callable[[Connection, bytes], object]


class ConnectionLoop:
    """Accept connections on *listener* and read request heads until each is complete.

    Parameters
    ----------
    listener : socket.socket
        Bound and listening.
    limits : Limits
    dispatch : callable
        ``dispatch(conn, head, rest)``, called on the loop thread with a whole
        head; it must hand the work to another thread and return at once.
        The worker later calls :meth:`resume` (keep-alive) or :meth:`release`.
    reject : callable
        ``reject(conn, error)`` for a head that cannot be served (too large, bad
        request line); like ``dispatch`` it hands off and returns, then releases.
    quick : callable or None
        ``quick(conn, head)`` answers a request on this thread when it can
        without waiting (:meth:`magedl.server.fastpath.QuickPath.answer`).
    reserve : int
        Descriptors the caller keeps open beside the connections (kept files).
    """

    def __init__(self, listener: socket.socket, limits: Limits, dispatch: Dispatch, reject: Reject,
                 quick: Optional[Quick] = None, reserve: int = 0):
        self.listener = listener
        self.limits = limits
        self.max_connections = connection_budget(limits.max_connections, reserve)
        self._dispatch = dispatch
        self._reject = reject
        self._quick = quick
        self._soonest = float("inf")  # no waiting connection's deadline is earlier
        self._selector = selectors.DefaultSelector()
        self._waiting: dict = {}  # socket -> Connection, waiting for a head
        self._held = 0  # every connection we own: waiting ones and those with a worker
        self._lock = threading.Lock()
        self._returned: list = []  # connections given back by workers, to wait again
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stopping = False
        self._accepting = False
        self._out_of_fds = False  # accept() failed for lack of descriptors: wait for a release
        self._ran = False
        listener.setblocking(False)

    # -- called from workers ----------------------------------------------

    def resume(self, conn: Connection, leftover: bytes = b"") -> None:
        """Take back *conn* after a reply, to wait for its next request."""
        conn.leftover = leftover
        if conn.switches:
            try:
                conn.sock.setblocking(False)
            except OSError:
                pass
        with self._lock:
            if not self._stopping:
                self._returned.append(conn)
                self._wake()
                return
        self.release(conn)

    def release(self, conn: Connection) -> None:
        """Close *conn* and free its place."""
        _close(conn.sock)
        with self._lock:
            self._held -= 1
            self._out_of_fds = False
            self._wake()

    def stop(self) -> None:
        """Make :meth:`run` close every waiting connection and return (or just close, if it never ran)."""
        with self._lock:
            self._stopping = True
            self._wake()
            ran = self._ran
        if not ran:
            self._selector.close()
            _close(self._wake_r)
            _close(self._wake_w)

    def _wake(self):
        try:
            self._wake_w.send(b"x")
        except OSError:  # the pipe is full: the loop is awake anyway
            pass

    # -- the loop -----------------------------------------------------------

    def run(self) -> None:
        """Serve until :meth:`stop`; then close what is waiting and the wake-up pipe."""
        with self._lock:
            if self._stopping:
                return
            self._ran = True
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._set_accepting(True)
        try:
            while True:
                with self._lock:
                    if self._stopping:
                        break
                    returned, self._returned = self._returned, []
                    room = self._held < self.max_connections and not self._out_of_fds
                for conn in returned:
                    self._wait(conn, time.monotonic() + self.limits.idle_timeout)
                self._set_accepting(room or bool(self._waiting) and not self._out_of_fds)
                for key, _ in self._selector.select(self._next_deadline()):
                    if key.fileobj is self._wake_r:
                        self._drain_wake()
                    elif key.fileobj is self.listener:
                        self._accept()
                    else:
                        self._read(key.data)
                self._expire()
        finally:
            with self._lock:
                returned, self._returned = self._returned, []
            for conn in returned:
                self._forget(conn)
            for conn in list(self._waiting.values()):
                self._drop(conn)
            self._selector.close()
            _close(self._wake_r)
            _close(self._wake_w)

    def _set_accepting(self, on: bool):
        if on != self._accepting:
            if on:
                self._selector.register(self.listener, selectors.EVENT_READ, None)
            else:
                self._selector.unregister(self.listener)
            self._accepting = on

    def _next_deadline(self) -> Optional[float]:
        # _soonest is never later than the earliest deadline (it may be earlier: a deadline moved
        # on): waking at it costs one scan, and spares a scan of every connection per event.
        if not self._waiting:
            self._soonest = float("inf")
            return None
        return max(0.0, self._soonest - time.monotonic())

    def _drain_wake(self):
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass

    def _accept(self):
        while True:
            with self._lock:
                full = self._held >= self.max_connections
            if full and not self._waiting:
                return  # every place is busy answering: the rest wait in the accept queue
            try:
                sock, client = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue  # the client gave up before we accepted
                # Out of file descriptors (or worse): make room rather than spin on a listener
                # that stays readable; with nothing to evict, stop accepting until a connection ends.
                log.warning("server: cannot accept a connection (%s)", exc.strerror or exc)
                if not self._evict_oldest():
                    with self._lock:
                        self._out_of_fds = True
                    self._set_accepting(False)
                return
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a reply head, then its body
                # Blocking for the workers, with their time limit kept by the kernel; this loop reads
                # without waiting (MSG_DONTWAIT), and, when it answers itself, writes on it made
                # non-blocking, switched only when a worker takes the connection or gives it back.
                if prepare(sock, self.limits.io_timeout) and self._quick is not None:
                    sock.setblocking(False)
                    switches = True
                else:
                    switches = False
            except OSError:
                _close(sock)
                continue
            if full and not self._evict_oldest():  # (a connection may have left meanwhile)
                _close(sock)
                continue
            with self._lock:
                self._held += 1
            conn = Connection(sock, client, 0.0)
            conn.switches = switches
            self._wait(conn, time.monotonic() + self.limits.head_timeout)
            if full:  # one newcomer per round at the cap: it is read before later ones make it the oldest
                return

    def _evict_oldest(self) -> bool:
        if not self._waiting:
            return False
        oldest = min(self._waiting.values(), key=lambda c: c.waiting_since)
        log.debug("server: closing %s, idle while the server is full", oldest.client[0])
        self._drop(oldest)
        return True

    def _wait(self, conn: Connection, deadline: float):
        conn.reader = HeadReader(self.limits.max_head)
        self._set_deadline(conn, deadline)
        conn.waiting_since = time.monotonic()
        leftover, conn.leftover = conn.leftover, b""
        self._waiting[conn.sock] = conn
        self._selector.register(conn.sock, selectors.EVENT_READ, conn)
        if leftover:  # a pipelined request already received
            self._take(conn, leftover)

    def _read(self, conn: Connection):
        try:
            data = conn.sock.recv(65536, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(conn)
            return
        self._take(conn, data)

    def _take(self, conn: Connection, data: bytes):
        while True:
            first = not conn.reader.buf
            try:
                end = conn.reader.feed(data)
            except BadRequest as exc:
                self._unwatch(conn)
                try:
                    self._reject(conn, exc)
                except Exception:
                    log.exception("server: cannot answer %s", conn.client[0])
                    self._forget(conn)
                return
            if end is None:
                if first and conn.deadline - time.monotonic() > self.limits.head_timeout:
                    # An idle keep-alive connection started its next request: from
                    # now on, the whole head must come within head_timeout.
                    self._set_deadline(conn, time.monotonic() + self.limits.head_timeout)
                return
            buf = conn.reader.buf
            head, data = bytes(buf[:end]), bytes(buf[end:])
            answered = self._answer_here(conn, head) if conn.switches else None
            if answered is True:  # answered here: wait for the next request (maybe already in *data*)
                conn.reader = HeadReader(self.limits.max_head)
                conn.waiting_since = now = time.monotonic()
                self._set_deadline(conn, now + self.limits.idle_timeout)
                if data:
                    continue
                return
            self._unwatch(conn)
            if answered is False:
                self._forget(conn)
                return
            self._to_worker(conn)
            try:
                if answered is None:
                    self._dispatch(conn, head, data)
                else:
                    self._dispatch(conn, None, data, answered)
            except Exception:  # e.g. no thread can be started now: drop this one, keep serving
                log.exception("server: cannot answer %s", conn.client[0])
                self._forget(conn)
            return

    def _answer_here(self, conn: Connection, head: bytes):
        try:
            return self._quick(conn, head)
        except Exception:  # a bug there must not stop the loop; what it sent is unknown: the connection ends
            log.exception("server: cannot answer %s on the loop", conn.client[0])
            return False

    def _to_worker(self, conn: Connection):
        if conn.switches:
            try:
                conn.sock.setblocking(True)
            except OSError:
                pass

    def _expire(self):
        now = time.monotonic()
        if now < self._soonest:
            return
        for conn in [c for c in self._waiting.values() if c.deadline <= now]:
            log.debug("server: closing %s, no complete request in time", conn.client[0])
            self._drop(conn)
        self._soonest = min((c.deadline for c in self._waiting.values()), default=float("inf"))

    def _set_deadline(self, conn: Connection, deadline: float):
        conn.deadline = deadline
        if deadline < self._soonest:
            self._soonest = deadline

    def _unwatch(self, conn: Connection):
        self._waiting.pop(conn.sock, None)
        try:
            self._selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass

    def _drop(self, conn: Connection):
        self._unwatch(conn)
        self._forget(conn)

    def _forget(self, conn: Connection):
        _close(conn.sock)
        with self._lock:
            self._held -= 1
            self._out_of_fds = False


def _close(sock: socket.socket):
    try:
        sock.close()
    except OSError:
        pass
