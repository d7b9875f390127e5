"""Reading a mirror folder: the ``file://`` transport, and the one rule for what a folder publishes.

Rule: every file of a mirror folder that came from elsewhere is read through :func:`open_published`,
confined to the folder, no link followed, regular files of their own only, never one of magedl's side
files. :class:`FileAdapter` answers ``file://`` as a static web server would, so the transfer treats a
folder on a USB disk as it treats the service.
"""

from __future__ import annotations

import io
import os
from typing import BinaryIO, Optional, Tuple
from urllib.parse import unquote, urlsplit

from magedl.errors import UnsafeNameError, UnsafeSourceError
from magedl.fsutil import NotRegularFile, open_within
from magedl.paths import check_name
from magedl.text import printable

__all__ = ["FileAdapter", "open_published"]

# The top folders of a mirror; without a root, a file:// path is confined below the first of them.
_MIRROR_TOPS = ("info", "file", "composer")


def open_published(root, rel_path: str) -> Tuple[BinaryIO, os.stat_result]:
    """Open ``root/rel_path``, a file the mirror folder *root* publishes, for reading.

    The rules, each closing a way for a carried disk or another local user
    to make magedl read or publish what the folder does not hold:

    - *rel_path* is a plain relative name (no ``..``, ``.``, empty or absolute
      part, no control character) and names none of magedl's side files
      (``.magedl-part``, sidecars, locks, temporary files, ``.magedl/``);
    - the walk from *root* follows no symbolic link (``file/root -> /`` ends
      it), and the file must be a regular file: a FIFO, device, socket or
      folder is refused, never read (opening is non-blocking, so a FIFO
      cannot hang it);
    - the file must have no other name (one hard link): a second name is how
      a partial download, or a file the link's maker could not read, would
      otherwise be published under a name a hand-edited feed lists. A mirror
      deduplicated with hard links (``cp -al``, ``rsync --link-dest``) is
      refused file by file; copy it without links instead.

    Returns
    -------
    (file, stat_result)
        An open binary file (the caller closes it) and its ``fstat``.

    Raises
    ------
    FileNotFoundError
        Nothing at that name.
    UnsafeSourceError
        Refused by a rule above; the message names the file and why.
    OSError
        Another failure to read (permissions).
    """
    try:
        check_name(rel_path)
    except UnsafeNameError as exc:
        raise _refused(rel_path, str(exc).rpartition(": ")[2]) from None
    try:
        fd = open_within(root, rel_path.split("/"))
    except NotRegularFile as exc:
        raise _refused(rel_path, f"{exc.strerror}; a mirror folder must hold its files itself "
                                 "(no symbolic links, FIFOs or devices)") from None
    info = os.fstat(fd)
    if info.st_nlink != 1:
        os.close(fd)
        raise _refused(rel_path, f"it has {info.st_nlink} names (hard links), and another name may be a partial "
                                 "download or a file from outside the mirror; copy it without links "
                                 "(cp without -l, rsync without --link-dest)")
    return os.fdopen(fd, "rb"), info


def _refused(rel_path: str, reason: str) -> UnsafeSourceError:
    exc = UnsafeSourceError(f"{printable(rel_path)}: refused: {reason}")
    exc.reason = reason
    return exc


class _Window(io.RawIOBase):
    """A read-only view of ``length`` bytes of a file from ``start``."""

    def __init__(self, f, start, length):
        self._f = f
        self._f.seek(start)
        self._left = length

    def readable(self):
        return True

    def readinto(self, buffer):
        if self._left <= 0:
            return 0
        view = memoryview(buffer)[: self._left]
        n = self._f.readinto(view)
        self._left -= n
        return n

    def close(self):
        self._f.close()
        super().close()


class _Raw(io.BufferedReader):
    """The body, readable like urllib3's response (``read1(n, decode_content=...)``)."""

    def read1(self, size=-1, decode_content=None):
        return super().read1(size)

    def read(self, size=-1, decode_content=None):
        return super().read(-1 if size is None else size)


class FileAdapter:
    """Serve GET and HEAD for ``file://`` URLs below a mirror folder.

    A requests transport adapter by its methods (``send``, ``close``, as ``requests.adapters.BaseAdapter``
    declares them) rather than by inheritance, so that this module, whose :func:`open_published` ``verify``
    and ``serve`` use, imports no HTTP stack.

    Parameters
    ----------
    root : str, optional
        The mirror folder, as a ``file://`` URL or a path: every request must
        lie below it, and is read with :func:`open_published`. Without it, a
        path is confined below the folder holding its first ``info``, ``file``
        or ``composer`` component (the mirror's top folders).

    A file refused by :func:`open_published` raises
    :class:`~magedl.errors.UnsafeSourceError` from the request, naming the URL:
    it is a broken or hostile mirror, not a missing file, and retrying cannot help.
    """

    def __init__(self, root: Optional[str] = None):
        if root is not None and root.startswith("file:"):
            root = unquote(urlsplit(root).path)
        self.root = root.rstrip("/") if root else None

    def _split(self, path: str) -> Optional[Tuple[str, str]]:
        if self.root is not None:
            if not path.startswith(self.root + "/"):
                return None
            return self.root or "/", path[len(self.root) + 1:]
        parts = path.split("/")
        for i, part in enumerate(parts[1:], 1):
            if part in _MIRROR_TOPS:
                return "/".join(parts[:i]) or "/", "/".join(parts[i:])
        return None

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        import email.utils  # these: what answering needs, not open_published (verify, serve, signatures)

        import requests  # loaded by the session that mounted this adapter already
        from requests.structures import CaseInsensitiveDict

        from magedl.ranges import UNSATISFIABLE, parse_range

        parts = urlsplit(request.url)
        response = requests.Response()
        response.url = request.url
        response.request = request
        response.headers = CaseInsensitiveDict()
        if request.method not in ("GET", "HEAD"):
            return self._status(response, 405, "Method Not Allowed")
        where = self._split(unquote(parts.path)) if parts.netloc in ("", "localhost") else None
        if where is None:
            return self._status(response, 404, "Not Found")
        try:
            f, info = open_published(*where)
        except UnsafeSourceError as exc:
            raise UnsafeSourceError(f"{printable(request.url)}: refused: {exc.reason}") from None
        except (FileNotFoundError, NotADirectoryError):
            return self._status(response, 404, "Not Found")
        except PermissionError:
            return self._status(response, 403, "Forbidden")
        size = info.st_size
        start, length, status = 0, size, 200
        span = parse_range(request.headers.get("Range"), size)
        if span == UNSATISFIABLE:
            f.close()
            response.headers["Content-Range"] = f"bytes */{size}"
            return self._status(response, 416, "Range Not Satisfiable")
        if span is not None:
            start, end = span
            length, status = end - start + 1, 206
            response.headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        response.status_code = status
        response.reason = "Partial Content" if status == 206 else "OK"
        response.headers["Content-Length"] = str(length)
        response.headers["Accept-Ranges"] = "bytes"
        response.headers["Last-Modified"] = email.utils.formatdate(info.st_mtime, usegmt=True)
        if request.method == "HEAD":
            f.close()
            response.raw = io.BytesIO(b"")
        else:
            response.raw = _Raw(_Window(f, start, length), buffer_size=1 << 20)
        return response

    @staticmethod
    def _status(response, code, reason):
        response.status_code = code
        response.reason = reason
        response.raw = io.BytesIO(b"")
        return response

    def close(self):
        pass
