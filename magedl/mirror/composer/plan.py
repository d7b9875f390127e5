"""Planning the Composer part of a mirror run: an item per archive to act on, plus the metadata-only versions.

No network. The rule for a held archive (still current by SHA-1, else by ``dist.reference``): see
docs/design.md, "Notes: the mirror".
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

from magedl.composer.metadata import check_package_name
from magedl.errors import UnsafeNameError
from magedl.mirror.composer.index import (
    DIST,
    KeptEntry,
    archive_type,
    check_fits,
    clean_entry,
    dist_rel,
    entry_rel,
    first_record,
    read_composer_url,
    read_index,
    records_text,
    remembered_published,
)
from magedl.mirror.composer.listing import Links, files_under
from magedl.mirror.defaults import DEFAULT_URL
from magedl.mirror.layout import check_layout
from magedl.mirror.model import SLOTS, Action, Item, Status, StoredRecords
from magedl.mirror.plan import check_copy
from magedl.mirror.state import entry_of
from magedl.paths import SIDE_SUFFIXES
from magedl.text import printable

log = logging.getLogger(__name__)

DIGESTS = ("md5", "sha256", "sha1")
METAPACKAGES = "composer-metapackages"  # the memo of the metapackage versions the p2 files list
KEPT = "no Composer selection given; kept"  # why a run with no Composer selection keeps a held archive


@dataclass(frozen=True, **SLOTS)  # one per archive, held through the run: no __dict__ each
class Archive:
    """One Composer archive to hold: the version entry it belongs to and where upstream serves it.

    Attributes
    ----------
    name, version, version_normalized : str
    entry : KeptEntry
        The upstream version entry as the mirror keeps it (:class:`~magedl.mirror.composer.index.KeptEntry`).
    url : str
        The upstream dist URL.
    shasum : str
        The upstream SHA-1, or ``""`` when the repository gives none.
    reference : str
        The upstream ``dist.reference`` (a commit for GitHub zipballs), or ``""``.
    repo : str
        The repository it comes from.
    """

    name: str
    version: str
    version_normalized: str
    entry: KeptEntry = field(compare=False, hash=False)
    url: str = ""
    shasum: str = ""
    reference: str = ""
    repo: str = ""

    md5 = ""  # Composer gives none: the SHA-1 (when given) is checked instead

    def to_dict(self) -> dict:
        return {"name": self.name, "file_name": None, "version": self.version, "type": "composer", "md5": None,
                "shasum": self.shasum or None, "url": self.url}


@dataclass(frozen=True, **SLOTS)
class Requirement:
    """A requirement that could not be met (the source of a failed item)."""

    name: str
    constraint: str

    md5 = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "file_name": None, "version": self.constraint, "type": "composer", "md5": None}


@dataclass
class ComposerPart:
    """The Composer part of a plan.

    Attributes
    ----------
    items : list of Item
        One per archive to fetch, repair, update, keep or prune (``composer/dist/...``); a wanted archive
        present as the state records it has none (*unchanged*), nor has a held one a run with no selection
        keeps (*kept*), except in a dry run.
    metadata : dict
        Metadata-only versions (metapackages) kept: ``{name: {version_normalized: entry}}``.
    failures : list of Item
        Requirements that could not be met (status ``failed``).
    url : str
        The URL the metadata is written for.
    advisories : dict or None
        The security advisories the p2 files carry, ``{name: [full advisory]}``
        (:mod:`~magedl.mirror.composer.advisories`); None: the mirror carries none.
    listing : str or None
        What ``composer/dist/`` held when the plan listed it, for the end of the run to remember
        (:func:`~magedl.mirror.composer.listing.refresh`); None: nothing new to remember.
    unchanged : dict
        ``{rel: (name, version_normalized, entry)}`` of each wanted archive present as the state records it
        (fingerprint, digests, and this very entry as its record): nothing to do and nothing to write, so
        no :class:`Item` is built for it (the tuple is the one the plan made for it; the entry is the
        selection's own). The index write reads its digests from the state again
        (:mod:`~magedl.mirror.composer.unchanged`).
    repo_of : dict
        The selection's name -> repository URL (an unchanged archive's item is made only when asked for).
    kept : set
        The paths of the archives a run with no Composer selection keeps that are present as the state records
        them (fingerprint, digests, a record): no item and no write each, as for :attr:`unchanged`; the index
        write lists them with the state's record (:mod:`~magedl.mirror.composer.unchanged`).
    """

    items: list = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    failures: list = field(default_factory=list)
    url: str = DEFAULT_URL
    advisories: Optional[dict] = None
    listing: Optional[str] = None
    unchanged: dict = field(default_factory=dict)
    repo_of: dict = field(default_factory=dict)
    kept: set = field(default_factory=set)


def _reference(entry: Optional[Mapping]) -> str:
    dist = entry.get("dist") if isinstance(entry, Mapping) else None
    ref = dist.get("reference") if isinstance(dist, dict) else None
    return ref if isinstance(ref, str) else ""


def archive_of(name: str, vn: str, entry, repo: Optional[str], fields: Optional[dict] = None) -> Archive:
    """The archive of one chosen version; *fields*: *entry* as a dict, when the caller parsed it already.

    Its entry is the selection's own :class:`~magedl.mirror.composer.index.KeptEntry` (the text the state
    keeps for it), so a closure's entries are held once, as text.
    """
    kept = KeptEntry.of(entry)
    if fields is None:
        fields = kept.parsed() if isinstance(entry, KeptEntry) else entry
    dist = fields.get("dist") or {}
    shasum = dist.get("shasum") if isinstance(dist.get("shasum"), str) else ""
    return Archive(name, str(fields.get("version") or vn), vn, kept, str(dist.get("url")), shasum.lower(),
                   _reference(fields), repo or "")


def remembered_metapackages(root: Path, memo) -> Optional[dict]:
    """The metapackage versions the p2 files list (``{name: {version_normalized: entry}}``), from the memo
    :func:`~magedl.mirror.composer.publish.index_files` keeps, while none of their files was touched; else None."""
    found, meta = remembered_published(root, memo, METAPACKAGES)
    return meta if found and isinstance(meta, dict) and all(isinstance(v, dict) for v in meta.values()) else None


class ComposerPlanner:
    """Plans ``DIR/composer/`` (see the module docstring).

    Parameters
    ----------
    root : path
    state : State
        Read only.
    url : str or None
        ``--composer-url``; None keeps the one the metadata was written for (or the default).
    rehash : bool
        Off for dry runs.
    every_item : bool
        An item for every archive, unchanged ones too (a dry run shows them); by default those are only
        named in :attr:`ComposerPart.unchanged`.
    """

    def __init__(self, root: os.PathLike | str, state, url: Optional[str] = None, *, rehash: bool = True,
                 every_item: bool = False):
        self.root = Path(root)
        check_layout(self.root)
        self.state = state
        self.rehash = rehash
        self.every_item = every_item
        self.written_for = read_composer_url(self.root)
        self.url = url or self.written_for or DEFAULT_URL
        self.listing = None  # what composer/dist/ held, when this plan listed it
        self._prefix = os.path.join(self.root, "")
        self._previous = None  # {rel: entry} the p2 files list, read only when the state lacks a copy
        self.previous_meta = remembered_metapackages(self.root, state)
        if self.previous_meta is None:
            self._read_previous()

    @property
    def previous(self) -> dict:
        """The archives the p2 files list, ``{rel: entry}`` (read from them on first use)."""
        if self._previous is None:
            self._read_previous()
        return self._previous

    def _read_previous(self) -> None:
        self._previous, meta = {}, {}
        for name, entries in read_index(self.root).items():
            for entry in entries:
                vn = entry.get("version_normalized")
                try:
                    rel = entry_rel(entry, self.written_for)
                except UnsafeNameError as exc:
                    log.warning("composer/p2 of %s: %s; left out", printable(name), exc)
                    continue
                if rel is None and isinstance(vn, str):
                    meta.setdefault(name, {})[vn] = entry
                elif rel is not None:
                    self._previous[rel] = entry
        if self.previous_meta is None:
            self.previous_meta = meta

    def plan(self, selection=None, *, prune: bool = False) -> ComposerPart:
        """The items of the Composer part; *selection* None keeps what is held (*prune* too: only a run
        that selects Composer packages prunes them)."""
        if selection is None:
            prune = False
        part = ComposerPart(url=self.url)
        wanted = {}  # rel -> (name, version_normalized, entry)
        if selection is not None:
            part.repo_of = selection.repo_of
            for failure in selection.failures:
                name, _, constraint = failure.requirement.partition(" ")
                item = Item(f"composer:{failure.requirement}", Action.FETCH, Requirement(name, constraint),
                            reason=str(failure.error))
                item.status, item.error = Status.FAILED, failure.error
                part.failures.append(item)
            for name, vn, entry in selection.entries():
                # The selection keeps each archive's dist type beside its text: no parse per version.
                kind = entry.dist_type if isinstance(entry, KeptEntry) else archive_type(entry)
                if kind is None:
                    fields = entry.parsed() if isinstance(entry, KeptEntry) else entry
                    kind = archive_type(fields)
                    if kind is None:  # no archive: a metapackage, published as metadata only
                        try:
                            part.metadata.setdefault(check_fits(name), {})[vn] = clean_entry(fields)
                        except UnsafeNameError as exc:  # one name must not cost the whole index
                            log.warning("skipping %s %s: %s", printable(name, 60), printable(vn, 40), exc)
                        continue
                try:
                    rel = dist_rel(name, vn, kind)
                except UnsafeNameError as exc:
                    log.warning("skipping %s", exc)
                    part.items.append(Item(f"{DIST}/{name}", Action.SKIP, reason=str(exc)))
                    continue
                wanted[rel] = (name, vn, entry)
        # A failed resolution (keys refused, network) says nothing about what is no longer wanted.
        may_prune = prune and not part.failures
        for name, versions in self.previous_meta.items():
            for vn, entry in versions.items():
                if not may_prune:
                    part.metadata.setdefault(name, {}).setdefault(vn, clean_entry(entry))
        prefix, quick, links, folder, linked = self._prefix, not self.every_item, Links(self.root), None, None
        for rel, row in self._stored(sorted(wanted)):
            if rel.rpartition("/")[0] != folder:  # each folder once: a link on the way is never followed
                folder, linked = rel.rpartition("/")[0], links.on_the_way(rel)
            if linked is not None:  # nothing read, cleared or written through it
                part.items.append(Item(rel, Action.SKIP, reason=f"{linked}: a link or not a folder; move it away"))
                continue
            try:
                st = os.lstat(prefix + rel)  # joined as text: a Path per archive costs more than the call
            except FileNotFoundError:
                st = None
            chosen = wanted[rel]
            if quick and row is not None and st is not None and _as_recorded(row, st, chosen[2]):
                part.unchanged[rel] = chosen  # no item, no archive, no entry: nothing to do or to write
                continue
            name, vn, entry = chosen
            archive = archive_of(name, vn, entry, selection.repo_of.get(name))
            part.items.append(self._plan_wanted(rel, archive, entry_of(row) if row is not None else None, st))
        on_disk = dict(self._walk(set(wanted)))  # the files not wanted (a record without its file plans nothing)
        part.listing = self.listing
        unwanted = sorted(on_disk)
        # No selection: what is held is kept, and a held archive as its row records it needs neither item nor write.
        rows = self._stored(unwanted) if selection is None and quick else ((rel, None) for rel in unwanted)
        for rel, row in rows:
            st = on_disk[rel]
            if row is not None and _held_as_recorded(row, st):
                part.kept.add(rel)
                continue
            part.items.append(self._plan_unwanted(rel, st, prune, may_prune, selection is None))
        return part

    def _stored(self, rels: list):
        """(rel, the state's row or None) for each of the sorted *rels* (:meth:`State.rows_in_order`): one query
        for all, read alongside."""
        rows = self.state.rows_in_order(DIST)
        row = next(rows, None)
        for rel in rels:
            while row is not None and row[0] < rel:
                row = next(rows, None)
            yield rel, row if row is not None and row[0] == rel else None

    def _walk(self, wanted: set):
        """(rel, lstat) of each file under ``composer/dist/`` but the wanted ones (planned on their own, with
        their own ``lstat``) and their side files: a wanted file costs no second system call here. The files
        come from the last listing while no folder changed since (:mod:`~magedl.mirror.composer.listing`)."""
        files, self.listing = files_under(self.root, self.state)
        prefix = self._prefix
        for rel in files:
            if rel in wanted or (rel.endswith(SIDE_SUFFIXES)  # one test in C for the many that are no side file
                                 and any(rel.endswith(s) and rel[: -len(s)] in wanted for s in SIDE_SUFFIXES)):
                continue
            try:
                yield rel, os.lstat(prefix + rel)
            except FileNotFoundError:
                continue

    def _held(self, rel: str, st: os.stat_result, entry):
        """(the copy on disk as an entry, whether it is a copy this mirror verified); (None, False) on a dry run.

        *entry* is the state's record of *rel* (None: none)."""
        good, intact = check_copy(self.root, rel, st, entry, rehash=self.rehash, algorithms=DIGESTS)
        if good is not None and not intact:
            listed = self.previous.get(rel)
            shasum = ((listed or {}).get("dist") or {}).get("shasum")
            if listed is not None and shasum and good.sha1 == shasum:
                # The state was lost, but the p2 index names this very copy.
                good, intact = replace(good, records=(clean_entry(listed),)), True
        return good, intact

    def _plan_wanted(self, rel: str, archive: Archive, stored, st: Optional[os.stat_result]) -> Item:
        """The item of a wanted archive; *stored* is the state's entry of *rel* (None: none), *st* its ``lstat``
        (None: no such file)."""
        if st is None:
            return Item(rel, Action.FETCH, archive, reason="new" if stored is None else "missing from disk")
        if stat.S_ISLNK(st.st_mode):
            return Item(rel, Action.REPAIR, archive, reason="a symbolic link, not a file")
        if not stat.S_ISREG(st.st_mode):
            return Item(rel, Action.REPAIR, archive, reason="not a plain file")
        good, intact = self._held(rel, st, stored)
        if good is None:
            return Item(rel, Action.RECHECK, archive, size=st.st_size, reason="changed on disk since it was verified")
        recorded = _recorded(good, stored, archive)
        # The selection's entry, not the state's text of it (equal when recorded): the closure's texts held once.
        present = replace(good, records=(archive.entry,))
        if archive.shasum:
            if good.sha1 == archive.shasum:
                return Item(rel, Action.PRESENT, archive, size=st.st_size, entry=present, recorded=recorded)
            if intact:
                return Item(rel, Action.UPDATE, archive, size=st.st_size, entry=good,
                            reason=f"changed upstream (SHA-1 {good.sha1} -> {archive.shasum})")
            return Item(rel, Action.REPAIR, archive, size=st.st_size,
                        reason="the copy on disk does not match the repository's SHA-1")
        if intact:
            # Recorded: the stored record is this very entry (its text is not parsed, nor kept parsed).
            before = archive.reference if recorded else _reference(first_record(good.records))
            if before == archive.reference:
                return Item(rel, Action.PRESENT, archive, size=st.st_size, entry=present, recorded=recorded)
            return Item(rel, Action.UPDATE, archive, size=st.st_size, entry=good,
                        reason=f"changed upstream (reference {before or '?'} -> {archive.reference or '?'})")
        return Item(rel, Action.REPAIR, archive, size=st.st_size,
                    reason="not a copy this mirror verified, and the repository gives no SHA-1 to check it")

    def _plan_unwanted(self, rel: str, st: os.stat_result, prune: bool, may_prune: bool, unselected: bool) -> Item:
        regular = stat.S_ISREG(st.st_mode)
        size = st.st_size if regular else None
        good, intact = self._held(rel, st, self.state.get(rel)) if regular else (None, False)
        known = intact or self.state.get(rel) is not None or rel in self.previous
        if prune and (may_prune or not known):  # never *unselected*: such a run does not prune (plan)
            return Item(rel, Action.PRUNE, reason="no longer selected" if known else "not part of the mirror",
                        size=size)
        if not known:
            how = "--prune with Composer options removes it" if unselected else "--prune removes it"
            return Item(rel, Action.STRAY, reason=f"not part of the mirror; {how}", size=size)
        item = Item(rel, Action.KEEP, size=size,
                    reason=KEPT if unselected else
                    "no longer selected; --prune removes it" if not prune else
                    "not pruned: the Composer resolution failed in this run")
        if not regular:
            item.reason = "not a plain file (a symbolic link?); left out of the index; --prune removes it"
        elif intact and good.records:
            item.entry = good
        elif good is not None:
            item.reason = "changed on disk since it was verified; left out of the index"
        return item


def _as_recorded(row: tuple, st: os.stat_result, entry) -> bool:
    """Whether the archive whose ``lstat`` is *st* is present as its state *row* records it: the fingerprint,
    digests, and *entry* itself as its record. What :meth:`ComposerPlanner._plan_wanted` finds for it (present,
    recorded), without building its archive, item or entry. A record that is this very entry was verified
    against it (its SHA-1 as it landed, or found present by it): the text vouches for the SHA-1."""
    text = row[7]  # "[entry text]", compared without a copy
    return (_row_matches(row, st) and type(entry) is KeptEntry and type(text) is str
            and len(text) == len(entry.text) + 2 and text.startswith("[") and text.endswith("]")
            and text.startswith(entry.text, 1) and _shasum_agrees(entry.text, row[8]))


def _held_as_recorded(row: tuple, st: os.stat_result) -> bool:
    """Whether the held archive whose ``lstat`` is *st* is present as its state *row* records it, with a record to
    list it by (what :meth:`ComposerPlanner._plan_unwanted` finds for it: kept, intact, with an entry), without
    building its entry or item. Its record is the state's own text: no selection names it to compare with."""
    text = row[7]  # a record, as records_text writes one:
    return _row_matches(row, st) and type(text) is str and text.startswith("[{") and text.endswith("}]")


def _row_matches(row: tuple, st: os.stat_result) -> bool:
    """Whether the regular file of ``lstat`` *st* has its state *row*'s fingerprint, and the row all three digests."""
    _, md5, sha256, size, mtime_ns, ctime_ns, ino, _, sha1 = row
    return (st.st_ino == ino and st.st_size == size and st.st_mtime_ns == mtime_ns and st.st_ctime_ns == ctime_ns
            and stat.S_ISREG(st.st_mode) and type(md5) is str and md5 != "" and type(sha256) is str
            and sha256 != "" and type(sha1) is str and sha1 != "")


def _shasum_agrees(text: str, sha1: str) -> bool:
    """Whether the entry *text* names no SHA-1 (no ``shasum``, or an empty or null one), or names *sha1*:
    the SHA-1 is checked again on the quick path, so a record some future writer stored unchecked is not
    trusted for ever. Searched in the text, not parsed; a ``shasum`` key met twice, or any other value, is
    a "no", which only sends the archive down the full path (:meth:`ComposerPlanner._plan_wanted`)."""
    key = '"shasum":'
    at = text.find(key)
    if at < 0:
        return True
    if text.find(key, at + 1) >= 0:
        return False
    value = text[at + len(key):at + len(key) + len(sha1) + 2].lower()
    return value == f'"{sha1}"' or value.startswith(('""', "null"))


def _recorded(good, stored, archive: Archive) -> bool:
    """Whether the state holds the copy *good* with *archive*'s entry as its record already, so the run
    need not ask the state to write it (an up-to-date re-run then asks for no write per archive)."""
    return (good is stored and isinstance(stored.records, StoredRecords)
            and stored.records.text == records_text((archive.entry,)))  # texts compared: nothing encoded


def package_of(record: dict) -> tuple:
    """(name, version_normalized) of a kept entry's record, checked; raises UnsafeNameError."""
    name = check_package_name(str(record.get("name", "")))
    vn = record.get("version_normalized")
    if not isinstance(vn, str):
        raise UnsafeNameError(f"{name}: a version without version_normalized")
    return name, vn
