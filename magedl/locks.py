"""One exclusive lock: an flock on a side file, opened without following links.

Rule: a per-file lock (``NAME.magedl-lock``) is unlinked on release and its taker re-checks it locked
the file still at the path; a mirror's lock (``DIR/.magedl/lock``) is never unlinked, since that would
let two runs lock two different files. The kernel drops an flock when its process dies, so a killed run
never blocks the next.
"""

import errno
import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import List

from magedl.errors import BusyError
from magedl.fsutil import FILE_MODE, open_nofollow, open_regular
from magedl.paths import LOCK_SUFFIX

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None

log = logging.getLogger(__name__)


class FileLock:
    """An exclusive, non-blocking flock on *path*.

    Parameters
    ----------
    path : path-like
        The lock file; a symlink planted there is refused (``ELOOP``).
    busy_message : str
        The :class:`~magedl.errors.BusyError` message when another process holds it;
        ``{holder}`` is replaced by who holds it, when known.
    keep : bool
        Keep the file on release and record the holder in it (mirror lock).
    """

    def __init__(self, path, busy_message, *, keep=False):
        self.path = path
        self.busy_message = busy_message
        self.keep = keep
        self._fd = None

    def __enter__(self):
        while True:
            fd = open_nofollow(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
            if fcntl is None:  # pragma: no cover - not on POSIX
                self._fd = fd
                return self
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                holder = _holder(os.pread(fd, 4096, 0)) if self.keep else "another process"
                os.close(fd)
                raise BusyError(self.busy_message.format(holder=holder)) from None
            # The holder we waited on may have unlinked the file before unlocking it: a
            # lock on that orphan protects nothing, so lock the file at the path instead.
            try:
                if os.stat(self.path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        self._fd = fd
        if self.keep:
            since = time.strftime("%Y-%m-%d %H:%M:%S %Z")
            info = {"pid": os.getpid(), "host": socket.gethostname(), "since": since}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode() + b"\n", 0)
        return self

    def __exit__(self, *exc):
        try:
            if self.keep:
                os.ftruncate(self._fd, 0)
            else:
                # Unlink before unlocking, so a waiter never locks a file we then delete.
                os.unlink(self.path)
        except OSError:
            pass
        os.close(self._fd)


def is_held(path):
    """Whether a running process holds the flock on *path*: True, False, or None when it is no regular file.

    The one probe for a lock another process may hold (``doctor`` asks it of
    every ``*.magedl-lock``): opened read-only, non-blocking and without
    following a link, so a FIFO or device named like a lock cannot hang it.
    """
    opened = open_regular(path)
    if opened is None:
        return None
    fd = opened[0]
    try:
        if fcntl is None:  # pragma: no cover - not on POSIX
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        return False
    finally:
        os.close(fd)  # closing releases a lock we took


@dataclass(frozen=True)
class StaleLock:
    """A per-file lock (``NAME.magedl-lock``) no process holds: a killed run's; or an entry only named like one."""

    name: str
    regular: bool  # False: not a regular file, so never a lock magedl made


def stale_locks(folder) -> List[StaleLock]:
    """The per-file locks in *folder* nobody holds, by name (none when it is no folder); OSError when unlistable.

    Each is probed with :func:`is_held`, so a lock a running download holds is not one.
    """
    names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    found = []
    for name in names:
        if name.endswith(LOCK_SUFFIX):
            held = is_held(os.path.join(folder, name))
            if not held:
                found.append(StaleLock(name, regular=held is not None))
    return found


def _holder(raw):
    try:
        info = json.loads(raw.decode("utf-8"))
        return f"pid {info['pid']} on {info['host']} since {info['since']}"
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return "pid unknown"
