"""Durable file updates: write-to-temp and rename, and fsync of the folder."""

import os
import threading
from pathlib import Path


def fsync_dir(path):
    """Make a rename in *path* durable (best effort)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, data):
    """Replace *path* with *data* (bytes) by write-to-temp and rename.

    An identical file is left alone (its mtime too, which keeps ``rsync``
    deltas small). Returns True when the file changed.
    """
    path = Path(path)
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(path.parent)
    return True
