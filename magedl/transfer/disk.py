"""How a download's bytes reach its partial file: whole pages straight to the disk, the rest through the page cache.

Rule: a direct write and a cached write never share a page (invariant 4 of :mod:`magedl.transfer`);
a short direct write leaves its rest to the page cache in the same call, before the next block.
When direct writes are used and when they stop: see docs/transfer.md, "Writing to the disk".
"""

import errno
import mmap
import os
import time

PAGE = 4096
_O_DIRECT = getattr(os, "O_DIRECT", 0)  # Linux only; elsewhere every write goes through the page cache
# Direct writes stop after two windows of SLOW_WINDOW bytes in a row written slower than SLOW_DISK
# bytes/s. Two, and a rate well below a local disk's: a write's time includes waiting for the
# interpreter lock afterwards, which on a busy machine makes a fast disk look slow now and then.
SLOW_DISK = 256 << 20
SLOW_WINDOW = 32 << 20
_fadvise = getattr(os, "posix_fadvise", None)  # not on macOS or Windows


def start_writeback(fd: int, start: int = 0, length: int = 0) -> None:
    """Start writing ``[start, start + length)`` of *fd* to disk without waiting, and drop it from memory once clean.

    ``POSIX_FADV_DONTNEED`` on Linux (``length`` 0: to the end of the file);
    a no-op where it is missing. Used for bytes that are not read again: a
    later ``fdatasync`` then has little left to wait for.
    """
    if _fadvise is None:
        return
    try:
        _fadvise(fd, start, length, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass


def aligned(size: int) -> mmap.mmap:
    """A buffer of *size* bytes that starts on a page (an anonymous map: the kernel gives pages, no zero-fill pass)."""
    return mmap.mmap(-1, size)


def write_all(fd: int, data, at: int) -> None:
    """``pwrite`` all of *data*: a nearly full disk may take only part of it, then fail the rest."""
    view = memoryview(data)
    while view:
        n = _pwrite(fd, view, at)
        view, at = view[n:], at + n


def _pwrite(fd, view, at) -> int:
    """One ``pwrite``; bytes written, at least one (a disk that takes none is full)."""
    n = os.pwrite(fd, view, at)
    if n <= 0:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return n


class Disk:
    """Writes blocks into the file open as *fd*; with *direct*, whole aligned pages bypass the page cache.

    Parameters
    ----------
    fd : int
        The partial file, open for writing (it stays the caller's to close).
    direct : bool
        Try ``O_DIRECT`` for blocks that qualify (a second descriptor on the
        same open file, through ``/proc/self/fd``: no path is looked up again).
    """

    def __init__(self, fd: int, direct: bool = False):
        self.fd = fd
        self._direct = _reopen_direct(fd) if direct and _O_DIRECT else None
        self._window = self._spent = 0
        self._slow = 0  # slow windows in a row

    @property
    def direct(self) -> bool:
        """Whether blocks may still go straight to the disk."""
        return self._direct is not None

    def write(self, block, at: int, cached: bool = False) -> None:
        """Write all of *block* at offset *at* (``OSError`` from the disk as it comes).

        *cached*: through the page cache whatever the block is (the hasher
        will read these bytes back soon: out of order).
        """
        view = memoryview(block)
        if self._direct is not None and not cached and _qualifies(view, at):
            try:
                self._write_direct(view, at)
                return
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                self.close()  # this filesystem takes no direct writes after all: the page cache from now on
        write_all(self.fd, view, at)

    def _write_direct(self, view, at):
        started, size = time.monotonic(), len(view)
        while view and _qualifies(view, at):
            n = _pwrite(self._direct, view, at)
            view, at = view[n:], at + n
        if view:  # a short write left part of a page: the page cache takes it
            write_all(self.fd, view, at)
        self._spent += time.monotonic() - started
        self._window += size
        if self._window >= SLOW_WINDOW:
            self._slow = self._slow + 1 if self._window < SLOW_DISK * self._spent else 0
            if self._slow >= 2:
                self.close()  # a slow disk: the page cache's write-behind hides it better
            self._window = self._spent = 0

    def close(self) -> None:
        """Stop writing direct (the caller's *fd* stays open)."""
        if self._direct is not None:
            fd, self._direct = self._direct, None
            os.close(fd)


def _qualifies(view, at) -> bool:
    """Whether *view* at *at* may be written direct: whole pages, at a page, from a page-aligned buffer."""
    # Only buffers from aligned() begin on a page (body.py cuts its blocks only at their end); anything
    # else (a bytes head) goes through the page cache. A view from the middle of such a buffer would be
    # refused by the kernel (EINVAL), which Disk.write takes as "no direct writes" and still writes it.
    return (at % PAGE == 0 and len(view) % PAGE == 0 and len(view) > 0
            and isinstance(view.obj, mmap.mmap) and view.contiguous)


def _reopen_direct(fd):
    """A second, ``O_DIRECT`` descriptor on *fd*'s open file, or ``None`` where that is not possible."""
    try:
        return os.open(f"/proc/self/fd/{fd}", os.O_WRONLY | _O_DIRECT | getattr(os, "O_CLOEXEC", 0))
    except OSError:  # no /proc, or the filesystem refuses O_DIRECT (tmpfs)
        return None
