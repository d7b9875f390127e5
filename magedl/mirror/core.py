"""Mirrors: plan what is missing or stale, fetch it, write the index files.

A mirror is a static copy of the API (see :mod:`magedl.mirrorindex` for the
layout). What makes re-runs cheap is ``DIR/.magedl/state.json``: for each
file, the digests it had when it was verified and the fingerprint of the file
on disk at that moment (size, mtime, ctime, inode). A file whose fingerprint
still matches is known good without reading it; any other file is re-hashed
before it is trusted. ``verify`` re-hashes everything regardless.

Correctness does not rest on the lock: the state is only a cache of digests
checked against the file's fingerprint, every file lands by atomic rename
after its md5 checked out (:mod:`magedl.transfer`, which has its own per-file
locks), and every index file is replaced atomically.
"""

import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from magedl.errors import IntegrityError, MagedlError, UnsafeNameError
from magedl.mirror.index import FILES, SUMS, read_sums, release_from_dict, write_indexes
from magedl.mirror.state import State, fingerprint, mirror_lock, same_fingerprint
from magedl.paths import LOCK_SUFFIX, PART_SUFFIX, STATE_SUFFIX, destination
from magedl.service.catalog import parse_feed, settle_md5, unique_files
from magedl.transfer.fetch import fetch_many
from magedl.transfer.hashing import file_digests

log = logging.getLogger("magedl")

SIDE_SUFFIXES = (PART_SUFFIX, STATE_SUFFIX, STATE_SUFFIX + ".tmp", LOCK_SUFFIX)
FETCH_ACTIONS = ("fetch", "update", "repair")
_DONE = {"fetch": "fetched", "update": "updated", "repair": "repaired"}


# -- the plan -------------------------------------------------------------------


@dataclass
class Item:
    """One file of the mirror: what the plan says and what came of it.

    ``action``: present, fetch (new), update (md5 changed upstream), repair
    (the copy on disk is bad), recheck (changed on disk; dry runs do not
    re-hash), skip (unsafe name), keep (held, no longer selected), stray (on
    disk, unknown, not selected), prune. ``entry`` is the state entry of a
    good copy on disk, or None.
    """

    file_name: str
    action: str
    release: object = None
    reason: str = ""
    size: "int | None" = None
    entry: "dict | None" = None
    status: str = ""
    error: "MagedlError | None" = None
    transferred: int = 0

    def to_dict(self):
        if self.release is not None:
            out = self.release.to_dict()
        elif self.entry and self.entry.get("records"):
            out = dict(self.entry["records"][0])
        else:
            out = {"name": None, "file_name": self.file_name, "version": None, "type": None, "md5": None}
        out.update(action=self.action, status=self.status or self.action, size=self.size)
        if self.entry:
            out.update(sha256=self.entry.get("sha256", ""), local_md5=self.entry.get("md5", ""))
        if self.reason:
            out["reason"] = self.reason
        if self.error is not None:
            out.update(error=str(self.error), exit_code=self.error.exit_code)
        return out


class Mirror:
    """A mirror folder: plan, fetch, prune, index."""

    def __init__(self, root):
        self.root = Path(root)
        self.files = self.root / FILES
        self.state = State(self.root)
        self.changed = []

    def lock(self):
        return mirror_lock(self.root)

    def plan(self, upstream, selected, *, prune=False, rehash=True):
        """Decide what to do with each selected file and each file held.

        *upstream* is the whole catalogue (for the records of each file),
        *selected* what the user asked for. With ``rehash=False`` (dry runs)
        nothing is read, and files changed on disk get ``recheck``.
        """
        self._upstream, self._records = list(upstream), {}
        for r in self._upstream:
            self._records.setdefault(r.file_name, []).append(r)
        self._indexed = self._previous_index()
        items, wanted = [], set()
        for r in unique_files(selected):
            try:
                dest = destination(self.files, r.file_name)
                r = settle_md5(r, self._upstream)
            except (UnsafeNameError, IntegrityError) as exc:
                log.warning("skipping %s", exc)
                items.append(Item(r.file_name, "skip", r, reason=str(exc)))
                continue
            wanted.add(r.file_name)
            items.append(self._plan_one(r, dest, rehash))
        on_disk = set(self._walk(wanted))
        for name in sorted((set(self.state.files) | on_disk) - wanted):
            entry = self.state.get(name) or self._from_previous_index(name, rehash)
            if name not in on_disk:
                log.warning("%s: was in the mirror but is gone from disk; dropped from the index", name)
                self.state.drop(name)
                continue
            why = "no longer selected" if name in self._records else "no longer upstream"
            path = self.files / name
            size = path.stat().st_size if path.is_file() else None
            if prune:
                items.append(Item(name, "prune", reason=why if entry else "not part of the mirror", size=size))
            elif entry is None:
                items.append(Item(name, "stray", reason="not part of the mirror; --prune removes it", size=size))
            else:
                good, intact = self._digests(name, path, entry, rehash)
                item = Item(name, "keep", reason=f"{why}; --prune removes it", size=size)
                if intact:
                    item.entry = good
                    self.state.set(name, good)
                elif good is not None:
                    item.reason = "changed on disk since it was verified; left out of the index"
                items.append(item)
        return items

    def _previous_index(self):
        """What the mirror's index listed before this run: ``{file_name: (sha256, [records])}``.

        The state is only a cache; when it is lost, the index still says which
        files belonged to the mirror, and a re-hash shows whether they are intact.
        """
        try:
            sums, _ = read_sums(self.root / SUMS)
        except OSError:
            return {}
        records = {}
        try:
            with open(self.root / "info" / "json", "rb") as f:
                for r in parse_feed(json.load(f)):
                    records.setdefault(r.file_name, []).append(r.to_dict())
        except (OSError, ValueError, MagedlError):
            pass
        prefix = FILES + "/"
        return {rel[len(prefix):]: (sha, records.get(rel[len(prefix):], []))
                for rel, sha in sums.items() if rel.startswith(prefix)}

    def _from_previous_index(self, name, rehash):
        """A state entry rebuilt from the previous index, if the file on disk still matches it."""
        listed = self._indexed.get(name)
        path = self.files / name
        if listed is None or not rehash or path.is_symlink() or not path.is_file():
            return None
        sha, records = listed
        digests = file_digests(path, ("md5", "sha256"))
        if digests["sha256"] != sha:
            return None
        entry = dict(digests, **fingerprint(path), records=records or [{"file_name": name}])
        self.state.set(name, entry)
        return entry

    def _plan_one(self, r, dest, rehash):
        name, entry = r.file_name, self.state.get(r.file_name)
        if dest.is_symlink():  # a real file must replace it: serve and verify refuse links
            return Item(name, "repair", r, reason="a symbolic link, not a file")
        if not dest.is_file():
            return Item(name, "fetch", r, reason="new" if entry is None else "missing from disk")
        size = dest.stat().st_size
        good, intact = self._digests(name, dest, entry, rehash)
        if good is None:
            return Item(name, "recheck", r, size=size, reason="changed on disk since it was verified")
        if (r.md5 and good["md5"] == r.md5) or (not r.md5 and (intact or entry is None)):
            if not r.md5 and entry is None:
                log.warning("%s: already present; the feed has no md5, so it is taken as it is", name)
            item = Item(name, "present", r, size=size, entry=dict(good, records=self._dicts(name)))
            self.state.set(name, item.entry)
            return item
        if intact:  # what we fetched, but upstream moved on
            self.state.set(name, good)
            return Item(name, "update", r, size=size, entry=good,
                        reason=f"changed upstream (md5 {entry.get('md5')} -> {r.md5})")
        return Item(name, "repair", r, size=size,
                    reason="the copy on disk does not match " + ("the feed's md5" if r.md5 else "what was fetched"))

    def _digests(self, name, path, entry, rehash):
        """(digests and fingerprint of the file on disk, whether it is the file *entry* describes).

        When it is, the first is *entry* brought up to date. ``(None, False)``
        when the file would need re-hashing and *rehash* is off.
        """
        fp = fingerprint(path)
        if entry and same_fingerprint(entry, fp) and entry.get("md5") and entry.get("sha256"):
            return entry, True
        if not rehash:
            return None, False
        log.info("%s: re-hashing (%s)", name,
                 "changed on disk since it was verified" if entry else "not verified by this mirror yet")
        digests = file_digests(path, ("md5", "sha256"))
        if entry and entry.get("sha256") == digests["sha256"]:
            return dict(entry, **digests, **fp), True
        return dict(digests, **fp), False

    def _dicts(self, name):
        return [r.to_dict() for r in self._records.get(name, ())]

    def _walk(self, wanted):
        """Names of the files under ``file/``, without the side files of wanted ones."""
        for folder, dirs, names in os.walk(self.files):
            rel = PurePosixPath(Path(folder).relative_to(self.files).as_posix())
            for n in names:
                name = str(rel / n) if str(rel) != "." else n
                side = next((s for s in SIDE_SUFFIXES if name.endswith(s)), None)
                if side and name[: -len(side)] in wanted:
                    continue
                yield name

    # -- execution ---------------------------------------------------------------

    def run(self, client, items, *, jobs=4, progress=None, require_checksum=False, on_item=None, **options):
        """Fetch, prune and index; return the relative paths added or changed.

        *on_item* is called with each :class:`Item` once its fate is known;
        other keyword arguments (connections, limiter...) go to
        :func:`magedl.fetch.fetch_many`.
        Index files are written even when some files failed (and on Ctrl-C),
        describing only the files held and verified.
        """
        on_item = on_item or (lambda item: None)
        changed = self.changed = []  # kept up to date, for a caller that is interrupted
        todo = {it.file_name: it for it in items if it.action in FETCH_ACTIONS}
        for it in items:
            if it.action not in FETCH_ACTIONS and it.action != "prune":
                it.status = it.status or it.action
                on_item(it)
        before = self._sums_now()
        try:
            for it in todo.values():
                path = self.files / it.file_name
                if it.action == "repair" and (not it.release.md5 or path.is_symlink()):
                    # Nothing to check a copy against but our sha256, which it failed (or a
                    # link, which transfer would follow): it goes before the fetch.
                    path.unlink()
            outcomes = fetch_many(client, [it.release for it in todo.values()], self.files, jobs=jobs,
                                  sha256=True, progress=progress, require_checksum=require_checksum, **options)
            for release, outcome in outcomes:
                it = todo[release.file_name]
                if isinstance(outcome, MagedlError):
                    it.status, it.error = "failed", outcome
                    if it.action == "repair":
                        it.entry = None
                else:
                    sha = outcome.sha256 or file_digests(outcome.path, ("sha256",))["sha256"]
                    it.entry = dict(md5=outcome.md5, sha256=sha, **fingerprint(outcome.path),
                                    records=self._dicts(it.file_name))
                    it.size = outcome.size
                    self.state.set(it.file_name, it.entry)
                    self.state.save()
                    if outcome.skipped:
                        it.status = "present"
                    else:
                        it.status = _DONE[it.action]
                        it.transferred = outcome.size - outcome.resumed_from
                        self.state.add_delta([f"{FILES}/{it.file_name}"])
                    self.state.save()
                    if it.action != "fetch":
                        # A copy the index described was just replaced: describe the new one now,
                        # not at the end of a run that may last hours (or be killed).
                        self.write_indexes(items)
                on_item(it)
            pruned = [it for it in items if it.action == "prune"]
            for it in pruned:
                it.status = "pruned"
            if pruned:
                self.write_indexes(items)  # the index stops listing them before they go
            for it in pruned:
                self._remove(it.file_name)
                on_item(it)
        finally:
            self.state.save()
            self.write_indexes(items)
            after = self._sums_now()
            changed_paths = {rel for rel, sha in after.items() if before.get(rel) != sha}
            if changed_paths or set(before) != set(after):
                changed_paths.add(SUMS)  # it does not list itself, but it changed too
            self.state.add_delta(changed_paths)
            self.state.save()
            # Archives first, then the indexes, SHA256SUMS last: the order a copy should land in.
            changed[:] = sorted(self.state.delta, key=lambda rel: (rel == SUMS, rel.startswith("info/"), rel))
        return changed

    def _sums_now(self):
        try:
            return read_sums(self.root / SUMS)[0]
        except OSError:
            return {}

    def delta_written(self):
        """The caller wrote :attr:`changed` to a delta file: forget it."""
        self.state.clear_delta()
        self.state.save()

    def _remove(self, name):
        path = self.files / name
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        self.state.drop(name)
        parent = path.parent
        while parent != self.files and self.files in parent.parents:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def write_indexes(self, items):
        """Write the index files for the files held and verified; return those that changed."""
        held = {}
        for it in items:
            if it.entry is None or it.status in ("pruned", "skip"):
                continue
            try:
                if not same_fingerprint(it.entry, fingerprint(self.files / it.file_name)):
                    continue  # changed under us since it was checked
            except OSError:
                continue
            held[it.file_name] = it.entry
        records, described = [], set()
        for r in self._upstream_order():
            entry = held.get(r.file_name)
            if entry is not None and (not r.md5 or r.md5 == entry.get("md5")):
                records.append(r)
                described.add(r.file_name)
        for name in sorted(set(held) - described):  # no longer upstream as held: the records it came with
            records += [release_from_dict(d) for d in held[name].get("records") or ({"file_name": name},)]
        return write_indexes(self.root, records, {n: e["sha256"] for n, e in held.items()})

    def _upstream_order(self):
        return getattr(self, "_upstream", ())


def head_sizes(client, items, jobs=4):
    """Fill in the size of files to fetch with HEAD requests (a dry run's plan); best effort."""
    todo = [it for it in items if it.action in FETCH_ACTIONS and it.release is not None]

    def head(it):
        try:
            response = client.open(client.file_url(it.file_name), it.file_name, method="HEAD", stream=False)
        except MagedlError as exc:
            log.debug("HEAD %s: %s", it.file_name, exc)
            return
        length = response.headers.get("Content-Length", "")
        response.close()
        if length.isdigit():
            it.size = int(length)

    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(todo) or 1))) as pool:
        list(pool.map(head, todo))


def sums_digest(root):
    """sha256 of ``DIR/SHA256SUMS``: note it when seeding, compare it after carrying."""
    try:
        return hashlib.sha256((Path(root) / SUMS).read_bytes()).hexdigest()
    except OSError:
        return ""


@dataclass
class Summary:
    """Counts for the end-of-run line."""

    counts: dict = field(default_factory=dict)
    transferred: int = 0
    failures: list = field(default_factory=list)

    def add(self, item):
        self.counts[item.status] = self.counts.get(item.status, 0) + 1
        self.transferred += item.transferred
        if item.error is not None:
            self.failures.append(item)
