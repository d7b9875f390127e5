"""Reusing the last resolution when every metadata document it read is provably unchanged.

A resolution (:mod:`~magedl.mirror.composer.select`) is a function of the options and of the bodies
of the documents it read. A run that can tell, without reading them, that each body is the one the
last resolution read (a root file fetched again, a file named by its sha256, a file the changes
feed vouches for) gets the same selection back from ``DIR/.magedl/composer-selection.json`` instead
of re-reading and re-resolving the whole closure. The rule a reader must not break: anything not
proven unchanged (a document read with an error, a repository without a changes feed, a failed
requirement, other options) means resolving again.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import stat
import sys
import threading
from pathlib import Path
from typing import Callable, Optional

from magedl import __version__
from magedl.composer.remote import hashed_name
from magedl.fsutil import open_nofollow, read_if_regular, write_chunks
from magedl.mirror.composer.index import KeptEntry
from magedl.paths import BOOKKEEPING

log = logging.getLogger(__name__)

MEMO = f"{BOOKKEEPING}/composer-selection.json"
_VERSION = 3  # 2: each entry is its canonical text; 3: with the dist type of each archive
_LIMIT = 512 << 20  # far above the selection of any real closure; a larger file is only a miss
_MAX_WARNINGS = 200
_BATCH = 500  # package lines parsed at once


class Reads:
    """Wraps a repository's ``fetch(url)``: remembers the sha256 of every body read (None: the read failed)."""

    def __init__(self, fetch: Callable[[str], bytes]):
        self._fetch = fetch
        self._lock = threading.Lock()
        self.bodies: dict = {}

    def __call__(self, url: str) -> bytes:
        try:
            data = self._fetch(url)
        except BaseException:
            with self._lock:
                self.bodies[url] = None
            raise
        digest = hashlib.sha256(data).hexdigest()
        with self._lock:
            if self.bodies.get(url, digest) != digest:
                digest = None  # two bodies for one URL in one run: nothing to vouch for
            self.bodies[url] = digest
        return data


def inputs_key(options) -> str:
    """What, besides the documents read, a resolution depends on: the options and magedl itself."""
    locks = []
    for path in options.locks:
        data = read_if_regular(Path(path), _LIMIT)
        locks.append([str(path), hashlib.sha256(data).hexdigest() if data is not None else None])
    doc = [_VERSION, __version__, list(map(list, options.requires)), locks, list(options.repos), options.dev,
           options.php, options.newest, list(options.excludes)]
    return hashlib.sha256(json.dumps(doc, separators=(",", ":")).encode()).hexdigest()


def recall(root: os.PathLike | str, options, reads: Reads, cache) -> Optional[dict]:
    """The last resolution's ``{"packages", "repo_of", "warnings"}`` when it still holds, else None.

    Call after the repositories' root files were read through *reads* and their changes feeds
    followed (:meth:`~magedl.composer.cache.MetadataCache.follow`). The file holds a header line
    (what was read) and one line per package, parsed one at a time: a changed document costs
    the header only, and the whole file is never held as text.
    """
    try:
        f = os.fdopen(open_nofollow(Path(root) / MEMO, os.O_RDONLY | os.O_NONBLOCK), "rb")
    except OSError:
        return None
    try:
        with f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_size > _LIMIT:
                return None
            head = json.loads(f.readline())
            if not isinstance(head, dict) or head.get("version") != _VERSION or head.get("key") != inputs_key(options):
                return None
            last, repo_of = head.get("reads"), head.get("repo_of")
            if not isinstance(last, dict) or not isinstance(repo_of, dict):
                return None
            for url, digest in last.items():
                if not isinstance(digest, str) or _current(url, reads, cache) != digest:
                    log.debug("Composer: %s may have changed since the last resolution; resolving again", url)
                    return None
            packages = {}
            while True:
                # A batch of lines per parse: one parse shares the dict keys of all its entries.
                batch = [line for line in itertools.islice(f, _BATCH) if line.strip()]
                if not batch:
                    break
                for name, versions, types in json.loads(b"[" + b",".join(batch) + b"]"):
                    if not isinstance(name, str) or not isinstance(versions, dict) or not isinstance(types, dict) \
                            or not all(isinstance(text, str) for text in versions.values()) \
                            or not all(isinstance(kind, str) for kind in types.values()):
                        return None
                    # Kept as the text the state stores for them: never parsed while they are up to date. The dist
                    # type beside it says where its archive goes (dist_rel still checks the path it makes).
                    packages[name] = {vn: KeptEntry(text, _interned(types.get(vn))) for vn, text in versions.items()}
    except (OSError, ValueError, TypeError, RecursionError):  # missing, damaged or foreign: resolve again
        return None
    if len(packages) != head.get("count"):
        return None  # cut short
    return {"packages": packages, "repo_of": repo_of, "warnings": head.get("warnings") or []}


def _current(url: str, reads: Reads, cache) -> Optional[str]:
    """The sha256 of *url*'s body now, when known without a request; None when it is not."""
    if url in reads.bodies:
        return reads.bodies[url]
    named = hashed_name(url)
    if named is not None:
        return named  # named by its content: the same URL is the same body
    return cache.vouched(url) if cache is not None else None


def remember(root: os.PathLike | str, options, reads: Reads, selection, warnings: list) -> None:
    """Keep *selection* for the next run (under the mirror's lock); a selection with failures is forgotten."""
    path = Path(root) / MEMO
    if selection.failures or any(v is None for v in reads.bodies.values()) or not reads.bodies:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return
    head = {"version": _VERSION, "key": inputs_key(options), "reads": reads.bodies, "repo_of": selection.repo_of,
            "warnings": warnings[:_MAX_WARNINGS], "count": len(selection.packages)}
    # Each entry as the mirror keeps it (no source, no notification URL), in the state's canonical text: the next
    # run holds and compares that text as it is read (a JSON string, parsed by the line's own parse).
    lines = (_line(name, [(vn, KeptEntry.of(entry)) for vn, entry in versions.items()])
             for name, versions in selection.packages.items())
    _write_lines(path, itertools.chain([json.dumps(head, ensure_ascii=False, separators=(",", ":"))], lines))


def _line(name: str, kept: list) -> str:
    """One package's line: its name, ``{vn: text}`` and ``{vn: dist type}`` of those that have an archive."""
    types = {vn: e.dist_type for vn, e in kept if e.dist_type is not None}
    return json.dumps([name, {vn: e.text for vn, e in kept}, types], ensure_ascii=False, separators=(",", ":"))


def _interned(kind: Optional[str]) -> Optional[str]:
    return None if kind is None else sys.intern(kind)


def _write_lines(path: Path, lines) -> None:
    """Replace *path* with *lines*, a line at a time: the text of a whole closure is never held (it was
    the cold run's peak, held three times over while it was written).

    Not fsynced: a torn or lost file is only a miss (the next run resolves again)."""
    write_chunks(path, (line.encode("utf-8", "surrogatepass") + b"\n" for line in lines), durable=False)
