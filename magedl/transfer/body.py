"""A response body as blocks of bytes, read with as few Python steps per byte as the socket allows.

Over TLS a socket read returns one record (16 KiB) at a time, so reading
through urllib3's ``read1`` costs a pass through three libraries per 16
KiB; the Python overhead, not the decryption, then bounds the transfer. When
the body is a plain one with a known length (the usual case for a file),
:func:`body` fills each block itself, one socket read after another into the
same buffer, and keeps http.client's count of what is left, so the
connection goes back to the pool for the next request once the body is done.
Those blocks are page-aligned buffers, reused (:class:`_Pool`), and a block
cut short on a slow link still ends on a page (the rest starts the next
one), so the writer can send them to the disk directly
(:mod:`magedl.transfer.disk`). Anything else (chunked, encoded, no length,
not urllib3 and http.client underneath, a ``file://`` answer) is read
through ``read1``.

Either way a cut connection loses nothing already received: a block is
handed on with the bytes that arrived before the error, and the error is
raised after it.
"""

import errno
import http.client
import time

import requests
import urllib3

from magedl.service import sniff
from magedl.transfer.disk import PAGE, aligned

READ_ERRORS = (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError)
# A block is handed on after this long even if not full, so progress, the
# rate limit and a cancel keep their rhythm on a slow link.
FILL_TIME = 0.05


def encoded(headers) -> bool:
    """Whether a response body comes in a content coding (gzip...) instead of as the file's bytes."""
    return headers.get("Content-Encoding", "identity").lower() not in ("identity", "")


def body(response, chunk: int, pooled: bool = True):
    """The body's bytes as they arrive, at most *chunk* at a time (bytes-like blocks).

    *pooled*: a large body comes in reused page-aligned buffers, which a
    direct write needs; ``False`` for a body whose blocks go through the page
    cache anyway (each block then has a buffer of its own, freed once written).
    """
    plain = _plain(response)
    if plain is not None:
        yield from _fill(response.raw, plain, chunk, pooled)
        return
    read1 = getattr(response.raw, "read1", None)
    if read1 is None:  # urllib3 1.x, or a file:// response
        yield from response.iter_content(1 << 16)
        return
    while True:
        block = read1(chunk, decode_content=True)
        if not block:
            return
        yield block


def _plain(response):
    """The http.client response under *response* when the fast path applies to it, else ``None``."""
    hc = getattr(response.raw, "_fp", None)
    if (type(hc) is not http.client.HTTPResponse or hc.chunked or not isinstance(hc.length, int)
            or hc.fp is None or not hasattr(hc.fp, "readinto1") or encoded(response.headers)):
        return None
    return hc


class _Pool:
    """Page-aligned buffers of *size* bytes for one body, each reused once no view of it is left.

    A fresh ``bytearray`` per block costs a zero-fill pass over every byte,
    and its start is not page-aligned, which a direct write needs
    (:mod:`magedl.transfer.disk`). A block handed on is a view of its
    buffer, held a while by the writer's and the hasher's queues (or inside a
    ``pwrite`` or an md5 update, without the interpreter lock), so a buffer
    is taken again only when no view of it exists: the map's own count of
    exported views says so (:func:`_unviewed`), which does not depend on how
    an interpreter counts references. At most :data:`KEEP` are kept; past
    that, or where the check is not available, a block gets a buffer of its own.
    """

    KEEP = 16  # the writer's and the hasher's queues (4 + 4 MiB) and a few in hand, in 1 MiB blocks

    def __init__(self, size):
        self.size = size
        self._buffers = []

    def take(self):
        for buf in self._buffers:
            if _unviewed(buf):
                return buf
        buf = aligned(self.size)
        if len(self._buffers) < self.KEEP and _CAN_TELL:
            self._buffers.append(buf)
        return buf


def _unviewed(buf) -> bool:
    """Whether no view of the map *buf* is left: ``mmap`` refuses to resize while one is."""
    try:
        buf.resize(len(buf))  # the same size: nothing moves (Linux mremap), 0.6 µs
    except (BufferError, OSError, SystemError, ValueError, TypeError):  # a view, or no resize here (_CAN_TELL)
        return False
    return True


def _can_tell() -> bool:
    """Whether :func:`_unviewed` works on this platform (a resize of an anonymous map)."""
    try:
        probe = aligned(PAGE)
        with memoryview(probe):
            if _unviewed(probe):
                return False
        return _unviewed(probe)
    except (OSError, ValueError):
        return False


_CAN_TELL = _can_tell()


def _fill(raw, hc, chunk, pooled):
    fp = hc.fp
    pool = _Pool(chunk) if pooled and hc.length > chunk else None  # small bodies: a bytearray is cheaper
    tail = b""  # received after the last whole page of a block cut short: it starts the next block
    while hc.length or tail:
        size = min(chunk, len(tail) + hc.length)
        view = memoryview(pool.take() if pool else bytearray(size))[:size]
        view[:len(tail)] = tail
        filled, cut, error = len(tail), False, None
        deadline = time.monotonic() + FILL_TIME
        try:
            while filled < size:
                n = fp.readinto1(view[filled:])
                if not n:
                    break  # the server closed early: the caller sees a short body
                filled += n
                hc.length -= n
                if filled >= PAGE and time.monotonic() > deadline:
                    cut = True  # a slow link: hand on what came (whole pages), for progress and the rate limit
                    break
        except (OSError, ValueError) as exc:  # ValueError: the response was closed under us
            error = exc
        if not hc.length:
            # All of it read: close http.client's side and give the connection back to the pool.
            hc.close()
            release = getattr(raw, "release_conn", None)
            if release is not None:
                release()
        # A block cut short by time ends on a page, so the next one starts on a page too (direct writes).
        keep = filled - filled % PAGE if cut and hc.length else filled
        tail = bytes(view[keep:filled])
        if keep:
            yield view[:keep]
        del view  # the pool may take this buffer again once the consumer lets go of the block
        if error is not None:
            raise error if isinstance(error, OSError) else OSError(errno.EBADF, str(error))
        if not filled:
            return


def first_bytes(blocks):
    """The body's first block(s), enough to tell what it is (:data:`magedl.service.sniff.HEAD_SIZE`).

    Read from *blocks*, which the caller goes on reading: a block holds
    more than it shows until it is handed on (see ``_fill``'s carry).
    """
    head = b""
    for block in blocks:
        if not head and len(block) >= sniff.HEAD_SIZE:
            return block  # the usual case: the block itself, not a copy
        head += block
        if len(head) >= sniff.HEAD_SIZE:
            break
    return head


def prepend(head, blocks):
    """*head*, then *blocks*."""
    if head:
        yield head
    yield from blocks
