"""Writing replies to a client's socket, and reading the request bodies nobody needs.

Rule: a write that makes no progress for ``io_timeout`` seconds fails. Why ``sendfile`` and the
kernel's socket timeouts: see docs/design.md, "Notes: the server".
"""

from __future__ import annotations

import io
import os
import socket
import struct
from typing import Optional, Tuple

from magedl.server.http import Reply, reply_head

__all__ = ["CHUNK", "MAX_DRAINED_BODY", "drain", "prepare", "send_file", "send_reply"]

CHUNK = 64 * 1024
#: A request body up to this size is read and dropped (keep-alive goes on); a larger one ends the connection.
MAX_DRAINED_BODY = 1 << 20
#: Most bytes one sendfile call is asked for (Linux sends at most about 2 GiB per call anyway).
_SENDFILE_MAX = 1 << 30
_MORE = getattr(socket, "MSG_MORE", 0)


def prepare(sock: socket.socket, io_timeout: float) -> bool:
    """Make *sock* blocking, each read or write bounded by *io_timeout* seconds without progress.

    Returns whether the kernel bounds them (then :func:`socket.socket.setblocking`
    may switch the socket between blocking and not without losing the bound).
    """
    sock.setblocking(True)
    seconds = int(io_timeout)
    limit = struct.pack("ll", seconds, int((io_timeout - seconds) * 1e6))
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, limit)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, limit)
    except (OSError, AttributeError):
        sock.settimeout(io_timeout)
        return False
    return True


def plain_file(stream) -> Optional[int]:
    """The descriptor of *stream* when it is a plain open file (not a wrapper a hook put there), else None."""
    if type(stream) not in (io.BufferedReader, io.FileIO):
        return None
    try:
        return stream.fileno()
    except (OSError, ValueError):
        return None


def send_reply(sock: socket.socket, reply: Reply, close: bool) -> Tuple[int, bool]:
    """Write *reply* (closing its stream); return (body bytes sent, whether the body was cut short).

    A file that ends before ``reply.length`` bytes (it shrank while being
    sent) ends the connection: the client sees a short body, never a wrong one.
    """
    head = reply_head(reply, close)
    sent = 0
    try:
        if not reply.send_body or reply.content_length == 0:
            sock.sendall(head)
            return 0, False
        if reply.stream is None:
            sock.sendall(head + reply.body)
            return len(reply.body), False
        fd = plain_file(reply.stream)
        if fd is not None and sock.gettimeout() is not None:
            # No kernel timeouts on this system: Python's sendfile, which waits with poll.
            sock.sendall(head)
            sent = sock.sendfile(reply.stream, reply.offset, reply.length)
        elif fd is not None:
            sock.sendall(head, _MORE)
            sent = send_file(sock, fd, reply.offset, reply.length)
        else:
            sock.sendall(head)
            reply.stream.seek(reply.offset)
            while sent < reply.length:
                data = reply.stream.read(min(CHUNK, reply.length - sent))[:reply.length - sent]
                if not data:
                    break
                sock.sendall(data)
                sent += len(data)
        if sent < reply.length:
            sock.shutdown(socket.SHUT_RDWR)
            return sent, True
    except OSError:  # the client left, or stopped reading for io_timeout
        return sent, True
    finally:
        if reply.stream is not None:
            reply.stream.close()
    return sent, False


def send_file(sock: socket.socket, fd: int, offset: int, length: int) -> int:
    """Send *length* bytes of the file *fd* from *offset* with ``sendfile``; the bytes sent (fewer: it ended early).

    On a blocking socket this waits (each wait bounded by the socket's kernel
    timeout); on a non-blocking one it stops where the socket's buffer is full.
    """
    out = sock.fileno()
    sent = 0
    try:
        while sent < length:
            n = os.sendfile(out, fd, offset + sent, min(length - sent, _SENDFILE_MAX))
            if n == 0:  # the file ended early
                break
            sent += n
    except BlockingIOError:
        pass
    return sent


def drain(sock: socket.socket, rest: bytes, length: int) -> Optional[bytes]:
    """Read and drop a request body; the bytes past it, or None when the connection must end."""
    if length <= len(rest):
        return rest[length:]
    if length > MAX_DRAINED_BODY:
        return None
    left = length - len(rest)
    while left > 0:
        chunk = sock.recv(min(left, CHUNK))
        if not chunk:
            return None
        left -= len(chunk)
    return b""
