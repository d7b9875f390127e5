"""The files a mirror holds and verified, as an index write lists them: read from the state, in path order.

An up-to-date re-run builds no plan item for a release file present as the state records it
(:attr:`~magedl.mirror.model.Plan.unchanged`), so the index write reads what it lists of those
files (digests and fingerprint) from the state, one query in path order, instead of from an
object per file. The rule a reader must not break: a file is listed only when its ``lstat`` is
still the fingerprint it was verified at (the index never lists bytes not there).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping
from typing import Iterator

from magedl.mirror.layout import FILES
from magedl.mirror.model import Action, Entry, Fingerprint, Item, Plan, Status
from magedl.paths import BOOKKEEPING

_BATCH = 2048


class Held(Mapping):
    """``{path: Entry}`` of the files held and verified, in path order, holding no object per release file.

    One pass over the state's rows under ``file/`` checks each against its ``lstat`` and, for the
    files listed, renders their ``SHA256SUMS`` lines (:attr:`release_sums`, a file) and digests
    what the pages say of them (:meth:`lines_digest`); one byte per row remembers which were
    listed, for a reader of every entry (:meth:`items`, when the pages are rendered), which
    reads the rows again. The Composer archives come from the plan's items (*composer*).

    Parameters
    ----------
    root : path
        The mirror folder.
    state : State
        Its digest cache; nothing is written to it while this is read.
    composer : dict
        ``{path: Entry}`` of the Composer archives held and verified (they sort before ``file/``).
    excluded : set of str
        Release paths not to list whatever the state says (left out of this write, failed, pruned).
    watch : set of str
        Release paths (of the plan items) for which :attr:`seen` says whether they are listed, and their md5.
    """

    in_order = True  # iterating gives the paths sorted, and items() reads each row once

    def __init__(self, root: os.PathLike | str, state, composer: dict, excluded: set, watch=frozenset()):
        self.state, self.composer, self._excluded = state, composer, excluded
        self.seen: dict = {}  # path -> md5 of those of *watch* that are listed
        self.gone: set = set()  # release paths with a row whose file changed (or went) since it was verified
        # The SHA256SUMS lines of the release files listed, in path order: in an unnamed file in DIR/.magedl
        # (there once the state has rows) until SHA256SUMS is rendered, not in memory while the info/ files are.
        self.release_sums = None
        self._listed = bytearray()  # per row under file/, in path order: 1 when listed
        lines = hashlib.sha256()
        for rel in sorted(composer):
            e = composer[rel]
            lines.update(_line(rel, e.fingerprint.size, e.md5, e.sha256, e.sha1))
        prefix = os.path.join(root, "")
        sums, pages, count, size_sum = [], [], 0, 0
        for rel, md5, sha256, sha1, size, mtime_ns, ctime_ns, ino in state.digests_in_order(FILES):
            listed = False
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
                    self.seen[rel] = md5
            self._listed.append(listed)
            if listed:
                count += 1
                size_sum += size
                sums.append(f"{sha256}  {rel}\n")
                pages.append(f"{rel}\0{size}\0{md5}\0{sha256}\0{sha1}\n")
                if len(sums) == _BATCH:
                    self._spill(root, sums)
                    lines.update("".join(pages).encode("utf-8", "surrogatepass"))
                    pages.clear()
        if sums:
            self._spill(root, sums)
        lines.update("".join(pages).encode("utf-8", "surrogatepass"))
        self._lines = lines.hexdigest()
        self._len = len(composer) + count
        self._release_totals = (count, size_sum)

    def _spill(self, root, sums: list) -> None:
        if self.release_sums is None:
            self.release_sums = tempfile.TemporaryFile(dir=os.path.join(root, BOOKKEEPING))
        self.release_sums.write("".join(sums).encode("utf-8"))
        sums.clear()

    def lines_digest(self) -> str:
        """sha256 of ``path\\0size\\0md5\\0sha256\\0sha1\\n`` of each file listed, in path order (the pages' inputs)."""
        return self._lines

    def totals(self, folder: str) -> tuple:
        """``(count, bytes)`` of the files listed under *folder* (``file/``, ``composer/dist/``), no pass over them."""
        n = total = 0
        for rel, e in self.composer.items():
            if rel.startswith(folder):
                n, total = n + 1, total + e.fingerprint.size
        if folder == FILES + "/":
            n, total = n + self._release_totals[0], total + self._release_totals[1]
        return n, total

    def sums_in_order(self) -> Iterator[tuple]:
        """``(path, sha256)`` of each file listed, sorted by path (the release files' read again)."""
        for rel, entry in self.items():
            yield rel, entry.sha256

    def items(self) -> Iterator[tuple]:  # type: ignore[override]
        """``(path, Entry)`` of each file listed, sorted by path (the release files' without records)."""
        for rel in sorted(self.composer):
            yield rel, self.composer[rel]
        listed = self._listed
        for i, (rel, md5, sha256, sha1, *fingerprint) in enumerate(self.state.digests_in_order(FILES)):
            if i < len(listed) and listed[i]:
                yield rel, Entry(md5, sha256, Fingerprint(*fingerprint), sha1=sha1)

    def __iter__(self) -> Iterator[str]:
        return (rel for rel, _ in self.items())

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, rel: str) -> Entry:
        """One file's entry, by one lookup in the state (the pages ask a row at a time; a reader of them
        all uses :meth:`items`, one pass). A release row is listed unless left out or changed on disk since
        the pass that listed it checked it (:attr:`gone`)."""
        if rel in self.composer:
            return self.composer[rel]
        if rel.startswith(FILES + "/") and rel not in self._excluded and rel not in self.gone:
            entry = self.state.get(rel)
            if entry is not None:  # the digests only: the records are the feed's
                return Entry(entry.md5, entry.sha256, entry.fingerprint, sha1=entry.sha1)
        raise KeyError(rel)


def sort_items(root, plan: Plan, leave_out: frozenset) -> tuple:
    """What an index write takes from the plan's items: ``(composer, built, landed, excluded)``.

    *composer*: ``{path: Entry}`` of the Composer archives held and unchanged on disk; *built*: file
    name -> item of each release file listed as its item says (kept, updated, re-hashed); *landed*: the
    names of release files that landed this run (:attr:`Plan.landed`: listed from the state, as an
    unchanged file is); *excluded*: release paths no copy of which is to be listed (failed, pruned, left out).
    """
    composer, built, landed, excluded = {}, {}, plan.landed, set()
    prefix = os.path.join(root, "")
    for it in plan.items:
        release = it.rel.startswith(FILES + "/")
        if (it.entry is None and not it.in_state) or it.status in (Status.PRUNED, Status.SKIP) or it.rel in leave_out:
            if release:
                excluded.add(it.rel)  # its state row (if any) describes no copy to list
            continue
        if release:  # by name (the feed's own string when it has one)
            if not it.in_state:  # landed: verified against the feed's md5 then, listed as an unchanged file
                built[it.source.file_name if it.source is not None else it.file_name] = it
            continue
        try:
            if not it.entry.fingerprint.same_as(os.lstat(prefix + it.rel)):
                continue  # changed under us since it was checked
        except OSError:
            continue
        composer[it.rel] = it.entry
    if excluded:  # a skipped name may be held too (a KEEP item of the same path): that item decides
        kept, cut = {it.rel for it in built.values()}, len(FILES) + 1
        excluded = {rel for rel in excluded if rel not in kept and (rel in leave_out or rel[cut:] not in landed)}
    return composer, built, landed, excluded


def unchanged_items(state, plan: Plan) -> Iterator[Item]:
    """An item for each file of :attr:`Plan.unchanged`, made from its state row as it is read (path order),
    for a caller that reports every file (``--json``); nothing holds them but the caller. The Composer
    archives the plan found unchanged come first (:mod:`magedl.mirror.composer.unchanged`)."""
    if plan.composer is not None and (plan.composer.unchanged or plan.composer.kept):
        from magedl.mirror.composer.unchanged import unchanged_items as unchanged_archives

        yield from unchanged_archives(state, plan.composer)
    if not plan.unchanged:
        return
    cut = len(FILES) + 1
    for rel, md5, sha256, sha1, *fingerprint in state.digests_in_order(FILES):
        source = plan.unchanged.get(rel[cut:])
        if source is not None:
            yield Item(rel, Action.PRESENT, source, size=fingerprint[0], status=Status.PRESENT, recorded=True,
                       entry=Entry(md5, sha256, Fingerprint(*fingerprint), sha1=sha1))


def _line(rel: str, size: int, md5: str, sha256: str, sha1: str) -> bytes:
    return f"{rel}\0{size}\0{md5}\0{sha256}\0{sha1}\n".encode("utf-8", "surrogatepass")
