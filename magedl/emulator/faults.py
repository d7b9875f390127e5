"""The emulator's fault switches, and the hooks that play them on the server.

Each :class:`Faults` field reproduces one misbehaviour of the downloads service; :class:`FaultHooks`
plays them at the server's :class:`magedl.server.Hooks`, and :class:`Pacing` throttles, cuts or
stalls a reply's body.
"""

from __future__ import annotations

import gzip
import io
import threading
import time
from dataclasses import dataclass, field
from typing import Optional, Set
from urllib.parse import quote

from magedl.emulator.recorder import Recorder
from magedl.server import Reply, Request
from magedl.service.advice import PLAYS_HEADER, PLAYS_SERVICE

__all__ = ["Faults", "Pacing", "FaultHooks", "AUTH_FAILURE_BODY", "LOGIN_PAGE", "FORBIDDEN_PAGE"]

# What a user once saved as Magento-CE-2.4.0.tar.gz (25 bytes).
AUTH_FAILURE_BODY = b"Invalid login or password"
HTML = "text/html; charset=utf-8"
LOGIN_PAGE = b"""<!DOCTYPE html>
<html><head><title>Customer Login</title></head>
<body><h1>Login or Create an Account</h1>
<form method="post" action="/customer/account/loginPost/">
<input name="login[username]"><input name="login[password]" type="password">
<button type="submit">Login</button></form></body></html>
"""
FORBIDDEN_PAGE = (b"<!DOCTYPE html><html><head><title>403 Forbidden</title></head>"
                  b"<body><h1>Forbidden</h1><p>You are not entitled to this download."
                  b"</p></body></html>\n")


@dataclass
class Faults:
    """Misbehaviours to switch on; all off by default.

    The emulator reads these on every request, so a test may change a field
    while the server runs.  "First N" counters belong to the emulator and
    restart whenever a new Faults is installed.

    Attributes
    ----------
    no_range : bool
        Ignore Range and If-Range, always answer 200 with the whole file,
        and do not advertise Accept-Ranges.
    no_validators : bool
        Send no ETag or Last-Modified on files.
    rate : int or None
        Bytes per second per connection for file bodies.
    drop_after, drop_count : int or None, int
        For the first ``drop_count`` file GETs, close the connection after
        ``drop_after`` body bytes although Content-Length promised more.
    stall_after, stall_count, stall_seconds : int or None, int, float
        For the first ``stall_count`` file GETs, send ``stall_after`` bytes
        and then nothing for ``stall_seconds`` with the socket left open.
    fail_status, fail_count, retry_after, fail_paths : int or None, int, str or None, str
        The first ``fail_count`` matching requests answer ``fail_status``
        (503, 429...), with ``Retry-After: retry_after`` when set.
        ``fail_paths`` is ``"all"``, ``"file"`` or ``"info"``.
    forbidden : set of str
        File names answered with 403 and a short HTML page.
    html_200 : set of str
        File names answered with 200 and an HTML login page.
    auth_failure : str
        How bad credentials are answered: ``"401"``, ``"text-200"`` (the
        25-byte ``Invalid login or password`` as 200 text/plain) or
        ``"html-200"`` (200 with a login page).
    redirect_files_to : str or None
        Base URL of another server; ``file/<name>`` answers 302 to
        ``<base>/file/<name>``.
    gzip_unless_identity : bool
        Gzip every body unless the client sent ``Accept-Encoding: identity``.
    missing_files : set of str
        Listed in the feed, but ``file/`` answers 404.
    """

    no_range: bool = False
    no_validators: bool = False
    rate: Optional[int] = None
    drop_after: Optional[int] = None
    drop_count: int = 0
    stall_after: Optional[int] = None
    stall_count: int = 0
    stall_seconds: float = 0.0
    fail_status: Optional[int] = None
    fail_count: int = 0
    retry_after: Optional[str] = None
    fail_paths: str = "all"
    forbidden: Set[str] = field(default_factory=set)
    html_200: Set[str] = field(default_factory=set)
    auth_failure: str = "401"
    redirect_files_to: Optional[str] = None
    gzip_unless_identity: bool = False
    missing_files: Set[str] = field(default_factory=set)

    def __post_init__(self):
        if self.auth_failure not in ("401", "text-200", "html-200"):
            raise ValueError(f"auth_failure must be 401, text-200 or html-200, not {self.auth_failure!r}")
        if self.fail_paths not in ("all", "file", "info"):
            raise ValueError(f"fail_paths must be all, file or info, not {self.fail_paths!r}")


@dataclass
class Pacing:
    """How a body goes out: throttled, cut short, or stalled.

    Attributes
    ----------
    rate : int or None
        Bytes per second.
    cut_after : int or None
        End the body after this many bytes (the server then closes the connection).
    pause_after : int or None
        Stop sending after this many bytes for ``pause_seconds``.
    pause_seconds : float
    """

    rate: Optional[int] = None
    cut_after: Optional[int] = None
    pause_after: Optional[int] = None
    pause_seconds: float = 0.0

    def __bool__(self):
        return any(v is not None for v in (self.rate, self.cut_after, self.pause_after))


class _Paced:
    """A reply stream handed out at a pace: the server writes what :meth:`read` returns."""

    def __init__(self, stream, pacing: Pacing, stopping: threading.Event):
        self._stream, self._pacing, self._stopping = stream, pacing, stopping
        self._given = 0
        self._paused = False
        self._clock = None  # (start time, bytes given then) of the current pace

    def seek(self, pos):
        return self._stream.seek(pos)

    def close(self):
        self._stream.close()

    def read(self, n=-1):
        p = self._pacing
        if p.cut_after is not None and self._given >= p.cut_after:
            return b""
        if p.pause_after is not None and self._given >= p.pause_after and not self._paused:
            self._paused = True
            if self._stopping.wait(p.pause_seconds):
                return b""
            # After a stall the pace restarts instead of bursting to catch up, as a recovering server would.
            self._clock = None
        if p.rate:
            # Small chunks keep a throttled stream smooth rather than bursty.
            n = min(n, max(1, p.rate // 20))
            if self._clock is None:
                self._clock = (time.monotonic(), self._given)
            delay = self._clock[0] + (self._given - self._clock[1]) / p.rate - time.monotonic()
            if delay > 0 and self._stopping.wait(delay):
                return b""
        for mark in (p.cut_after, p.pause_after):
            if mark is not None and mark > self._given:
                n = min(n, mark - self._given)
        data = self._stream.read(n)
        self._given += len(data)
        return data


class Counters:
    """How many requests each "first N" fault has already hit."""

    def __init__(self):
        self.lock = threading.Lock()
        self.failed = 0
        self.dropped = 0
        self.stalled = 0

    def take(self, name: str, limit: int) -> bool:
        """Count one hit if fewer than ``limit`` so far; True if counted."""
        with self.lock:
            used = getattr(self, name)
            if used >= limit:
                return False
            setattr(self, name, used + 1)
            return True


def _accepts_identity_only(header: Optional[str]) -> bool:
    # The client must ask for identity explicitly; "gzip, deflate" (the
    # requests default) or no header at all earns a gzip body.
    for token in (header or "").split(","):
        coding, _, params = token.strip().partition(";")
        if coding.strip().lower() == "identity":
            q = params.strip().replace(" ", "")
            return q not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


class FaultHooks(Recorder):
    """The emulator's faults, applied at the server's hook points, over a request log.

    Parameters
    ----------
    emulator : Emulator
        Read for ``faults``, ``counters`` and ``stopping`` on every request.
    """

    def __init__(self, emulator):
        super().__init__()
        self.emu = emulator

    def before(self, req: Request) -> Optional[Reply]:
        faults = self.emu.faults
        if faults.fail_status is not None and faults.fail_count > 0:
            area = "file" if req.file_name is not None else "info"
            if faults.fail_paths in ("all", area) and self.emu.counters.take("failed", faults.fail_count):
                headers = [("Retry-After", str(faults.retry_after))] if faults.retry_after is not None else []
                return Reply.text(faults.fail_status, f"Service unavailable ({faults.fail_status})\n",
                                  headers=headers)
        if req.file_name is not None:
            # Without ranges the request's Range is ignored; without validators no If-Range can match.
            if faults.no_range or self._gzips(req):
                del req.headers["Range"], req.headers["If-Range"]
            elif faults.no_validators and req.header("If-Range") is not None:
                del req.headers["Range"]
        return None

    def unauthorized(self, req: Request) -> Reply:
        mode = self.emu.faults.auth_failure
        if mode == "text-200":
            return Reply.text(200, AUTH_FAILURE_BODY, content_type="text/plain")
        if mode == "html-200":
            return Reply.text(200, LOGIN_PAGE, content_type=HTML)
        return super().unauthorized(req)

    def before_file(self, req: Request, name: str) -> Optional[Reply]:
        faults = self.emu.faults
        if name in faults.missing_files:
            return Reply.text(404, "Not Found\n")
        if name in faults.forbidden:
            return Reply.text(403, FORBIDDEN_PAGE, content_type=HTML)
        if name in faults.html_200:
            return Reply.text(200, LOGIN_PAGE, content_type=HTML)
        if faults.redirect_files_to:
            target = faults.redirect_files_to.rstrip("/") + "/file/" + quote(name)
            return Reply.text(302, f"Found: {target}\n", headers=[("Location", target)])
        return None

    def _gzips(self, req: Request) -> bool:
        return self.emu.faults.gzip_unless_identity and not _accepts_identity_only(req.header("Accept-Encoding"))

    def finish(self, req: Request, reply: Reply) -> Reply:
        faults = self.emu.faults
        pacing = Pacing()
        if req.file_name is not None and reply.stream is not None:  # a file from the store
            if faults.no_range or self._gzips(req):
                reply.del_header("Accept-Ranges")
            if faults.no_validators:
                reply.del_header("ETag")
                reply.del_header("Last-Modified")
            pacing = self._pacing(req)
        if self._gzips(req) and reply.status in (200, 206) and req.route is not None:
            reply.body = gzip.compress(reply.read_body(), mtime=0)
            reply.set_header("Content-Encoding", "gzip")
            reply.set_header("Vary", "Accept-Encoding")
            etag = reply.get_header("ETag")
            if etag and not etag.startswith("W/"):
                reply.set_header("ETag", "W/" + etag)  # another representation: no longer strong
        if pacing and reply.send_body:
            if reply.stream is None:
                reply.stream, reply.offset, reply.length = io.BytesIO(reply.body), 0, len(reply.body)
            reply.stream = _Paced(reply.stream, pacing, self.emu.stopping)
        # It plays the real service, so a client explains a refusal as the service's (MAGEID shape, token help).
        reply.set_header(PLAYS_HEADER, PLAYS_SERVICE)
        return super().finish(req, reply)

    def _pacing(self, req: Request) -> Pacing:
        faults = self.emu.faults
        pacing = Pacing(rate=faults.rate)
        if req.method == "GET":
            counters = self.emu.counters
            if faults.drop_after is not None and faults.drop_count > 0 \
                    and counters.take("dropped", faults.drop_count):
                pacing.cut_after = faults.drop_after
            if faults.stall_after is not None and faults.stall_count > 0 \
                    and counters.take("stalled", faults.stall_count):
                pacing.pause_after = faults.stall_after
                pacing.pause_seconds = faults.stall_seconds
        return pacing
