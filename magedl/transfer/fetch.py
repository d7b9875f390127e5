"""The library's front door: open a client, list, select, download.

Scripted builds import these instead of shelling out::

    import magedl
    with magedl.open_client() as client:           # env / config / netrc credentials
        releases = client.catalog()
        [release] = magedl.select(releases, types=["ce-full"], versions=["2.4.7"], formats=["tar.gz"])
        result = magedl.fetch_release(client, release, "downloads/")
        print(result.path, result.md5)

Every failure is a :class:`magedl.errors.MagedlError` subclass whose
``exit_code`` says what kind it is.
"""

import queue
import threading

from magedl import config
from magedl.errors import Interrupted, MagedlError
from magedl.paths import destination
from magedl.service.api import Client
from magedl.service.retry import RetryPolicy
from magedl.transfer.download import Result, download


def open_client(base_url=None, *, mageid=None, token=None, token_file=None, ca_bundle=None,
                insecure=False, retry=None, timeout=(15.0, 60.0)):
    """A :class:`~magedl.api.Client` with settings resolved as the CLI does.

    Parameters left ``None`` come from the environment, the config file or
    ``~/.netrc``, in that order.
    """
    settings = config.resolve(
        base_url=base_url, mageid=mageid, token=token, token_file=token_file,
        ca_bundle=ca_bundle, insecure=insecure,
    )
    return Client(settings, retry=retry or RetryPolicy(), timeout=timeout)


def fetch_release(client, release, folder, *, require_checksum=False, progress=None, connections=1,
                  adaptive=True, limiter=None, sha256=False, cancel=None):
    """Download one catalogue record into *folder*, verified against its md5.

    Parameters
    ----------
    client : magedl.api.Client
    release : magedl.catalog.Release
    folder : path
        Target folder; the file lands at ``folder/<file_name>``.
    require_checksum : bool
        Refuse files the feed gives no md5 for.
    progress : callable, optional
        Receives :class:`magedl.transfer.Progress` updates.
    connections : int
        Up to this many connections for one large file, when the server honours Range.
    adaptive : bool
        Add connections beyond the first only when it proves slow.
    limiter : magedl.ratelimit.RateLimiter, optional
        Shared bandwidth budget.
    sha256 : bool
        Also compute the sha256 as the data arrives (mirrors need it).
    cancel : threading.Event, optional
        Set it to stop the transfer; the partial file is kept for a resume.

    Returns
    -------
    magedl.transfer.Result
    """
    dest = destination(folder, release.file_name)  # refuses an unsafe name before any request
    return download(
        client,
        client.file_url(release.file_name),
        dest,
        file_name=release.file_name,
        md5=release.md5,
        require_checksum=require_checksum,
        progress=progress,
        connections=connections,
        adaptive=adaptive,
        limiter=limiter,
        sha256=sha256,
        cancel=cancel,
    )


def fetch_many(client, releases, folder, *, jobs=4, cancel=None, **options):
    """Fetch several releases, *jobs* at a time; yield ``(release, outcome)`` as each ends.

    *outcome* is a :class:`~magedl.transfer.Result`, or the
    :class:`~magedl.errors.MagedlError` that file failed with: one failure
    does not stop the others. Other keyword arguments go to
    :func:`fetch_release`.

    Ctrl-C (KeyboardInterrupt) in the caller's thread stops every transfer,
    keeping their partial files, and is re-raised.
    """
    cancel = cancel or threading.Event()
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
                outcome = fetch_release(client, release, folder, cancel=cancel, **options)
            except MagedlError as exc:
                outcome = exc
            except BaseException as exc:  # a bug: hand it to the caller's thread
                outcome = exc
            done.put((release, outcome))

    # Daemon threads: a worker stuck in a read must not keep a Ctrl-C'd process alive.
    threads = [threading.Thread(target=worker, daemon=True, name=f"magedl-job-{i}")
               for i in range(max(1, min(jobs, len(releases))))]
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
