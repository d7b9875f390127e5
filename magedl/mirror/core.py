"""Mirrors: plan, fetch, prune and write the index files, for release files and Composer packages alike.

The rule a reader must not break: correctness never rests on the lock; every file lands by atomic
rename after its digest checked out, and the state is only a cache checked against fingerprints.
See docs/design.md, "Notes: the mirror".
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterable, Optional

from magedl.errors import BusyError, LocalFileError, MagedlError
from magedl.fsutil import read_if_regular
from magedl.locks import FileLock
from magedl.mirror import layout, signature
from magedl.mirror.bulk import collector_paused
from magedl.mirror.delta import KeptSums, note_changes, note_leftover
from magedl.mirror.held import Held, sort_items, unchanged_items
from magedl.mirror.index import (
    MAX_INDEX_BYTES,
    parse_sums,
    read_feed,
    records_digest,
    release_from_dict,
    sums_in_file,
    write_indexes,
)
from magedl.mirror.layout import FILES, INFO_FILES, SIG, SUMS, check_layout, release_rel, walk_files
from magedl.mirror.model import Action, Entry, Fingerprint, Item, Plan, Status, StoredRecords, canonical_release_records
from magedl.mirror.pages.site import drop_stale as drop_stale_pages
from magedl.mirror.pages.site import is_page, write_pages
from magedl.mirror.plan import DIGESTS, ReleasePlanner
from magedl.mirror.signing_key import public_key
from magedl.mirror.state import State, mirror_lock
from magedl.service.catalog import Release
from magedl.transfer.fetch import fetch_many
from magedl.transfer.hashing import file_digests
from magedl.transfer.options import TransferOptions
from magedl.transfer.ratelimit import RateLimiter

log = logging.getLogger(__name__)

# A replaced file is indexed as soon as it lands, but index writes (each over the whole mirror) take at
# most about this share of a run's time: many updates in a large mirror stay linear in cost.
INDEX_SHARE = 0.1


class Mirror:
    """A mirror folder: plan, fetch, prune, index.

    Create it once the lock is held (:meth:`lock` on a first instance), so the
    state it reads is not another run's half-written one.
    """

    def __init__(self, root: os.PathLike | str, html: bool = True):
        self.root = Path(root)
        self.html = html  # write the browsable pages (magedl.mirror.pages); False removes them
        self.files = self.root / FILES
        check_layout(self.root)
        self.state = State(self.root)
        self._replacing: set = set()  # copies the index left out until their replacement lands
        self._index_due, self._index_stale = 0.0, False
        self._found = None  # SHA256SUMS as the run found it (KeptSums): kept before the run first replaces it
        self.signed = None  # who signed SHA256SUMS this run (run's sign_key), when it was signed

    def lock(self):
        """The mirror's lock (``DIR/.magedl/lock``): a context manager raising BusyError when taken."""
        check_layout(self.root)
        return mirror_lock(self.root)

    def plan(self, upstream: Optional[Iterable[Release]], selected: Iterable[Release] = (), *, prune: bool = False,
             rehash: bool = True, composer=None, composer_url: Optional[str] = None, every_item: bool = False) -> Plan:
        """Decide what to do with each selected file and each file held.

        Parameters
        ----------
        upstream : iterable of Release, or None
            The whole catalogue. None: the run has no release selection, so the
            feed was not asked; release files held are kept (even with *prune*).
        selected : iterable of Release
            What the user asked for (see :class:`ReleasePlanner`).
        composer : Selection or None
            The Composer versions chosen this run (:mod:`magedl.mirror.composer.select`);
            None keeps those held (even with *prune*).
        composer_url : str, optional
            Where clients reach ``DIR/composer/``; by default the one the
            metadata was written for.
        rehash : bool
            Off for dry runs: nothing is read, and files changed on disk get ``recheck``.
        every_item : bool
            An item for every release file, unchanged ones too (a dry run shows them); by default
            those are only named in :attr:`Plan.unchanged`.
        """
        if upstream is None:
            # The index order and records as they are: nothing upstream to compare with.
            upstream = read_feed(self.root / INFO_FILES[0]) or ()
            plan = ReleasePlanner(self.root, self.state, upstream, rehash=rehash,
                                  every_item=every_item).plan((), prune=False)
            for it in plan.with_action(Action.KEEP):
                it.reason = "no release selection given; kept"
            for it in plan.with_action(Action.STRAY):
                it.reason = "not part of the mirror; --prune with a release selection removes it"
        else:
            plan = ReleasePlanner(self.root, self.state, upstream, rehash=rehash,
                                  every_item=every_item).plan(selected, prune=prune)
        if composer is not None or composer_url is not None or self._has_composer():
            # The Composer part's modules are imported only by a run that has one.
            from magedl.mirror.composer.advisories import read_published
            from magedl.mirror.composer.plan import ComposerPlanner

            # Like the release part: only a run that selects Composer packages prunes them (the planner's rule).
            part = ComposerPlanner(self.root, self.state, composer_url, rehash=rehash,
                                   every_item=every_item).plan(composer, prune=prune)
            part.advisories = read_published(self.root, memo=self.state)  # kept unless a run refreshes them
            plan.items += part.items
            plan.composer = part
        return plan

    def _has_composer(self) -> bool:
        return (os.path.lexists(self.root / layout.COMPOSER_PACKAGES)
                or bool(self.state.paths(layout.COMPOSER_DIST))
                or next(walk_files(self.root, layout.COMPOSER_DIST), None) is not None)

    # -- execution ---------------------------------------------------------------

    def run(self, client, plan: Plan, options: Optional[TransferOptions] = None, *, progress=None,
            on_item: Optional[Callable[[Item], None]] = None, composer_client=None, composer_keys=None,
            sign_key=None, every_file: bool = False) -> None:
        """Fetch, prune and index.

        *client* fetches release files, *composer_client* Composer archives
        (with the repositories' credentials, *composer_keys* saying where they
        came from). *on_item* is called with each :class:`Item` once its fate
        is known; a file of :attr:`Plan.unchanged` reaches it only with *every_file* (an item made
        from its state row as it is reported, and held no longer). Index files are written even
        when some files failed (and on Ctrl-C), describing only the files held and verified; :meth:`delta`
        then lists what changed. With *sign_key* (a
        :class:`~magedl.mirror.signature.SignKey`), an index that changed, or
        has no current signature, is signed once the run completed.
        """
        options = replace(options or TransferOptions(), sha256=True)
        on_item = on_item or (lambda item: None)
        with self.state.batch():  # one transaction; records that did not change are not written
            for rel in plan.dropped:
                self.state.drop(rel)
            for it in plan.items:  # what the plan found good on disk
                if it.entry is not None and not it.recorded:
                    self.state.set(it.rel, it.entry)
        if plan.composer is not None:
            for it in plan.composer.failures:
                on_item(it)
        todo = {it.rel: it for it in plan.to_fetch}
        for it in plan.items:
            if not it.action.fetches and it.action is not Action.PRUNE:
                it.status = Status.untouched(it.action)
                on_item(it)
        if every_file:
            for it in unchanged_items(self.state, plan):
                on_item(it)
        for rel in plan.locks:
            _drop_stale_lock(self.root / rel)
        found = self._found = KeptSums(self.root, self.state)  # read only when the run changed it (a re-run does not)
        if found.leftover and not signature.is_current(self.root):  # a killed run changed the index it vouched for
            signature.discard_changed(self.root, resigned=sign_key is not None)
        self._replacing = {it.rel for it in todo.values() if it.action is not Action.FETCH}
        if self._replacing and self._replacing & set(_parsed_sums(found.raw())):
            # The index stops listing the copies about to be replaced before any of them goes, so it never
            # describes bytes no longer there (one write for them all, not one per file).
            self.write_indexes(plan, leave_out=frozenset(self._replacing))
        try:
            for it in list(todo.values()):
                if it.action is not Action.FETCH and not self._clear(it):
                    del todo[it.rel]
                    on_item(it)
            limiter = RateLimiter(options.limit_rate) if options.limit_rate else None  # one budget for the run
            releases = [it.source for it in todo.values() if isinstance(it.source, Release)] + plan.fetch_new
            for release, outcome in fetch_many(client, releases, self.root / FILES, options, progress=progress,
                                               limiter=limiter):
                rel = release_rel(release.file_name)
                it = todo.pop(rel, None) or Item(rel, Action.FETCH, release, reason="new")  # made as it ends
                self._landed(it, outcome, plan)
                landed = it.entry is not None and it.status is not Status.FAILED
                if landed:  # before it is reported: a Ctrl-C in the report still lists it in info/json
                    plan.landed.add(release.file_name)
                on_item(it)
                if landed:  # reported: the state holds its record, the index write reads it there
                    it.entry, it.in_state = None, True
            archives = [it for it in todo.values() if _is_archive(it.source)]
            if archives:
                from magedl.mirror.composer.fetch import fetch_archives

                for it, outcome, sha1 in fetch_archives(composer_client, archives, self.root, options,
                                                        notes=composer_keys or {}, progress=progress,
                                                        limiter=limiter):
                    self._landed(it, outcome, plan, sha1)
                    on_item(it)
            pruned = plan.with_action(Action.PRUNE)
            for it in pruned:
                it.status = Status.PRUNED
            if pruned:
                self.write_indexes(plan, pages=False)  # the index stops listing them before they go
            for it in pruned:
                self._remove(it.rel)
                on_item(it)
        finally:
            self.state.save()
            signer = self._signer(sign_key)
            self.write_indexes(plan, signer=signer)
            moved = False
            if not found.same_file():
                before = _parsed_sums(found.raw())  # as the run found it (a cold run: nothing)
                found.close()
                moved = note_changes(self.root, self.state, before)
            found.close()
            if moved and signature.discard_changed(self.root, resigned=sign_key is not None) and sign_key is None:
                if signer and self.html:  # the front page named the key of the signature just removed
                    self.write_indexes(plan)
                    note_changes(self.root, self.state, before)
            found.drop()  # the delta holds what the run changed: a kill before this leaves the next run the copy
            self.state.save()
            if plan.composer is not None:  # the folders of composer/dist/ this run changed, for the next plan
                from magedl.mirror.composer import listing

                listing.refresh(self.root, self.state, plan.composer)  # a saving only: never raises
        if sign_key is not None:
            try:
                self.signed = self.sign(sign_key, again=False)
            except MagedlError as exc:
                raise type(exc)(f"{exc}; the mirror itself is complete, but not signed") from None

    def _signer(self, sign_key) -> str:
        """The key the front page names: the one this run signs with, or that of a current signature."""
        if not self.html:
            return ""
        if sign_key is not None:
            key = public_key(sign_key)
            return str(key) if key is not None else "key given to the run that wrote this page"
        if not signature.is_current(self.root):
            return ""
        try:
            return str(signature.parse_signature(read_if_regular(self.root / SIG, 64 << 10) or b""))
        except ValueError:
            return ""

    def sign(self, key, *, again: bool = True):
        """Sign ``SHA256SUMS`` (:func:`magedl.mirror.signature.sign`) and put the signature in the delta, last.

        Without *again*, a signature no older than the index is kept (a run
        that changed nothing asks for no passphrase). Returns the
        :class:`~magedl.mirror.signature.SignedBy`, or None when kept.
        """
        if not again and signature.is_current(self.root, key):
            return None
        signed = signature.sign(self.root, key)
        self.state.add_delta([SIG])
        self.state.save()
        return signed

    def _clear(self, it: Item) -> bool:
        """Make way for a repair or an update; False (the item failed) when the path cannot be cleared.

        A link, a FIFO or a copy that has nothing to be checked against but
        the sha256 it failed goes before the fetch: transfer would follow a
        link, block on a FIFO, or take the bad copy as present. So does a
        Composer archive (no md5 for transfer to tell old bytes from new).
        """
        path = self.root / it.rel
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return True
        if stat.S_ISREG(st.st_mode) and it.source.md5:
            return True  # transfer checks it against the md5 and replaces it
        if isinstance(it.source, Release) and it.action is Action.UPDATE:
            return True
        if stat.S_ISREG(st.st_mode) and _is_archive(it.source) and it.action is Action.UPDATE:
            return True  # fetched beside it (.magedl/incoming) and moved over it only once verified
        try:
            os.unlink(path)  # never follows a link: removes the link itself
        except OSError as exc:
            it.status, it.entry = Status.FAILED, None
            what = "a folder" if exc.errno in (errno.EISDIR, errno.EPERM) else exc.strerror
            it.error = LocalFileError(f"{path}: {what} where the mirror needs the file {it.file_name}; "
                                      "move it out of the way")
            return False
        return True

    def _landed(self, it: Item, outcome, plan: Plan, sha1: str = "") -> None:
        """Record what the transfer of *it* came to."""
        if isinstance(outcome, MagedlError):
            it.status, it.error = Status.FAILED, outcome
            if it.action is Action.REPAIR or (_is_archive(it.source) and it.action is not Action.UPDATE):
                it.entry = None  # the copy the index described is gone, or was bad
            return
        sha = outcome.sha256 or file_digests(outcome.path, ("sha256",))["sha256"]
        if _is_archive(it.source):
            records = (it.source.entry,)
        else:
            # As the state stores them (one text, not a dict per record).
            records = StoredRecords(canonical_release_records(plan.records_of(it.file_name)))
        entry = Entry(outcome.md5, sha, Fingerprint.of(outcome.path), records, sha1)
        # A release file's records are the feed's (its source), as the state now holds them: the item keeps
        # the digests only, so a cold run holds no records text per landed file until its end.
        it.entry = entry if _is_archive(it.source) else Entry(entry.md5, sha, entry.fingerprint, sha1=sha1)
        it.size = outcome.size
        with self.state.batch():  # its record and its place in the delta: one commit
            self.state.set(it.rel, entry)
            if outcome.skipped:
                it.status = Status.PRESENT
            else:
                it.status = Status.done(it.action)
                it.transferred = outcome.size - outcome.resumed_from
                self.state.add_delta([it.rel], durable=True)
        if it.rel in self._replacing:
            self._replacing.discard(it.rel)
            self._index_stale = True
        if self._index_stale and time.monotonic() >= self._index_due:
            # A copy the index described was just replaced: describe the new one now,
            # not at the end of a run that may last hours (or be killed).
            started = time.monotonic()
            self.write_indexes(plan, leave_out=frozenset(self._replacing), pages=False)
            self._index_stale = False
            self._index_due = time.monotonic() + (time.monotonic() - started) * (1 / INDEX_SHARE - 1)

    def delta(self) -> list:
        """Every path changed since a delta file last listed them, runs killed meanwhile included.

        Archives first, then the indexes, ``SHA256SUMS`` and its signature last: the order a copy should land in.
        Call it under the mirror's lock, as :meth:`delta_written`: it notes what a killed run left kept.
        """
        note_leftover(self.root, self.state)  # a run that failed (or was killed) before it noted its index writes
        return sorted(self.state.delta, key=lambda rel: (rel == SIG, rel == SUMS, rel.startswith("info/"), rel))

    def delta_written(self) -> None:
        """The caller wrote :meth:`delta` to a delta file: forget it."""
        self.state.clear_delta()
        self.state.save()

    def _remove(self, rel: str) -> None:
        """Remove one entry the plan found under ``file/`` or ``composer/dist/`` (a link is removed, never followed)."""
        path = self.root / rel
        top = self.root / (layout.COMPOSER_DIST if rel.startswith(layout.COMPOSER_DIST + "/") else FILES)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            log.warning("%s: a folder where a file was; left alone", path)
        self.state.drop(rel)
        parent = path.parent
        while parent != top and top in parent.parents:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    @collector_paused()
    def write_indexes(self, plan: Plan, leave_out: frozenset = frozenset(), pages: bool = True,
                      signer: str = "") -> list:
        """Write the index files for the files held and verified (but *leave_out*); return those that changed.

        With *pages* False (the writes while files land), the pages on disk
        stay as they are and stay listed: rendering every page per landed
        file would cost the square of the file count; the run's last write
        renders them. *signer* names the key the index is (or will be) signed with.
        """
        composer, built, landed, excluded = sort_items(self.root, plan, leave_out)
        extra = fresh = on_disk = {}  # the Composer index files: none without a Composer part
        if plan.composer is not None:  # its modules are imported by a run that has one
            from magedl.mirror.composer import publish
            from magedl.mirror.composer.unchanged import held_entries

            composer.update(held_entries(self.root, self.state, plan.composer))  # archives with no item
            extra = publish.index_files(self.root, plan.composer, composer, memo=self.state)  # writes the p2 files
            fresh, on_disk = extra.fresh, extra.on_disk
        # The release files from the state, one query in path order (an unchanged file has no item).
        held = Held(self.root, self.state, composer, excluded, watch={it.rel for it in built.values()})
        gone, unchanged, seen = {rel[len(FILES) + 1:] for rel in held.gone}, plan.unchanged, held.seen
        records, described = [], set()  # described: the names of built listed from the feed's records
        for r in plan.upstream:
            name = r.file_name
            it = built.get(name)
            if it is not None:  # listed as its state row says (the item's entry, when it kept one)
                listed = it.rel in seen and (not r.md5 or r.md5 == seen[it.rel])
            else:  # its md5 was the feed's when planned (or landed), and its row has not changed since
                listed = (name in unchanged or name in landed) and name not in gone
            if listed:
                records.append(r)
                if it is not None:  # not a set of every name listed (100,000 on a cold run)
                    described.add(name)
        for name in sorted(set(built) - described):  # no longer upstream as held: the records it came with
            it = built[name]
            if it.rel in seen:
                stored = it.entry if it.entry is not None else self.state.get(it.rel)
                records += [release_from_dict(d) for d in (stored.records if stored else ()) or ({"file_name": name},)]
        digest = records_digest(records)  # one pass over the records for both memos
        written = {}
        if self.html and pages:  # before SHA256SUMS, which lists them (and before it is signed)
            written = write_pages(self.root, records, held, extra, plan.composer.url if plan.composer else None,
                                  signer, memo=self.state, digest=digest)
        elif self.html:
            written = {rel: sha for rel, sha in sums_in_file(self.root / SUMS) if is_page(rel)}
        changed = write_indexes(self.root, records, held, fresh, memo=self.state, digest=digest,
                                also={**written, **on_disk}, before_sums=self._found and self._found.keep)
        if plan.composer is not None:
            publish.drop_stale(self.root, extra)
        if pages:
            drop_stale_pages(self.root, written)
        return changed


def _is_archive(source) -> bool:
    """Whether an item to fetch is a Composer archive's (told apart without importing the Composer part)."""
    return source is not None and not isinstance(source, Release)


def _parsed_sums(raw: bytes) -> dict:
    """``{rel: sha256}`` of ``SHA256SUMS`` bytes (see :func:`~magedl.mirror.index.parse_sums`)."""
    return parse_sums(raw.decode("utf-8", errors="replace"))[0]


def _drop_stale_lock(path: Path) -> None:
    """Remove a per-file lock no process holds (taking it unlinks it on release); one held is left alone."""
    try:
        with FileLock(path, "held"):
            pass
    except (BusyError, OSError):
        pass


def sums_digest(root: os.PathLike | str) -> str:
    """sha256 of ``DIR/SHA256SUMS``: note it when seeding, compare it after carrying."""
    data = read_if_regular(Path(root) / SUMS, MAX_INDEX_BYTES)
    return hashlib.sha256(data).hexdigest() if data is not None else ""


__all__ = ["DIGESTS", "Mirror", "sums_digest"]
