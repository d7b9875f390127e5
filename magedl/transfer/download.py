"""One file from URL to disk: partial file, Range resume, segments, retries, hashing.

The life of a download::

    NAME.magedl-lock        held (flock) while a process works on NAME
    NAME.magedl-part        the bytes received so far
    NAME.magedl-part.json   what resuming needs: URL, md5, size, validators, segments
    NAME                    appears (atomic rename) only once complete and verified

The first request is a plain GET. When the server honours Range, gives a
validator (ETag or Last-Modified) and the file is large, the rest of the file
is fetched over more connections, each a :class:`~magedl.segments.Segment`
with its own retries; a worker that finishes early splits the largest
remaining segment. A later run resumes every segment with ``Range`` +
``If-Range``, and starts over when the server cannot resume or the file
changed upstream.

Nothing here prints: progress goes to a callback and warnings to the
``magedl`` logger.
"""

import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests
import urllib3

from magedl.errors import (
    ChecksumMismatch,
    Interrupted,
    LocalFileError,
    MagedlError,
    NetworkError,
    NotAnArchive,
    TransientError,
    UnverifiedFile,
)
from magedl.fsutil import fsync_dir, make_dirs
from magedl.locks import FileLock
from magedl.paths import LOCK_SUFFIX, PART_SUFFIX, STATE_SUFFIX, side_file
from magedl.service import sniff
from magedl.service.api import transient_from
from magedl.service.catalog import file_suffix
from magedl.transfer import segments as seglib
from magedl.transfer.hashing import InlineHasher, PrefixHasher, file_digests

log = logging.getLogger("magedl")

CHUNK = 256 << 10  # per read: small enough that 16 connections stay within the memory budget
PROGRESS_INTERVAL = 0.1  # seconds between "data" progress events
EXPAND_AFTER = 0.25  # seconds of one connection before deciding whether to add more
FAST_ENOUGH = 128 << 20  # bytes/s at which one connection is kept alone: more would only add CPU
SAVE_INTERVAL = 0.5  # seconds between sidecar updates while data flows
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.I)


@dataclass
class Progress:
    """What a progress callback receives.

    Attributes
    ----------
    file_name : str
    done : int
        Bytes of the file present (including resumed ones).
    total : int or None
        Full size, once known.
    resumed_from : int
        Bytes that were already on disk when this run started.
    event : str
        ``start``, ``data``, ``restart``, ``done`` or ``skip``.
    """

    file_name: str
    done: int
    total: "int | None"
    resumed_from: int = 0
    event: str = "data"


@dataclass
class Result:
    """Outcome of :func:`download`."""

    path: Path
    size: int
    md5: str
    resumed_from: int = 0
    skipped: bool = False
    verified: bool = True
    sha256: str = ""
    connections: int = 1


def md5_file(path):
    """md5 of a file on disk, hex."""
    return file_digests(path)["md5"]


class _StartOver(Exception):
    """The partial data cannot be continued: discard it and fetch from byte 0."""

    def __init__(self, reason, no_range=False, response=None):
        super().__init__(reason)
        self.no_range = no_range
        self.response = response  # a 200 with the whole file, to start over with


class _Attempt:
    """What one pass over the partial file shares between its threads.

    A start-over makes a new one; a worker of the old pass that wakes late
    only ever sees the old pass's (set) stop flag, fd and segments.
    """

    def __init__(self, fd, hasher, segments, inline):
        self.fd = fd
        self.hasher = hasher
        self.segments = segments
        self.inline = inline
        self.stop = threading.Event()
        self.saved = time.monotonic()


def _local_error(file_name, path, exc):
    """A disk-side OSError as a typed, non-retried error naming the file."""
    where = exc.filename2 or exc.filename or path  # for a rename, the target is what failed
    return LocalFileError(f"{file_name}: cannot write {where}: {exc.strerror or exc}")


class Download:
    """Fetch one file to *dest*; see :func:`download` for the parameters."""

    def __init__(self, client, url, dest, *, file_name, md5="", require_checksum=False, progress=None,
                 connections=1, adaptive=True, limiter=None, sha256=False, cancel=None):
        self.client = client
        self.url = url
        self.dest = Path(dest)
        self.file_name = file_name
        self.md5 = (md5 or "").lower()
        self.suffix = file_suffix(file_name)
        self.require_checksum = require_checksum
        self.progress = progress or (lambda p: None)
        self.connections = max(1, connections)
        self.adaptive = adaptive
        self.limiter = limiter
        self.algorithms = ("md5", "sha256") if sha256 else ("md5",)
        self.cancel = cancel or threading.Event()
        self.part = side_file(self.dest, PART_SUFFIX)
        self.state_path = side_file(self.dest, STATE_SUFFIX)
        self.lock = threading.Lock()
        self.range_ok = True
        self.received = 0  # bytes received in this run, the retry budget's measure of progress
        self._forget()

    def _forget(self):
        """No partial data: the next transfer starts at byte 0."""
        self.size = None
        self.validators = {}
        self.segments = []
        self.prefix_kept = False  # whether bytes from an earlier run are part of the file
        self.dirty = False
        self.max_workers = 1

    # -- driver -------------------------------------------------------------

    def run(self):
        try:
            return self._run()
        except OSError as exc:  # mkdir, lock, open, rename: this machine, not the network
            raise _local_error(self.file_name, self.dest, exc) from None

    def _run(self):
        if self.require_checksum and not self.md5:
            raise UnverifiedFile(f"{self.file_name}: the feed has no md5 for it and --require-checksum was given")
        make_dirs(self.dest.parent)
        lock = FileLock(side_file(self.dest, LOCK_SUFFIX), f"another magedl process is already downloading {self.file_name}")
        with lock:
            existing = self._existing()
            if existing:
                return existing
            self._load_partial()
            self.resumed_from = self._done()
            self._emit("start")
            digests = self._fetch()
            if self.md5 and digests["md5"] != self.md5 and self.prefix_kept:
                # The kept prefix may be stale (re-published file, no validators): start over once.
                log.warning("%s: md5 mismatch after resume; fetching the whole file again", self.file_name)
                self._discard()
                self._forget()
                self.resumed_from = 0
                self._emit("restart")
                digests = self._fetch()
            if self.md5 and digests["md5"] != self.md5:
                error = self._mismatch(digests["md5"])
                self._discard()
                raise error
            return self._finish(digests)

    def _fetch(self):
        """Bring the partial file to full length; return its digests."""
        start_overs, mark = 0, self.received
        fresh = None
        while True:
            try:
                return self._transfer(fresh)
            except _StartOver as exc:
                fresh = exc.response
                # Like the retry budget, only fresh starts in a row that brought nothing count.
                start_overs = 1 if self.received > mark else start_overs + 1
                mark = self.received
                if start_overs > self.client.retry.attempts:
                    if fresh is not None:
                        fresh.close()
                    raise NetworkError(f"{self.file_name}: {exc}; gave up after {start_overs} fresh starts") from None
                log.warning("%s: %s; starting over from byte 0", self.file_name, exc)
                self._discard()
                self._forget()
                if exc.no_range:
                    self.range_ok = False
                self._emit("restart")

    def _transfer(self, fresh=None):
        first = None
        if not self.segments:
            first = self._first_response(fresh)
        try:
            fd = os.open(self.part, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            if first is not None:
                first[0].close()
            raise
        # Small files run on the caller's thread: no expansion is possible for them,
        # and two thread hand-overs per file add up over hundreds of patches.
        inline = self.size is not None and self.size < 2 * seglib.MIN_SPLIT
        ctx = _Attempt(fd, (InlineHasher if inline else PrefixHasher)(fd, self.algorithms), self.segments, inline)
        workers, errors = [], []
        try:
            if first is not None and self.size:
                os.ftruncate(fd, self.size)  # reserve the space; the sidecar says what is real
            # A fresh transfer gets its sidecar at the first save interval: a file
            # killed before then has too little to be worth resuming.
            ctx.hasher.advance(seglib.contiguous_end(ctx.segments))
            if inline:
                self._worker(ctx, first, errors)
                if errors:
                    raise errors[0]
                if self.cancel.is_set():
                    raise Interrupted(f"{self.file_name}: cancelled")
            else:
                unfinished = sum(1 for s in ctx.segments if not s.finished)
                self._spawn(ctx, workers, errors, max(1, min(self.max_workers, unfinished)), first)
                self._supervise(ctx, workers, errors)
            if not all(s.finished for s in ctx.segments):  # pragma: no cover - a worker left early
                raise TransientError(f"{self.file_name}: transfer ended with bytes missing")
            size = self.size if self.size is not None else self._done()
            try:
                return ctx.hasher.finish(size)
            except OSError as exc:
                raise _local_error(self.file_name, self.part, exc) from None
        except BaseException as exc:
            # Workers still blocked somewhere hold this attempt's context, not the next
            # one's: when they wake they see its stop flag and leave without writing.
            ctx.stop.set()
            for t in workers:
                t.join(timeout=5)
            ctx.hasher.close()
            if ctx.segments and not isinstance(exc, _StartOver):  # keep what a later run can resume
                self._save_state(ctx, best_effort=True)
            raise
        finally:
            if not any(t.is_alive() for t in workers):
                os.close(fd)  # else a straggler may still write: leave the fd to it
            if first is not None:
                first[0].close()

    def _spawn(self, ctx, workers, errors, n, first=None):
        for _ in range(n):
            t = threading.Thread(target=self._worker, args=(ctx, first, errors), daemon=True,
                                 name=f"magedl-seg-{len(workers)}")
            first = None
            workers.append(t)
            t.start()

    def _expand(self, ctx, workers, errors):
        """Bring the transfer up to ``max_workers`` connections."""
        with self.lock:
            seglib.carve(ctx.segments)
        self._spawn(ctx, workers, errors, self.max_workers - len(workers))

    def _supervise(self, ctx, workers, errors):
        """Wait for the workers, saving the sidecar now and then; raise the first error.

        Once the transfer has run for :data:`EXPAND_AFTER` seconds, more
        connections join if one is slower than :data:`FAST_ENOUGH` and enough
        is left to split.
        """
        started, received = time.monotonic(), self.received
        expanded = len(workers) >= self.max_workers
        if not expanded and not self.adaptive:
            expanded = True
            self._expand(ctx, workers, errors)
        while True:
            for t in list(workers):
                t.join(timeout=min(EXPAND_AFTER, SAVE_INTERVAL) / len(workers))
            alive = any(t.is_alive() for t in workers)
            elapsed = time.monotonic() - started
            if not expanded and elapsed >= EXPAND_AFTER and not errors:
                expanded = True
                rate = (self.received - received) / elapsed
                with self.lock:
                    left = sum(s.remaining or 0 for s in ctx.segments if not s.finished)
                if rate < FAST_ENOUGH and left >= 2 * seglib.MIN_SPLIT:
                    self._expand(ctx, workers, errors)
                    alive = True
            if self.cancel.is_set():
                raise Interrupted(f"{self.file_name}: cancelled")
            if errors:  # checked after the liveness test, so a last worker's error is never lost
                raise errors[0]
            if self.dirty:
                self._save_state(ctx)
            if not alive:
                return

    # -- the first request --------------------------------------------------

    def _first_response(self, fresh=None):
        """GET the whole file (or take *fresh*, a 200 already open); sniff it; plan segments.

        Returns (response, head).
        """
        pending = [fresh]

        def attempt():
            response = pending.pop() if pending and pending[0] is not None else None
            if response is None:
                response = self.client.open(self.url, self.file_name, headers={"Accept-Encoding": "identity"})
            if response.status_code != 200:
                response.close()
                raise MagedlError(f"{self.file_name}: unexpected answer HTTP {response.status_code}")
            try:
                head = _first_bytes(_body(response))
            except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                response.close()
                raise transient_from(exc, self.file_name) from None
            return response, head

        response, head = self.client.retry.call(attempt, self.file_name, stop=self.cancel.is_set)
        if self.cancel.is_set():
            response.close()
            raise Interrupted(f"{self.file_name}: cancelled")
        headers = response.headers
        encoded = headers.get("Content-Encoding", "identity").lower() not in ("identity", "")
        length = headers.get("Content-Length", "")
        self.size = int(length) if length.isdigit() and not encoded else None
        reason = sniff.refuse_reason(self.suffix, head, headers.get("Content-Type", ""), self.size, bool(self.md5))
        if reason:
            response.close()
            raise NotAnArchive(f"{self.file_name}: {reason}; nothing was saved")
        self.validators = {"etag": headers.get("ETag"), "last_modified": headers.get("Last-Modified")}
        resumable = (
            self.range_ok and not encoded and self.size is not None
            and headers.get("Accept-Ranges", "").lower() == "bytes" and self._validator()
        )
        self.max_workers = self.connections if resumable else 1
        self.segments = seglib.plan(self.size)
        self.segments[0].busy = True  # the first worker continues this response
        return response, head

    # -- workers ------------------------------------------------------------

    def _worker(self, ctx, first, errors):
        try:
            seg = ctx.segments[0] if first is not None else self._claim(ctx)
            while seg is not None and not self._stopped(ctx):
                self._work(ctx, seg, first)
                first = None
                seg = self._claim(ctx)
        except BaseException as exc:  # handed to the supervising thread
            if isinstance(exc, KeyboardInterrupt):
                exc = Interrupted(f"{self.file_name}: interrupted")
            elif isinstance(exc, OSError):
                exc = _local_error(self.file_name, self.part, exc)
            errors.append(exc if isinstance(exc, (MagedlError, _StartOver)) else _bug(exc))
            ctx.stop.set()

    def _claim(self, ctx):
        with self.lock:
            if self._stopped(ctx):
                return None
            seg = seglib.next_segment(ctx.segments)
            if seg is not None:
                seg.busy = True
                self.dirty = True
            return seg

    def _stopped(self, ctx):
        return ctx.stop.is_set() or self.cancel.is_set()

    def _work(self, ctx, seg, first):
        """Fill one segment, retrying it on its own."""
        pending = [first]

        def attempt():
            if self._stopped(ctx):
                return
            if pending[0] is not None:
                response, head = pending.pop()
                pending.append(None)
            else:
                response, head = self._ranged(ctx, seg), b""
            with response:
                self._pump(ctx, seg, response, head)

        try:
            self.client.retry.call(attempt, self.file_name, progress=lambda: seg.done,
                                   stop=lambda: self._stopped(ctx))
        finally:
            with self.lock:
                seg.busy = False

    def _ranged(self, ctx, seg):
        """A response whose body continues *seg* exactly where it stands."""
        headers = {"Accept-Encoding": "identity"}
        last = "" if seg.end is None else str(seg.end - 1)
        if self.range_ok:
            headers["Range"] = f"bytes={seg.pos}-{last}"
            validator = self._validator()
            if validator:
                headers["If-Range"] = validator
        response = self.client.open(self.url, self.file_name, headers=headers, allow=(416,))
        status = response.status_code
        if status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            start = int(match.group(1)) if match else None
            total = int(match.group(3)) if match and match.group(3) != "*" else None
            changed = self._changed(response, total)
            encoded = response.headers.get("Content-Encoding", "identity").lower() not in ("identity", "")
            if changed or start != seg.pos or encoded:
                response.close()
                if changed:
                    raise _StartOver(changed)
                raise _StartOver(f"the server answered a different range ({start}, not {seg.pos})", no_range=True)
            with self.lock:
                if self.size is None and total is not None and not self._stopped(ctx):
                    self.size = total
                    seg.end = total
            return response
        if status == 200:
            # Range ignored, or If-Range did not match. The validators tell which.
            length = response.headers.get("Content-Length", "")
            changed = self._changed(response, int(length) if length.isdigit() else None)
            raise _StartOver(changed or "the server does not resume (it ignored Range)", no_range=not changed,
                             response=response)
        response.close()
        if status == 416:
            raise _StartOver("the server refused the resume range (the file may have shrunk)")
        raise MagedlError(f"{self.file_name}: unexpected answer HTTP {status}")

    def _pump(self, ctx, seg, response, head):
        """Copy the body into the partial file at the segment's position."""
        blocks = _prepend(head, _body(response))
        while True:
            try:
                block = next(blocks, None)
            except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                if self._stopped(ctx):
                    return
                raise transient_from(exc, self.file_name) from None
            if block is None:
                break
            if self._stopped(ctx):
                return
            with self.lock:
                end = seg.end
            if end is not None and seg.pos + len(block) > end:
                block = block[: max(0, end - seg.pos)]
            if self.limiter:
                self.limiter.take(len(block), ctx.stop)
                if self._stopped(ctx):
                    return
            at = seg.pos
            try:
                os.pwrite(ctx.fd, block, at)
            except OSError as exc:  # the disk, not the network: retrying would not help
                raise _local_error(self.file_name, self.part, exc) from None
            with self.lock:
                # A block read before the segment was cut short may overrun the new end;
                # those bytes belong to the next piece too (same data), so count to the end.
                seg.done = min(seg.done + len(block), (seg.end - seg.start) if seg.end is not None else 1 << 62)
                self.received += len(block)
                self.dirty = True
                prefix = seglib.contiguous_end(ctx.segments)
            ctx.hasher.advance(prefix, block, at)
            self._emit_data()
            if ctx.inline and time.monotonic() - ctx.saved >= SAVE_INTERVAL:
                ctx.saved = time.monotonic()  # no supervisor thread saves for us
                self._save_state(ctx)
            if seg.end is not None and seg.pos >= seg.end:
                return  # done, or another worker took the rest of this segment
        if seg.end is None:  # size was unknown: the end of the body is the end of the file
            with self.lock:
                seg.end = seg.pos
                self.size = seg.pos
            ctx.hasher.advance(seg.pos)
        elif seg.pos < seg.end:
            raise TransientError(f"{self.file_name}: short body, the connection closed at byte {seg.pos}")

    # -- partial state ------------------------------------------------------

    def _load_partial(self):
        state = seglib.load_state(self.state_path)
        if not state or not self.part.exists():
            self._discard()
            return
        if state.get("url") != self.url or state.get("md5", "") != self.md5:
            log.info("%s: partial file is for another URL or md5; starting over", self.file_name)
            self._discard()
            return
        segments = seglib.segments_from_json(state.get("segments"), state.get("size"))
        if segments is None or self.part.stat().st_size < seglib.contiguous_end(segments):
            self._discard()
            return
        self.size = state.get("size")
        self.validators = {"etag": state.get("etag"), "last_modified": state.get("last_modified")}
        self.segments = segments
        # Split only what was splittable the first time (Range and a validator).
        self.max_workers = self.connections if state.get("max_workers", 1) > 1 else 1
        self.prefix_kept = self._done() > 0
        if self.prefix_kept:
            log.debug("%s: resuming with %d bytes on disk", self.file_name, self._done())

    def _save_state(self, ctx=None, best_effort=False):
        """Rewrite the sidecar. With *ctx*, the data it counts is made durable first.

        The sidecar must never claim bytes that a power cut could lose, so the
        partial file is synced before its progress is recorded.
        """
        with self.lock:
            state = {
                "url": self.url,
                "md5": self.md5,
                "size": self.size,
                "etag": self.validators.get("etag"),
                "last_modified": self.validators.get("last_modified"),
                "max_workers": self.max_workers,
                "segments": seglib.segments_to_json(self.segments),
            }
            self.dirty = False
        try:
            if ctx is not None:
                os.fdatasync(ctx.fd)
            seglib.save_state(self.state_path, state)
        except OSError as exc:
            if not best_effort:
                raise _local_error(self.file_name, self.state_path, exc) from None
            log.warning("%s: could not record progress: %s", self.file_name, exc.strerror or exc)

    def _discard(self):
        for path in (self.part, self.state_path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def _done(self):
        return sum(s.done for s in self.segments)

    def _validator(self):
        etag = self.validators.get("etag")
        if etag and not etag.startswith("W/"):  # If-Range needs a strong validator
            return etag
        return self.validators.get("last_modified")

    def _changed(self, response, total):
        """Why the file upstream is not the one we have a part of, or ``None``."""
        old_etag, old_date = self.validators.get("etag"), self.validators.get("last_modified")
        etag, date = response.headers.get("ETag"), response.headers.get("Last-Modified")
        if self.size is not None and total is not None and self.size != total:
            return "the file changed upstream (size differs)"
        if old_etag and etag and old_etag != etag:
            return "the file changed upstream (ETag differs)"
        if not (old_etag and etag) and old_date and date and old_date != date:
            return "the file changed upstream (Last-Modified differs)"
        return None

    # -- the end ------------------------------------------------------------

    def _existing(self):
        """A finished file already at the destination, if it is the right one."""
        if not self.dest.is_file():
            return None
        size = self.dest.stat().st_size
        if not self.md5:
            log.warning("%s: already present; the feed has no md5, so it is not re-checked", self.file_name)
            self._emit("skip", done=size, total=size)
            return Result(self.dest, size, "", skipped=True, verified=False)
        digests = file_digests(self.dest, self.algorithms)
        if digests["md5"] == self.md5:
            self._emit("skip", done=size, total=size)
            return Result(self.dest, size, self.md5, skipped=True, sha256=digests.get("sha256", ""))
        log.warning("%s: the file present differs from the feed's md5; fetching it again", self.file_name)
        return None

    def _finish(self, digests):
        size = self.size if self.size is not None else self._done()
        with open(self.part, "rb+") as f:
            f.truncate(size)  # a reserved tail beyond a shorter body must not survive
            os.fsync(f.fileno())
        os.replace(self.part, self.dest)
        fsync_dir(self.dest.parent)
        try:
            os.unlink(self.state_path)
        except FileNotFoundError:
            pass
        if not self.md5:
            log.warning("%s: the feed gives no md5: the file is UNVERIFIED (md5 %s)", self.file_name, digests["md5"])
        self._emit("done", done=size, total=size)
        return Result(self.dest, size, digests["md5"], self.resumed_from, verified=bool(self.md5),
                      sha256=digests.get("sha256", ""), connections=max(1, len(self.segments)))

    def _mismatch(self, digest):
        # A short text body is almost always an error page; say so rather than "md5 mismatch".
        size = self.size if self.size is not None else self._done()
        if size < 4096:
            try:
                head = self.part.read_bytes()[:size]
            except OSError:
                head = b""
            if sniff.is_text(head) and self.suffix not in sniff.TEXT_SUFFIXES:
                return NotAnArchive(f"{self.file_name}: the server sent a short text page ({sniff.excerpt(head)!r})")
        return ChecksumMismatch(self.file_name, self.md5, digest)

    # -- progress -----------------------------------------------------------

    _last_emit = 0.0

    def _emit_data(self):
        now = time.monotonic()
        if now - self._last_emit >= PROGRESS_INTERVAL:
            self._last_emit = now
            self._emit("data")

    def _emit(self, event, done=None, total=None):
        self.progress(
            Progress(
                self.file_name,
                self._done() if done is None else done,
                self.size if total is None else total,
                getattr(self, "resumed_from", 0),
                event,
            )
        )


def _bug(exc):
    return MagedlError(f"internal error in a transfer thread: {type(exc).__name__}: {exc}")


def _body(response):
    """The body's bytes as they arrive.

    ``read1`` hands over whatever the socket has, so a cut connection loses
    nothing already received (``iter_content`` would drop a partly filled
    chunk, and the next attempt would fetch those bytes again).
    """
    read1 = getattr(response.raw, "read1", None)
    if read1 is None:  # urllib3 1.x, or a file:// response
        yield from response.iter_content(1 << 16)
        return
    while True:
        block = read1(CHUNK, decode_content=True)
        if not block:
            return
        yield block


def _first_bytes(blocks):
    head = b""
    for block in blocks:
        head += block
        if len(head) >= sniff.HEAD_SIZE:
            break
    return head


def _prepend(head, blocks):
    if head:
        yield head
    yield from blocks


def download(client, url, dest, *, file_name, md5="", require_checksum=False, progress=None, connections=1,
             adaptive=True, limiter=None, sha256=False, cancel=None):
    """Download *url* to *dest*, resuming and verifying.

    Parameters
    ----------
    client : magedl.api.Client
        Session, timeouts and retry policy.
    url : str
        Where the bytes are (usually ``client.file_url(file_name)``).
    dest : path
        Final path; it appears only once the file is complete and verified.
    file_name : str
        The catalogue name, for messages and the archive-type check.
    md5 : str
        Expected md5 from the feed; ``""`` when the feed has none.
    require_checksum : bool
        Refuse a file the feed gives no md5 for.
    progress : callable, optional
        Called with a :class:`Progress` as the transfer moves (from worker threads).
    connections : int
        Connections for one large file when the server allows it.
    adaptive : bool
        Start with one connection and add the others only if it proves slow
        (below :data:`FAST_ENOUGH` after :data:`EXPAND_AFTER` seconds);
        ``False`` opens them all at once.
    limiter : magedl.ratelimit.RateLimiter, optional
        Shared bandwidth budget.
    sha256 : bool
        Also compute the sha256 (``Result.sha256``).
    cancel : threading.Event, optional
        Set to stop; raises :class:`~magedl.errors.Interrupted`, partial kept.

    Returns
    -------
    Result

    Raises
    ------
    magedl.errors.MagedlError
        A typed error; the partial file is kept when a later run can resume.
    """
    return Download(
        client, url, dest, file_name=file_name, md5=md5, require_checksum=require_checksum, progress=progress,
        connections=connections, adaptive=adaptive, limiter=limiter, sha256=sha256, cancel=cancel,
    ).run()
