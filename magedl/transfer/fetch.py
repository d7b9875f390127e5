"""The library's front door: open a client, list, select, download.

Scripted builds import these instead of shelling out::

    import magedl
    from magedl.transfer import TransferOptions

    with magedl.open_client() as client:           # env / config / netrc credentials
        releases = client.catalog()
        [release] = magedl.select(releases, types=["ce-full"], versions=["2.4.7"], formats=["tar.gz"])
        result = magedl.fetch_release(client, release, "downloads/", TransferOptions(connections=4))
        print(result.path, result.md5)

Every failure is a :class:`magedl.errors.MagedlError` subclass whose ``exit_code`` says what kind it is.
"""

import collections
import queue
import threading
from typing import Callable, Iterator, Optional

from magedl import config
from magedl.errors import Interrupted, MagedlError
from magedl.paths import Destinations, destination
from magedl.service.api import Client
from magedl.service.retry import RetryPolicy
from magedl.transfer.commit import Committer
from magedl.transfer.one_file import Download, Progress, Result, download
from magedl.transfer.options import CONNECT_TIMEOUT, DEFAULT_TIMEOUT, MAX_CONNECTIONS, TransferOptions
from magedl.transfer.ratelimit import RateLimiter
from magedl.transfer.shared import Budget, Shared


def open_client(base_url=None, *, mageid=None, token=None, token_file=None, ca_bundle=None,
                insecure=False, retry=None, timeout=(CONNECT_TIMEOUT, DEFAULT_TIMEOUT)) -> Client:
    """A :class:`~magedl.service.api.Client` with settings resolved as the CLI does.

    Parameters left ``None`` come from the environment, the config file or
    ``~/.netrc``, in that order.
    """
    settings = config.resolve(
        base_url=base_url, mageid=mageid, token=token, token_file=token_file,
        ca_bundle=ca_bundle, insecure=insecure,
    )
    return Client(settings, retry=retry or RetryPolicy(), timeout=timeout)


def fetch_release(client, release, folder, options: Optional[TransferOptions] = None, *,
                  progress: Optional[Callable[[Progress], None]] = None, cancel: Optional[threading.Event] = None,
                  limiter: Optional[RateLimiter] = None) -> Result:
    """Download one catalogue record into *folder*, verified against its md5.

    Parameters
    ----------
    client : magedl.service.api.Client
    release : magedl.service.catalog.Release
    folder : path
        Target folder; the file lands at ``folder/<file_name>``.
    options : TransferOptions, optional
        Connections, rate, checksum policy (``require_checksum``, ``sha256``); the defaults when omitted.
    progress : callable, optional
        Receives :class:`magedl.transfer.Progress` updates.
    cancel : threading.Event, optional
        Set it to stop the transfer; the partial file is kept for a resume.
    limiter : magedl.transfer.ratelimit.RateLimiter, optional
        A budget shared with other transfers; by default built from ``options.limit_rate``.

    Returns
    -------
    magedl.transfer.Result
    """
    dest = destination(folder, release.file_name)  # refuses an unsafe name before any request
    return download(client, client.file_url(release.file_name), dest, file_name=release.file_name, md5=release.md5,
                    options=options, progress=progress, cancel=cancel, limiter=limiter)


def _placer(folder):
    """:func:`magedl.paths.destination` for many names in *folder* (:class:`~magedl.paths.Destinations`)."""
    return Destinations(folder)


def fetch_many(client, releases, folder, options: Optional[TransferOptions] = None, *,
               progress: Optional[Callable[[Progress], None]] = None, cancel: Optional[threading.Event] = None,
               limiter: Optional[RateLimiter] = None) -> Iterator[tuple]:
    """Fetch several releases, up to ``options.jobs`` at a time; yield ``(release, outcome)`` as each ends.

    *outcome* is a :class:`~magedl.transfer.Result`, or the
    :class:`~magedl.errors.MagedlError` that file failed with: one failure
    does not stop the others. Every connection of every job shares one
    bandwidth budget (*limiter*, or one built from ``options.limit_rate``).

    A few files run at once while each takes little time to start; when
    the server is far (the client measured a long round trip, or files wait
    long for their first byte), up to ``options.jobs`` run at once, since
    then waiting, not work, is what each file costs. All of them together
    open at most ``max(MAX_CONNECTIONS, jobs, connections)`` connections:
    a large file splits only into connections the others leave free.
    Finished files are moved into place in batches (:mod:`magedl.transfer.commit`);
    each is yielded once it is in place.

    Ctrl-C (KeyboardInterrupt) in the caller's thread stops every transfer,
    keeping their partial files, and is re-raised.
    """
    options = options or TransferOptions()
    if limiter is None and options.limit_rate:
        limiter = RateLimiter(options.limit_rate)
    cancel = cancel or threading.Event()
    releases = list(releases)
    todo = queue.Queue()
    for release in releases:
        todo.put(release)
    done = collections.deque()  # (release, outcome), appended by the workers and the committer
    last = _Last(len(releases))  # wakes this thread at once for the run's last file (others are polled)

    def post(item):
        done.append(item)
        last.count()
    place = _placer(folder)
    committer = Committer()  # files finished together share their disk flushes
    budget = Budget(max(MAX_CONNECTIONS, options.jobs, options.connections))
    pace = _Pace(min(options.jobs, len(releases)), getattr(client, "rtt", None))
    claims = _Claims()

    def worker():
        while not cancel.is_set():
            try:
                release = todo.get_nowait()
            except queue.Empty:
                return
            job = dest = None
            try:
                dest = place(release.file_name)  # refuses an unsafe name before any request
                claims.claim(dest)  # the same file listed twice: the second waits for the first, then skips

                def report_outcome(outcome, release=release, dest=dest):
                    claims.release(dest)
                    post((release, outcome))

                job = Download(client, client.file_url(release.file_name), dest, file_name=release.file_name,
                               md5=release.md5, options=options, progress=progress, cancel=cancel,
                               limiter=limiter, shared=Shared(committer, report_outcome, budget))
                budget.hold()
                try:
                    outcome = job.run()
                finally:
                    budget.give()
            except MagedlError as exc:
                outcome = exc
            except BaseException as exc:  # a bug: hand it to the caller's thread
                outcome = exc
            if job is not None and pace.observe(job.waited):
                spawn()
            if outcome is not None:  # None: the committer reports it once the file is in place
                if dest is not None:
                    claims.release(dest)
                post((release, outcome))

    threads = []
    spawning = threading.Lock()

    def spawn():
        with spawning:
            while len(threads) < pace.jobs:
                # Daemon threads: a worker stuck in a read must not keep a Ctrl-C'd process alive.
                t = threading.Thread(target=worker, daemon=True, name=f"magedl-job-{len(threads)}")
                threads.append(t)
                t.start()

    spawn()
    try:
        for _ in range(len(releases)):
            # Polled, not woken per file: a wake-up per small file costs this thread and a worker
            # a hand-over of the interpreter lock each, more than the file's own disk work.
            while not done:
                if cancel.is_set() and not any(t.is_alive() for t in threads) and not done:
                    raise Interrupted("cancelled")
                last.wait(POLL)
            release, outcome = done.popleft()
            if not isinstance(outcome, (Result, MagedlError)):
                raise outcome
            yield release, outcome
    except BaseException:
        cancel.set()
        for t in list(threads):
            t.join(timeout=5)
        raise
    finally:
        committer.close()  # what was handed over is moved into place (it is complete and verified)


POLL = 0.01  # seconds between looks at what finished

# A file that waits this long for its first byte is far away (or the server is slow to answer): more
# files at once then cost little work each, while on a near, fast link they only fight over the CPU.
FAR = 0.010
NEAR_JOBS = 4


class _Pace:
    """How many files run at once: a few while files start quickly, all *cap* once they wait for the server.

    *rtt* is the round trip the client measured (``Client.rtt``), if any:
    a far server gets every job from the start. Otherwise the jobs grow to
    *cap* once the quickest of the last few files waited :data:`FAR` or more
    for its first byte (the quickest, so that a moment of contention here
    does not count as distance).
    """

    def __init__(self, cap: int, rtt: Optional[float] = None):
        self.cap = max(1, cap)
        self.jobs = self.cap if (rtt or 0) >= FAR else min(NEAR_JOBS, self.cap)
        self._recent = []
        self._lock = threading.Lock()

    def observe(self, waited: Optional[float]) -> bool:
        """Record how long a file waited for its first byte; True when more jobs should start now."""
        if waited is None or self.jobs >= self.cap:
            return False
        with self._lock:
            self._recent = (self._recent + [waited])[-3:]
            if len(self._recent) == 3 and min(self._recent) >= FAR:
                self.jobs = self.cap
                return True
        return False


class _Last:
    """Set once *total* outcomes were posted: the run's end is seen at once, not at the next poll."""

    def __init__(self, total: int):
        self._left = total
        self._lock = threading.Lock()
        self._event = threading.Event()

    def count(self) -> None:
        with self._lock:
            self._left -= 1
            if self._left <= 0:
                self._event.set()

    def wait(self, timeout: float) -> None:
        self._event.wait(timeout)


class _Claims:
    """Destinations being fetched in this run, until their file is in place (or failed).

    A release listed twice (one file under several versions) would otherwise
    find its own run's lock held, until the committer moves the first copy
    into place, and fail as busy; instead the second waits, then finds the
    file present and verified.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._held = {}

    def claim(self, dest) -> None:
        while True:
            with self._lock:
                held = self._held.get(dest)
                if held is None:
                    self._held[dest] = threading.Event()
                    return
            held.wait()

    def release(self, dest) -> None:
        with self._lock:
            held = self._held.pop(dest, None)
        if held is not None:
            held.set()
