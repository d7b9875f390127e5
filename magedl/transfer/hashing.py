"""Hash a file in order, from a background thread, as its bytes land.

Segmented transfers write a file out of order; md5 and sha256 must see it in
order. :class:`PrefixHasher` follows the contiguous prefix that the writers
have completed and hashes each newly completed stretch on its own thread.
hashlib releases the GIL on large buffers, so hashing runs on the second core
while the network threads keep receiving.

Two calls feed it, both made once the bytes are in the file (invariant 2
of :mod:`magedl.transfer`). :meth:`~PrefixHasher.offer` hands over a block
just written, and is taken only if it continues exactly where the hashed and
queued bytes end: a single-stream download is hashed from memory, in
parallel with the next writes. :meth:`~PrefixHasher.advance` says that
``[0, end)`` is written, so what was not offered (other segments' bytes,
landing out of order) is read back from the file right behind the writers.
When the queue is full, an offer waits for the hasher. Either way the file
is never read a second time after the download.
"""

import collections
import hashlib
import os
import threading

from magedl.transfer.disk import start_writeback

BLOCK = 1 << 20
QUEUE_MAX = 2 << 20  # bytes held in memory for the hasher; past this the writer waits (or it reads back)
FLUSH_EVERY = 32 << 20  # bytes between two starts of writeback


def file_digests(path, algorithms=("md5",), block=BLOCK):
    """Hex digests of a whole file on disk: ``{"md5": ..., ...}``."""
    hashers = {name: hashlib.new(name) for name in algorithms}
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(block), b""):
            for h in hashers.values():
                h.update(chunk)
    return {name: h.hexdigest() for name, h in hashers.items()}


class PrefixHasher:
    """Digests of ``fd``'s bytes ``[0, n)``, kept up to date as *n* grows.

    Parameters
    ----------
    fd : int
        An open file descriptor of the partial file (read with ``os.pread``).
    algorithms : tuple of str
        hashlib names, e.g. ``("md5", "sha256")``.
    queue_max : int
        Bytes held in memory for the hasher thread.
    wait : bool
        When the queue is full, a writer waits for room (``True``) or leaves
        the block to be read back from the file (``False``).
    """

    def __init__(self, fd, algorithms=("md5",), queue_max=QUEUE_MAX, wait=True):
        self._fd = fd
        self._hashers = {name: hashlib.new(name) for name in algorithms}
        self._queue_max = queue_max
        self._wait = wait
        self._waiting = 0
        self._hashed = 0
        self._flushed = 0  # writeback was started up to here
        self._dropped = 0  # and pages were dropped up to here
        self._target = 0
        self._queue = collections.deque()  # (offset, bytes) handed over in memory
        self._queued = 0
        self._closed = False
        self._error = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True, name="magedl-hasher")
        self._thread.start()

    def offer(self, block, start) -> bool:
        """Hand over *block*, the bytes just written at offset *start*; kept only if it continues the stream.

        Returns whether it was kept: if not, its bytes will be read back from the file.
        """
        with self._cond:
            if start != self._target:
                return False  # out of order: read back once advance() says it is written
            if self._queued >= self._queue_max and self._wait:
                # Wait until half the queue is free: one wake-up per several blocks, not one per block.
                self._waiting += 1
                self._cond.wait_for(lambda: self._queued <= self._queue_max // 2 or self._closed or self._error)
                self._waiting -= 1
            if start != self._target or self._queued >= self._queue_max:
                return False
            self._queue.append((start, block))
            self._queued += len(block)
            self._target = start + len(block)
            self._cond.notify()
            return True

    def in_order(self, start) -> bool:
        """Whether a block at *start*, offered once written, would continue the hashed stream (as things stand)."""
        with self._cond:
            return start == self._target

    def advance(self, end):
        """Tell the hasher that bytes ``[0, end)`` are written (what was not offered is read back)."""
        with self._cond:
            if end > self._target:
                self._target = end
                self._cond.notify()

    def finish(self, size):
        """Wait until ``[0, size)`` is hashed; return ``{name: hexdigest}``."""
        self.advance(size)
        with self._cond:
            self._cond.wait_for(lambda: self._hashed >= size or self._error or self._closed)
            self._closed = True
            self._cond.notify_all()
            if self._error:
                raise self._error
        self._thread.join()
        return {name: h.hexdigest() for name, h in self._hashers.items()}

    def close(self):
        """Stop the thread without a result (a failed or cancelled transfer)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=5)

    def _next_chunk(self, start, end):
        """The bytes at *start* (up to *end*): from the queue if it has them, else from the file."""
        with self._cond:
            while self._queue and self._queue[0][0] < start:  # already covered by a read-back
                self._queued -= len(self._queue.popleft()[1])
            if self._queue and self._queue[0][0] == start:
                offset, block = self._queue.popleft()
                self._queued -= len(block)
                if self._waiting and self._queued <= self._queue_max // 2:
                    self._cond.notify_all()
                return block if len(block) <= end - start else memoryview(block)[: end - start]
            stop = min(end, self._queue[0][0]) if self._queue else end
        chunk = os.pread(self._fd, min(BLOCK, stop - start), start)
        if not chunk:  # the file is shorter than the writers claimed
            raise OSError(f"partial file ends at byte {start}, expected {end}")
        return chunk

    def writeback(self):
        """Start writing the hashed bytes to disk, and drop from memory those written at the previous call.

        Called now and then from a thread other than the hasher's (the
        download's supervisor), so neither the network nor md5 waits on it.
        On Linux, POSIX_FADV_DONTNEED starts writeback of a range without
        waiting and drops its pages once clean; the pages of the previous
        range are clean by the next call. The final fsync then has little
        left to wait for, and the page cache the download occupies stays a
        few tens of MiB that the kernel hands straight back to the next
        writes, instead of the whole file (we never read those bytes again).
        """
        with self._cond:
            hashed, start, begun = self._hashed, self._dropped, self._flushed
        if hashed - begun < FLUSH_EVERY:
            return
        start_writeback(self._fd, start, hashed - start)
        self._dropped, self._flushed = begun, hashed

    def _run(self):
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._target > self._hashed or self._closed)
                if self._closed:
                    return
                start, end = self._hashed, self._target
            try:
                while start < end:
                    chunk = self._next_chunk(start, end)
                    for h in self._hashers.values():
                        h.update(chunk)
                    start += len(chunk)
            except Exception as exc:  # anything: finish() must never wait forever
                with self._cond:
                    self._error = exc if isinstance(exc, OSError) else OSError(f"hashing failed: {exc!r}")
                    self._cond.notify_all()
                return
            with self._cond:
                self._hashed = start
                self._cond.notify_all()


class InlineHasher(PrefixHasher):
    """The same job without a thread, for files too small to be worth one.

    :meth:`offer` hashes on the caller's thread, so a patch of a few KiB
    costs no thread start and no hand-over.
    """

    def __init__(self, fd, algorithms=("md5",)):  # noqa: D107 - no thread, on purpose
        self._fd = fd
        self._hashers = {name: hashlib.new(name) for name in algorithms}
        self._hashed = 0

    def offer(self, block, start) -> bool:
        """As :meth:`PrefixHasher.offer`; the block is hashed here and now, never kept."""
        if start != self._hashed:
            return False
        for h in self._hashers.values():
            h.update(block)
        self._hashed += len(block)
        return True

    def in_order(self, start) -> bool:
        return start == self._hashed

    def advance(self, end):
        """As :meth:`PrefixHasher.advance`."""
        while self._hashed < end:
            chunk = os.pread(self._fd, min(BLOCK, end - self._hashed), self._hashed)
            if not chunk:
                raise OSError(f"partial file ends at byte {self._hashed}, expected {end}")
            for h in self._hashers.values():
                h.update(chunk)
            self._hashed += len(chunk)

    def finish(self, size):
        self.advance(size)
        return {name: h.hexdigest() for name, h in self._hashers.items()}

    def writeback(self):
        pass

    def close(self):
        pass
