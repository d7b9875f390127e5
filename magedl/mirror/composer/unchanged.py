"""The archives a Composer plan found present as the state records them: no item each, read from the state again.

An up-to-date re-run builds no :class:`~magedl.mirror.model.Item`, archive or entry for a wanted archive whose
``lstat``, digests and record are as the state holds them (:attr:`~magedl.mirror.composer.plan.ComposerPart.unchanged`,
as :attr:`~magedl.mirror.model.Plan.unchanged` for release files). What the index write lists of them and the items
of a caller that reports every file (``--json``) are read from the state's rows, one query in path order. The
rule a reader must not break: an archive is listed only while its ``lstat`` is the fingerprint it was verified at.
A run with no Composer selection keeps what is held the same way
(:attr:`~magedl.mirror.composer.plan.ComposerPart.kept`): those archives' records are the state's text, as their
items carried them before.
"""

from __future__ import annotations

import os
from typing import Iterator

from magedl.mirror.composer.index import DIST
from magedl.mirror.composer.plan import KEPT, ComposerPart, archive_of
from magedl.mirror.model import Action, Entry, Fingerprint, Item, Status
from magedl.mirror.state import entry_of


def held_entries(root: os.PathLike | str, state, part: ComposerPart) -> dict:
    """``{rel: Entry}`` of the unchanged archives of *part* still on disk as verified, from their state rows."""
    prefix, out = os.path.join(os.fspath(root), ""), {}
    for rel, entry in _entries(state, part):
        try:
            if entry.fingerprint.same_as(os.lstat(prefix + rel)):
                out[rel] = entry
        except OSError:
            continue  # gone since the plan: not listed
    return out


def unchanged_items(state, part: ComposerPart) -> Iterator[Item]:
    """An item for each unchanged (or kept) archive of *part*, made as its state row is read (path order), for a
    caller that reports every file; nothing holds them but the caller."""
    for rel, entry in _entries(state, part):
        if rel in part.kept:
            yield Item(rel, Action.KEEP, size=entry.fingerprint.size, reason=KEPT,
                       status=Status.untouched(Action.KEEP), recorded=True, entry=entry)
            continue
        name, vn, kept = part.unchanged[rel]
        yield Item(rel, Action.PRESENT, archive_of(name, vn, kept, part.repo_of.get(name)),
                   size=entry.fingerprint.size, status=Status.PRESENT, recorded=True, entry=entry)


def _entries(state, part: ComposerPart) -> Iterator[tuple]:
    """``(rel, Entry)`` of each unchanged archive of *part*, in path order, its digests and fingerprint read
    from the state and its record the selection's own entry (equal to the state's text: the plan checked it),
    so no second copy of an entry's text is read. A kept archive's record is the state's text (no selection)."""
    if part.kept:
        for row in state.rows_in_order(DIST):
            rel = row[0]
            chosen = part.unchanged.get(rel)
            entry = entry_of(row) if rel in part.kept or chosen is not None else None
            if entry is not None:
                yield rel, entry if chosen is None else Entry(entry.md5, entry.sha256, entry.fingerprint,
                                                              (chosen[2],), entry.sha1)
        return
    if not part.unchanged:
        return
    for rel, md5, sha256, sha1, *fingerprint in state.digests_in_order(DIST):
        chosen = part.unchanged.get(rel)
        if chosen is not None:
            yield rel, Entry(md5, sha256, Fingerprint(*fingerprint), (chosen[2],), sha1)
