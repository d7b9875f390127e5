"""A response body as blocks of bytes, read with as few Python steps per byte as the socket allows.

Rule: a cut connection loses nothing already received; a block is handed on with the bytes that
arrived before the error, and the error is raised after it. Why the body is read this way: see
docs/transfer.md, "Reading a body".
"""

import errno
import http.client
import time

import requests
import urllib3

from magedl.service import sniff
from magedl.transfer.disk import PAGE

READ_ERRORS = (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError)
# A block is handed on after this long even if not full, so progress, the
# rate limit and a cancel keep their rhythm on a slow link.
FILL_TIME = 0.05


def encoded(headers) -> bool:
    """Whether a response body comes in a content coding (gzip...) instead of as the file's bytes."""
    return headers.get("Content-Encoding", "identity").lower() not in ("identity", "")


def body(response, buffers):
    """The body's bytes as they arrive, at most ``buffers.size`` at a time (bytes-like blocks).

    A large plain body comes in views of buffers taken from *buffers* (a
    :class:`magedl.transfer.pipeline.Buffers`); whoever holds a block last gives its buffer back.
    """
    chunk = buffers.size
    plain = _plain(response)
    if plain is not None:
        yield from _fill(response.raw, plain, buffers)
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


def _fill(raw, hc, buffers):
    fp, chunk = hc.fp, buffers.size
    pooled = hc.length > chunk  # a body of one block: a bytearray of its size is cheaper
    tail = b""  # received after the last whole page of a block cut short: it starts the next block
    while hc.length or tail:
        size = min(chunk, len(tail) + hc.length)
        view = memoryview(buffers.take() if pooled else bytearray(size))[:size]
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
        elif pooled:
            buffers.give(view)  # nothing of it was handed on
        del view  # the block handed on is the consumer's now
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
