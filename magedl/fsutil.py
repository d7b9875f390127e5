"""How magedl opens, creates and replaces files: never through a planted link.

Rule: every file magedl writes is opened here; created files are opened with ``O_NOFOLLOW`` (and
``O_EXCL`` when new) with explicit modes, replacements go through a temporary file and a rename, and a
folder that came from elsewhere is walked relative to directory descriptors, regular files only. The
threats each rule closes: docs/security.md, sections 2 and 3.
"""

import errno
import os
import secrets
import stat
from pathlib import Path

DIR_MODE = 0o755
FILE_MODE = 0o644
SECRET_MODE = 0o600

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


class NotRegularFile(OSError):
    """The path is a link, a FIFO, a device or a folder where a plain file was expected."""


def file_in_the_way(path):
    """The part of *path* that exists and is a file, so no folder can be made there (``afile`` of
    ``afile/sub``), or None."""
    here = os.path.abspath(path)
    while True:
        if os.path.lexists(here):
            return None if os.path.isdir(here) else here
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent


def make_dirs(path, mode=DIR_MODE):
    """``mkdir -p`` whose new folders get at most *mode*, whatever the umask.

    Returns the path. A component that exists as a symlink is not replaced;
    callers that must not follow links check with :func:`refuse_symlinks`.
    """
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for folder in reversed(missing):
        try:
            # The mode is an upper bound (the umask can only narrow it), unlike
            # Path.mkdir's default 0777 that a permissive umask leaves open.
            os.mkdir(folder, mode)
        except FileExistsError:
            continue
    return path


def refuse_symlinks(root, *names):
    """Raise :class:`NotRegularFile` when ``root/name`` is a symlink, for each name."""
    for name in names:
        path = Path(root) / name
        if path.is_symlink():
            raise NotRegularFile(errno.ELOOP, "is a symbolic link", str(path))


def open_nofollow(path, flags, mode=FILE_MODE):
    """``os.open`` that refuses a symlink at *path* (``ELOOP``), close-on-exec."""
    return os.open(path, flags | _NOFOLLOW | _CLOEXEC, mode)


def create_new(path, mode=FILE_MODE):
    """Create *path*, which must not exist (not even as a dangling link); an fd for writing."""
    return open_nofollow(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)


def fsync_dir(path):
    """Make a rename in *path* durable (best effort)."""
    try:
        fd = os.open(path, os.O_RDONLY | _CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def open_regular(path):
    """``(fd, fstat)`` of *path* opened for reading if it is a regular file, else None; the caller closes *fd*.

    No link is followed and nothing waits (a FIFO named like the file cannot
    hang the caller); the check is on the open descriptor, not the name.
    """
    try:
        fd = open_nofollow(path, os.O_RDONLY | _NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
    except OSError:
        os.close(fd)
        return None
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        return None
    return fd, info


def read_if_regular(path, limit):
    """The bytes of *path* if it is a regular file of at most *limit* bytes, else None."""
    opened = open_regular(path)
    if opened is None:
        return None
    fd, info = opened
    try:
        if info.st_size > limit:
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            # Not read(limit + 1): Python allocates that much up front, whatever the file's size.
            return f.read(min(limit, info.st_size) + 1)
    finally:
        os.close(fd)


def read_regular(path, limit):
    """The bytes of *path*, which must be a regular file of at most *limit* bytes (links followed).

    For files a checkout or another user can put in place (Composer's
    ``auth.json``, ``composer.json``, ``composer.lock``): opened non-blocking,
    so a FIFO cannot hang the caller, and checked on the open descriptor, so a
    link to ``/dev/zero`` cannot fill memory.

    Raises
    ------
    FileNotFoundError, IsADirectoryError
    OSError
        Its ``strerror`` says what is wrong, for a one-line message:
        ``not a regular file (a FIFO, device or socket)``, ``larger than 1024 KiB``.
    """
    fd = os.open(path, os.O_RDONLY | _NONBLOCK | _CLOEXEC)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, "a folder, not a file", str(path))
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile(errno.EINVAL, "not a regular file (a FIFO, device or socket)", str(path))
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit // 1024:,} KiB: not the file it should be", str(path))
    return data


def temp_name(path):
    """A fresh, unguessable temporary path next to *path*."""
    path = Path(path)
    return path.with_name(f".{path.name}.magedl-tmp-{secrets.token_hex(6)}")


_COMPARE_CHUNK = 1 << 20


def same_content(path, data) -> bool:
    """Whether *path* is a regular file (not a link) holding exactly *data*.

    Compared a chunk at a time: a large index file is not read whole beside
    the bytes about to replace it.
    """
    opened = open_regular(path)
    if opened is None:
        return False
    fd, info = opened
    try:
        if info.st_size != len(data):
            return False
        view = memoryview(data)
        with os.fdopen(fd, "rb", closefd=False) as f:
            for start in range(0, len(data), _COMPARE_CHUNK):
                if f.read(_COMPARE_CHUNK) != view[start:start + _COMPARE_CHUNK]:
                    return False
            return f.read(1) == b""  # grown since the fstat: not the same
    finally:
        os.close(fd)


def atomic_write(path, data, mode=FILE_MODE, durable=True):
    """Replace *path* with *data* (bytes) by write-to-temp and rename.

    The temporary file is created exclusively (a planted link cannot catch
    the bytes) and the rename replaces whatever sits at *path*, a link
    included, without following it. An identical regular file is left alone
    (its mtime too, which keeps ``rsync`` deltas small). Returns True when
    the file changed. ``durable=False`` skips the fsyncs, for files that
    verify themselves on read (a cache named by its content's hash).
    """
    path = Path(path)
    if same_content(path, data):
        return False
    write_chunks(path, (data,), mode, durable)
    return True


def atomic_write_parts(path, parts, mode=FILE_MODE, durable=True, before_replace=None) -> bool:
    """:func:`atomic_write` of the bytes *parts* gives (a function yielding chunks, from the start each time it
    is called: once to compare them with the file there, once to write them), for a file too large to hold
    whole. *before_replace*, when given, is called once they differ, before anything is written. Returns True
    when the file changed."""
    path = Path(path)
    if _same_chunks(path, parts()):
        return False
    if before_replace is not None:
        before_replace()
    write_chunks(path, parts(), mode, durable)
    return True


def _same_chunks(path, chunks) -> bool:
    """Whether *path* is a regular file (not a link) holding exactly the bytes of *chunks*, in turn."""
    opened = open_regular(path)
    if opened is None:
        return False
    fd, _ = opened
    try:
        with os.fdopen(fd, "rb", closefd=False) as f:
            for chunk in chunks:
                if f.read(len(chunk)) != chunk:
                    return False
            return f.read(1) == b""
    finally:
        os.close(fd)


def write_chunks(path, chunks, mode=FILE_MODE, durable=True) -> None:
    """Replace *path* with the bytes of *chunks* (an iterable) by write-to-temp and rename, as :func:`atomic_write`.

    For a file too large to hold whole: the chunks are written as they come. No
    comparison with what is there; ``durable=False`` skips the fsyncs.
    """
    path = Path(path)
    make_dirs(path.parent)
    tmp = temp_name(path)
    try:
        fd = create_new(tmp, mode)
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if durable:
        fsync_dir(path.parent)


def open_within(root, rel_parts, *, dir_fd=None):
    """Open the regular file ``root/rel_parts...`` for reading, following no link.

    Each folder is opened relative to the one before with ``O_NOFOLLOW``, so
    a symlink anywhere below *root* (``file/root -> /``) ends the walk with
    :class:`NotRegularFile` instead of leading out of the folder. The file is
    opened non-blocking (a FIFO would otherwise hang the open), checked to be
    a regular file with ``fstat``, then switched back to blocking reads.

    Returns
    -------
    int
        A file descriptor; the caller closes it.

    Raises
    ------
    FileNotFoundError
        A component is missing.
    NotRegularFile
        A component is a link, or the target is not a regular file.
    """
    parts = [p for p in rel_parts if p not in ("", ".")]
    if not parts or any(p == ".." or "/" in p for p in parts):
        raise NotRegularFile(errno.EINVAL, "not a plain relative path", "/".join(parts))
    fd = dir_fd if dir_fd is not None else os.open(root, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    own = [fd] if dir_fd is None else []
    try:
        for part in parts[:-1]:
            try:
                fd = os.open(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=fd)
            except OSError as exc:
                raise _walk_error(exc, parts) from None
            own.append(fd)
        try:
            file_fd = os.open(parts[-1], os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC, dir_fd=fd)
        except OSError as exc:
            raise _walk_error(exc, parts) from None
    finally:
        for d in own:
            os.close(d)
    if not stat.S_ISREG(os.fstat(file_fd).st_mode):
        os.close(file_fd)
        raise NotRegularFile(errno.EINVAL, "not a regular file", "/".join(parts))
    os.set_blocking(file_fd, True)
    return file_fd


def _walk_error(exc, parts):
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
        return NotRegularFile(errno.ELOOP, "a symbolic link or not a folder on the way", "/".join(parts))
    return exc
