"""The library's front door: open a client, list, select, download.

Scripted builds import these instead of shelling out::

    import magedl
    from magedl.transfer import TransferOptions

    with magedl.open_client() as client:           # env / config / netrc credentials
        releases = client.catalog()
        [release] = magedl.select(releases, types=["ce-full"], versions=["2.4.7"], formats=["tar.gz"])
        result = magedl.fetch_release(client, release, "downloads/", TransferOptions(connections=4))
        print(result.path, result.md5)

Every failure is a :class:`magedl.errors.MagedlError` subclass whose
``exit_code`` says what kind it is.
"""

import queue
import threading
from typing import Callable, Iterator, Optional

from magedl import config
from magedl.errors import Interrupted, MagedlError
from magedl.paths import destination
from magedl.service.api import Client
from magedl.service.retry import RetryPolicy
from magedl.transfer.download import Progress, Result, download
from magedl.transfer.options import CONNECT_TIMEOUT, DEFAULT_TIMEOUT, TransferOptions
from magedl.transfer.ratelimit import RateLimiter


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


def fetch_many(client, releases, folder, options: Optional[TransferOptions] = None, *,
               progress: Optional[Callable[[Progress], None]] = None, cancel: Optional[threading.Event] = None,
               limiter: Optional[RateLimiter] = None) -> Iterator[tuple]:
    """Fetch several releases, ``options.jobs`` at a time; yield ``(release, outcome)`` as each ends.

    *outcome* is a :class:`~magedl.transfer.Result`, or the
    :class:`~magedl.errors.MagedlError` that file failed with: one failure
    does not stop the others. Every connection of every job shares one
    bandwidth budget (*limiter*, or one built from ``options.limit_rate``).

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
    done = queue.Queue()

    def worker():
        while not cancel.is_set():
            try:
                release = todo.get_nowait()
            except queue.Empty:
                return
            try:
                outcome = fetch_release(client, release, folder, options, progress=progress, cancel=cancel,
                                        limiter=limiter)
            except MagedlError as exc:
                outcome = exc
            except BaseException as exc:  # a bug: hand it to the caller's thread
                outcome = exc
            done.put((release, outcome))

    # Daemon threads: a worker stuck in a read must not keep a Ctrl-C'd process alive.
    threads = [threading.Thread(target=worker, daemon=True, name=f"magedl-job-{i}")
               for i in range(max(1, min(options.jobs, len(releases))))]
    for t in threads:
        t.start()
    try:
        for _ in range(len(releases)):
            while True:
                try:
                    release, outcome = done.get(timeout=0.5)
                    break
                except queue.Empty:
                    if cancel.is_set() and not any(t.is_alive() for t in threads) and done.empty():
                        raise Interrupted("cancelled") from None
            if not isinstance(outcome, (Result, MagedlError)):
                raise outcome
            yield release, outcome
    except BaseException:
        cancel.set()
        for t in threads:
            t.join(timeout=5)
        raise
