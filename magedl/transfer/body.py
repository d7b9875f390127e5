"""A response body as blocks of bytes, read with as few Python steps per byte as the socket allows.

Over TLS a socket read returns one record (16 KiB) at a time, so reading
through urllib3's ``read1`` costs a pass through three libraries per 16
KiB; the Python overhead, not the decryption, then bounds the transfer. When
the body is a plain one with a known length (the usual case for a file),
:func:`body` fills each block itself, one socket read after another into the
same buffer, and keeps http.client's count of what is left, so the
connection goes back to the pool for the next request once the body is done.
Anything else (chunked, encoded, no length, not urllib3 and http.client
underneath, a ``file://`` answer) is read through ``read1``.

Either way a cut connection loses nothing already received: a block is
handed on with the bytes that arrived before the error, and the error is
raised after it.
"""

import errno
import http.client
import os
import time

import requests
import urllib3

from magedl.service import sniff

READ_ERRORS = (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError)
# A block is handed on after this long even if not full, so progress, the
# rate limit and a cancel keep their rhythm on a slow link.
FILL_TIME = 0.05


def encoded(headers) -> bool:
    """Whether a response body comes in a content coding (gzip...) instead of as the file's bytes."""
    return headers.get("Content-Encoding", "identity").lower() not in ("identity", "")


def body(response, chunk: int):
    """The body's bytes as they arrive, at most *chunk* at a time (``bytes`` or ``bytearray``)."""
    plain = _plain(response)
    if plain is not None:
        yield from _fill(response.raw, plain, chunk)
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


def _fill(raw, hc, chunk):
    fp = hc.fp
    while hc.length:
        size = min(chunk, hc.length)
        block = bytearray(size)
        filled, error = 0, None
        deadline = time.monotonic() + FILL_TIME
        with memoryview(block) as view:
            try:
                while filled < size:
                    n = fp.readinto1(view[filled:])
                    if not n:
                        break  # the server closed early: the caller sees a short body
                    filled += n
                    if time.monotonic() > deadline:
                        break
            except (OSError, ValueError) as exc:  # ValueError: the response was closed under us
                error = exc
        hc.length -= filled
        if filled < size:
            del block[filled:]
        if not hc.length:
            # All of it read: close http.client's side and give the connection back to the pool.
            hc.close()
            release = getattr(raw, "release_conn", None)
            if release is not None:
                release()
        if filled:
            yield block
        if error is not None:
            raise error if isinstance(error, OSError) else OSError(errno.EBADF, str(error))
        if not filled:
            return


def first_bytes(blocks):
    """Enough of the body to tell what it is (:data:`magedl.service.sniff.HEAD_SIZE`)."""
    head = b""
    for block in blocks:
        head += block
        if len(head) >= sniff.HEAD_SIZE:
            break
    return head


def prepend(head, blocks):
    """*head*, then *blocks*."""
    if head:
        yield head
    yield from blocks


def write_all(fd: int, data, at: int) -> None:
    """``pwrite`` all of *data*: a nearly full disk may take only part of it, then fail the rest."""
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, at)
        if n <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view, at = view[n:], at + n
