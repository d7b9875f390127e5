"""A requests transport for ``file://`` base URLs, so a mirror folder works like a server.

It answers the way a static web server would (200, 206 for a single Range,
404, Content-Length, Last-Modified), which lets the transfer engine treat a
folder on a USB disk exactly as it treats the real service.
"""

import email.utils
import io
import os
import re
from urllib.parse import unquote, urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


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


class FileAdapter(BaseAdapter):
    """Serve GET and HEAD for ``file://`` URLs."""

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        parts = urlsplit(request.url)
        path = unquote(parts.path)
        response = requests.Response()
        response.url = request.url
        response.request = request
        response.headers = CaseInsensitiveDict()
        if request.method not in ("GET", "HEAD"):
            return self._status(response, 405, "Method Not Allowed")
        if parts.netloc not in ("", "localhost") or ".." in path.split("/"):
            return self._status(response, 404, "Not Found")
        try:
            f = open(path, "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return self._status(response, 404, "Not Found")
        except PermissionError:
            return self._status(response, 403, "Forbidden")
        size = os.fstat(f.fileno()).st_size
        start, length, status = 0, size, 200
        match = _RANGE.match(request.headers.get("Range", "") or "")
        if match:
            start = int(match.group(1))
            end = int(match.group(2)) if match.group(2) else size - 1
            if start >= size:
                f.close()
                response.headers["Content-Range"] = f"bytes */{size}"
                return self._status(response, 416, "Range Not Satisfiable")
            end = min(end, size - 1)
            length, status = end - start + 1, 206
            response.headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        response.status_code = status
        response.reason = "Partial Content" if status == 206 else "OK"
        response.headers["Content-Length"] = str(length)
        response.headers["Accept-Ranges"] = "bytes"
        response.headers["Last-Modified"] = email.utils.formatdate(os.fstat(f.fileno()).st_mtime, usegmt=True)
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
