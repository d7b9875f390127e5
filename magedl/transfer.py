"""One file from URL to disk: partial file, Range resume, retries, md5 as bytes arrive.

The life of a download::

    NAME.magedl-lock        held (flock) while a process works on NAME
    NAME.magedl-part        the bytes received so far
    NAME.magedl-part.json   what is needed to resume safely: URL, md5, size, validators
    NAME                    appears (atomic rename) only once complete and verified

A later run resumes ``.magedl-part`` with ``Range`` + ``If-Range`` when the
server supports it and the file is unchanged upstream, and starts over
otherwise. Nothing here prints: progress goes to a callback and warnings to
the ``magedl`` logger.
"""

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import requests
import urllib3

from . import sniff
from .api import transient_from
from .errors import (
    ChecksumMismatch,
    MagedlError,
    NotAnArchive,
    TransientError,
    UnverifiedFile,
)
from .paths import LOCK_SUFFIX, PART_SUFFIX, STATE_SUFFIX, side_file

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None

log = logging.getLogger("magedl")

CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.I)


@dataclass
class Progress:
    """What a progress callback receives.

    Attributes
    ----------
    file_name : str
    done : int
        Bytes of the file present (including resumed ones).
    total : int or None
        Full size, once known.
    resumed_from : int
        Bytes that were already on disk when this run started.
    event : str
        ``start``, ``data``, ``restart``, ``done`` or ``skip``.
    """

    file_name: str
    done: int
    total: "int | None"
    resumed_from: int = 0
    event: str = "data"


@dataclass
class Result:
    """Outcome of :func:`download`."""

    path: Path
    size: int
    md5: str
    resumed_from: int = 0
    skipped: bool = False
    verified: bool = True


def md5_file(path, chunk=CHUNK):
    """md5 of a file on disk, hex."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


class FileLock:
    """An exclusive, non-blocking flock on a side file.

    The kernel drops it when the process dies, so a killed run never leaves
    a lock that blocks the next one.
    """

    def __init__(self, path):
        self.path = path
        self._fd = None

    def __enter__(self):
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(self._fd)
                self._fd = None
                raise MagedlError(f"another magedl process is already downloading {self.path.name[:-len(LOCK_SUFFIX)]}") from None
        return self

    def __exit__(self, *exc):
        # Unlink before unlocking, so a waiter never locks a file we then delete.
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self._fd)


def _write_json_atomic(path, data):
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def _fsync_dir(path):
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


class Download:
    """Fetch one file to *dest*; see :func:`download` for the parameters."""

    def __init__(self, client, url, dest, *, file_name, md5="", require_checksum=False, progress=None):
        self.client = client
        self.url = url
        self.dest = Path(dest)
        self.file_name = file_name
        self.md5 = (md5 or "").lower()
        self.suffix = _suffix(file_name)
        self.require_checksum = require_checksum
        self.progress = progress or (lambda p: None)
        self.part = side_file(self.dest, PART_SUFFIX)
        self.state_path = side_file(self.dest, STATE_SUFFIX)
        self.state = {}
        self.offset = 0
        self.total = None
        self.hasher = hashlib.md5()
        self.resumed_from = 0
        self.received = 0  # bytes received in this run, the retry budget's progress measure
        self.range_ok = True
        self.prefix_kept = False  # whether bytes from an earlier run are part of the file

    # -- driver -------------------------------------------------------------

    def run(self):
        if self.require_checksum and not self.md5:
            raise UnverifiedFile(f"{self.file_name}: the feed has no md5 for it and --require-checksum was given")
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(side_file(self.dest, LOCK_SUFFIX)):
            existing = self._existing()
            if existing:
                return existing
            self._load_partial()
            self.resumed_from = self.offset
            self._emit("start")
            for restart in (False, True):
                self.client.retry.call(self._attempt, self.file_name, progress=lambda: self.received)
                digest = self.hasher.hexdigest()
                if not self.md5 or digest == self.md5:
                    break
                if self.prefix_kept and not restart:
                    # The kept prefix may be stale (re-published file, no validators): start over once.
                    log.warning("%s: md5 mismatch after resume; fetching the whole file again", self.file_name)
                    self._reset()
                    self.resumed_from = 0
                    self._emit("restart")
                    continue
                error = self._mismatch(digest)
                self._discard()
                raise error
            return self._finish(digest)

    def _existing(self):
        """A finished file already at the destination, if it is the right one."""
        if not self.dest.is_file():
            return None
        if not self.md5:
            log.warning("%s: already present; the feed has no md5, so it is not re-checked", self.file_name)
            size = self.dest.stat().st_size
            self._emit("skip", done=size, total=size)
            return Result(self.dest, size, "", skipped=True, verified=False)
        if md5_file(self.dest) == self.md5:
            size = self.dest.stat().st_size
            self._emit("skip", done=size, total=size)
            return Result(self.dest, size, self.md5, skipped=True)
        log.warning("%s: the file present differs from the feed's md5; fetching it again", self.file_name)
        return None

    def _finish(self, digest):
        with open(self.part, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(self.part, self.dest)
        _fsync_dir(self.dest.parent)
        self._remove(self.state_path)
        if not self.md5:
            log.warning("%s: the feed gives no md5: the file is UNVERIFIED (md5 %s)", self.file_name, digest)
        self._emit("done")
        return Result(self.dest, self.offset, digest, self.resumed_from, verified=bool(self.md5))

    # -- partial state ------------------------------------------------------

    def _load_partial(self):
        try:
            state = json.loads(self.state_path.read_text(encoding="utf-8"))
            size = self.part.stat().st_size
        except (OSError, ValueError):
            self._reset()
            return
        if state.get("url") != self.url or state.get("md5", "") != self.md5:
            log.info("%s: partial file is for another URL or md5; starting over", self.file_name)
            self._reset()
            return
        if state.get("size") is not None and size > state["size"]:
            self._reset()
            return
        self.state = state
        self.total = state.get("size")
        self.offset = size
        self.prefix_kept = size > 0
        with open(self.part, "rb") as f:
            for block in iter(lambda: f.read(CHUNK), b""):
                self.hasher.update(block)
        if size:
            log.debug("%s: resuming at byte %d", self.file_name, size)

    def _reset(self):
        """Forget any partial data: the next attempt starts at byte 0."""
        self.offset = 0
        self.prefix_kept = False
        self.total = None
        self.state = {}
        self.hasher = hashlib.md5()
        self._remove(self.state_path)
        self._remove(self.part)

    def _discard(self):
        self._remove(self.part)
        self._remove(self.state_path)

    @staticmethod
    def _remove(path):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    def _save_state(self, response):
        etag = response.headers.get("ETag")
        self.state = {
            "url": self.url,
            "md5": self.md5,
            "size": self.total,
            "etag": etag,
            "last_modified": response.headers.get("Last-Modified"),
        }
        _write_json_atomic(self.state_path, self.state)

    # -- one attempt --------------------------------------------------------

    def _attempt(self):
        headers = {"Accept-Encoding": "identity"}
        if self.offset and self.range_ok:
            headers["Range"] = f"bytes={self.offset}-"
            validator = self._validator()
            if validator:
                headers["If-Range"] = validator
        response = self.client.open(self.url, self.file_name, headers=headers)
        with response:
            self._accept(response)
            if self.total is not None and self.offset == self.total:
                return
            self._receive(response)

    def _validator(self):
        etag = self.state.get("etag")
        if etag and not etag.startswith("W/"):  # If-Range needs a strong validator
            return etag
        return self.state.get("last_modified")

    def _accept(self, response):
        """Decide where this response's body starts, restarting if it must."""
        status = response.status_code
        encoded = response.headers.get("Content-Encoding", "identity").lower() not in ("identity", "")
        length = response.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        if status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            start = int(match.group(1)) if match else None
            total = int(match.group(3)) if match and match.group(3) != "*" else None
            changed = self._changed(response, total)
            if start != self.offset or encoded or changed:
                why = changed or ("the server re-encoded the body" if encoded else f"the server sent a range starting at {start}, not {self.offset}")
                log.warning("%s: %s; starting over", self.file_name, why)
                self._reset()
                if encoded or start != self.offset:
                    self.range_ok = False
                raise TransientError(f"{self.file_name}: unusable partial answer")
            self.total = total
            return
        if status == 416:
            if self.total is not None and self.offset == self.total:
                return  # everything was already here
            log.warning("%s: the server refused the resume range; starting over", self.file_name)
            self._reset()
            raise TransientError(f"{self.file_name}: range not satisfiable")
        if status != 200:
            raise MagedlError(f"{self.file_name}: unexpected answer HTTP {status}")
        if self.offset:
            why = self._changed(response, length) or "the server does not resume (no Range support)"
            log.warning("%s: %s; starting over from byte 0", self.file_name, why)
            self._reset()
        self.total = None if encoded else length
        self.hasher = hashlib.md5()

    def _changed(self, response, total):
        """Why the file upstream is not the one we have a part of, or ``None``."""
        old_size, old_etag, old_date = (self.state.get(k) for k in ("size", "etag", "last_modified"))
        etag, date = response.headers.get("ETag"), response.headers.get("Last-Modified")
        if old_size is not None and total is not None and old_size != total:
            return "the file changed upstream (size differs)"
        if old_etag and etag and old_etag != etag:
            return "the file changed upstream (ETag differs)"
        if not (old_etag and etag) and old_date and date and old_date != date:
            return "the file changed upstream (Last-Modified differs)"
        return None

    def _receive(self, response):
        chunks = _body(response)
        try:
            if self.offset == 0:
                head = self._first_bytes(chunks)
                reason = sniff.refuse_reason(
                    self.suffix, head, response.headers.get("Content-Type", ""), self.total, bool(self.md5)
                )
                if reason:
                    self._discard()
                    raise NotAnArchive(f"{self.file_name}: {reason}; nothing was saved")
                chunks = _prepend(head, chunks)
            self._save_state(response)
            with open(self.part, "r+b" if self.offset else "wb") as f:
                f.seek(self.offset)
                for block in chunks:
                    f.write(block)
                    self.hasher.update(block)
                    self.offset += len(block)
                    self.received += len(block)
                    self._emit("data")
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise transient_from(exc, self.file_name) from None
        if self.total is not None and self.offset < self.total:
            raise TransientError(f"{self.file_name}: short body, {self.offset} of {self.total} bytes")
        if self.total is None:
            self.total = self.offset

    @staticmethod
    def _first_bytes(chunks):
        head = b""
        for block in chunks:
            head += block
            if len(head) >= sniff.HEAD_SIZE:
                break
        return head

    def _mismatch(self, digest):
        # A short text body is almost always an error page; say so rather than "md5 mismatch".
        if self.offset < 4096:
            try:
                head = self.part.read_bytes()
            except OSError:
                head = b""
            if sniff.is_text(head) and self.suffix not in sniff.TEXT_SUFFIXES:
                return NotAnArchive(f"{self.file_name}: the server sent a short text page ({sniff.excerpt(head)!r})")
        return ChecksumMismatch(self.file_name, self.md5, digest)

    def _emit(self, event, done=None, total=None):
        self.progress(
            Progress(
                self.file_name,
                self.offset if done is None else done,
                self.total if total is None else total,
                self.resumed_from,
                event,
            )
        )


def _body(response):
    """The body's bytes as they arrive.

    ``read1`` hands over whatever the socket has, so a cut connection loses
    nothing already received (``iter_content`` would drop a partly filled
    chunk, and the next attempt would fetch those bytes again).
    """
    read1 = getattr(response.raw, "read1", None)
    if read1 is None:  # urllib3 1.x
        yield from response.iter_content(1 << 16)
        return
    while True:
        block = read1(CHUNK, decode_content=True)
        if not block:
            return
        yield block


def _prepend(head, chunks):
    if head:
        yield head
    yield from chunks


def _suffix(file_name):
    name = file_name.rsplit("/", 1)[-1].lower()
    for compound in (".tar.gz", ".tar.bz2", ".tar.xz"):
        if name.endswith(compound):
            return compound
    return os.path.splitext(name)[1]


def download(client, url, dest, *, file_name, md5="", require_checksum=False, progress=None):
    """Download *url* to *dest*, resuming and verifying.

    Parameters
    ----------
    client : magedl.api.Client
        Session, timeouts and retry policy.
    url : str
        Where the bytes are (usually ``client.file_url(file_name)``).
    dest : path
        Final path; it appears only once the file is complete and verified.
    file_name : str
        The catalogue name, for messages and the archive-type check.
    md5 : str
        Expected md5 from the feed; ``""`` when the feed has none.
    require_checksum : bool
        Refuse a file the feed gives no md5 for.
    progress : callable, optional
        Called with a :class:`Progress` as the transfer moves.

    Returns
    -------
    Result

    Raises
    ------
    magedl.errors.MagedlError
        A typed error; the partial file is kept when a later run can resume.
    """
    return Download(
        client, url, dest, file_name=file_name, md5=md5, require_checksum=require_checksum, progress=progress
    ).run()
