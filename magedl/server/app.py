"""An HTTP server that answers in the shape of Magento's downloads API (``magedl serve``).

It serves whatever a store holds (:mod:`magedl.server.stores`). Rule: every response carries a
Content-Length. :class:`Hooks` is the one extension point (the emulator's faults and request log);
``serve`` uses none.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import re
import socket
import threading
from typing import Callable, Dict, Optional
from urllib.parse import unquote

from magedl.server.connections import Connection, Limits, next_head
from magedl.server.fastpath import OpenFiles, QuickPath, open_files_budget
from magedl.server.http import BadRequest, Reply, Request, parse_head, reply_head
from magedl.server.loop import ConnectionLoop
from magedl.server.routes import composer_reply, file_reply, info_reply, not_found, page_rel, page_reply
from magedl.server.stores import DirStore, Store
from magedl.server.workers import Workers
from magedl.server.writer import CHUNK, drain, send_reply
from magedl.text import printable

log = logging.getLogger(__name__)

REALM = "Magento downloads"
# A Host header fit to go into a URL: a name or an IPv4 address, or an IPv6 literal, and a port.
_HOST = re.compile(r"(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}))*\.?"
                   r"|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")
__all__ = ["ApiServer", "Hooks", "Limits", "Request", "Reply", "CHUNK"]


class Hooks:
    """Where an extension may change or observe the server's answers.

    Every method has a neutral default; override what you need. Hooks run on
    the worker threads, concurrently. In order, for one request:

    ``received(req)``
        Every parsed request, first.
    ``before(req)``
        GET and HEAD, before authentication: return a :class:`Reply` to answer
        with it, or None to carry on. It may also edit ``req.headers``.
    ``unauthorized(req)``
        The reply for missing or wrong credentials.
    ``before_file(req, name)``
        A ``file/`` request, before the store: a reply, or None to carry on.
    ``finish(req, reply)``
        Every reply, last, before it is written: may return another, change
        headers, or replace ``reply.stream`` by a wrapper (the server reads
        ``reply.length`` bytes from it after ``seek(reply.offset)``; a stream
        that ends early cuts the connection, so the client sees a short body).
    ``done(req, reply, sent, aborted)``
        After writing: ``sent`` body bytes went out; ``aborted`` when the body
        was not completely written.
    """

    def received(self, req: Request) -> None:
        return None

    def before(self, req: Request) -> Optional[Reply]:
        return None

    def unauthorized(self, req: Request) -> Reply:
        return Reply.text(401, "Unauthorized\n", headers=[("WWW-Authenticate", f'Basic realm="{REALM}"')])

    def before_file(self, req: Request, name: str) -> Optional[Reply]:
        return None

    def finish(self, req: Request, reply: Reply) -> Reply:
        return reply

    def done(self, req: Request, reply: Reply, sent: int, aborted: bool) -> None:
        return None


class ApiServer:
    """Serve a store in the shape of the downloads API.

    Parameters
    ----------
    store : Store
    host : str
        Address to bind (loopback by default); an IPv6 literal binds IPv6.
    port : int
        0 picks a free port; read it back from :attr:`port`.
    prefix : str
        URL path the API lives under, e.g. ``"/products/downloads/"``.
    auth : dict or None
        ``{username: password}`` required as HTTP Basic auth, or None for an open server.
    hooks : Hooks or None
        An extension (the emulator's faults and request log).
    access_log : callable or None
        Called with one line per request (``magedl serve -v``), client text
        escaped; by default lines go to this module's logger at DEBUG level.
    limits : Limits or None
        Connection cap and timeouts (:class:`~magedl.server.connections.Limits`).
    public_url : str or None
        Where clients reach this server's root (``https://mirror.example/``),
        behind a proxy: Composer metadata is re-based on it, whatever ``Host``
        a request carries. Without it, each client's ``Host`` (and
        ``X-Forwarded-Proto``) decides, and those documents say ``Vary``.

    Examples
    --------
    >>> with ApiServer(MemoryStore(feed, files)) as srv:    # doctest: +SKIP
    ...     requests.get(srv.base_url + "info/json").json()
    """

    def __init__(self, store: Store, host: str = "127.0.0.1", port: int = 0, prefix: str = "/",
                 auth: Optional[Dict[str, str]] = None, hooks: Optional[Hooks] = None,
                 access_log: Optional[Callable[[str], None]] = None, limits: Optional[Limits] = None,
                 public_url: Optional[str] = None):
        self.store = store
        self.public_url = public_url.rstrip("/") + "/" if public_url else None
        self.host = host
        self.prefix = "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/"
        self.auth = dict(auth) if auth is not None else None
        self.hooks = hooks if hooks is not None else Hooks()
        self.limits = limits or Limits()
        self._access = access_log
        self._lock = threading.Lock()
        self._busy: set = set()  # sockets a worker is answering on
        self._stopped = False
        self._thread: Optional[threading.Thread] = None
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind((host, port))
            self._listener.listen(self.limits.backlog)
        except OSError:
            self._listener.close()
            raise
        self._port = self._listener.getsockname()[1]
        self._quick = None
        if type(self.hooks) is Hooks and isinstance(store, DirStore):  # hooks see every request: none skipped
            files = OpenFiles(store, open_files_budget())
            self._quick = QuickPath(files, self.prefix, self._authorized if self.auth is not None else None,
                                    self._log_line)
        self._loop = ConnectionLoop(self._listener, self.limits, self._dispatch, self._reject,
                                    quick=self._quick.answer if self._quick else None,
                                    reserve=self._quick.files.size if self._quick else 0)
        self._workers = Workers(f"magedl-server-{self._port}-worker", idle_seconds=self.limits.idle_timeout)

    # -- lifecycle -------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        """The API root, ending with ``/``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.prefix}"

    def start(self) -> "ApiServer":
        """Serve on a daemon thread; returns at once (already listening)."""
        if self._thread is None and not self._stopped:
            self._thread = threading.Thread(target=self._loop.run, name=f"magedl-server-{self.port}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop open connections (idempotent)."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            busy = list(self._busy)
        self._loop.stop()
        self._workers.stop()
        if self._thread is not None:
            self._thread.join(5)
        for sock in busy:  # wakes workers blocked on a slow client
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._listener.close()
        self._workers.wait_ended(5)  # the answers in flight finish (and are logged) before stop returns
        if self._quick is not None and (self._thread is None or not self._thread.is_alive()):
            self._quick.files.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- connections -----------------------------------------------------

    def _dispatch(self, conn: Connection, head: Optional[bytes], rest: bytes, pending=None) -> None:
        with self._lock:
            stopped = self._stopped
            if not stopped:
                self._busy.add(conn.sock)
        if stopped:
            if pending is not None:
                pending.cancel()
            self._loop.release(conn)
            return
        try:
            self._workers.submit(lambda: self._work(conn, head, rest, pending))
        except BaseException:
            with self._lock:
                self._busy.discard(conn.sock)
            if pending is not None:  # its descriptor would stay open: no worker runs it
                pending.cancel()
            raise

    def _reject(self, conn: Connection, error: BadRequest) -> None:
        # On the connection loop's thread: a small reply, sent without blocking, then close.
        reply = Reply.text(error.status, f"{error}\n")
        try:
            conn.sock.send(reply_head(reply, close=True) + reply.body, socket.MSG_DONTWAIT)
        except OSError:
            pass
        line = bytes(conn.reader.buf[:200]).lstrip(b"\r\n").split(b"\n", 1)[0].rstrip(b"\r")
        self._log_line(conn.client, line.decode("latin-1"), error.status, 0, False)
        self._loop.release(conn)

    def _work(self, conn: Connection, head: Optional[bytes], rest: bytes, pending=None) -> None:
        """Answer *head* (or run *pending*, the rest of a reply the loop began), then the requests that follow."""
        keep, leftover = False, b""
        try:
            keep, leftover = (pending(), rest) if pending is not None else self._exchange(conn, head, rest)
            # With a quick path, the next request goes back to the loop, which answers the common one
            # itself; without, the worker reads it when it comes at once (see Limits.linger).
            while keep and not self._stopped and self._quick is None:
                head, rest = next_head(conn, leftover, self.limits)
                if head is None:  # back to the loop with what came (or closed)
                    keep, leftover = rest is not None, rest
                    break
                keep, leftover = self._exchange(conn, head, rest)
        except Exception:  # a bug must not leave the connection's place taken
            log.exception("error answering %s", conn.client[0])
        finally:
            with self._lock:
                self._busy.discard(conn.sock)
                keep = keep and not self._stopped
            if keep:
                self._loop.resume(conn, leftover)
            else:
                self._loop.release(conn)

    def _exchange(self, conn: Connection, head_bytes: bytes, rest: bytes):
        """Answer one request; return (keep the connection, bytes already read past it)."""
        try:
            head = parse_head(head_bytes)
        except BadRequest as exc:
            reply = Reply.text(exc.status, f"{exc}\n")
            send_reply(conn.sock, reply, True)
            line = head_bytes.lstrip(b"\r\n").split(b"\n", 1)[0].rstrip(b"\r")[:200]
            self._log_line(conn.client, line.decode("latin-1"), exc.status, 0, False)
            return False, b""
        keep = head.keep_alive
        leftover = rest
        if head.body_length:
            # GET bodies mean nothing here, but left unread they would be parsed as the next request.
            leftover = drain(conn.sock, rest, head.body_length)
            keep = keep and leftover is not None
        req = self._request(head.method, head.target, head.headers, conn.client)
        reply = self._reply(req)
        close = not keep or reply.close
        sent, aborted = send_reply(conn.sock, reply, close)
        self.hooks.done(req, reply, sent, aborted)
        self._log_line(conn.client, f"{req.method} {req.path}", reply.status, sent, aborted)
        return not (close or aborted), leftover or b""

    def _log_line(self, client: tuple, what: str, status: int, sent: int, aborted: bool) -> None:
        if self._access is None and not log.isEnabledFor(logging.DEBUG):
            return
        # Everything here but numbers is client text: escaped before it reaches a log or terminal.
        line = (f'{printable(client[0]) if client else "-"} "{printable(what)}" {status} {sent}'
                f"{' aborted' if aborted else ''}")
        if self._access is not None:
            self._access(line)
        else:
            log.debug("%s", line)

    # -- answering -------------------------------------------------------

    def _request(self, method, target, headers, client) -> Request:
        decoded = unquote(target.split("?", 1)[0].split("#", 1)[0])
        route = None
        if decoded.startswith(self.prefix):
            route = decoded[len(self.prefix):]
        elif decoded + "/" == self.prefix:
            route = ""
        req = Request(method, target, route, headers, tuple(client))
        if route is not None and route.startswith("file/"):
            req.file_name = route[len("file/"):]
        return req

    def _reply(self, req: Request) -> Reply:
        self.hooks.received(req)
        if req.method not in ("GET", "HEAD"):
            reply = Reply.text(405, "Method Not Allowed\n", headers=[("Allow", "GET, HEAD")])
            reply.close = True
        else:
            try:
                reply = self._answer(req)
            except OSError as exc:  # out of file descriptors or memory, for now
                log.warning("serve: cannot answer %s now: %s", printable(req.path), exc.strerror or exc)
                reply = Reply.text(503, "Service Unavailable\n", headers=[("Retry-After", "1")])
                reply.close = True
            except Exception:  # a bug here must not kill the connection silently
                log.exception("error answering %s %s", req.method, printable(req.path))
                reply = Reply.text(500, "Internal Server Error\n")
                reply.close = True
        reply.send_body = req.method != "HEAD"
        reply = self.hooks.finish(req, reply)
        reply.send_body = req.method != "HEAD"
        return reply

    def _answer(self, req: Request) -> Reply:
        reply = self.hooks.before(req)
        if reply is not None:
            return reply
        if not self._authorized(req.header("Authorization")):
            return self.hooks.unauthorized(req)
        if req.route is None:
            return not_found()
        if req.file_name is not None:
            return self.hooks.before_file(req, req.file_name) or file_reply(self.store, req, req.file_name)
        if page_rel(req.route) is not None:
            return page_reply(self.store, req, page_rel(req.route))
        if req.route.startswith("composer/"):
            rel = req.route[len("composer/"):]
            if self.public_url is not None:
                return composer_reply(self.store, req, rel, self.public_url + "composer/", varies=False)
            return composer_reply(self.store, req, rel, self._reached_at(req))
        return info_reply(self.store, req, req.route)

    def _reached_at(self, req: Request) -> Optional[str]:
        """Where this client reaches the mirror's ``composer/`` folder, from its Host header; None if unsure."""
        host = req.header("Host")
        if not host or not _HOST.fullmatch(host):
            return None
        proto = (req.header("X-Forwarded-Proto") or "http").strip().lower()  # set by a TLS proxy in front
        return f"{'https' if proto == 'https' else 'http'}://{host}{self.prefix}composer/"

    # -- auth ------------------------------------------------------------

    def _authorized(self, header: Optional[str]) -> bool:
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
        # Compare against every account so timing says nothing about which user names exist.
        for name, secret in self.auth.items():
            same_user = hmac.compare_digest(user, name.encode("utf-8"))
            same_pass = hmac.compare_digest(password, secret.encode("utf-8"))
            ok |= same_user & same_pass
        return ok
