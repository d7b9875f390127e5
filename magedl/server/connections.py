"""One connection of the server: its limits, its state, and reading its next request head.

The loop that holds the connections is :mod:`magedl.server.loop`. Rule: the limits (cap, deadlines,
head size) are one frozen value, :class:`Limits`; the connection cap leaves a file descriptor for each
held connection's file. See docs/design.md, "Notes: the server".
"""

from __future__ import annotations

import logging
import select
import socket
import time
from dataclasses import dataclass
from typing import Optional

from magedl.server.http import MAX_HEAD, BadRequest, HeadReader

log = logging.getLogger(__name__)

#: File descriptors kept for the process itself (listener, selector, logs, folder walks).
FD_RESERVE = 32


def connection_budget(limit: int, reserve: int = 0) -> int:
    """*limit*, lowered so that each held connection can also open a file within RLIMIT_NOFILE.

    *reserve*: descriptors kept open besides (the quick path's open files).
    """
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, ValueError, OSError):
        return limit
    if soft == resource.RLIM_INFINITY:
        return limit
    return max(1, min(limit, (soft - FD_RESERVE - reserve) // 2))


@dataclass(frozen=True)
class Limits:
    """What one client may hold of the server.

    Attributes
    ----------
    max_connections : int
        Connections held at once (waiting for a head or being answered).
    head_timeout : float
        Seconds from a new connection (or the first byte of a keep-alive
        connection's next request) to the end of the request head.
    idle_timeout : float
        Seconds a keep-alive connection may wait for its next request.
    max_head : int
        Largest request head in bytes.
    io_timeout : float
        Seconds one write of a reply (or read of a request body) may block.
    backlog : int
        The kernel's queue of connections not yet accepted.
    linger : float
        Seconds a worker waits for a keep-alive connection's next request
        before handing the connection back to the loop (0: at once); at once
        where the loop answers the common request itself (a mirror folder).
    """

    max_connections: int = 256
    head_timeout: float = 10.0
    idle_timeout: float = 30.0
    max_head: int = MAX_HEAD
    io_timeout: float = 60.0
    backlog: int = 128
    linger: float = 0.005


class Connection:
    """One client connection and the request head being read from it."""

    def __init__(self, sock: socket.socket, client: tuple, deadline: float, leftover: bytes = b""):
        self.sock = sock
        self.client = client
        self.deadline = deadline
        self.reader: Optional[HeadReader] = None
        self.leftover = leftover
        self.waiting_since = time.monotonic()
        self.switches = False  # non-blocking while the loop holds it, blocking on a worker


def next_head(conn: "Connection", leftover: bytes, limits: Limits):
    """On a worker, after a reply: the connection's next request head if it is in (or comes within ``linger``).

    Returns ``(head, rest)`` for a whole head, or ``(None, data)``: the
    connection goes back to the loop with *data* (a partial or refused head,
    which the loop goes on with), or is closed when *data* is None (the
    client closed it). A head that is not whole at once is always left to
    the loop, whose deadlines bound how long it may take.
    """
    data = leftover
    if not data:
        poller = select.poll()
        poller.register(conn.sock, select.POLLIN)
        if not poller.poll(int(limits.linger * 1000)):
            return None, b""
        try:
            data = conn.sock.recv(65536, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return None, b""
        except OSError:
            return None, None
        if not data:
            return None, None
    reader = HeadReader(limits.max_head)
    try:
        end = reader.feed(data)
    except BadRequest:
        return None, data  # the loop refuses it, as any bad head
    if end is None:
        return None, data
    return data[:end], data[end:]
