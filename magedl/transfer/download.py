"""One file from URL to disk, resumed and verified: the orchestrator.

The life of a download::

    NAME.magedl-lock        held (flock) while a process works on NAME
    NAME.magedl-part        the bytes received so far        } magedl.transfer.partial
    NAME.magedl-part.json   what resuming needs (the sidecar) }
    NAME                    appears (atomic rename) only once complete and verified

A run takes the lock, skips a file already present and verified, continues
a partial file a sidecar vouches for (from any source: the md5 check at the
end, or the validators, prove it is the same file) or starts afresh, and
moves the result into place only once its md5 matches. A resumed file whose
md5 is wrong is fetched once more, whole. The passes over the partial file
(the first response, the worker pool, ranges) are
:mod:`magedl.transfer.segmented`.

Nothing here prints: progress goes to a callback and warnings to the logger.
"""

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from magedl.config import redact
from magedl.errors import (
    ChecksumMismatch,
    Interrupted,
    MagedlError,
    NetworkError,
    NotAnArchive,
    TransientError,
    UnverifiedFile,
)
from magedl.fsutil import make_dirs
from magedl.locks import FileLock
from magedl.ranges import Validators, parse_length
from magedl.service import sniff
from magedl.service.api import transient_from
from magedl.service.catalog import file_suffix
from magedl.transfer import segments as seglib
from magedl.transfer.hashing import file_digests
from magedl.transfer.options import TransferOptions
from magedl.transfer.partial import PartialState, Sidecar
from magedl.transfer.ratelimit import RateLimiter
from magedl.transfer.segmented import READ_ERRORS, Job, Runner, StartOver, body, encoded, first_bytes

log = logging.getLogger(__name__)
_EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"


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
        Bytes continued from an earlier run; 0 from a ``restart`` event on
        (the partial data was thrown away).
    event : str
        ``start``, ``data``, ``restart``, ``done`` or ``skip``.
    """

    file_name: str
    done: int
    total: Optional[int]
    resumed_from: int = 0
    event: str = "data"


@dataclass
class Result:
    """Outcome of :func:`download`.

    ``resumed_from`` counts the bytes continued from an earlier run; it is 0
    when the file was fetched from byte 0, including after a restart
    (``restarted``: the partial data was thrown away during this run).
    """

    path: Path
    size: int
    md5: str
    resumed_from: int = 0
    skipped: bool = False
    verified: bool = True
    sha256: str = ""
    connections: int = 1
    restarted: bool = False


def md5_file(path) -> str:
    """md5 of a file on disk, hex."""
    return file_digests(path)["md5"]


class Download:
    """Fetch one file to *dest*; see :func:`download` for the parameters."""

    def __init__(self, client, url, dest, *, file_name, md5="", options=None, progress=None, cancel=None,
                 limiter=None):
        options = options or TransferOptions()
        if limiter is None and options.limit_rate:
            limiter = RateLimiter(options.limit_rate)
        self.dest = Path(dest)
        self.md5 = (md5 or "").lower()
        self.options = options
        self.progress = progress or (lambda p: None)
        self.sidecar = Sidecar(self.dest, file_name)
        self.job = Job(client, url, file_name, options, limiter, cancel or threading.Event(), self.sidecar,
                       self._emit, threading.Lock())
        self.range_ok = True  # false once the server showed it cannot be trusted with ranges
        self.restarted = False

    @property
    def file_name(self):
        return self.job.file_name

    def run(self) -> "Result":
        try:
            return self._run()
        except OSError as exc:  # mkdir, lock, open, rename: this machine, not the network
            raise self.sidecar.error(exc) from None

    def _run(self):
        if self.options.require_checksum and not self.md5:
            raise UnverifiedFile(f"{self.file_name}: the feed has no md5 for it and --require-checksum was given")
        make_dirs(self.dest.parent)
        self.sidecar.refuse_links()
        with FileLock(self.sidecar.lock_path, f"another magedl process is already downloading {self.file_name}"):
            existing = self._existing()
            if existing:
                return existing
            state = self.sidecar.load(self.md5, self.job.url) or self._fresh()
            if state.resumed_from:
                log.debug("%s: resuming with %d bytes on disk", self.file_name, state.resumed_from)
            self._emit(state, "start")
            state, digests = self._fetch(state)
            if self.md5 and digests["md5"] != self.md5 and state.joined:
                # Bytes from several answers may not belong together (a file re-published between
                # them, another source, no validators to tell): one fetch of the whole file decides.
                log.warning("%s: md5 mismatch after a resume; fetching the whole file again", self.file_name)
                state, digests = self._fetch(self._restart())
            if self.md5 and digests["md5"] != self.md5:
                error = self._mismatch(state, digests["md5"])
                self.sidecar.discard()
                raise error
            return self._finish(state, digests)

    def _fresh(self):
        return PartialState(self.md5, redact(self.job.url))

    def _restart(self):
        """Throw the partial data away; a fresh state for a transfer from byte 0."""
        self.sidecar.discard()
        self.restarted = True
        state = self._fresh()
        self._emit(state, "restart")
        return state

    def _fetch(self, state):
        """Bring a partial file to full length; return the state it ended with, and its digests."""
        start_overs, best, fresh = 0, -1, None
        while True:
            try:
                return state, self._pass(state, fresh)
            except StartOver as exc:
                fresh = exc.response
                # Like the retry budget, only fresh starts in a row that got no further count: a
                # server that always breaks at the same point (a lying length, a range it cannot
                # serve) ends the run, while one that cuts at random points lets it finish.
                start_overs = 1 if state.done > best else start_overs + 1
                best = max(best, state.done)
                if start_overs > self.job.client.retry.attempts:
                    if fresh is not None:
                        fresh.close()
                    raise NetworkError(f"{self.file_name}: {exc}; gave up after {start_overs} fresh starts") from None
                log.warning("%s: %s; starting over from byte 0", self.file_name, exc)
                if exc.no_range:
                    self.range_ok = False
                state = self._restart()

    def _pass(self, state, fresh=None):
        """One pass over the partial file: the first response when there is none yet, then the workers."""
        first = open_first(self.job, state, self.range_ok, fresh) if not state.segments else None
        try:
            self.sidecar.check_space(state.size, state.done)  # before a byte is written
            fd = self.sidecar.open(fresh=first is not None)
        except BaseException:
            if first is not None:
                first[0].close()
            raise
        runner = Runner(self.job, state, fd, self.range_ok)
        try:
            return runner.run(first)
        finally:
            if not runner.busy:
                os.close(fd)  # else a straggler may still write: leave the fd to it

    # -- the end ------------------------------------------------------------

    def _existing(self):
        """A finished file already at the destination, if it is the right one."""
        if not self.dest.is_file():
            return None
        size = self.dest.stat().st_size
        if not self.md5:
            log.warning("%s: already present; the feed has no md5, so it is not re-checked", self.file_name)
            self._emit(None, "skip", size)
            return Result(self.dest, size, "", skipped=True, verified=False)
        digests = file_digests(self.dest, self.job.algorithms)
        if digests["md5"] == self.md5:
            self._emit(None, "skip", size)
            return Result(self.dest, size, self.md5, skipped=True, sha256=digests.get("sha256", ""))
        log.warning("%s: the file present differs from the feed's md5; fetching it again", self.file_name)
        return None

    def _finish(self, state, digests):
        size = state.size if state.size is not None else state.done
        self.sidecar.finish(size)
        if not self.md5:
            log.warning("%s: the feed gives no md5: the file is UNVERIFIED (md5 %s)", self.file_name, digests["md5"])
        self._emit(state, "done", size)
        return Result(self.dest, size, digests["md5"], state.resumed_from, verified=bool(self.md5),
                      sha256=digests.get("sha256", ""), connections=max(1, len(state.segments)),
                      restarted=self.restarted)

    def _mismatch(self, state, digest):
        # A short text body is almost always an error page; say so rather than "md5 mismatch".
        size = state.size if state.size is not None else state.done
        if size < 4096:
            head = self.sidecar.head(size)
            if sniff.is_text(head) and file_suffix(self.file_name) not in sniff.TEXT_SUFFIXES:
                return NotAnArchive(f"{self.file_name}: the server sent a short text page ({sniff.excerpt(head)!r})")
        return ChecksumMismatch(self.file_name, self.md5, digest)

    def _emit(self, state, event, size=None):
        if state is None:
            done, total, resumed = size, size, 0
        else:
            done = state.done if size is None else size
            total = state.size if size is None else size
            resumed = state.resumed_from
        self.progress(Progress(self.file_name, done, total, resumed, event))


def open_first(job: Job, state: PartialState, range_ok: bool, fresh=None):
    """GET the whole file (or take *fresh*, a 200 already open); sniff it; plan *state*.

    Returns ``(response, head)``: the open response and its first bytes,
    which the first worker writes before reading on.
    """
    pending = [fresh]

    def attempt():
        response = pending.pop() if pending and pending[0] is not None else None
        if response is None:
            response = job.client.open(job.url, job.file_name, headers={"Accept-Encoding": "identity"})
        if response.status_code != 200:
            response.close()
            raise MagedlError(f"{job.file_name}: unexpected answer HTTP {response.status_code}")
        try:
            head = first_bytes(body(response, job.options.tuning.chunk))
        except READ_ERRORS as exc:
            response.close()
            raise transient_from(exc, job.file_name) from None
        if not head and state.md5 and state.md5 != _EMPTY_MD5:
            # Nothing at all where a file is expected: a connection cut inside the headers
            # (http.client takes what came as complete) or a broken proxy. Worth a retry.
            response.close()
            raise TransientError(f"{job.file_name}: the server sent an empty answer")
        return response, head

    response, head = job.client.retry.call(attempt, job.file_name, stop=job.cancel.is_set)
    if job.cancel.is_set():
        response.close()
        raise Interrupted(f"{job.file_name}: cancelled")
    headers = response.headers
    coded = encoded(headers)
    state.size = None if coded else parse_length(headers.get("Content-Length"))
    reason = sniff.refuse_reason(file_suffix(job.file_name), head, headers.get("Content-Type", ""), state.size,
                                 bool(state.md5))
    if reason:
        response.close()
        raise NotAnArchive(f"{job.file_name}: {reason}; nothing was saved")
    state.validators = Validators.from_headers(headers)
    state.splittable = bool(range_ok and not coded and state.size is not None
                            and headers.get("Accept-Ranges", "").lower() == "bytes" and state.validators.if_range())
    state.segments = seglib.plan(state.size)
    state.segments[0].busy = True  # the first worker continues this response
    return response, head


def download(client, url, dest, *, file_name: str, md5: str = "", options: Optional[TransferOptions] = None,
             progress: Optional[Callable[[Progress], None]] = None, cancel: Optional[threading.Event] = None,
             limiter: Optional[RateLimiter] = None) -> Result:
    """Download *url* to *dest*, resuming and verifying.

    Parameters
    ----------
    client : magedl.service.api.Client
        Session, timeouts and retry policy.
    url : str
        Where the bytes are (usually ``client.file_url(file_name)``).
    dest : path
        Final path; it appears only once the file is complete and verified.
    file_name : str
        The catalogue name, for messages and the archive-type check.
    md5 : str
        Expected md5 from the feed; ``""`` when the feed has none.
    options : TransferOptions, optional
        Connections, rate, checksum policy, tuning; the defaults when omitted.
    progress : callable, optional
        Called with a :class:`Progress` as the transfer moves (from worker threads).
    cancel : threading.Event, optional
        Set to stop; raises :class:`~magedl.errors.Interrupted`, partial kept.
    limiter : magedl.transfer.ratelimit.RateLimiter, optional
        A bandwidth budget shared with other transfers; by default one is
        built from ``options.limit_rate``.

    Returns
    -------
    Result

    Raises
    ------
    magedl.errors.MagedlError
        A typed error; the partial file is kept when a later run can resume.
    """
    return Download(client, url, dest, file_name=file_name, md5=md5, options=options, progress=progress,
                    cancel=cancel, limiter=limiter).run()
