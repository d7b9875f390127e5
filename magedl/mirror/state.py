"""A mirror's bookkeeping in ``DIR/.magedl/``: the lock and the verified-digest cache.

``state.json`` maps each file's path relative to the mirror to the
:class:`~magedl.mirror.model.Entry` it had when it was verified: its digests,
the records it was verified against, and the fingerprint of the file on disk
at that moment (size, mtime, ctime, inode). A file whose fingerprint still
matches is known good without reading it; any other file is re-hashed before
it is trusted. The state is a cache, never the truth: losing it costs
re-hashing, not correctness.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Iterable, Optional

from magedl.fsutil import FILE_MODE, atomic_write, make_dirs, open_nofollow, read_if_regular
from magedl.locks import FileLock
from magedl.mirror.layout import BOOKKEEPING, FILES, LOCK, STATE
from magedl.mirror.model import Entry

log = logging.getLogger(__name__)

VERSION = 2
# A state of a mirror of 100,000 files is about 50 MB; more is not ours.
MAX_STATE_BYTES = 256 << 20


def mirror_lock(root: os.PathLike | str) -> FileLock:
    """The lock every run that writes *root* holds (``DIR/.magedl/lock``).

    Call :func:`magedl.mirror.layout.check_layout` first: ``.magedl`` must
    not be a link.
    """
    make_dirs(Path(root) / BOOKKEEPING)
    return FileLock(Path(root) / LOCK, f"another magedl mirror run ({{holder}}) is writing {root}", keep=True)


def _journal(path: Path) -> Path:
    """``state.json``'s delta journal: paths appended the moment they land, folded in by the next save."""
    return path.with_name("delta.journal")


def _read(path: Path) -> tuple[dict, set]:
    """(entries, delta) from a state file and its journal; empty when missing or damaged."""
    entries, delta = _read_state(path)
    raw = read_if_regular(_journal(path), MAX_STATE_BYTES)
    if raw is not None:
        delta |= {line for line in raw.decode("utf-8", "replace").splitlines() if line}
    return entries, delta


def _read_state(path: Path) -> tuple[dict, set]:
    raw = read_if_regular(path, MAX_STATE_BYTES)
    try:
        data = json.loads(raw.decode("utf-8")) if raw is not None else None
        files = data["files"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return {}, set()
    if not isinstance(files, dict):
        return {}, set()
    # Version 1 keyed release files by file name; paths relative to the mirror now.
    prefix = "" if data.get("version", 1) >= 2 else f"{FILES}/"
    entries = {}
    for rel, value in files.items():
        entry = Entry.from_json(value)
        if entry is not None and isinstance(rel, str):
            entries[prefix + rel] = entry
    delta = data.get("delta")
    delta = {p for p in delta if isinstance(p, str)} if isinstance(delta, list) else set()
    return entries, delta


class State:
    """``DIR/.magedl/state.json``: relative path -> :class:`Entry`, and the pending delta.

    Saving re-reads the file and applies only this run's changes, so two runs
    that both ignore the lock lose at most some cached digests (the files are
    then re-hashed), never a file.
    """

    def __init__(self, root: os.PathLike | str):
        self.path = Path(root) / STATE
        self.entries, self.delta = _read(self.path)
        self._changes: dict = {}
        self._delta_added: set = set()
        self._delta_cleared = False

    def get(self, rel: str) -> Optional[Entry]:
        return self.entries.get(rel)

    def set(self, rel: str, entry: Entry) -> None:
        self.entries[rel] = self._changes[rel] = entry

    def drop(self, rel: str) -> None:
        self.entries.pop(rel, None)
        self._changes[rel] = None

    def add_delta(self, paths: Iterable[str], durable: bool = False) -> None:
        """Remember paths changed in the mirror until a ``--diff-file`` has listed them.

        Kept in the state file, so a run killed after replacing a file still
        hands that file to the next run's delta. With *durable*, the paths are
        also appended to a small journal at once: a run that saves the whole
        state only now and then (rewriting it per file would cost the square
        of the file count) still hands every landed file on after a kill.
        """
        paths = set(paths) - self.delta
        self.delta |= paths
        self._delta_added |= paths
        if durable and paths:
            make_dirs(self.path.parent)
            fd = open_nofollow(_journal(self.path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
            try:
                os.write(fd, "".join(f"{p}\n" for p in sorted(paths)).encode("utf-8"))
            finally:
                os.close(fd)

    def clear_delta(self) -> None:
        """A delta file now lists everything changed: start afresh."""
        self.delta, self._delta_added, self._delta_cleared = set(), set(), True

    def save(self) -> None:
        if not self._changes and not self._delta_added and not self._delta_cleared:
            return
        merged, delta = _read(self.path)
        for rel, entry in self._changes.items():
            if entry is None:
                merged.pop(rel, None)
            else:
                merged[rel] = entry
        delta = self._delta_added if self._delta_cleared else delta | self._delta_added
        data = {"version": VERSION, "files": {rel: e.to_json() for rel, e in sorted(merged.items())},
                "delta": sorted(delta)}
        atomic_write(self.path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode("utf-8"))
        try:
            os.unlink(_journal(self.path))  # the state now holds what the journal held
        except FileNotFoundError:
            pass
        self.entries, self.delta, self._changes = merged, delta, {}
        self._delta_added, self._delta_cleared = set(), False
