"""Blocks from the network into the file and the hash, in that order: network -> writer -> hasher.

Rule: a buffer goes back to the free list only from the last stage that holds it (invariant 4 of
:mod:`magedl.transfer`). The stages, the two modes and the back-pressure: see docs/transfer.md,
"One pass over a file".
"""

import collections
import errno
import mmap
import threading

from magedl.transfer.disk import PAGE, Disk, aligned
from magedl.transfer.hashing import QUEUE_MAX, Hasher, InlineHasher

WRITE_QUEUE = 4 << 20  # bytes waiting for the writer; past this the network thread waits
KEEP = 16  # free buffers kept: the writer's and the hasher's queues and a few in hand


def block_size(options) -> int:
    """Bytes per block (and buffer) for a download with *options*.

    A file that starts on one connection (adaptive) reads ``tuning.block``:
    large blocks mean fewer hand-overs between threads. One opened on many
    connections at once (``--connections N``, for a slow link) reads smaller
    ones, so that a block in hand on each connection still fits
    :data:`WRITE_QUEUE` in all.
    """
    block = options.tuning.block
    if options.adaptive or options.connections <= 1:
        return block
    return max(PAGE, min(block, WRITE_QUEUE // options.connections // PAGE * PAGE))


class Buffers:
    """Page-aligned buffers of *size* bytes, reused: :meth:`take` one, :meth:`give` it back when done.

    A fresh ``bytearray`` per block costs a zero-fill pass over every byte,
    and its start is not page-aligned, which a direct write needs. Each
    buffer taken must be given back at most once, by the last stage that
    holds it; one never given back is freed like any object.
    """

    def __init__(self, size: int, keep: int = KEEP):
        self.size = size
        self._keep = keep
        self._free = collections.deque()  # append and pop are atomic: no lock needed

    def take(self) -> mmap.mmap:
        """A free buffer, or a new one."""
        try:
            return self._free.pop()
        except IndexError:
            return aligned(self.size)

    def give(self, block) -> None:
        """Give back the buffer *block* is a view of (anything else is ignored)."""
        buf = block.obj if isinstance(block, memoryview) else block
        if isinstance(buf, mmap.mmap) and len(buf) == self.size and len(self._free) < self._keep:
            self._free.append(buf)


class InlinePipeline:
    """Writes and hashes each block on the caller's thread (small files).

    Parameters
    ----------
    fd : int
        The partial file, open for reading and writing.
    algorithms : tuple of str
        hashlib names.
    written : callable
        ``written(nbytes, tag) -> prefix``: count the block just written
        (*tag* is what :meth:`put` was given), return the end of the
        completely written prefix of the file.
    buffers : Buffers
        Where the blocks' buffers go back to.
    """

    def __init__(self, fd, algorithms, written, buffers: Buffers):
        self.disk = Disk(fd)
        self.hasher = InlineHasher(fd, algorithms, buffers.give)
        self.buffers = buffers
        self._written = written

    @property
    def alive(self) -> bool:
        """Whether a thread may still write through the file's descriptors."""
        return False

    def put(self, block, at: int, tag=None) -> None:
        """Write *block* at *at* (or queue it); a disk error is raised here or by the next call."""
        self._write(block, at, tag)

    def drain(self) -> None:
        """Return once everything put is written and counted."""

    def written_up_to(self, end: int) -> None:
        """Tell the hasher ``[0, end)`` is in the file (bytes a previous run wrote, or the end of a body)."""
        self.hasher.written_up_to(end)

    def finish(self, size: int) -> dict:
        """``{name: hexdigest}`` once ``[0, size)`` is written and hashed."""
        self.drain()
        return self.hasher.finish(size)

    def writeback(self) -> None:
        """Start writeback of what is hashed (see :meth:`magedl.transfer.hashing.Hasher.writeback`)."""
        self.hasher.writeback()

    def close(self) -> None:
        """Stop; what was put and not yet written is dropped (and not counted)."""
        self.hasher.close()
        self.disk.close()

    def _write(self, block, at, tag):
        """Write, count, hash: the writer's step, on whichever thread writes."""
        in_order = self.hasher.expects(at)
        self.disk.write(block, at, cached=not in_order)
        if not (in_order and self.hasher.add(block, at)):
            self.buffers.give(block)
        self.hasher.written_up_to(self._written(len(block), tag))


class Pipeline(InlinePipeline):
    """The same steps with a writer thread and a hasher thread (large files).

    :meth:`put` queues the block and returns; the network thread waits only
    while :data:`WRITE_QUEUE` bytes are already queued. A disk error stops
    the writer; the next :meth:`put` or :meth:`drain` raises it.
    """

    def __init__(self, fd, algorithms, written, buffers: Buffers, queue_max=WRITE_QUEUE):
        self.disk = Disk(fd, direct=True)
        self.hasher = Hasher(fd, algorithms, buffers.give, max(QUEUE_MAX, 4 * buffers.size))
        self.buffers = buffers
        self._written = written
        self._limit = max(queue_max, 4 * buffers.size)
        self._queue = collections.deque()  # (block, at, tag)
        self._queued = 0
        self._writing = False
        self._closed = False
        self._error = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True, name="magedl-writer")
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def put(self, block, at: int, tag=None) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._queued < self._limit or self._error or self._closed)
            self._check()
            self._queue.append((block, at, tag))
            self._queued += len(block)
            self._cond.notify_all()

    def drain(self) -> None:
        with self._cond:
            self._cond.wait_for(lambda: not (self._queue or self._writing) or self._error or self._closed)
            self._check()

    def close(self) -> None:
        with self._cond:
            self._queue.clear()
            self._queued = 0
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=5)
        self.hasher.close()
        if not self._thread.is_alive():  # else a write hangs (a dead network disk): its descriptor stays open
            self.disk.close()

    def _check(self):
        if self._error is not None:
            raise self._error
        if self._closed:
            raise OSError(errno.EBADF, "the file is closed for writing")

    def _run(self):
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._closed)
                if not self._queue:
                    return
                block, at, tag = self._queue.popleft()
                self._writing = True
            try:
                self._write(block, at, tag)
            except BaseException as exc:  # a full disk, or a bug: raised to whoever puts or drains next
                with self._cond:
                    self._error = exc if isinstance(exc, Exception) else OSError(errno.EINTR, str(exc))
                    self._queue.clear()
                    self._queued = 0
                    self._writing = False
                    self._cond.notify_all()
                return
            with self._cond:
                self._queued -= len(block)
                self._writing = False
                self._cond.notify_all()
            del block, tag
