"""One pass of a download over its partial file: the connections filling its segments.

Rule: anything showing the partial data cannot be continued raises :class:`StartOver`, and the caller
begins a fresh pass. How connections join and split: see docs/transfer.md, "One pass over a file".
"""

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from magedl.errors import Interrupted, MagedlError, TransientError
from magedl.ranges import Validators, changed, parse_content_range, parse_length
from magedl.service.neterrors import transient_from
from magedl.transfer import segments as seglib
from magedl.transfer.body import READ_ERRORS, body, encoded, prepend
from magedl.transfer.options import TransferOptions
from magedl.transfer.partial import PartialState, Sidecar
from magedl.transfer.pipeline import Buffers, InlinePipeline, Pipeline
from magedl.transfer.ratelimit import RateLimiter
from magedl.transfer.shared import Budget

log = logging.getLogger(__name__)


class StartOver(Exception):
    """The partial data cannot be continued: discard it and fetch from byte 0.

    *response*, when given, is a 200 with the whole file to start over with;
    *no_range* says the source cannot be trusted with ranges at all.
    """

    def __init__(self, reason, no_range=False, response=None):
        super().__init__(reason)
        self.no_range = no_range
        self.response = response


@dataclass(frozen=True)
class DownloadContext:
    """What every pass of one download shares."""

    client: Any
    url: str
    file_name: str
    options: TransferOptions
    limiter: Optional[RateLimiter]
    cancel: threading.Event
    sidecar: Sidecar
    report: Callable[[PartialState, str], None]  # a progress event for the state
    lock: threading.Lock  # guards every state's segments and size
    budget: Optional[Budget] = None  # connections beyond the first, shared with the run's other downloads

    def blocks(self, response, buffers: Buffers):
        """The body of *response* as blocks in *buffers* (:func:`magedl.transfer.body.body`)."""
        return body(response, buffers)

    @property
    def algorithms(self):
        return ("md5",) + (("sha256",) if self.options.sha256 else ()) + (("sha1",) if self.options.sha1 else ())


class SegmentWorkers:
    """Connections filling *state*'s segments in the partial file open as *fd*.

    A start-over makes new workers over a new state; a worker of the old
    pass that wakes late only ever sees the old pass's (set) stop flag, state
    and fd. *buffers* is the pass's free list, shared with the first answer.
    """

    def __init__(self, context: DownloadContext, state: PartialState, fd: int, range_ok: bool, buffers: Buffers):
        tuning = context.options.tuning
        self.context = context
        self.state = state
        self.fd = fd
        self.range_ok = range_ok
        self.tuning = tuning
        self.buffers = buffers
        # Small files run on the caller's thread: no split is possible for them,
        # and two thread hand-overs per file add up over hundreds of patches.
        self.inline = state.size is not None and state.size < 2 * tuning.min_split
        kind = InlinePipeline if self.inline else Pipeline
        self.pipeline = kind(fd, context.algorithms, self._mark_written, buffers)
        self.max_workers = max(1, context.options.connections) if state.splittable else 1
        self.stop = threading.Event()
        self.workers = []
        self.errors = []
        self.written = 0  # bytes written by this pass, to judge whether one connection is fast enough
        self.granted = 0  # extra connections taken from the run's budget, returned when the pass ends
        self.dirty = False
        self.saved = time.monotonic()
        self.reported = 0.0

    @property
    def busy(self) -> bool:
        """Whether a worker or the writer thread may still touch the fd."""
        return any(t.is_alive() for t in self.workers) or self.pipeline.alive

    def run(self, first=None):
        """Bring the partial file to full length; return its digests (``{"md5": ...}``)."""
        state, context = self.state, self.context
        try:
            if first is not None and state.size and not self.inline:
                os.ftruncate(self.fd, state.size)  # reserve the space; the sidecar says what is real
            # A fresh transfer gets its sidecar at the first save interval: a file
            # killed before then has too little to be worth resuming.
            self.pipeline.written_up_to(seglib.contiguous_end(state.segments))
            if self.inline:
                self._worker(first)
                if self.errors:
                    raise self.errors[0]
                if context.cancel.is_set():
                    raise Interrupted(f"{context.file_name}: cancelled")
            else:
                unfinished = sum(1 for s in state.segments if not s.finished)
                self._spawn(max(1, min(self.max_workers, unfinished)), first)
                self._supervise()
            if not all(s.finished for s in state.segments):  # pragma: no cover - a worker left early
                raise TransientError(f"{context.file_name}: transfer ended with bytes missing")
            try:
                return self.pipeline.finish(state.size if state.size is not None else state.done)
            except OSError as exc:
                raise context.sidecar.error(exc, state) from None
        except BaseException as exc:
            # Workers still blocked somewhere hold this pass, not the next one:
            # when they wake they see its stop flag and leave without writing.
            self.stop.set()
            for t in self.workers:
                t.join(timeout=5)
            self.pipeline.close()  # what was not written is not counted either
            if state.segments and not isinstance(exc, StartOver):  # keep what a later run can resume
                self.save(best_effort=True)
            raise
        finally:
            if first is not None:
                first[0].close()
            self.pipeline.close()  # on success every worker drained it already
            if self.granted:
                self.context.budget.give(self.granted)
                self.granted = 0

    def save(self, best_effort=False):
        """Record progress in the sidecar, after syncing the bytes it counts."""
        with self.context.lock:
            doc = self.state.to_json()
            self.dirty = False
        try:
            self.context.sidecar.save(doc, self.fd)
        except OSError as exc:
            if not best_effort:
                raise self.context.sidecar.error(exc, self.state) from None
            log.warning("%s: could not record progress: %s", self.context.file_name, exc.strerror or exc)

    # -- the pool -------------------------------------------------------------

    def _spawn(self, n, first=None):
        if self.context.budget is not None:  # the pass's first connection is the download's own
            own = 0 if self.workers else 1
            granted = self.context.budget.take(n - own)
            self.granted += granted
            n = own + granted
        for _ in range(n):
            t = threading.Thread(target=self._worker, args=(first,), daemon=True,
                                 name=f"magedl-seg-{len(self.workers)}")
            first = None
            self.workers.append(t)
            t.start()

    def _expand(self):
        """Bring the pass up to ``max_workers`` connections."""
        with self.context.lock:
            seglib.split_for_new_connections(self.state.segments, self.tuning)
        self._spawn(self.max_workers - len(self.workers))

    def _supervise(self):
        """Wait for the workers, saving the sidecar now and then; raise the first error.

        Once the pass has run for ``tuning.expand_after`` seconds, more
        connections join if one is slower than ``tuning.fast_enough`` and
        enough is left to split.
        """
        tuning, state, context = self.tuning, self.state, self.context
        started = time.monotonic()
        expanded = len(self.workers) >= self.max_workers
        if not expanded and not context.options.adaptive:
            expanded = True
            self._expand()
        while True:
            for t in list(self.workers):
                t.join(timeout=min(tuning.expand_after, tuning.save_interval) / len(self.workers))
            alive = any(t.is_alive() for t in self.workers)
            elapsed = time.monotonic() - started
            if not expanded and elapsed >= tuning.expand_after and not self.errors:
                expanded = True
                rate = self.written / elapsed if elapsed > 0 else 0
                with context.lock:
                    left = sum(s.remaining or 0 for s in state.segments if not s.finished)
                if rate < tuning.fast_enough and left >= 2 * tuning.min_split:
                    self._expand()
                    alive = True
            if context.cancel.is_set():
                raise Interrupted(f"{context.file_name}: cancelled")
            if self.errors:  # checked after the liveness test, so a last worker's error is never lost
                raise self.errors[0]
            if not alive and all(s.finished for s in state.segments):
                return  # complete: the file is about to be synced and moved, no sidecar needed any more
            self.pipeline.writeback()  # before a save: its fdatasync then waits for less
            if self.dirty:
                self.save()
            if not alive:
                return

    def _worker(self, first):
        context = self.context
        try:
            seg = self.state.segments[0] if first is not None else self._take_next_segment()
            while seg is not None and not self._stopped():
                self._work(seg, first)
                first = None
                seg = self._take_next_segment()
        except BaseException as exc:  # handed to the supervising thread
            if isinstance(exc, KeyboardInterrupt):
                exc = Interrupted(f"{context.file_name}: interrupted")
            elif isinstance(exc, OSError):
                exc = context.sidecar.error(exc, self.state)
            elif not isinstance(exc, (MagedlError, StartOver)):
                exc = MagedlError(f"internal error in a transfer thread: {type(exc).__name__}: {exc}")
            self.errors.append(exc)
            self.stop.set()

    def _take_next_segment(self):
        with self.context.lock:
            if self._stopped():
                return None
            seg = seglib.next_segment(self.state.segments, self.tuning)
            if seg is not None:
                seg.busy = True
                self.dirty = True
            return seg

    def _stopped(self):
        return self.stop.is_set() or self.context.cancel.is_set()

    # -- one segment ----------------------------------------------------------

    def _work(self, seg, first):
        """Fill one segment, retrying it on its own."""
        context, pending = self.context, [first]

        def attempt():
            if self._stopped():
                return
            self._drain()  # a retry continues from what is written, not from what was queued
            with context.lock:
                seg.received = seg.done  # nothing is in flight now
            if seg.finished:
                return  # what was queued completed it (another worker may have cut it short meanwhile)
            if pending[0] is not None:
                response, head, blocks = pending.pop()
                pending.append(None)
            else:
                response, head, blocks = self._ranged(seg), b"", None
            with response:
                self._pump(seg, response, head, blocks)

        try:
            context.client.retry.call(attempt, context.file_name, progress=lambda: seg.done, stop=self._stopped)
        finally:
            with context.lock:
                seg.busy = False

    def _ranged(self, seg):
        """A response whose body continues *seg* exactly where it stands."""
        context, state = self.context, self.state
        headers = {"Accept-Encoding": "identity"}
        if self.range_ok:
            headers["Range"] = f"bytes={seg.pos}-{'' if seg.end is None else seg.end - 1}"
            validator = state.validators.if_range()
            if validator:
                headers["If-Range"] = validator
        response = context.client.open(context.url, context.file_name, headers=headers, allow=(416,))
        status = response.status_code
        if status == 206:
            span = parse_content_range(response.headers.get("Content-Range"))
            start, total = (span[0], span[2]) if span else (None, None)
            reason = changed(state.validators, response.headers, state.size, total, strict=state.strict)
            if reason or start != seg.pos or encoded(response.headers):
                response.close()
                if reason:
                    raise StartOver(reason)
                raise StartOver(f"the server answered a different range ({start}, not {seg.pos})", no_range=True)
            with context.lock:
                state.joined = True
                if not self._stopped():
                    if state.size is None and total is not None:
                        state.size = seg.end = total
                    if not state.validators:  # resuming from a new source: its validators from now on
                        state.validators = Validators.from_headers(response.headers)
            return response
        if status == 200:
            # Range ignored, or If-Range did not match. The validators tell which.
            reason = changed(state.validators, response.headers, state.size,
                             parse_length(response.headers.get("Content-Length")), strict=state.strict)
            raise StartOver(reason or "the server does not resume (it ignored Range)", no_range=not reason,
                            response=response)
        response.close()
        if status == 416:
            raise StartOver("the server refused the resume range (the file may have shrunk)")
        raise MagedlError(f"{context.file_name}: unexpected answer HTTP {status}")

    def _pump(self, seg, response, head, blocks=None):
        """Copy the body (*head*, then *blocks* or the rest of *response*) into the file at the segment's position.

        Blocks are put to the pipeline, which counts them in ``seg.done`` once
        written (:meth:`_mark_written`); *at* is where the next block goes.
        """
        context, state, lock = self.context, self.state, self.context.lock
        at = seg.pos
        blocks = prepend(head, context.blocks(response, self.buffers) if blocks is None else blocks)
        while True:
            try:
                block = next(blocks, None)
            except READ_ERRORS as exc:
                if self._stopped():
                    return
                raise transient_from(exc, context.file_name) from None
            if block is None or self._stopped():
                break
            with lock:
                # The segment ends where a split cut it; a split never cuts below what this worker
                # has received, and recording the block as received in this same step makes it ours.
                end = seg.end
                if end is not None and at + len(block) > end:
                    block = block[: max(0, end - at)]
                seg.received = at + len(block) - seg.start
            if not block:
                break  # another worker took the rest of this segment
            if context.limiter:
                context.limiter.take(len(block), self.stop)
                if self._stopped():
                    return
            try:
                self.pipeline.put(block, at, seg)
            except OSError as exc:  # the disk, not the network: retrying would not help
                raise context.sidecar.error(exc, state) from None
            at += len(block)
            del block  # the pipeline's now
            self._report()
            if self.inline and time.monotonic() - self.saved >= self.tuning.save_interval:
                self.saved = time.monotonic()  # no supervisor thread saves for us
                self.save()
            if seg.end is not None and at >= seg.end:
                break  # done, or another worker took the rest of this segment
        if self._stopped():
            return
        self._drain()
        if seg.end is None:  # size was unknown: the end of the body is the end of the file
            with lock:
                seg.end = state.size = seg.pos
            self.pipeline.written_up_to(seg.pos)
        elif seg.pos < seg.end:
            raise TransientError(f"{context.file_name}: short body, the connection closed at byte {seg.pos}")

    def _mark_written(self, nbytes, seg):
        """Count *nbytes* just written to *seg* (on the writer's thread); the end of the completely written prefix."""
        with self.context.lock:
            seg.done += nbytes
            self.written += nbytes
            self.dirty = True
            return seglib.contiguous_end(self.state.segments)

    def _drain(self):
        try:
            self.pipeline.drain()
        except OSError as exc:
            raise self.context.sidecar.error(exc, self.state) from None

    def _report(self):
        now = time.monotonic()
        if now - self.reported >= self.tuning.progress_interval:
            self.reported = now
            self.context.report(self.state, "data")
