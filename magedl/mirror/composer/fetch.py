"""The network side of the Composer part: repository metadata, Marketplace keys, archives.

The rule a reader must not break: credentials go only to the host they were found for
(:func:`magedl.composer.auth.find_keys`), and an archive whose SHA-1 does not match is deleted, never kept.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Iterable, Iterator

import requests

from magedl.composer.cache import MetadataCache
from magedl.composer.remote import explain, metadata_fetcher, note_for_lookup, read_changes
from magedl.config import shown_url
from magedl.errors import IntegrityError, LocalFileError, MagedlError, UnsafeNameError, UnverifiedFile
from magedl.fsutil import fsync_dir, make_dirs
from magedl.mirror.layout import INCOMING
from magedl.paths import Destinations
from magedl.secrecy import redact
from magedl.service.api import HostBoundAuth
from magedl.text import plural
from magedl.transfer.fetch import fetch_many
from magedl.transfer.hashing import file_digests
from magedl.transfer.options import TransferOptions

log = logging.getLogger(__name__)

@dataclasses.dataclass(frozen=True)
class _Pair:
    """What :class:`HostBoundAuth` reads: a user and a password (never shown)."""

    mageid: str = dataclasses.field(repr=False)
    token: str = dataclasses.field(repr=False)


class RepoAuth(requests.auth.AuthBase):
    """HTTP Basic credentials per repository host, each sent to its own host only."""

    def __init__(self):
        self._auths = []

    def add(self, url: str, user: str, password: str) -> None:
        self._auths.append(HostBoundAuth(_Pair(user, password), url))

    def __call__(self, request):
        for auth in self._auths:
            request = auth(request)
        return request

    def __repr__(self):
        return "RepoAuth(***)"


def attach_keys(client, urls: Iterable[str], find=None) -> dict:
    """Give *client* the credentials Composer would send to each repository; ``{url: KeyNote}``.

    Parameters
    ----------
    find : callable, optional
        :func:`magedl.composer.auth.find_keys` (tests pass their own).
    """
    if find is None:
        from magedl.composer.auth import find_keys as find
    auth, notes = RepoAuth(), {}
    for url in urls:
        lookup = find(url)
        notes[url] = note_for_lookup(url, lookup)
        if lookup.credentials:
            auth.add(url, *lookup.credentials)
            log.info("%s: sending %s", shown_url(url), notes[url].label)
    client.session.auth = auth
    return notes


def select(client, options, root: os.PathLike | str, *, jobs: int = 8, warn=None) -> tuple:
    """Find the keys, read the repositories and choose the versions *options* select: ``(notes, Selection)``.

    Metadata is read through the mirror's cache (:class:`MetadataCache`, in
    ``DIR/.magedl/composer-cache``): nothing is written there until
    ``selection.save()``, which the caller does under the mirror's
    lock (a dry run never does). Each level of the requirement graph is
    fetched *jobs* files at a time. When every document the last resolution
    read is provably unchanged, its selection is reused instead
    (:mod:`~magedl.mirror.composer.recall`).
    """
    from magedl.composer.repository import ComposerRepository
    from magedl.mirror.composer.advisories import sources_of
    from magedl.mirror.composer.recall import Reads, recall, remember
    from magedl.mirror.composer.select import Selection, resolve

    warn = warn or (lambda message: log.warning("%s", message))
    warnings = []

    def warned(message: str) -> None:
        warnings.append(message)
        warn(message)

    notes = attach_keys(client, options.repos)
    cache = MetadataCache(root, max_bytes=client.metadata_limit)
    reads = Reads(metadata_fetcher(client, notes, cache=cache))
    repos = [ComposerRepository(url, reads, warn=warned) for url in options.repos]
    for repo in repos[1:]:
        repo.budget = repos[0].budget  # one budget for the bodies a run holds ahead, whatever their repository
    for repo in repos:
        _follow_changes(client, repo, cache)
    last = recall(root, options, reads, cache)
    if last is not None:
        for message in last.get("warnings") or ():
            warn(message)
        selection = Selection(packages=last["packages"], repo_of=last["repo_of"])
        cache.complete = False  # the files the resolution read were not read again: keep them all
        how = "the last resolution reused (every document it read is unchanged)"
    else:
        warnings.clear()
        selection = resolve(repos, options, warned, prefetch=lambda names: prefetch(repos, names, jobs))
        cache.complete = not selection.failures  # a failed lookup may leave files unread that are still wanted
        selection.keep = lambda: remember(root, options, reads, selection, warnings)
        how = f"metadata files: {cache.summary()}"
    selection.cache = cache
    selection.advisory_sources = sources_of(repos, options.advisories, warn)
    chosen = sum(len(v) for v in selection.packages.values())
    failed = f", {plural(len(selection.failures), 'requirement')} failed" if selection.failures else ""
    log.info("Composer: %s of %s selected%s; %s", plural(chosen, "version"),
             plural(len(selection.packages), "package"), failed, how)
    return notes, selection


def _follow_changes(client, repo, cache) -> None:
    """Let a repository's changes feed (Packagist's ``metadata-changes-url``) vouch for its unchanged files."""
    try:
        root = repo.root()
        feed, template = root.get("metadata-changes-url"), root.get("metadata-url")
        if repo.layout != "metadata-url" or not isinstance(feed, str) or not feed:
            return
        feed = repo.resolve(feed)
        cache.follow(feed, repo.resolve(template), lambda since: read_changes(client, feed, since), repository=repo.url)
    except MagedlError as exc:  # every file is then revalidated; the lookups report a repository that fails
        log.debug("%s: no changes feed: %s", redact(repo.url), exc)


def prefetch(repos: list, names: list, jobs: int = 8) -> None:
    """Fetch the metadata of *names* ahead, each from the first repository that may list it, as lookups will."""
    todo: dict = {}
    for name in names:
        for repo in repos:
            try:
                listed = repo.lists(name)
            except MagedlError:
                break  # this repository answers first and fails: its lookup reports it
            if listed is not False:
                todo.setdefault(id(repo), (repo, []))[1].append(name)
                break
    for repo, wanted in todo.values():
        repo.prefetch(wanted, jobs)


class _DistClient:
    """The client, with each Composer archive's upstream dist URL as its "file URL"."""

    def __init__(self, client, urls: dict):
        self._client = client
        self._urls = urls

    def file_url(self, file_name: str) -> str:
        return self._urls[file_name]

    def __getattr__(self, name):
        return getattr(self._client, name)


@dataclasses.dataclass(frozen=True)
class _Job:
    file_name: str  # the archive's path relative to the mirror folder
    md5: str = ""


def fetch_archives(client, items: list, root: os.PathLike | str, options: TransferOptions, *, notes: dict,
                   progress=None, limiter=None) -> Iterator[tuple]:
    """Fetch Composer archives; yield ``(item, Result or MagedlError, sha1)`` as each ends.

    Each item's ``source`` is a :class:`~magedl.mirror.composer.plan.Archive` and
    ``rel`` its path in the mirror. Archives are fetched (and resumed) in
    ``DIR/.magedl/incoming/``, which nothing serves, and move to their place
    only once their SHA-1 matches the repository's: until then the copy the
    index describes stays, and no reader ever sees unverified bytes. An
    archive whose SHA-1 differs is deleted and yields an :class:`IntegrityError` (exit 6).
    """
    root = Path(root)
    staging = root / INCOMING
    by_rel, jobs = {}, []
    for it in items:
        if options.require_checksum and not it.source.shasum:
            yield it, UnverifiedFile(f"{it.source.name} {it.source.version}: the repository gives no SHA-1 for it "
                                     "and --require-checksum was given"), ""
            continue
        by_rel[it.rel] = it
        jobs.append(_Job(it.rel))
    if not jobs:
        return
    # Composer gives no md5: the engine fetches unchecked, and the SHA-1 is checked here.
    # The SHA-1 is computed as the bytes arrive (on the download's thread), not read back here.
    plain = dataclasses.replace(options, require_checksum=False, sha256=True, caller_verifies=True, sha1=True,
                                folder_locked=True)  # staging is the mirror's own, under its lock
    dist_client = _DistClient(client, {rel: it.source.url for rel, it in by_rel.items()})
    place = Destinations(root)
    for job, outcome in fetch_many(dist_client, jobs, staging, plain, progress=progress, limiter=limiter):
        it = by_rel[job.file_name]
        what = f"{it.source.name} {it.source.version}"
        if isinstance(outcome, MagedlError):
            note = next((n for u, n in notes.items() if it.source.url.startswith(u.rstrip("/"))), None)
            yield it, explain(outcome, note, f"{what} ({redact(it.source.url)})"), ""
            continue
        sha1 = outcome.sha1 or file_digests(outcome.path, ("sha1",))["sha1"]  # read back: a file found present
        if it.source.shasum and sha1 != it.source.shasum:
            _discard(outcome.path)
            yield it, IntegrityError(f"{what}: SHA-1 mismatch: the repository says {it.source.shasum}, the "
                                     f"received archive has {sha1}; it was not kept"), ""
            continue
        try:
            final = place(it.rel)  # a folder on its way linked out of the mirror (planted) is refused
            make_dirs(final.parent)
            os.replace(outcome.path, final)  # verified: only now does it take the place of the old copy
            fsync_dir(final.parent)
        except UnsafeNameError as exc:
            _discard(outcome.path)
            yield it, exc, ""
            continue
        except OSError as exc:
            final = root / it.rel
            yield it, LocalFileError(f"{what}: cannot move the verified archive into {final.parent}: "
                                     f"{exc.strerror or exc}"), ""
            continue
        yield it, dataclasses.replace(outcome, path=final), sha1


def _discard(path) -> None:
    """Remove a fetched archive that is not kept (best effort: ``incoming/`` is cleared by later runs too)."""
    try:
        os.unlink(path)
    except OSError:
        pass
