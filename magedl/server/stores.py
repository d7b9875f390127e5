"""What the server serves: a catalogue and its files, from memory or from a mirror folder."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import BinaryIO, Dict, List, Optional, Protocol, Tuple

from magedl.errors import FeedError, UnsafeSourceError
from magedl.mirror.composer.index import MAX_METADATA_BYTES, URL_FILE, read_composer_url, rewrite
from magedl.mirror.layout import COMPOSER
from magedl.safejson import DEFAULT_MAX_BYTES, parse_json
from magedl.server.snapshot import FeedSnapshot
from magedl.service.fileadapter import open_published
from magedl.text import printable

log = logging.getLogger(__name__)

__all__ = ["FileInfo", "Store", "MemoryStore", "DirStore", "fingerprint", "rebased"]


@dataclass(frozen=True)
class FileInfo:
    """What a store knows about one file.

    Attributes
    ----------
    size : int
        Length in bytes.
    etag : str
        Strong entity tag, quotes included (``'"5f2a-1c"'``).
    last_modified : float
        Modification time, epoch seconds.
    """

    size: int
    etag: str
    last_modified: float


class Store(Protocol):
    """What :class:`~magedl.server.app.ApiServer` needs from a catalogue and its files."""

    def index(self) -> FeedSnapshot:
        """Return the feed as it is now, parsed (the same object while the feed does not change)."""

    def feed(self) -> dict:
        """Return the JSON feed (the body of ``info/json``)."""

    def releases(self) -> list:
        """Return the feed parsed into :class:`magedl.service.catalog.Release`."""

    def get(self, file_name: str) -> Optional[Tuple[FileInfo, BinaryIO]]:
        """Return a file's info and an open binary file taken together, or None when not served."""


class MemoryStore:
    """A thread-safe in-memory catalogue: a feed and the files' bytes.

    Parameters
    ----------
    feed : dict
        The JSON feed.  Copied; :meth:`replace` keeps its md5s current.
    files : dict of str to bytes
        Content by file name.  Only names present here are served.
    """

    def __init__(self, feed: dict, files: Dict[str, bytes]):
        self._lock = threading.Lock()
        self._feed = json.loads(json.dumps(feed))
        self._files = dict(files)
        start = int(time.time())
        self._meta = {name: self._make_info(data, 1, start) for name, data in self._files.items()}
        self._generation = {name: 1 for name in self._files}
        self._snapshot: Optional[FeedSnapshot] = None  # made on first use, dropped when the feed changes

    @staticmethod
    def _make_info(data, generation, mtime):
        digest = hashlib.md5(data).hexdigest()[:16]
        return FileInfo(len(data), f'"{digest}-{generation}"', float(mtime))

    def index(self) -> FeedSnapshot:
        with self._lock:
            if self._snapshot is None:
                self._snapshot = FeedSnapshot(json.loads(json.dumps(self._feed)))
            return self._snapshot

    def feed(self) -> dict:
        with self._lock:
            return json.loads(json.dumps(self._feed))

    def releases(self) -> list:
        return list(self.index().releases)

    def names(self) -> List[str]:
        """Return the names of the files held."""
        with self._lock:
            return sorted(self._files)

    def data(self, file_name: str) -> bytes:
        """Return a file's current bytes (KeyError when absent)."""
        with self._lock:
            return self._files[file_name]

    def stat(self, file_name: str) -> Optional[FileInfo]:
        """Return a file's info, or None when it is not held."""
        with self._lock:
            return self._meta.get(file_name)

    def get(self, file_name: str) -> Optional[Tuple[FileInfo, BinaryIO]]:
        with self._lock:
            if file_name not in self._files:
                return None
            return self._meta[file_name], io.BytesIO(self._files[file_name])

    def replace(self, file_name: str, data: bytes, update_md5: bool = True) -> None:
        """Swap a file's content, as when Adobe re-publishes a release.

        The ETag changes and Last-Modified moves forward by at least one
        second (HTTP dates have whole-second resolution, and a client
        comparing dates must see the change).

        Parameters
        ----------
        file_name : str
        data : bytes
        update_md5 : bool
            Also rewrite the md5 of every feed entry for this file; False
            simulates a feed that lags behind the files.
        """
        with self._lock:
            old = self._meta.get(file_name)
            gen = self._generation.get(file_name, 0) + 1
            mtime = int(time.time())
            if old is not None:
                mtime = max(mtime, int(old.last_modified) + 1)
            self._files[file_name] = bytes(data)
            self._generation[file_name] = gen
            self._meta[file_name] = self._make_info(data, gen, mtime)
            if update_md5:
                _set_feed_md5(self._feed, file_name, hashlib.md5(data).hexdigest())
                self._snapshot = None

    def remove(self, file_name: str) -> None:
        """Forget a file's bytes (the feed still lists it)."""
        with self._lock:
            self._files.pop(file_name, None)
            self._meta.pop(file_name, None)


def _set_feed_md5(node, file_name, md5):
    if isinstance(node, dict):
        if node.get("file_name") == file_name:
            node["md5"] = md5
            return
        for value in node.values():
            _set_feed_md5(value, file_name, md5)
    elif isinstance(node, list):
        for value in node:
            _set_feed_md5(value, file_name, md5)


_SHORTAGES = (errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS, errno.EAGAIN)


class RebasedCache:
    """Composer documents as rebased for one address, kept while their file is unchanged; bounded in bytes.

    Rebasing parses and re-encodes a document, and ``packages.json`` grows
    with the mirror. Kept here, each version is rebased once per address
    (most sites have one or two); past the byte budget the least recently
    used go first.
    """

    def __init__(self, max_bytes: int = 64 << 20):
        self.max_bytes = max_bytes
        self._items: "OrderedDict[tuple, tuple]" = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple):
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: tuple, value, size: int) -> None:
        if size > self.max_bytes // 4:
            return  # one huge document must not push out everything else
        with self._lock:
            old = self._items.pop(key, None)
            self._bytes -= old[1] if old else 0
            self._items[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped


def fingerprint(st: os.stat_result) -> tuple:
    """What tells one version of a file from another without reading it.

    The inode changes when a file is replaced (a mirror run renames a new
    ``info/json`` into place); size and modification time change when it is
    edited in place; the change time moves with any write, link or
    ``touch -d`` that would put the modification time back.
    """
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def rebased(rel: str) -> bool:
    """Whether ``composer/<rel>`` holds URLs that are re-based on where the client reaches the mirror."""
    return rel == "packages.json" or rel.startswith("p2/") and rel.endswith(".json")


class DirStore:
    """A mirror folder: ``root/info/json``, ``root/file/<file_name>`` and ``root/composer/...``.

    Each request sees the folder as it is now (a mirror updated in place is
    served as updated). The feed is parsed once per version: each request
    compares ``info/json``'s fingerprint (one ``stat``) with the version
    parsed last, so an unchanged feed is never read again, however large.
    Only names the feed lists are served, and every file is read with
    :func:`magedl.service.fileadapter.open_published`: no link followed out
    of the folder, regular files with no other name only, never a partial
    download, sidecar, lock or ``.magedl/`` bookkeeping, even when a
    hand-edited feed lists one. A refused file is a 404 for the client and
    a warning (once per file and reason) in the server's log.

    Parameters
    ----------
    root : str or os.PathLike
    """

    FEED = "info/json"

    def __init__(self, root):
        self.root = os.path.abspath(os.fspath(root))
        self._feed_path = os.path.join(self.root, *self.FEED.split("/"))
        self._lock = threading.Lock()
        self._snapshot = FeedSnapshot({})
        self._warned: set = set()
        self.parses = 0  # how many times the feed was read and parsed (the tests count them)
        self._rebased = RebasedCache()

    def _warn(self, rel: str, why: str) -> None:
        with self._lock:
            if (rel, why) in self._warned or len(self._warned) > 10_000:
                return
            self._warned.add((rel, why))
        log.warning("serve: %s: not served: %s", printable(rel), why)

    def open(self, rel: str) -> Optional[Tuple[BinaryIO, os.stat_result]]:
        """Open ``root/rel`` under the publishing rules; None (logged) when missing or refused.

        Raises
        ------
        OSError
            A shortage that passes (out of file descriptors or memory): the
            server answers 503, not "not found".
        """
        try:
            return open_published(self.root, rel)
        except FileNotFoundError:
            return None
        except UnsafeSourceError as exc:
            self._warn(rel, exc.reason)
        except OSError as exc:
            if exc.errno in _SHORTAGES:
                raise
            self._warn(rel, exc.strerror or type(exc).__name__)
        return None

    def index(self) -> FeedSnapshot:
        # A path stat that matches the version parsed last means the same file, unchanged: that
        # file was opened under the publishing rules when it was parsed (a link now in its place,
        # or a second name, would change the fingerprint and send it through them again).
        try:
            key = fingerprint(os.stat(self._feed_path, follow_symlinks=False))
        except OSError:
            key = None
        with self._lock:
            if key is not None and self._snapshot.fingerprint == key:
                return self._snapshot
        opened = self.open(self.FEED)
        if opened is None:
            return self._keep(FeedSnapshot({}))
        fh, st = opened
        with fh:
            return self._parse(fh, st)

    def current(self) -> Optional[FeedSnapshot]:
        """The snapshot parsed last if ``info/json`` is still that version (one ``stat``), else None."""
        try:
            key = fingerprint(os.stat(self._feed_path, follow_symlinks=False))
        except OSError:
            return None
        snapshot = self._snapshot
        return snapshot if snapshot.fingerprint == key else None

    def _parse(self, fh: BinaryIO, st: os.stat_result) -> FeedSnapshot:
        key = fingerprint(st)
        with self._lock:
            if self._snapshot.fingerprint == key:
                return self._snapshot
        try:
            data = fh.read(DEFAULT_MAX_BYTES + 1)
            if len(data) > DEFAULT_MAX_BYTES:
                raise FeedError(f"larger than the {DEFAULT_MAX_BYTES}-byte limit for metadata")
            feed = parse_json(data, self.FEED)
        except FeedError as exc:
            self._warn(self.FEED, str(exc).partition("info/json: ")[2] or str(exc))
            feed = None
        with self._lock:
            self.parses += 1
        return self._keep(FeedSnapshot(feed if isinstance(feed, dict) else {}, key, readable=feed is not None))

    def _keep(self, snapshot: FeedSnapshot) -> FeedSnapshot:
        with self._lock:
            self._snapshot = snapshot
        return snapshot

    def feed(self) -> dict:
        return self.index().feed

    def releases(self) -> list:
        return list(self.index().releases)

    def feed_file(self) -> Optional[Tuple[FileInfo, BinaryIO]]:
        """``info/json`` itself, to send as it is, or None when missing or unreadable as a feed."""
        opened = self.open(self.FEED)
        if opened is None:
            return None
        fh, st = opened
        try:
            snapshot = self._parse(fh, st)  # the version parsed last, when this is that one
        except BaseException:
            fh.close()
            raise
        if not snapshot.readable:  # clients get the empty feed instead
            fh.close()
            return None
        return self.file_info(st), fh

    @staticmethod
    def file_info(st) -> FileInfo:
        # Like nginx (mtime-size in hex), but with nanoseconds so a file
        # rewritten within the same second still gets a new tag.
        return FileInfo(st.st_size, f'"{st.st_mtime_ns:x}-{st.st_size:x}"', float(int(st.st_mtime)))

    def static(self, rel: str) -> Optional[Tuple[FileInfo, BinaryIO]]:
        """Any file the folder publishes, ``root/<rel>`` (pages, styles), under the publishing rules, or None."""
        opened = self.open(rel)
        if opened is None:
            return None
        fh, st = opened
        return self.file_info(st), fh

    def composer(self, rel: str, reached_at: Optional[str] = None) -> Optional[Tuple[FileInfo, BinaryIO]]:
        """A file of the mirror's Composer part, ``composer/<rel>``, or None.

        ``packages.json`` and ``p2/**.json`` were written for the mirror's
        ``--composer-url``; with *reached_at* (where this client reaches
        ``composer/``), their URLs are re-based on it, so any host name works.
        A rebased body is kept (:class:`RebasedCache`) while neither the file
        nor the recorded URL changes.
        """
        opened = self.open(f"{COMPOSER}/{rel}")
        if opened is None:
            return None
        fh, st = opened
        if reached_at is None or not rebased(rel):
            return self.file_info(st), fh
        try:
            url_key = fingerprint(os.stat(os.path.join(self.root, URL_FILE), follow_symlinks=False))
        except OSError:
            url_key = None
        key = (rel, fingerprint(st), reached_at, url_key)
        cached = self._rebased.get(key)
        if cached is not None:
            fh.close()
            info, data = cached
            return info, io.BytesIO(data)
        with fh:
            data = fh.read(MAX_METADATA_BYTES + 1)
        if len(data) > MAX_METADATA_BYTES:
            self._warn(f"{COMPOSER}/{rel}", f"larger than the {MAX_METADATA_BYTES}-byte limit for metadata")
            return None
        written_for = read_composer_url(self.root)
        if written_for and written_for != reached_at:
            data = rewrite(data, written_for, reached_at)
        # The body depends on the client's Host: its tag is the body's hash.
        etag = f'"{hashlib.sha256(data).hexdigest()[:24]}"'
        info = FileInfo(len(data), etag, float(int(st.st_mtime)))
        self._rebased.put(key, (info, data), len(data))
        return info, io.BytesIO(data)

    def get(self, file_name: str) -> Optional[Tuple[FileInfo, BinaryIO]]:
        """Open first, then fstat, so info and bytes belong together."""
        if file_name not in self.index().names:
            return None
        opened = self.open("file/" + file_name)
        if opened is None:
            return None
        fh, st = opened
        return self.file_info(st), fh
