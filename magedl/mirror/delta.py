"""What an index write changed, for the delta file: ``SHA256SUMS`` as the run found it against as written.

A landed file puts itself in the delta as it lands; what else changed (index files, pages, a file whose
copy the index now describes otherwise) is every path the new ``SHA256SUMS`` lists with another sha256
than the one found at the start of the run. The new file is read a line at a time: at 100,000 files,
parsing it whole (its bytes, its text and a dict of every path) was a cold run's peak (docs/scale.md).

The rules a reader must not break, so that no kill (``kill -9``, a power cut) ever loses a path from the delta
(listing one twice is harmless; the delta is a set):

- the paths that differ go in the delta in one commit with ``SHA256SUMS`` itself: a kill never leaves them in
  it without the file that lists them;
- before a run first replaces ``SHA256SUMS``, the file as it found it is kept, durably, in
  ``.magedl/SHA256SUMS.found`` (:data:`~magedl.mirror.layout.SUMS_FOUND`: a second name for it, a copy where
  the filesystem has no hard links, empty when there was none), and it goes only once the delta holds what
  the run changed and that commit is synced. A run killed in between leaves it, and the next run notes what
  it differs in from ``SHA256SUMS`` before anything else (and so does :meth:`Mirror.delta
  <magedl.mirror.core.Mirror.delta>`, for a run that failed there). It is bookkeeping: never served or listed.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from magedl.errors import LocalFileError
from magedl.fsutil import fsync_dir, write_chunks
from magedl.mirror.index import SumsAsFound, sums_in_file
from magedl.mirror.layout import SUMS, SUMS_FOUND

_BATCH = 2048
_CHUNK = 1 << 20


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


class KeptSums(SumsAsFound):
    """:class:`~magedl.mirror.index.SumsAsFound`, kept in ``.magedl/`` before the run first replaces it
    (:meth:`keep`) until the delta holds what the run changed (:meth:`drop`).

    Made once what an earlier run left kept is noted (:func:`note_leftover`). Kept only when it is about
    to be replaced: a second name changes a file's ctime, and a run that changes nothing touches nothing.
    """

    def __init__(self, root: os.PathLike | str, state):
        self.leftover = note_leftover(root, state)  # whether a killed run's index writes changed anything
        super().__init__(Path(root))
        self.root, self.state, self.kept, self.dropped = Path(root), state, False, False

    def keep(self) -> None:
        """Keep the file as found (once per run), durably: the hook :func:`~magedl.mirror.index.write_indexes`
        calls before it replaces ``SHA256SUMS``."""
        if self.kept or self.dropped:  # dropped: the run noted its last change, and its descriptor is closed
            return
        kept = self.root / SUMS_FOUND
        try:
            os.link(self.path, kept, follow_symlinks=False)
        except (OSError, NotImplementedError):  # none there (a cold run), or no hard links here: written below
            pass
        try:  # still the file the run found, which its descriptor reads?
            same = self.file is not None and os.path.samestat(os.lstat(kept), os.fstat(self.file.fileno()))
        except OSError:
            same = False
        if same:
            fsync_dir(kept.parent)
        else:  # the bytes as found (none when there was no regular file), from that descriptor
            write_chunks(kept, self._chunks())
        self.kept = True

    def _chunks(self):
        if self.file is not None:  # no larger than an index may be, or it would not be open
            self.file.seek(0)
            yield from iter(lambda: self.file.read(_CHUNK), b"")

    def drop(self) -> None:
        """The delta holds what the run changed (:func:`note_changes` committed): the kept file goes."""
        if self.kept:
            _drop_kept(self.root, self.state)
        self.kept, self.dropped = False, True


def note_leftover(root: os.PathLike | str, state) -> bool:
    """Note what ``SHA256SUMS`` differs in from the copy a run killed before it noted its changes left kept (one
    commit), then drop that copy; whether they differ (False when none was left)."""
    kept = Path(root) / SUMS_FOUND
    try:
        if not stat.S_ISREG(os.lstat(kept).st_mode):  # never read as "nothing before": every path would go
            raise LocalFileError(f"{kept}: not a file, where magedl keeps its own file; move it out of the way")
    except FileNotFoundError:
        return False
    moved = note_changes(root, state, dict(sums_in_file(kept)))
    _drop_kept(root, state)
    return moved


def _drop_kept(root: os.PathLike | str, state) -> None:
    """The delta holds what the kept file differs in: sync that commit (a power cut must not undo it), then drop it.

    When the commit cannot be synced now (a reader holds the database), the file stays: the next run notes
    it again, which only lists paths twice."""
    if not state.sync():
        return
    kept = Path(root) / SUMS_FOUND
    try:
        os.unlink(kept)
    except FileNotFoundError:
        pass
    except OSError as exc:
        what = "a folder" if exc.errno in (errno.EISDIR, errno.EPERM) else exc.strerror
        raise LocalFileError(f"{kept}: {what} where magedl keeps its own file; move it out of the way") from None
