"""What an index write changed, for the delta file: ``SHA256SUMS`` as the run found it against as written.

A landed file puts itself in the delta as it lands; what else changed (index files, pages, a file whose
copy the index now describes otherwise) is every path the new ``SHA256SUMS`` lists with another sha256
than the one found at the start of the run. The new file is read a line at a time: at 100,000 files,
parsing it whole (its bytes, its text and a dict of every path) was a cold run's peak (docs/scale.md).
"""

from __future__ import annotations

import os

from magedl.mirror.index import sums_in_file
from magedl.mirror.layout import SUMS

_BATCH = 2048


def note_changes(root: os.PathLike | str, state, before: dict) -> bool:
    """Put in *state*'s delta each path ``root/SHA256SUMS`` lists with another sha256 than in *before*
    (``{rel: sha256}``), a batch at a time, and ``SHA256SUMS`` itself when the two differ at all (a path
    listed in one only included), all in one commit (a kill never leaves the paths without the file that
    lists them); whether they differ."""
    seen, moved, batch = 0, False, []
    with state.batch():
        for rel, sha in sums_in_file(os.path.join(root, SUMS)):
            old = before.get(rel)
            seen += old is not None
            if old != sha:
                moved = True
                batch.append(rel)
                if len(batch) == _BATCH:
                    state.add_delta(batch)
                    batch = []
        moved = moved or seen != len(before)
        state.add_delta([*batch, SUMS] if moved else batch)  # it does not list itself, but it changed too
    return moved
