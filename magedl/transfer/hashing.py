"""Hash a file in order as its bytes are written: from the written blocks, or read back from the file.

Rule: the hasher sees only bytes the file holds (invariant 2 of :mod:`magedl.transfer`); a block is
hashed from memory only after the writer has put it in the file. See docs/transfer.md, "One pass
over a file".
"""

import collections
import hashlib
import os
import threading

from magedl.transfer.disk import start_writeback

BLOCK = 1 << 20  # bytes read back at a time
QUEUE_MAX = 4 << 20  # bytes of written blocks waiting for the hasher; past this the writer waits
FLUSH_EVERY = 32 << 20  # bytes between two starts of writeback


def file_digests(path, algorithms=("md5",), block=BLOCK):
    """Hex digests of a whole file on disk: ``{"md5": ..., ...}``."""
    hashers = {name: hashlib.new(name) for name in algorithms}
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(block), b""):
            for h in hashers.values():
                h.update(chunk)
    return {name: h.hexdigest() for name, h in hashers.items()}


def _read_back(fd, start, end):
    """The file's bytes ``[start, end)``, a block at a time."""
    while start < end:
        chunk = os.pread(fd, min(BLOCK, end - start), start)
        if not chunk:  # the file is shorter than the writer claimed
            raise OSError(f"partial file ends at byte {start}, expected {end}")
        yield chunk
        start += len(chunk)


class InlineHasher:
    """Digests of ``fd``'s bytes ``[0, n)`` as *n* grows, computed on the caller's thread.

    Parameters
    ----------
    fd : int
        The partial file (read with ``os.pread``).
    algorithms : tuple of str
        hashlib names, e.g. ``("md5", "sha256")``.
    give_back : callable
        Called with each block :meth:`add` took, once hashed (its buffer is free again).
    """

    def __init__(self, fd, algorithms=("md5",), give_back=None):
        self._fd = fd
        self._hashers = {name: hashlib.new(name) for name in algorithms}
        self._give_back = give_back or (lambda block: None)
        self._end = 0  # hashed (or, threaded, queued) up to here

    def expects(self, at) -> bool:
        """Whether a block written at *at* would continue the hashed stream."""
        return at == self._end

    def add(self, block, at) -> bool:
        """Take *block*, just written at *at*, if it continues the stream; the caller keeps it otherwise."""
        if at != self._end:
            return False
        self._update(block)
        self._end += len(block)
        self._give_back(block)
        return True

    def written_up_to(self, end):
        """The file holds bytes ``[0, end)``: read back what was not added."""
        if end > self._end:
            for chunk in _read_back(self._fd, self._end, end):
                self._update(chunk)
            self._end = end

    def finish(self, size):
        """``{name: hexdigest}`` of ``[0, size)``."""
        self.written_up_to(size)
        return {name: h.hexdigest() for name, h in self._hashers.items()}

    def writeback(self):
        pass

    def close(self):
        pass

    def _update(self, data):
        for h in self._hashers.values():
            h.update(data)


class Hasher(InlineHasher):
    """The same job on a thread of its own: :meth:`add` and :meth:`written_up_to` only queue the work.

    The queue holds, in file order and without overlap, written blocks and
    ranges to read back; ``_end`` is where it ends. When more than
    *queue_max* bytes of blocks wait, :meth:`add` waits for the hasher (on a
    fast link md5 is the slowest stage, and reading the bytes back would only
    add work to the busiest core).
    """

    def __init__(self, fd, algorithms=("md5",), give_back=None, queue_max=QUEUE_MAX):
        super().__init__(fd, algorithms, give_back)
        self._queue_max = queue_max
        self._queue = collections.deque()  # (at, block) or (start, end) to read back
        self._queued = 0  # bytes of blocks in the queue
        self._hashed = 0
        self._flushed = 0  # writeback was started up to here
        self._dropped = 0  # and pages were dropped up to here
        self._closed = False
        self._error = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True, name="magedl-hasher")
        self._thread.start()

    def expects(self, at) -> bool:
        with self._cond:
            return at == self._end

    def add(self, block, at) -> bool:
        with self._cond:
            if at != self._end:
                return False
            if self._queued >= self._queue_max:
                # Wait until half the queue is free: one wake-up per several blocks, not one per block.
                self._cond.wait_for(lambda: self._queued <= self._queue_max // 2 or self._closed or self._error)
            if self._closed or self._error:
                return False
            self._queue.append((at, block))
            self._queued += len(block)
            self._end = at + len(block)
            self._cond.notify_all()
            return True

    def written_up_to(self, end):
        with self._cond:
            if end > self._end:
                self._queue.append((self._end, end))
                self._end = end
                self._cond.notify_all()

    def finish(self, size):
        """Wait until ``[0, size)`` is hashed; return ``{name: hexdigest}``."""
        self.written_up_to(size)
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

    def writeback(self):
        """Start writing the hashed bytes to disk, and drop from memory those written at the previous call.

        Called now and then from a thread other than the hasher's (the
        download's supervisor), so neither the network nor md5 waits on it.
        The pages of the previous range are clean by the next call, so the
        page cache the download occupies stays a few tens of MiB, and the
        final sync has little left to wait for (the bytes are never read again).
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
                self._cond.wait_for(lambda: self._queue or self._closed)
                if self._closed:
                    return
                start, item = self._queue.popleft()
            try:
                if isinstance(item, int):  # a range to read back
                    for chunk in _read_back(self._fd, start, item):
                        self._update(chunk)
                    end = item
                else:
                    self._update(item)
                    end = start + len(item)
                    self._give_back(item)
            except Exception as exc:  # anything: finish() must never wait forever
                with self._cond:
                    self._error = exc if isinstance(exc, OSError) else OSError(f"hashing failed: {exc!r}")
                    self._cond.notify_all()
                return
            with self._cond:
                if not isinstance(item, int):
                    self._queued -= len(item)
                self._hashed = end
                self._cond.notify_all()
