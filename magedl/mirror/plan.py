"""Planning a release mirror run: what to do with each selected file and each file held.

No network and no writes: the plan reads the state cache, the previous index
and the files on disk (``lstat``, and hashes when a file changed since it was
verified), and returns a :class:`~magedl.mirror.model.Plan`. The entries it
found good travel in the items; the run records them in the state.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import replace
from operator import attrgetter
from pathlib import Path
from typing import Iterable, Optional

from magedl.errors import IntegrityError, UnsafeNameError
from magedl.mirror.index import read_feed, read_sums, release_rels
from magedl.mirror.layout import FILES, INFO_FILES, SUMS, check_layout, check_release_name, release_rel, walk_entries
from magedl.mirror.model import (
    Action,
    Entry,
    Fingerprint,
    Item,
    Plan,
    StoredRecords,
    canonical_release_records,
    records_by_name,
)
from magedl.mirror.state import entry_of
from magedl.paths import LOCK_SUFFIX, SIDE_SUFFIXES, destination
from magedl.service.catalog import Release, settle_md5, unique_files
from magedl.transfer.hashing import file_digests

log = logging.getLogger(__name__)

DIGESTS = ("md5", "sha256")
_by_file_name = attrgetter("file_name")


def previous_index(root: Path) -> dict:
    """What the mirror's index listed before this run: ``{file_name: (sha256, (record dicts))}``.

    The state is only a cache; when it is lost, the index still says which
    files belonged to the mirror, and a re-hash shows whether they are intact.
    """
    try:
        sums, _ = read_sums(root / SUMS)
    except OSError:
        return {}
    records = {}
    for r in read_feed(root / INFO_FILES[0]) or ():
        records.setdefault(r.file_name, []).append(r.to_dict())
    return {name: (sha, tuple(records.get(name, ()))) for name, sha in release_rels(sums).items()}


def check_copy(root: Path, rel: str, st: os.stat_result, entry: Optional[Entry], *, rehash: bool,
               algorithms: tuple = DIGESTS) -> tuple:
    """(the copy at ``root/rel`` as an entry, whether it is the copy *entry* describes).

    *st* is its ``lstat`` (a regular file). When the fingerprint still
    matches, *entry* is the answer without reading a byte; otherwise the file
    is re-hashed (with *algorithms*) and the first is *entry* brought up to
    date when the bytes are the same. ``(None, False)`` when the file would
    need re-hashing and *rehash* is off.
    """
    if (entry is not None and entry.md5 and entry.sha256 and entry.fingerprint.same_as(st)
            and ("sha1" not in algorithms or entry.sha1)):
        return entry, True  # what Entry.matches says, without building a Fingerprint (a check per file)
    fp = Fingerprint.from_stat(st)
    if not rehash:
        return None, False
    log.info("%s: re-hashing (%s)", rel, "changed on disk since it was verified" if entry
             else "not verified by this mirror yet")
    digests = file_digests(root / rel, algorithms)
    if entry is not None and entry.sha256 == digests["sha256"]:
        return entry.moved_to(fp, md5=digests["md5"], sha1=digests.get("sha1", entry.sha1)), True
    return Entry(digests["md5"], digests["sha256"], fp, sha1=digests.get("sha1", "")), False


class ReleasePlanner:
    """Plans the release part of a mirror (``DIR/file/``).

    Parameters
    ----------
    root : path
        The mirror folder; refused when its own folders are links (before anything is read).
    state : State
        Read only: the verified-digest cache.
    upstream : iterable of Release
        The whole catalogue, for the records of each file.
    rehash : bool
        Re-hash files changed on disk; off for dry runs, which then plan ``recheck``.
    every_item : bool
        Build an item for every file, unchanged ones too (a dry run shows them all); by default a
        file present as the state records it is only named in :attr:`Plan.unchanged`, and a file with
        no copy and no state row only listed in :attr:`Plan.fetch_new`.
    """

    def __init__(self, root: os.PathLike | str, state, upstream: Iterable[Release], *, rehash: bool = True,
                 every_item: bool = False):
        self.root = Path(root)
        check_layout(self.root)
        self.state = state
        self.rehash = rehash
        self.every_item = every_item
        self.upstream = tuple(upstream)
        self.records = records_by_name(self.upstream)
        self.entries: dict = {}  # state rows of files not wanted (and rows the walk in path order passed by)
        self._indexed: Optional[dict] = None  # read only when a file has no state entry
        self._prefix = os.path.join(self.root, "")
        self.locks: list = []  # lock files beside wanted files (a run killed between landing and unlocking)

    def plan(self, selected: Iterable[Release], *, prune: bool = False) -> Plan:
        """Decide what to do with each selected file (*selected*: what the user asked for) and each file held.

        The wanted files are planned in path order, beside the state's rows read in the same order
        (:meth:`State.entries_in_order`): no row is held beyond the file it belongs to, but those of
        files not wanted. A file present as its row says gets no item (see :attr:`Plan.unchanged`).
        """
        chosen = unique_files(selected)
        planned, unchanged, wanted = {}, {}, set()  # planned: file name -> item, for files that get one
        fetch_new = []  # wanted files with no copy and no state row: no item until a transfer takes one
        for r in chosen:
            try:
                check_release_name(r.file_name)
                if "/" in r.file_name:  # a name in file/ itself cannot lead out (check_layout vouches for file/)
                    destination(self.root / FILES, r.file_name)
            except UnsafeNameError as exc:
                log.warning("skipping %s", exc)
                planned[r.file_name] = Item(release_rel(r.file_name), Action.SKIP, r, reason=str(exc))
                continue
            wanted.add(r.file_name)
        rows = self.state.rows_in_order(FILES)
        row = next(rows, None)
        records, prefix, quick = self.records, self._prefix, not self.every_item
        for r in sorted((r for r in chosen if r.file_name in wanted), key=_by_file_name):
            name = r.file_name
            rel = FILES + "/" + name
            while row is not None and row[0] < rel:  # rows of files not wanted (or out of order): kept aside
                self.entries[row[0]] = entry_of(row)
                row = next(rows, None)
            if row is not None and row[0] == rel:
                mine, row = row, next(rows, None)
            else:
                mine = None
            if records.get(name) is not r:  # several listings (or a record from elsewhere): settle its md5
                try:
                    r = settle_md5(r, self._listings(name))
                except IntegrityError as exc:
                    log.warning("skipping %s", exc)
                    wanted.discard(name)
                    planned[name] = Item(rel, Action.SKIP, r, reason=str(exc))
                    entry = entry_of(mine) if mine is not None else self.entries.get(rel)
                    if entry is not None:
                        self.entries[rel] = entry  # held, but not wanted this run: kept as such
                    continue
            try:
                st = os.lstat(prefix + rel)
            except FileNotFoundError:
                st = None
            if quick and mine is not None and st is not None and self._as_recorded(r, mine, st):
                unchanged[name] = r  # no item, no entry: its row is read again when the index is written
                continue
            entry = entry_of(mine) if mine is not None else self.entries.pop(rel, None)
            if quick and st is None and entry is None:
                fetch_new.append(r)  # what _plan_wanted plans for it (fetch, "new"), made when it is fetched
                continue
            item = self._plan_wanted(r, entry, st)
            if item is None:
                unchanged[name] = r
            else:
                planned[name] = item
        while row is not None:
            self.entries[row[0]] = entry_of(row)
            row = next(rows, None)
        items = [planned[r.file_name] for r in chosen if r.file_name in planned]  # in the order selected
        # Only the files not wanted are stat'ed here (and keep their lstat): _plan_wanted has its own.
        on_disk = dict(self._walk(wanted))
        cut = len(FILES) + 1
        dropped = []
        for name in sorted({rel[cut:] for rel in self.entries} | set(on_disk)):
            if name in wanted:
                continue
            st = on_disk.get(name)
            if st is None:
                log.warning("%s: was in the mirror but is gone from disk; dropped from the index", name)
                dropped.append(release_rel(name))
                continue
            items.append(self._plan_unwanted(name, st, prune))
        return Plan(items, self.upstream, tuple(dropped), locks=tuple(self.locks), unchanged=unchanged,
                    fetch_new=fetch_new, by_name=self.records)  # Plan.records_of reads the same table, not a second one

    def _as_recorded(self, r: Release, row: tuple, st: os.stat_result) -> bool:
        """Whether the file whose ``lstat`` is *st* is present as its state *row* records it: the
        fingerprint, digests and records the feed's now. What :meth:`_plan_wanted` finds for such a
        file, without building its entry (a damaged row is not: it takes that way)."""
        _, md5, sha256, size, mtime_ns, ctime_ns, ino, text, sha1 = row
        return (st.st_ino == ino and st.st_size == size and st.st_mtime_ns == mtime_ns
                and st.st_ctime_ns == ctime_ns and stat.S_ISREG(st.st_mode) and r.md5 != "" and md5 == r.md5
                and type(sha256) is str and sha256 != "" and type(sha1) is str
                and text == canonical_release_records(self._listings(r.file_name)))

    def _plan_wanted(self, r: Release, entry: Optional[Entry], st: Optional[os.stat_result]) -> Optional[Item]:
        """The item of one wanted file whose state row is *entry* and ``lstat`` *st* (None: no such file);
        None when it is present as recorded."""
        rel = release_rel(r.file_name)
        if st is None:
            return Item(rel, Action.FETCH, r, reason="new" if entry is None else "missing from disk")
        if stat.S_ISLNK(st.st_mode):  # a real file must replace it: serve and verify refuse links
            return Item(rel, Action.REPAIR, r, reason="a symbolic link, not a file")
        if not stat.S_ISREG(st.st_mode):
            return Item(rel, Action.REPAIR, r, reason="not a plain file")
        good, intact = self._digests(rel, st, entry)
        if good is None:
            return Item(rel, Action.RECHECK, r, size=st.st_size, reason="changed on disk since it was verified")
        if (r.md5 and good.md5 == r.md5) or (not r.md5 and (intact or entry is None)):
            if not r.md5 and entry is None:
                log.warning("%s: already present; the feed has no md5, so it is taken as it is", r.file_name)
            if good is entry and self._recorded(entry, r.file_name):  # the state holds it as it is: nothing to write
                if not self.every_item:
                    return None  # Plan.unchanged names it; its row is read again when the index is written
                # Its records are the feed's (r), which the index lists: the stored text is not kept.
                return Item(rel, Action.PRESENT, r, size=st.st_size, recorded=True,
                            entry=Entry(entry.md5, entry.sha256, entry.fingerprint, sha1=entry.sha1))
            return Item(rel, Action.PRESENT, r, size=st.st_size, entry=replace(good, records=self._dicts(r.file_name)))
        if intact:  # what we fetched, but upstream moved on
            return Item(rel, Action.UPDATE, r, size=st.st_size, entry=good, recorded=good is entry,
                        reason=f"changed upstream (md5 {entry.md5} -> {r.md5})")
        return Item(rel, Action.REPAIR, r, size=st.st_size,
                    reason="the copy on disk does not match " + ("the feed's md5" if r.md5 else "what was fetched"))

    def _plan_unwanted(self, name: str, st: os.stat_result, prune: bool) -> Item:
        rel = release_rel(name)
        regular = stat.S_ISREG(st.st_mode)
        stored = self.entries.get(rel)
        entry = stored or (self._from_previous_index(name, st) if regular else None)
        why = "no longer selected" if name in self.records else "no longer upstream"
        size = st.st_size if regular else None
        if prune:
            return Item(rel, Action.PRUNE, reason=why if entry else "not part of the mirror", size=size)
        if entry is None:
            return Item(rel, Action.STRAY, reason="not part of the mirror; --prune removes it", size=size)
        item = Item(rel, Action.KEEP, reason=f"{why}; --prune removes it", size=size)
        if not regular:
            item.reason = "not a plain file (a symbolic link?); left out of the index; --prune removes it"
            return item
        good, intact = self._digests(rel, st, entry)
        if intact:
            item.entry, item.recorded = good, good is entry and entry is stored  # rebuilt from the index: written
        elif good is not None:
            item.reason = "changed on disk since it was verified; left out of the index"
        return item

    def _from_previous_index(self, name: str, st: os.stat_result) -> Optional[Entry]:
        """An entry rebuilt from the previous index, if the file on disk still matches it."""
        if self._indexed is None:
            self._indexed = previous_index(self.root)
        listed = self._indexed.get(name)
        if listed is None or not self.rehash:
            return None
        sha, records = listed
        digests = file_digests(self.root / release_rel(name), DIGESTS)
        if digests["sha256"] != sha:
            return None
        return Entry(digests["md5"], digests["sha256"], Fingerprint.from_stat(st),
                     records or ({"file_name": name},))

    def _digests(self, rel: str, st: os.stat_result, entry: Optional[Entry]) -> tuple:
        return check_copy(self.root, rel, st, entry, rehash=self.rehash)

    def _listings(self, name: str):
        listed = self.records.get(name, ())
        return (listed,) if isinstance(listed, Release) else listed

    def _recorded(self, entry: Entry, name: str) -> bool:
        """Whether *entry* was verified against the feed's records of *name* as they are now."""
        if isinstance(entry.records, StoredRecords):  # as stored: compared as text, neither side parsed
            return entry.records.text == canonical_release_records(self._listings(name))
        return entry.records == self._dicts(name)

    def _dicts(self, name: str) -> tuple:
        return tuple(r.to_dict() for r in self._listings(name))

    def _walk(self, wanted: set):
        """(file name, lstat) of each entry under ``file/`` but the wanted files and their side files."""
        for rel, entry in walk_entries(self.root, FILES, ordered=False):  # the plan sorts what it keeps
            name = rel[len(FILES) + 1:]
            if name in wanted:
                continue
            side = next((s for s in SIDE_SUFFIXES if name.endswith(s)), None)
            if side and name[: -len(side)] in wanted:
                if side == LOCK_SUFFIX:
                    self.locks.append(rel)
                continue
            yield name, entry.stat(follow_symlinks=False)
