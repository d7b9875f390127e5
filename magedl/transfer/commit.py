"""Moving finished downloads into place in batches, without weakening what a power cut leaves.

Rule: a file whose sync failed is never renamed, and a file is reported as fetched only once it is
synced, renamed and its folder synced (invariant 5 of :mod:`magedl.transfer`). The batching and the
per-filesystem sync: see docs/transfer.md, "Committing a finished file".
"""

import logging
import os
import platform
import threading
from pathlib import Path
from typing import Callable, List, Optional

from magedl.fsutil import fsync_dir
from magedl.transfer.disk import start_writeback

log = logging.getLogger(__name__)
MAX_PENDING = 64  # files handed over and not yet in place; each holds two descriptors


class _Handover:
    __slots__ = ("fd", "part", "dest", "on_committed", "error", "moved")

    def __init__(self, fd, part, dest, on_committed):
        self.fd, self.part, self.dest, self.on_committed = fd, part, Path(dest), on_committed
        self.error: Optional[OSError] = None
        self.moved = False


class Committer:
    """Syncs, renames and folder-syncs finished partial files, several at a time, on its own thread.

    Use it as a context manager: leaving it commits whatever is still
    handed over, then stops the thread.
    """

    def __init__(self):
        self._cond = threading.Condition(threading.Lock())
        self._pending: List[_Handover] = []
        self._closing = False
        self._thread: Optional[threading.Thread] = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def submit(self, fd: int, part, dest, on_committed: Callable[[Optional[OSError]], None]) -> None:
        """Hand over the partial file open as *fd*, complete and cut to size; return at once.

        The committer syncs it, renames *part* to *dest*, syncs the folder,
        closes *fd*, then calls ``on_committed(None)``, or ``on_committed(error)`` with
        the :class:`OSError` of the sync or rename (nothing renamed then).
        It waits only while :data:`MAX_PENDING` files are already waiting.
        """
        with self._cond:
            self._cond.wait_for(lambda: len(self._pending) < MAX_PENDING)
            self._pending.append(_Handover(fd, part, dest, on_committed))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True, name="magedl-commit")
                self._thread.start()
            self._cond.notify_all()

    def close(self) -> None:
        """Commit what is handed over, then stop."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self):
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._closing)
                batch, self._pending = self._pending, []
                self._cond.notify_all()  # room for submitters that waited
                if not batch:
                    return
            try:
                _apply(batch)
            finally:
                for h in batch:
                    if not h.moved and h.error is None:  # _apply itself failed: never report success
                        h.error = OSError(f"{h.part} was not moved into place")
                    try:
                        h.on_committed(h.error)
                    except Exception:  # a report that failed must not lose the others
                        log.exception("reporting %s failed", h.dest)


def _apply(batch: List[_Handover]) -> None:
    """Sync every file of *batch* per filesystem, rename those that synced, sync their folders once each."""
    groups = {}
    for h in batch:
        try:
            groups.setdefault(os.fstat(h.fd).st_dev, []).append(h)
        except OSError as exc:
            h.error = exc
    how = []
    for group in groups.values():
        how.append(_sync_group(group))
    folders = []
    for h in batch:
        try:
            if h.error is None:
                os.replace(h.part, h.dest)  # replaces a link at dest, never writes through it
                h.moved = True
                if h.dest.parent not in folders:
                    folders.append(h.dest.parent)
        except OSError as exc:
            h.error = exc
        finally:
            os.close(h.fd)
    for folder in folders:
        fsync_dir(folder)
    log.debug("moved %d of %d files into place (%s) with %d folder syncs", sum(h.moved for h in batch), len(batch),
              ", ".join(how), len(folders))


def _sync_group(group: List[_Handover]) -> str:
    """Sync the files of one filesystem; a file whose sync failed gets its error (and is not renamed)."""
    if len(group) > 1 and _syncfs(group[0].fd):
        return f"one syncfs for {len(group)}"
    if len(group) > 1:
        for h in group:  # start every writeback first, so the waits below overlap
            start_writeback(h.fd)
    for h in group:
        try:
            os.fdatasync(h.fd)
        except OSError as exc:
            h.error = exc
    return f"fdatasync for {len(group)}"


def _syncfs_reports_errors() -> bool:
    """Whether ``syncfs`` returns writeback errors here: Linux 5.8 and later."""
    if platform.system() != "Linux":
        return False
    try:
        major, minor = (int(part) for part in platform.release().split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (5, 8)


_libc = []


def _syncfs(fd: int) -> bool:
    """``syncfs(2)`` on the file system holding *fd*: every file's data and metadata, one cache flush.

    Where each file's own ``fdatasync`` cannot share its work with the
    others' (no journal to commit them together), it costs a device cache
    flush per file; one ``syncfs`` flushes once for the whole batch. Its
    scope is the whole file system, so it may also write what other
    programs left dirty; that is only time, never correctness. Returns False
    where it is not available or failed (then each file is synced on its
    own, which also names the file whose write failed), and where it
    would not report a failed write (before Linux 5.8).
    """
    if not _libc:
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            _libc.append(libc.syncfs if hasattr(libc, "syncfs") and _syncfs_reports_errors() else None)
        except (OSError, AttributeError, ImportError):
            _libc.append(None)
    syncfs = _libc[0]
    return syncfs is not None and syncfs(fd) == 0
