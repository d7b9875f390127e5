"""The values a mirror run passes around: actions, statuses, state entries, plan items.

A plan is a list of :class:`Item`, one per file of the mirror (wanted or held)
that the run may change or must report, each with the :class:`Action` the plan
chose and, once the run has dealt with it, the :class:`Status` it ended in; a
file present as the state records it is only named (:attr:`Plan.unchanged`), and a new file to
fetch only listed (:attr:`Plan.fetch_new`: its item is made when its transfer ends). What the mirror
knows of a good copy on disk is an :class:`Entry`, the unit of ``DIR/.magedl/state.sqlite``.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from json.encoder import encode_basestring_ascii as _quote
from typing import Any, NamedTuple, Optional

from magedl.errors import MagedlError

# One entry, one item per file of a mirror of 100,000: without a __dict__ each they take a fraction of
# the memory (Python 3.10 and later; 3.9 builds them with one).
SLOTS = {"slots": True} if sys.version_info >= (3, 10) else {}


class Action(str, Enum):
    """What the plan does with one file."""

    PRESENT = "present"  # held, good, wanted: nothing to do
    FETCH = "fetch"      # wanted and not held (or gone from disk)
    UPDATE = "update"    # held and intact, but upstream published other bytes
    REPAIR = "repair"    # held, but the copy on disk is bad (or a link)
    RECHECK = "recheck"  # changed on disk; a dry run does not re-hash to know more
    SKIP = "skip"        # an unsafe name: never touched
    KEEP = "keep"        # held, no longer selected: kept until --prune
    STRAY = "stray"      # on disk, not part of the mirror, not selected
    PRUNE = "prune"      # to be removed (--prune)

    def __str__(self) -> str:
        return self.value

    @property
    def fetches(self) -> bool:
        """Whether this action transfers the file."""
        return self in FETCHING


FETCHING = frozenset((Action.FETCH, Action.UPDATE, Action.REPAIR))


class Status(str, Enum):
    """What became of one file in a run (the ``status`` of ``mirror --json``)."""

    PRESENT = "present"
    FETCHED = "fetched"
    UPDATED = "updated"
    REPAIRED = "repaired"
    FAILED = "failed"
    PRUNED = "pruned"
    # Nothing was done: the status is the plan's action.
    RECHECK = "recheck"
    SKIP = "skip"
    KEEP = "keep"
    STRAY = "stray"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def done(cls, action: Action) -> "Status":
        """The status of a file whose *action* (fetch, update, repair) succeeded."""
        return {Action.FETCH: cls.FETCHED, Action.UPDATE: cls.UPDATED, Action.REPAIR: cls.REPAIRED}[action]

    @classmethod
    def untouched(cls, action: Action) -> "Status":
        """The status of a file the run has nothing to do for."""
        return cls(action.value)

    @property
    def transferred(self) -> bool:
        return self in (Status.FETCHED, Status.UPDATED, Status.REPAIRED)


class Fingerprint(NamedTuple):
    """What must not change for a verified file to stay verified without re-reading it.

    ctime cannot be set back by ``touch``, so even a byte flipped with the
    mtime restored is caught. Bit rot on the medium changes nothing here:
    that is what ``verify`` is for. A named tuple: built for every file of
    every run, it costs a fraction of a frozen dataclass.
    """

    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int

    @classmethod
    def of(cls, path: os.PathLike | str) -> "Fingerprint":
        """The fingerprint of the file at *path* itself (``lstat``: a link is not followed)."""
        return cls.from_stat(os.lstat(path))

    @classmethod
    def from_stat(cls, st: os.stat_result) -> "Fingerprint":
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)

    def same_as(self, st: os.stat_result) -> bool:
        """Whether the ``lstat`` *st* is of this very file (no Fingerprint built: a check per held file)."""
        return (st.st_ino == self.ino and st.st_size == self.size and st.st_mtime_ns == self.mtime_ns
                and st.st_ctime_ns == self.ctime_ns)


# One encoder for every call: json.dumps with options builds a new one each time (a plan compares every file).
# The state's canonical JSON: keys sorted, no spaces (one text per value, whoever encodes it).
canonical_json = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode


def canonical_records(records) -> str:
    """The records as the state stores them: one JSON text, keys sorted, no spaces."""
    if isinstance(records, StoredRecords):
        return records.text
    return canonical_json([r if type(r) is dict else dict(r) for r in records])


def canonical_release_records(releases) -> str:
    """:func:`canonical_records` of the releases' ``to_dict()``, written directly for plain records.

    A plain record (no ``ce_versions``, ``ee_versions`` or extra field, most
    of a feed) is five strings: formatting them costs a fraction of building
    a dict and encoding it, once per file on every run.
    """
    parts = []
    for r in releases:
        if r.ce_versions or r.ee_versions or r.extra:
            return canonical_records([r.to_dict() for r in releases])
        parts.append(f'{{"file_name":{_quote(r.file_name)},"md5":{_quote(r.md5)},"name":{_quote(r.name)},'
                     f'"type":{_quote(r.type)},"version":{_quote(r.version)}}}')
    return "[" + ",".join(parts) + "]"


class StoredRecords(Sequence):
    """An entry's records as the state stored them (their canonical JSON text), parsed only when read.

    An up-to-date re-run compares the feed's records with the stored ones for
    every file: comparing texts needs no parse, and the text takes a fraction of
    the memory of the dicts. Reads (an index entry for a file no longer upstream,
    a ``--json`` row) parse it once. Text that is not a JSON list of objects
    reads as no records, as a damaged row did before.
    """

    __slots__ = ("text", "_parsed")

    def __init__(self, text: str):
        self.text = text
        self._parsed = None

    def _records(self) -> tuple:
        if self._parsed is None:
            try:
                parsed = json.loads(self.text)
            except (TypeError, ValueError, RecursionError):
                parsed = None
            self._parsed = tuple(r for r in parsed if isinstance(r, dict)) if isinstance(parsed, list) else ()
        return self._parsed

    def __getitem__(self, index):
        return self._records()[index]

    def __len__(self) -> int:
        return 0 if self.text == "[]" else len(self._records())

    def __iter__(self):
        return iter(self._records())

    def __eq__(self, other) -> bool:
        if isinstance(other, StoredRecords):
            return self.text == other.text
        if isinstance(other, (tuple, list)):
            try:
                return self.text == canonical_records(other)
            except (TypeError, ValueError):
                return False
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"StoredRecords({self.text!r})"


def regular_file(path: os.PathLike | str) -> Optional[os.stat_result]:
    """The ``lstat`` of *path* when it is a regular file (not a link), else None."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


@dataclass(**SLOTS)
class Entry:
    """A copy on disk the mirror verified: its digests, its fingerprint then, and what it was verified against.

    Never changed once made (:meth:`moved_to` and ``dataclasses.replace`` make
    changed copies); not frozen only because a frozen dataclass costs several
    times as much to build, and the state builds one per file on every run.

    Attributes
    ----------
    md5, sha256 : str
        Digests of the bytes (lower-case hex).
    fingerprint : Fingerprint
        The file on disk when it was verified.
    records : tuple of dict, or StoredRecords
        The feed records (:meth:`Release.to_dict`) it was verified against
        (as the state stores them, when read from it): the index lists them
        while the file is held, even once upstream dropped it. For a Composer
        archive, the p2 version entries instead.
    sha1 : str
        SHA-1 of the bytes, when something (Composer's ``dist.shasum``) needs it.
    """

    md5: str
    sha256: str
    fingerprint: Fingerprint
    records: tuple = ()
    sha1: str = ""

    def matches(self, fp: Fingerprint) -> bool:
        """Whether the file on disk is still the one verified (and the digests are complete)."""
        return self.fingerprint == fp and bool(self.md5) and bool(self.sha256)

    def moved_to(self, fp: Fingerprint, **changes: Any) -> "Entry":
        """The same bytes, now at fingerprint *fp* (re-hashed and found equal)."""
        return replace(self, fingerprint=fp, **changes)

    def to_json(self) -> dict:
        fp = self.fingerprint
        out = {"md5": self.md5, "sha256": self.sha256, "size": fp.size, "mtime_ns": fp.mtime_ns,
               "ctime_ns": fp.ctime_ns, "ino": fp.ino, "records": [dict(r) for r in self.records]}
        if self.sha1:
            out["sha1"] = self.sha1
        return out

    @classmethod
    def from_json(cls, data: Any) -> Optional["Entry"]:
        """The entry a state file holds, or None when it is not one (the state is a cache: skip it)."""
        if not isinstance(data, dict):
            return None
        try:
            fp = Fingerprint(*(int(data[k]) for k in ("size", "mtime_ns", "ctime_ns", "ino")))
        except (KeyError, TypeError, ValueError):
            return None
        md5, sha256, sha1 = data.get("md5"), data.get("sha256"), data.get("sha1", "")
        records = data.get("records") or ()
        if not all(isinstance(v, str) for v in (md5, sha256, sha1)) or not isinstance(records, (list, tuple)):
            return None
        return cls(md5, sha256, fp, tuple(r for r in records if isinstance(r, dict)), sha1)


@dataclass(**SLOTS)
class Item:
    """One file of the mirror: what the plan says, and what came of it.

    Attributes
    ----------
    rel : str
        Path relative to the mirror folder (``file/<file_name>``, ``composer/dist/...``).
    action : Action
    source : object
        What the file is fetched from and described by: a :class:`~magedl.service.catalog.Release`
        for release archives, a :class:`~magedl.mirror.composer.Archive` for Composer ones;
        None for files no longer selected.
    reason : str
        Why the plan chose *action*, for people.
    size : int or None
        Bytes on disk, or to fetch when known.
    entry : Entry or None
        The verified copy on disk, when there is one (after the run: the new one).
    status : Status or None
        Set by the run.
    error : MagedlError or None
        Why a transfer failed.
    transferred : int
        Bytes that crossed the network for it.
    recorded : bool
        The state already holds this file's record as it is (the run need not write it); *entry* then
        may leave out the records, when they are the feed's (*source*) as stored.
    in_state : bool
        A release file that landed: its record went to the state as it landed, and *entry* was
        dropped once the file was reported (a cold run holds no entry per file until its end); the
        index write reads it from the state.
    """

    rel: str
    action: Action
    source: Any = None
    reason: str = ""
    size: Optional[int] = None
    entry: Optional[Entry] = None
    status: Optional[Status] = None
    error: Optional[MagedlError] = None
    transferred: int = 0
    recorded: bool = False
    in_state: bool = False

    @property
    def file_name(self) -> str:
        """The release file name (``rel`` without ``file/``), or ``rel`` for other files."""
        head, _, rest = self.rel.partition("/")
        return rest if head == "file" and rest else self.rel

    def to_dict(self) -> dict:
        """One row of ``mirror --json``: the record it is described by, the action and the outcome."""
        if self.source is not None:
            out = self.source.to_dict()
        elif self.entry is not None and self.entry.records and "file_name" in self.entry.records[0]:
            out = dict(self.entry.records[0])
        elif self.entry is not None and self.entry.records:  # a Composer version entry
            record = self.entry.records[0]
            out = {"name": record.get("name"), "file_name": None, "version": record.get("version"),
                   "type": "composer", "md5": None}
        else:
            out = {"name": None, "file_name": self.file_name, "version": None, "type": None, "md5": None}
        # In a plan (a dry run) nothing has happened yet: the status is the action.
        out.update(action=self.action.value, status=(self.status or self.action).value, size=self.size)
        if out.get("type") == "composer":
            out["file_name"] = self.rel
        if self.entry is not None:
            out.update(sha256=self.entry.sha256, local_md5=self.entry.md5)
            if self.entry.sha1:
                out["sha1"] = self.entry.sha1
        if self.reason:
            out["reason"] = self.reason
        if self.error is not None:
            out.update(error=str(self.error), exit_code=self.error.exit_code)
        return out


@dataclass
class Plan:
    """What a run will do: the items, and the catalogue they were planned against.

    Attributes
    ----------
    items : list of Item
        Every file wanted or held, in the order the run reports them.
    upstream : tuple of Release
        The whole catalogue, in feed order: the index lists held files in it.
    dropped : tuple of str
        Paths the state remembered but that are gone from disk: forgotten.
    composer : ComposerPart or None
        The Composer part's metadata-only versions, failures and URL; None when
        the mirror has no Composer part and the run asks for none.
    locks : tuple of str
        Per-file lock files found beside wanted files: a run killed after its
        file landed leaves one; the run removes those no process holds.
    unchanged : dict
        File name -> the :class:`~magedl.service.catalog.Release` it was planned from, for each
        wanted release file present as the state records it (fingerprint, digests and records):
        nothing to do and nothing to write, so no :class:`Item` is built for it. The index write
        and the run's report read its digests from the state (``state.sqlite``) again.
    fetch_new : list of Release
        Wanted release files with no copy on disk and no state row, in path order: each is to be
        fetched (``fetch``, "new"), and its :class:`Item` is made only once its transfer ended, then
        dropped once reported (a cold run holds no item per file to fetch). Not in *items*.
    landed : set of str
        File names of the release files this run landed: their records went to the state as they
        landed, and the index write lists them from there, as an unchanged file.
    """

    items: list = field(default_factory=list)
    upstream: tuple = ()
    dropped: tuple = ()
    composer: Any = None
    locks: tuple = ()
    unchanged: dict = field(default_factory=dict)
    fetch_new: list = field(default_factory=list)
    landed: set = field(default_factory=set)
    by_name: Optional[dict] = field(default=None, repr=False, compare=False)  # records_by_name(upstream), built once

    def __iter__(self):
        return iter(self.items)

    def with_action(self, *actions: Action) -> list:
        return [it for it in self.items if it.action in actions]

    def records_of(self, file_name: str) -> tuple:
        """The catalogue's records of one file name, in feed order (a lookup, not a scan)."""
        if self.by_name is None:
            self.by_name = records_by_name(self.upstream)
        listed = self.by_name.get(file_name)
        if listed is None:
            return ()
        return tuple(listed) if isinstance(listed, list) else (listed,)

    @property
    def to_fetch(self) -> list:
        """The items whose files are to be fetched (the files of :attr:`fetch_new` have no item)."""
        return [it for it in self.items if it.action.fetches]

    @property
    def fetch_count(self) -> int:
        """How many files the run is to fetch: :attr:`to_fetch` and :attr:`fetch_new`."""
        return len(self.to_fetch) + len(self.fetch_new)


def records_by_name(upstream) -> dict:
    """File name -> its one record, or the list of its records in feed order (most files have one)."""
    by_name: dict = {}
    for r in upstream:
        listed = by_name.setdefault(r.file_name, r)
        if listed is not r:
            if not isinstance(listed, list):
                listed = by_name[r.file_name] = [listed]
            listed.append(r)
    return by_name


@dataclass
class Summary:
    """Counts for the end-of-run line."""

    counts: dict = field(default_factory=dict)
    transferred: int = 0
    failures: list = field(default_factory=list)

    def add(self, item: Item) -> None:
        status = item.status or Status.untouched(item.action)
        self.counts[status] = self.counts.get(status, 0) + 1
        self.transferred += item.transferred
        if item.error is not None:
            self.failures.append(item)

    def count(self, *statuses: Status) -> int:
        return sum(self.counts.get(s, 0) for s in statuses)
