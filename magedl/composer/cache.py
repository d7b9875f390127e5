"""A Composer mirror's metadata cache, so that re-reading an unchanged repository costs a few requests.

Rule: a body is checked against its sha256 name whenever it is read, so a torn or altered file is
only a miss, never a wrong answer. The three kinds of file and when each is reused: see
docs/design.md, "Notes: Composer repositories".
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import stat
import tempfile
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import urlsplit

from magedl.fsutil import atomic_write, make_dirs, read_if_regular
from magedl.paths import BOOKKEEPING
from magedl.ranges import Validators
from magedl.safejson import DEFAULT_MAX_BYTES

log = logging.getLogger(__name__)

__all__ = ["CACHE", "Held", "MetadataCache"]

CACHE = f"{BOOKKEEPING}/composer-cache"
INDEX = "index.json"
_VERSION = 1
_INDEX_LIMIT = 64 << 20
_SHA256 = frozenset("0123456789abcdef")
# A URL with a user or password in it (``http://deploy:pw@host/``): a body holding one is not
# kept, since the cache is a file magedl writes and no secret may reach one.
_USERINFO = re.compile(rb"://[^/\s\"'@]+@")


@dataclass(frozen=True)
class Held:
    """A cached copy of one URL's body, with what revalidates it."""

    body: bytes
    validators: Validators

    def conditional(self) -> dict:
        """The ``If-None-Match`` / ``If-Modified-Since`` headers for this copy."""
        headers = {}
        if self.validators.etag:
            headers["If-None-Match"] = self.validators.etag
        if self.validators.last_modified:
            headers["If-Modified-Since"] = self.validators.last_modified
        return headers


def _is_sha256(text) -> bool:
    return isinstance(text, str) and len(text) == 64 and set(text) <= _SHA256


class MetadataCache:
    """The metadata cache of the mirror at *root* (see the module docstring). Thread-safe.

    Parameters
    ----------
    root : path
        The mirror folder; it need not exist yet (the cache then starts empty).
    max_bytes : int
        Largest body kept or read back.
    """

    def __init__(self, root: os.PathLike | str, *, max_bytes: int = DEFAULT_MAX_BYTES):
        self.folder = Path(root) / CACHE
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._urls: dict = {}  # url -> {"sha256", "etag", "last_modified", "stale"}
        self._feeds: dict = {}  # changes feed url -> since
        # sha256 -> a body fetched this run, not written yet: spooled to a private temporary folder, not
        # held in memory, since the cache may be written only under the mirror's lock (after selection).
        self._pending: dict = {}
        self._spool: Optional[Path] = None
        self._used: set = set()  # sha256 of every body this run read or kept
        self._seen: set = set()  # URLs this run asked for
        self._followed: list = []  # (prefix, suffix) of p2 URLs a changes feed vouches for this run
        self.reused = self.revalidated = self.fetched = 0
        #: Whether this run read everything it needed (no failed requirement): :meth:`save` then drops the rest.
        self.complete = True
        self._usable = self._check_folder()
        if self._usable:
            self._read_index()

    def _check_folder(self) -> bool:
        try:
            info = self.folder.lstat()
        except FileNotFoundError:
            return True
        except OSError as exc:
            log.warning("%s: cannot use the metadata cache (%s); every file is fetched", self.folder, exc.strerror)
            return False
        if not stat.S_ISDIR(info.st_mode):  # a link, or a file: never followed, never written through
            log.warning("%s is not a plain folder; the metadata cache is not used (remove it to start afresh)",
                        self.folder)
            return False
        return True

    def _read_index(self) -> None:
        raw = read_if_regular(self.folder / INDEX, _INDEX_LIMIT)
        try:
            doc = json.loads(raw) if raw is not None else {}
        except (ValueError, RecursionError):
            doc = {}
        if not isinstance(doc, dict) or doc.get("version") != _VERSION:
            return  # unreadable or from another version: a cold cache, never an error
        for url, entry in (doc.get("urls") or {}).items():
            if isinstance(url, str) and isinstance(entry, dict) and _is_sha256(entry.get("sha256")):
                self._urls[url] = {"sha256": entry["sha256"], "etag": _text(entry.get("etag")),
                                   "last_modified": _text(entry.get("last_modified")),
                                   "stale": entry.get("stale") is not False}
        for url, since in (doc.get("feeds") or {}).items():
            if isinstance(url, str) and isinstance(since, int) and not isinstance(since, bool):
                self._feeds[url] = since

    # -- bodies ------------------------------------------------------------------

    def body(self, sha256: str) -> Optional[bytes]:
        """The body named *sha256*, checked, or None; a hit counts as reused."""
        data = self._read(sha256)
        if data is not None:
            with self._lock:
                self.reused += 1
        return data

    def _read(self, sha256: str) -> Optional[bytes]:
        if not self._usable or not _is_sha256(sha256):
            return None
        with self._lock:
            spooled = self._pending.get(sha256)
        data = read_if_regular(spooled or self.folder / f"{sha256}.json", self.max_bytes)
        if data is None or hashlib.sha256(data).hexdigest() != sha256:
            return None
        with self._lock:
            self._used.add(sha256)
        return data

    def keep(self, data: bytes, sha256: Optional[str] = None) -> Optional[str]:
        """Keep *data* (when it matches *sha256*, if given); return its sha256, or None when not kept."""
        digest = hashlib.sha256(data).hexdigest()
        if not self._usable or len(data) > self.max_bytes or (sha256 is not None and sha256 != digest):
            return None
        if _USERINFO.search(data):
            log.debug("a metadata body with credentials in a URL is not cached")
            return None
        with self._lock:
            if digest not in self._pending:
                self._pending[digest] = self._spooled(digest, data)
            self._used.add(digest)
            self.fetched += 1
        return digest

    def _spooled(self, digest: str, data: bytes) -> Path:
        if self._spool is None:
            self._spool = Path(tempfile.mkdtemp(prefix="magedl-metadata-"))
            weakref.finalize(self, shutil.rmtree, self._spool, True)
        path = self._spool / f"{digest}.json"
        with open(path, "wb") as f:
            f.write(data)
        return path

    # -- URLs --------------------------------------------------------------------

    def lookup(self, url: str) -> Optional[Held]:
        """The cached copy of *url* with its validators, or None (never cached, or its body is gone)."""
        with self._lock:
            self._seen.add(url)
            entry = dict(self._urls.get(url) or {})
        if not entry or not (entry["etag"] or entry["last_modified"]):
            return None
        data = self._read(entry["sha256"])
        return Held(data, Validators(entry["etag"], entry["last_modified"])) if data is not None else None

    def trusted(self, url: str) -> Optional[bytes]:
        """The cached body of *url* when a changes feed read this run vouches for it, else None."""
        with self._lock:
            self._seen.add(url)
        digest = self.vouched(url)
        return self.body(digest) if digest is not None else None

    def vouched(self, url: str) -> Optional[str]:
        """The sha256 of *url*'s cached body when a changes feed this run read vouches for (no request); else None."""
        with self._lock:
            entry = self._urls.get(url)
            if entry is not None and not entry["stale"] and any(
                    url.startswith(prefix) and url.endswith(suffix) for prefix, suffix in self._followed):
                return entry["sha256"]
        return None

    def remember(self, url: str, data: bytes, validators: Validators) -> None:
        """Keep the body just fetched from *url*, with its validators."""
        digest = self.keep(data)
        if digest is not None:
            with self._lock:
                self._urls[url] = {"sha256": digest, "etag": validators.etag,
                                   "last_modified": validators.last_modified, "stale": False}

    def confirm(self, url: str) -> None:
        """The server said 304: the copy of *url* is current."""
        with self._lock:
            if url in self._urls:
                self._urls[url]["stale"] = False
            self.revalidated += 1

    # -- changes feeds ------------------------------------------------------------

    def follow(self, feed: str, template: str, read: Callable[[Optional[int]], tuple], *, repository: str) -> None:
        """Read a changes feed; p2 URLs made from *template* it does not name are then reused without a request.

        A feed vouches only for files of its own repository's origin: a
        repository whose ``metadata-url`` points at another's files (say,
        with a feed that never reports a change) would otherwise keep that
        other repository's cached files from being asked for again.

        Parameters
        ----------
        feed : str
            The repository's ``metadata-changes-url``.
        template : str
            Its absolute ``metadata-url`` (with ``%package%``).
        repository : str
            The repository's URL: *template* must be on its scheme, host and port.
        read : callable
            ``read(since) -> (timestamp, changed names or None)``, as
            :func:`magedl.composer.remote.read_changes`; a MagedlError leaves
            every file to be revalidated.
        """
        prefix, sep, suffix = template.partition("%package%")
        if not self._usable or not sep:
            return
        if _origin(template) != _origin(repository):
            log.debug("%s: its metadata-url is on another origin; its changes feed is not followed", repository)
            return
        with self._lock:
            since = self._feeds.get(feed)
        stamp, changed = read(since)
        with self._lock:
            mine = [u for u in self._urls if u.startswith(prefix) and u.endswith(suffix)]
            for url in mine:
                name = url[len(prefix):len(url) - len(suffix)].lower()
                if changed is None or name in changed:
                    self._urls[url]["stale"] = True
            if stamp is not None:
                self._feeds[feed] = stamp
            if since is not None and changed is not None:
                self._followed.append((prefix, suffix))
        log.debug("%s: %s", feed, "resync: every file revalidated" if changed is None else
                  f"{len(changed)} package(s) changed since the last run")

    # -- saving ------------------------------------------------------------------

    def save(self) -> None:
        """Write the bodies kept and the index; after a :attr:`complete` run, forget what it did not use.

        Call it under the mirror's lock. Errors are logged, never raised: a
        cache that cannot be written only costs requests next time.
        """
        if not self._usable:
            return
        complete = self.complete
        with self._lock:
            pending, self._pending = self._pending, {}
            urls = {u: e for u, e in self._urls.items() if not complete or u in self._seen}
            used = set(self._used) | {e["sha256"] for e in urls.values()}
            doc = {"version": _VERSION, "urls": urls, "feeds": dict(self._feeds)}
        try:
            make_dirs(self.folder)
            if not self._check_folder():
                return
            for digest, spooled in pending.items():
                data = read_if_regular(spooled, self.max_bytes)
                if data is not None:
                    # No fsync: a body's name is its sha256, checked on every read.
                    atomic_write(self.folder / f"{digest}.json", data, durable=False)
            atomic_write(self.folder / INDEX, json.dumps(doc, indent=0, sort_keys=True).encode())
            if complete:
                for entry in os.scandir(self.folder):
                    stem = entry.name[:-len(".json")] if entry.name.endswith(".json") else ""
                    if _is_sha256(stem) and stem not in used and not entry.is_dir(follow_symlinks=False):
                        os.unlink(entry.path)
        except OSError as exc:
            log.warning("%s: cannot save the metadata cache (%s); the next run asks again", self.folder,
                        exc.strerror or exc)

    def summary(self) -> str:
        """``"12 reused, 3 revalidated (304), 4 fetched"``, for the log."""
        return f"{self.reused} reused, {self.revalidated} revalidated (304), {self.fetched} fetched"


def _origin(url: str) -> tuple:
    parts = urlsplit(url)
    try:
        return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(
            parts.scheme.lower())
    except ValueError:  # a port that is not a number: matches nothing
        return None, url, None


def _text(value) -> Optional[str]:
    return value if isinstance(value, str) and value and value.isprintable() and len(value) < 200 else None
