"""One file from URL to disk, resumed and verified: the orchestrator.

Rule: the result moves under its final name only once its md5 matches (a resumed file whose md5 is
wrong is fetched once more, whole). Nothing here prints: progress goes to a callback, warnings to the
logger. The side files and the life of a download: see docs/transfer.md, "The side files".
"""

import contextlib
import logging
import os
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from magedl.errors import ChecksumMismatch, NetworkError, NotAnArchive, UnverifiedFile
from magedl.fsutil import make_dirs
from magedl.locks import FileLock
from magedl.secrecy import redact
from magedl.service import sniff
from magedl.service.catalog import file_suffix
from magedl.transfer.first_answer import open_whole_file
from magedl.transfer.hashing import file_digests
from magedl.transfer.options import TransferOptions
from magedl.transfer.partial import PartialState, Sidecar
from magedl.transfer.pipeline import Buffers, block_size
from magedl.transfer.ratelimit import RateLimiter
from magedl.transfer.shared import Shared
from magedl.transfer.workers import DownloadContext, SegmentWorkers, StartOver

log = logging.getLogger(__name__)


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
    sha1: str = ""  # with TransferOptions(sha1=True), for a file fetched (not one found present)


def md5_file(path) -> str:
    """md5 of a file on disk, hex."""
    return file_digests(path)["md5"]


class Download:
    """Fetch one file to *dest*; see :func:`download` for the parameters."""

    def __init__(self, client, url, dest, *, file_name, md5="", options=None, progress=None, cancel=None,
                 limiter=None, shared=None):
        options = options or TransferOptions()
        if limiter is None and options.limit_rate:
            limiter = RateLimiter(options.limit_rate)
        self.dest = Path(dest)
        self.md5 = (md5 or "").lower()
        self.options = options
        self.progress = progress or (lambda p: None)
        self.sidecar = Sidecar(self.dest, file_name)
        self.context = DownloadContext(client, url, file_name, options, limiter, cancel or threading.Event(),
                                       self.sidecar, self._emit, threading.Lock(),
                                       shared.budget if shared is not None else None)
        self.range_ok = True  # false once the server showed it cannot be trusted with ranges
        self.restarted = False
        self.shared = shared
        self.fd = None  # the partial file, open from the last complete pass until the end
        self.waited = None  # seconds the first request waited for its answer (how far the server is)

    @property
    def file_name(self):
        return self.context.file_name

    def run(self) -> "Result":
        try:
            return self._run()
        except OSError as exc:  # mkdir, lock, open, rename: this machine, not the network
            raise self.sidecar.error(exc) from None
        finally:
            self._close()

    def _close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def _run(self):
        if self.options.require_checksum and not self.md5:
            raise UnverifiedFile(f"{self.file_name}: the feed has no md5 for it and --require-checksum was given")
        make_dirs(self.dest.parent)
        # Links planted at the side files are refused as each is opened: the lock by
        # FileLock (O_NOFOLLOW), the partial file and the sidecar by Sidecar.load.
        if self.options.folder_locked:
            lock = contextlib.nullcontext()
        else:
            lock = FileLock(self.sidecar.lock_path, f"another magedl process is already downloading {self.file_name}")
        lock.__enter__()
        try:
            existing = self._existing()
            if existing:
                self.sidecar.drop_orphan()
                return existing
            state = self.sidecar.load(self.md5, self.context.url) or self._fresh()
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
            result = self._finish(state, digests, lock)
            if result is None:
                lock = None  # the committer releases it once the file is in place
            return result
        finally:
            if lock is not None:
                lock.__exit__(None, None, None)

    def _fresh(self):
        return PartialState(self.md5, redact(self.context.url))

    def _restart(self):
        """Throw the partial data away; a fresh state for a transfer from byte 0."""
        self._close()
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
                if start_overs > self.context.client.retry.attempts:
                    if fresh is not None:
                        fresh.close()
                    raise NetworkError(f"{self.file_name}: {exc}; gave up after {start_overs} fresh starts") from None
                log.warning("%s: %s; starting over from byte 0", self.file_name, exc)
                if exc.no_range:
                    self.range_ok = False
                state = self._restart()

    def _pass(self, state, fresh=None):
        """One pass over the partial file: the first response when there is none yet, then the workers."""
        buffers = Buffers(block_size(self.options))
        if not state.segments:
            asked = time.monotonic()
            first = open_whole_file(self.context, state, self.range_ok, buffers, fresh)
            if self.waited is None:
                self.waited = time.monotonic() - asked
        else:
            first = None
        try:
            self.sidecar.check_space(state.size, state.done)  # before a byte is written
            fd = self.sidecar.open(fresh=first is not None)
        except BaseException:
            if first is not None:
                first[0].close()
            raise
        workers = SegmentWorkers(self.context, state, fd, self.range_ok, buffers)
        try:
            digests = workers.run(first)
        except BaseException:
            if not workers.busy:
                os.close(fd)  # else a straggler may still write: leave the fd to it
            raise
        self._close()
        self.fd = fd  # kept for the end: no second open to truncate and sync it
        return digests

    # -- the end ------------------------------------------------------------

    def _existing(self):
        """A finished file already at the destination, if it is the right one."""
        try:
            info = os.stat(self.dest)
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(info.st_mode):
            return None
        size = info.st_size
        if not self.md5:
            if not self.options.caller_verifies:
                log.warning("%s: already present; the feed has no md5, so it is not re-checked", self.file_name)
            self._emit(None, "skip", size)
            return Result(self.dest, size, "", skipped=True, verified=False)
        digests = file_digests(self.dest, self.context.algorithms)
        if digests["md5"] == self.md5:
            self._emit(None, "skip", size)
            return Result(self.dest, size, self.md5, skipped=True, sha256=digests.get("sha256", ""))
        log.warning("%s: the file present differs from the feed's md5; fetching it again", self.file_name)
        return None

    def _finish(self, state, digests, lock):
        """Move the file into place: the :class:`Result`, or ``None`` once handed to the committer."""
        size = state.size if state.size is not None else state.done
        fd, self.fd = self.fd, None
        result = Result(self.dest, size, digests["md5"], state.resumed_from, verified=bool(self.md5),
                        sha256=digests.get("sha256", ""), connections=max(1, len(state.segments)),
                        restarted=self.restarted, sha1=digests.get("sha1", ""))
        if not self.md5 and not self.options.caller_verifies:
            log.warning("%s: the feed gives no md5: the file is UNVERIFIED (md5 %s)", self.file_name, digests["md5"])
        if self.shared is None:
            self.sidecar.finish(size, fd)
            self._emit(state, "done", size)
            return result

        def on_committed(error):
            try:
                if error is not None:
                    outcome = self.sidecar.error(error, state)
                else:
                    self._emit(state, "done", size)
                    outcome = result
            finally:
                lock.__exit__(None, None, None)
            self.shared.report_outcome(outcome)

        self.sidecar.hand_over(size, fd, self.shared.committer, on_committed)
        return None

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


def download(client, url, dest, *, file_name: str, md5: str = "", options: Optional[TransferOptions] = None,
             progress: Optional[Callable[[Progress], None]] = None, cancel: Optional[threading.Event] = None,
             limiter: Optional[RateLimiter] = None, shared: Optional[Shared] = None) -> Optional[Result]:
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
    shared : magedl.transfer.shared.Shared, optional
        What the downloads of one run share (:func:`magedl.transfer.fetch.fetch_many`
        passes it): the finished file is moved into place in a batch with
        others, on the committer's thread, and extra connections come from
        the run's budget. By default the file is synced and moved into
        place here.

    Returns
    -------
    Result
        Or ``None`` once the file was handed to the committer, which then
        calls ``shared.report_outcome`` with the :class:`Result` (or the error)
        when the file is in place.

    Raises
    ------
    magedl.errors.MagedlError
        A typed error; the partial file is kept when a later run can resume.
    """
    return Download(client, url, dest, file_name=file_name, md5=md5, options=options, progress=progress,
                    cancel=cancel, limiter=limiter, shared=shared).run()
