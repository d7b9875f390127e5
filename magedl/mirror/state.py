"""A mirror's bookkeeping in ``DIR/.magedl/``: the lock and the verified-digest cache (``state.sqlite``).

The rule a reader must not break: the state is a cache, never the truth; a file whose fingerprint no
longer matches its :class:`~magedl.mirror.model.Entry` is re-hashed before it is trusted. Why SQLite,
and how an older ``state.json`` moves in: see docs/scale.md, "The digest cache is a database".
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Optional

from magedl.fsutil import fsync_dir, make_dirs, read_if_regular
from magedl.locks import FileLock
from magedl.mirror.layout import FILES, LOCK, STATE, STATE_DB
from magedl.mirror.model import Entry, Fingerprint, StoredRecords, canonical_records
from magedl.paths import BOOKKEEPING

log = logging.getLogger(__name__)

# The largest state.json an older magedl could have written for 100,000 files is about 50 MB.
MAX_STATE_BYTES = 256 << 20
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS files (rel TEXT PRIMARY KEY, md5 TEXT, sha256 TEXT, size INTEGER, "
    "mtime_ns INTEGER, ctime_ns INTEGER, ino INTEGER, records TEXT, sha1 TEXT) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS delta (rel TEXT PRIMARY KEY) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS memo (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID",
)
_COLUMNS = ("md5", "sha256", "size", "mtime_ns", "ctime_ns", "ino", "records", "sha1")
# An unchanged entry is not written again: a re-run of an up-to-date mirror writes no record.
_UPSERT = ("INSERT INTO files (rel, " + ", ".join(_COLUMNS) + ") VALUES (?" + ", ?" * len(_COLUMNS) + ") "
           "ON CONFLICT(rel) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS)
           + " WHERE " + " OR ".join(f"files.{c} IS NOT excluded.{c}" for c in _COLUMNS))


def mirror_lock(root: os.PathLike | str) -> FileLock:
    """The lock every run that writes *root* holds (``DIR/.magedl/lock``).

    Call :func:`magedl.mirror.layout.check_layout` first: ``.magedl`` must
    not be a link.
    """
    make_dirs(Path(root) / BOOKKEEPING)
    return FileLock(Path(root) / LOCK, f"another magedl mirror run ({{holder}}) is writing {root}", keep=True)


def _journal(path: Path) -> Path:
    """The older ``state.json``'s delta journal: paths appended the moment they landed."""
    return path.with_name("delta.journal")


def read_legacy(path: Path) -> tuple[dict, set]:
    """(entries, delta) of an older magedl's ``state.json`` and its journal; empty when missing or damaged."""
    entries, delta = {}, set()
    raw = read_if_regular(path, MAX_STATE_BYTES)
    try:
        data = json.loads(raw.decode("utf-8")) if raw is not None else None
        files = data["files"] if data is not None else {}
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        files, data = {}, None
    if isinstance(files, dict) and isinstance(data, dict):
        # Version 1 keyed release files by file name; paths relative to the mirror since.
        prefix = "" if data.get("version", 1) >= 2 else f"{FILES}/"
        for rel, value in files.items():
            entry = Entry.from_json(value)
            if entry is not None and isinstance(rel, str):
                entries[prefix + rel] = entry
        listed = data.get("delta")
        delta = {p for p in listed if isinstance(p, str)} if isinstance(listed, list) else set()
    raw = read_if_regular(_journal(path), MAX_STATE_BYTES)
    if raw is not None:
        delta |= {line for line in raw.decode("utf-8", "replace").splitlines() if line}
    return entries, delta


def _row(rel: str, entry: Entry) -> tuple:
    fp = entry.fingerprint
    return (rel, entry.md5, entry.sha256, fp.size, fp.mtime_ns, fp.ctime_ns, fp.ino, canonical_records(entry.records),
            entry.sha1)


def _entry(row: tuple) -> Optional[Entry]:
    """The entry of one row; its records stay the stored text until read (see :class:`StoredRecords`)."""
    md5, sha256, size, mtime_ns, ctime_ns, ino, records, sha1 = row
    if not (type(md5) is str and type(sha256) is str and type(sha1) is str and type(records) is str
            and records.startswith("[")):
        return None
    if not (type(size) is int and type(mtime_ns) is int and type(ctime_ns) is int and type(ino) is int):
        try:  # as an older magedl may have stored them
            size, mtime_ns, ctime_ns, ino = int(size), int(mtime_ns), int(ctime_ns), int(ino)
        except (TypeError, ValueError):
            return None
    return Entry(md5, sha256, Fingerprint(size, mtime_ns, ctime_ns, ino), StoredRecords(records), sha1)


def entry_of(row: tuple) -> Optional[Entry]:
    """The entry of one row of :meth:`State.rows_in_order` (None when damaged)."""
    return _entry(row[1:])


def _clear_non_regular(path: Path) -> None:
    """A link or other non-file where the database (or its log) belongs goes: SQLite would follow it."""
    for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            st = os.lstat(name)
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(st.st_mode):
            os.unlink(name)


class State:
    """``DIR/.magedl/state.sqlite``: relative path -> :class:`Entry`, and the pending delta.

    Every change is committed as it is made (or at the end of a :meth:`batch`),
    so two runs that both ignore the lock lose at most some cached digests
    (the files are then re-hashed), never a file. Nothing is created until the
    first change.
    """

    def __init__(self, root: os.PathLike | str):
        self.path = Path(root) / STATE_DB
        self.legacy_path = Path(root) / STATE
        self._db: Optional[sqlite3.Connection] = None
        self._legacy: Optional[tuple] = None
        self._depth = 0
        if os.path.lexists(self.path):
            self._open()
        elif os.path.lexists(self.legacy_path) or os.path.lexists(_journal(self.legacy_path)):
            self._legacy = read_legacy(self.legacy_path)

    # -- the database ------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        make_dirs(self.path.parent)
        _clear_non_regular(self.path)
        try:
            self._db = self._connect()
        except sqlite3.DatabaseError as exc:  # damaged: it is only a cache
            log.warning("%s: unreadable (%s); starting an empty cache (files are re-hashed)", self.path, exc)
            for suffix in ("", "-wal", "-shm"):
                try:
                    os.unlink(f"{self.path}{suffix}")
                except FileNotFoundError:
                    pass
            self._db = self._connect()
        self._migrate()
        return self._db

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            # NORMAL: a commit is in the log at once (a kill loses nothing); only a power cut may lose
            # the last ones, which costs re-hashing those files.
            db.execute("PRAGMA synchronous=NORMAL")
            for statement in _SCHEMA:
                db.execute(statement)
            db.execute("SELECT count(*) FROM files WHERE 0").fetchone()
        except BaseException:
            db.close()
            raise
        os.chmod(self.path, 0o600)
        return db

    def _migrate(self) -> None:
        """Move an older magedl's ``state.json`` and journal into the database, once."""
        legacy = self._legacy
        if legacy is None and (os.path.lexists(self.legacy_path) or os.path.lexists(_journal(self.legacy_path))):
            legacy = read_legacy(self.legacy_path)
        if legacy is None:
            return
        entries, delta = legacy
        with self.batch():
            for rel, entry in entries.items():
                if self._get(rel) is None:  # written since by this magedl: newer than the old file
                    self._db.execute(_UPSERT, _row(rel, entry))
            self._db.executemany("INSERT OR IGNORE INTO delta (rel) VALUES (?)", ((p,) for p in delta))
        for old in (self.legacy_path, _journal(self.legacy_path)):
            try:
                os.unlink(old)
            except FileNotFoundError:
                pass
        self._legacy = None
        log.info("%s: the digest cache moved into %s", self.legacy_path, self.path.name)

    @contextmanager
    def batch(self):
        """One transaction for the changes made inside (many records at once, e.g. a plan's)."""
        db = self._open()
        if self._depth == 0:
            db.execute("BEGIN IMMEDIATE")
        self._depth += 1
        try:
            yield self
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                db.execute("ROLLBACK")
            raise
        self._depth -= 1
        if self._depth == 0:
            db.execute("COMMIT")

    @property
    def changes(self) -> int:
        """Records written by this instance so far (tests use it: one landed file, one record)."""
        return self._db.total_changes if self._db is not None else 0

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- entries -----------------------------------------------------------------

    def _get(self, rel: str) -> Optional[Entry]:
        row = self._db.execute("SELECT " + ", ".join(_COLUMNS) + " FROM files WHERE rel = ?", (rel,)).fetchone()
        return _entry(row) if row is not None else None

    def get(self, rel: str) -> Optional[Entry]:
        if self._legacy is not None:
            return self._legacy[0].get(rel)
        return self._get(rel) if self._db is not None else None

    def set(self, rel: str, entry: Entry) -> None:
        """Record *entry* for *rel*; an identical record is left as it is (nothing written)."""
        self._open().execute(_UPSERT, _row(rel, entry))

    def drop(self, rel: str) -> None:
        self._open().execute("DELETE FROM files WHERE rel = ?", (rel,))

    def entries_in_order(self, top: str) -> Iterator[tuple]:
        """``(path, Entry)`` of every record under the folder *top*, sorted by path, read as the cursor yields
        them: a caller walking its own sorted paths alongside looks each one up without a query per path and
        without holding every record. A damaged record maps to None, as :meth:`get` answers for it (the file
        is re-hashed); records that are not a JSON list read as none."""
        if self._legacy is not None:
            yield from sorted((rel, e) for rel, e in self._legacy[0].items() if rel.startswith(top + "/"))
            return
        for row in self.rows_in_order(top):
            yield row[0], _entry(row[1:])

    def rows_in_order(self, top: str) -> Iterator[tuple]:
        """:meth:`entries_in_order` as raw rows, ``(path, md5, sha256, size, mtime_ns, ctime_ns, ino, records
        text, sha1)``, no object built: a plan compares most rows with the file as they are and drops them
        (:func:`entry_of` makes the entry of one it keeps; a damaged row compares unequal)."""
        if self._legacy is not None:
            for rel, e in self.entries_in_order(top):
                yield _row(rel, e)
            return
        if self._db is None:
            return
        # Every path under top/ sorts between "top/" and "top0" ("0" follows "/").
        yield from self._db.execute("SELECT rel, " + ", ".join(_COLUMNS) + " FROM files WHERE rel >= ? AND rel < ? "
                                    "ORDER BY rel", (top + "/", top + "0"))

    def digests_in_order(self, top: str) -> Iterator[tuple]:
        """``(path, md5, sha256, sha1, size, mtime_ns, ctime_ns, ino)`` of every record under the folder *top*,
        sorted by path, read as the cursor yields them and without the records: what the index write
        lists of each held file. A damaged row is left out (its file is not listed)."""
        if self._legacy is not None:
            for rel, e in sorted((rel, e) for rel, e in self._legacy[0].items() if rel.startswith(top + "/")):
                yield (rel, e.md5, e.sha256, e.sha1, *e.fingerprint)
            return
        if self._db is None:
            return
        rows = self._db.execute("SELECT rel, md5, sha256, sha1, size, mtime_ns, ctime_ns, ino FROM files "
                                "WHERE rel >= ? AND rel < ? ORDER BY rel", (top + "/", top + "0"))
        for row in rows:
            if type(row[1]) is str and type(row[2]) is str and type(row[3]) is str and all(
                    type(v) is int for v in row[4:]):
                yield row
                continue
            entry = _entry((row[1], row[2], *row[4:], "[]", row[3]))  # as an older magedl may have stored them
            if entry is not None:
                yield (row[0], entry.md5, entry.sha256, entry.sha1, *entry.fingerprint)

    def paths(self, top: str = "") -> set:
        """The paths with an entry, all or those under the folder *top* (``file``, ``composer/dist``)."""
        if self._legacy is not None:
            return {rel for rel in self._legacy[0] if not top or rel.startswith(top + "/")}
        if self._db is None:
            return set()
        if not top:
            return {rel for rel, in self._db.execute("SELECT rel FROM files")}
        # Every path under top/ sorts between "top/" and "top0" ("0" follows "/").
        return {rel for rel, in self._db.execute("SELECT rel FROM files WHERE rel >= ? AND rel < ?",
                                                 (top + "/", top + "0"))}

    # -- the delta ---------------------------------------------------------------

    @property
    def delta(self) -> set:
        """Paths changed in the mirror since a ``--diff-file`` last listed them."""
        if self._legacy is not None:
            return set(self._legacy[1])
        if self._db is None:
            return set()
        return {rel for rel, in self._db.execute("SELECT rel FROM delta")}

    def add_delta(self, paths: Iterable[str], durable: bool = False) -> None:
        """Remember paths changed in the mirror until a ``--diff-file`` has listed them.

        Committed at once (outside a :meth:`batch`), so a run killed after
        replacing a file still hands that file to the next run's delta.
        *durable* is kept for callers that say so; every change is.
        """
        paths = list(paths)
        if paths:
            self._open().executemany("INSERT OR IGNORE INTO delta (rel) VALUES (?)", ((p,) for p in paths))

    def clear_delta(self) -> None:
        """A delta file now lists everything changed: start afresh."""
        if self._db is not None or self._legacy is not None:
            self._open().execute("DELETE FROM delta")

    # -- what the mirror last wrote (see magedl.mirror.index.Memo) -------------------

    def remembered(self, key: str) -> Optional[str]:
        if self._db is None:
            return None
        row = self._db.execute("SELECT value FROM memo WHERE key = ?", (key,)).fetchone()
        return row[0] if row is not None else None

    def remember(self, key: str, value: str) -> None:
        self._open().execute("INSERT OR REPLACE INTO memo (key, value) VALUES (?, ?)", (key, value))

    def sync(self) -> bool:
        """Make every commit so far survive a power cut, not only a kill (``synchronous=NORMAL`` syncs the log only
        at a checkpoint, so this is one): for a caller about to remove what would let a later run redo them.
        Whether it did: False when a reader kept the checkpoint from finishing."""
        if self._db is None:
            return True
        busy, logged, moved = self._db.execute("PRAGMA wal_checkpoint(FULL)").fetchone()
        fsync_dir(self.path.parent)  # the database's name too, when this run created it
        return not busy and logged == moved

    def save(self) -> None:
        """Nothing left to write: every change is committed as it is made (kept for callers)."""
