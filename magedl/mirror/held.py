"""The files a mirror holds and verified, as an index write lists them: read from the state, in path order.

An up-to-date re-run builds no plan item for a release file present as the state records it
(:attr:`~magedl.mirror.model.Plan.unchanged`), so the index write reads what it lists of those
files (digests and fingerprint) from the state, one query in path order, instead of from an
object per file. The rule a reader must not break: a file is listed only when its ``lstat`` is
still the fingerprint it was verified at (the index never lists bytes not there).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Iterator

from magedl.mirror.layout import FILES
from magedl.mirror.model import Entry, Fingerprint


class Held(Mapping):
    """``{path: Entry}`` of the files held and verified, in path order, holding no object per release file.

    One pass over the state's rows under ``file/`` checks each against its ``lstat`` and keeps
    the answer as one byte per row; later passes (the pages' inputs, ``SHA256SUMS``) read the rows
    again in the same order and build each :class:`~magedl.mirror.model.Entry` only as it is read
    (without its records). The Composer archives come from the plan's items (*composer*).

    Parameters
    ----------
    root : path
        The mirror folder.
    state : State
        Its digest cache; nothing is written to it between the passes.
    composer : dict
        ``{path: Entry}`` of the Composer archives held and verified (they sort before ``file/``).
    excluded : set of str
        Release paths not to list whatever the state says (left out of this write, failed, pruned).
    watch : set of str
        Release paths (of the few plan items) for which :attr:`seen` says whether they are listed.
    """

    in_order = True  # iterating gives the paths sorted, and items() reads each row once

    def __init__(self, root: os.PathLike | str, state, composer: dict, excluded: set, watch: frozenset = frozenset()):
        self.state, self.composer = state, composer
        self.seen: set = set()  # the paths of *watch* that are listed
        self.gone: set = set()  # release paths with a row whose file changed (or went) since it was verified
        self._listed = bytearray()  # per row under file/, in path order: 1 when listed
        prefix = os.path.join(root, "")
        count = 0
        for rel, _md5, _sha256, _sha1, size, mtime_ns, ctime_ns, ino in state.digests_in_order(FILES):
            listed = 0
            if rel not in excluded:
                try:
                    st = os.lstat(prefix + rel)
                    listed = (st.st_ino == ino and st.st_size == size and st.st_mtime_ns == mtime_ns
                              and st.st_ctime_ns == ctime_ns)
                except OSError:
                    pass
                if not listed:
                    self.gone.add(rel)
                elif rel in watch:
                    self.seen.add(rel)
            self._listed.append(listed)
            count += listed
        self._len = len(composer) + count

    def _rows(self) -> Iterator[tuple]:
        listed = self._listed
        for i, row in enumerate(self.state.digests_in_order(FILES)):
            if i < len(listed) and listed[i]:
                yield row

    def sums_in_order(self) -> Iterator[tuple]:
        """``(path, sha256)`` of each file listed, sorted by path."""
        for rel in sorted(self.composer):
            yield rel, self.composer[rel].sha256
        for row in self._rows():
            yield row[0], row[2]

    def items(self) -> Iterator[tuple]:  # type: ignore[override]
        """``(path, Entry)`` of each file listed, sorted by path (the release files' without records)."""
        for rel in sorted(self.composer):
            yield rel, self.composer[rel]
        for rel, md5, sha256, sha1, *fingerprint in self._rows():
            yield rel, Entry(md5, sha256, Fingerprint(*fingerprint), sha1=sha1)

    def __iter__(self) -> Iterator[str]:
        return (rel for rel, _ in self.sums_in_order())

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, rel: str) -> Entry:
        """One file's entry: a walk of the rows (a reader of them all uses :meth:`items`, one pass)."""
        if rel in self.composer:
            return self.composer[rel]
        for listed, entry in self.items():
            if listed == rel:
                return entry
        raise KeyError(rel)
