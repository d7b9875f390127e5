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
from dataclasses import dataclass
from typing import BinaryIO, Dict, List, Optional, Protocol, Tuple

from magedl.errors import FeedError, UnsafeSourceError
from magedl.mirror.composer.index import MAX_METADATA_BYTES, read_composer_url, rewrite
from magedl.mirror.layout import COMPOSER
from magedl.safejson import DEFAULT_MAX_BYTES, parse_json
from magedl.service.fileadapter import open_published
from magedl.text import printable

log = logging.getLogger(__name__)

__all__ = ["FileInfo", "Store", "MemoryStore", "DirStore", "feed_file_names"]


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

    def feed(self) -> dict:
        """Return the JSON feed (the body of ``info/json``)."""

    def releases(self) -> list:
        """Return the feed parsed into :class:`magedl.service.catalog.Release`."""

    def get(self, file_name: str) -> Optional[Tuple[FileInfo, BinaryIO]]:
        """Return a file's info and an open binary file taken together, or None when not served."""


def feed_file_names(feed: dict) -> set:
    """Collect every ``file_name`` in a feed, whatever its shape.

    Walks categories that map versions to lists as well as list-shaped ones,
    and unknown categories too, without the catalog parser: the server must
    decide what it may serve even from an odd feed.
    """
    names = set()

    def walk(node):
        if isinstance(node, dict):
            name = node.get("file_name")
            if isinstance(name, str):
                names.add(name)
                return
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(feed)
    return names


def _parse_releases(feed):
    from magedl.service.catalog import parse_feed

    return parse_feed(feed, warn=lambda *a, **k: None)


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

    @staticmethod
    def _make_info(data, generation, mtime):
        digest = hashlib.md5(data).hexdigest()[:16]
        return FileInfo(len(data), f'"{digest}-{generation}"', float(mtime))

    def feed(self) -> dict:
        with self._lock:
            return json.loads(json.dumps(self._feed))

    def releases(self) -> list:
        return _parse_releases(self.feed())

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


class DirStore:
    """A mirror folder: ``root/info/json``, ``root/file/<file_name>`` and ``root/composer/...``.

    Each request sees the folder as it is now (a mirror updated in place is
    served as updated). Only names the feed lists are served, and every file
    is read with :func:`magedl.service.fileadapter.open_published`: no link
    followed out of the folder, regular files with no other name only, never
    a partial download, sidecar, lock or ``.magedl/`` bookkeeping, even when
    a hand-edited feed lists one. A refused file is a 404 for the client and
    a warning (once per file and reason) in the server's log.

    Parameters
    ----------
    root : str or os.PathLike
    """

    def __init__(self, root):
        self.root = os.path.abspath(os.fspath(root))
        self._lock = threading.Lock()
        self._feed_cache: Tuple[tuple, dict] = ((), {})
        self._warned: set = set()

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

    def feed(self) -> dict:
        opened = self.open("info/json")
        if opened is None:
            return {}
        fh, st = opened
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        with fh:
            with self._lock:
                if self._feed_cache[0] == key:
                    return self._feed_cache[1]
            try:
                data = fh.read(DEFAULT_MAX_BYTES + 1)
                if len(data) > DEFAULT_MAX_BYTES:
                    raise FeedError(f"larger than the {DEFAULT_MAX_BYTES}-byte limit for metadata")
                feed = parse_json(data, "info/json")
            except FeedError as exc:
                self._warn("info/json", str(exc).partition("info/json: ")[2] or str(exc))
                feed = {}
        feed = feed if isinstance(feed, dict) else {}
        with self._lock:
            self._feed_cache = (key, feed)
        return feed

    def releases(self) -> list:
        return _parse_releases(self.feed())

    @staticmethod
    def _info(st) -> FileInfo:
        # Like nginx (mtime-size in hex), but with nanoseconds so a file
        # rewritten within the same second still gets a new tag.
        return FileInfo(st.st_size, f'"{st.st_mtime_ns:x}-{st.st_size:x}"', float(int(st.st_mtime)))

    def composer(self, rel: str, reached_at: Optional[str] = None) -> Optional[Tuple[FileInfo, BinaryIO]]:
        """A file of the mirror's Composer part, ``composer/<rel>``, or None.

        ``packages.json`` and ``p2/**.json`` were written for the mirror's
        ``--composer-url``; with *reached_at* (where this client reaches
        ``composer/``), their URLs are re-based on it, so any host name works.
        """
        opened = self.open(f"{COMPOSER}/{rel}")
        if opened is None:
            return None
        fh, st = opened
        if reached_at is None or not (rel == "packages.json" or rel.startswith("p2/") and rel.endswith(".json")):
            return self._info(st), fh
        with fh:
            data = fh.read(MAX_METADATA_BYTES + 1)
        if len(data) > MAX_METADATA_BYTES:
            self._warn(f"{COMPOSER}/{rel}", f"larger than the {MAX_METADATA_BYTES}-byte limit for metadata")
            return None
        written_for = read_composer_url(self.root)
        if written_for:
            data = rewrite(data, written_for, reached_at)
        # The body depends on the client's Host: its tag is the body's hash.
        etag = f'"{hashlib.sha256(data).hexdigest()[:24]}"'
        return FileInfo(len(data), etag, float(int(st.st_mtime))), io.BytesIO(data)

    def page(self, rel: str) -> Optional[Tuple[FileInfo, BinaryIO]]:
        """A page of the mirror or its ``SHA256SUMS[.sig]`` (the route decides which paths), or None."""
        opened = self.open(rel)
        return None if opened is None else (self._info(opened[1]), opened[0])

    def get(self, file_name: str) -> Optional[Tuple[FileInfo, BinaryIO]]:
        """Open first, then fstat, so info and bytes belong together."""
        if file_name not in feed_file_names(self.feed()):
            return None
        opened = self.open("file/" + file_name)
        if opened is None:
            return None
        fh, st = opened
        return self._info(st), fh
