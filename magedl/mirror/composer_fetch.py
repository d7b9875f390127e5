"""The network side of the Composer part: repository metadata, Marketplace keys, archives.

Metadata is read through :class:`~magedl.composer.repository.ComposerRepository`
with a fetch that retries like every other request and caps every body.
Credentials are found as Composer finds them (:func:`magedl.composer.auth.find_keys`)
and sent only to the host they were found for. Archives go through the
transfer engine (resumable, retried, parallel, rate-limited) and are checked
against the repository's SHA-1 before they count as held: one that does not
match is deleted, never kept.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

import requests

from magedl.config import redact, shown_url
from magedl.errors import AuthError, EntitlementError, IntegrityError, MagedlError, UnverifiedFile
from magedl.service.api import HostBoundAuth, read_capped, transient_from
from magedl.transfer.fetch import fetch_many
from magedl.transfer.hashing import file_digests
from magedl.transfer.options import TransferOptions

log = logging.getLogger(__name__)

KEYS_HELP = "check them with 'magedl keys check', store them with 'magedl keys store'"


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


@dataclasses.dataclass
class KeyNote:
    """Where a repository's credentials came from (or that none were found), for messages; never a key."""

    url: str
    found: bool
    where: str


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
        if lookup.credentials:
            user, password = lookup.credentials
            auth.add(url, user, password)
            where = f"{lookup.source.label if hasattr(lookup.source, 'label') else lookup.source}"
            if lookup.path:
                where += f" {lookup.path}"
            notes[url] = KeyNote(url, True, f"the keys from {where} (public key {lookup.public_masked})")
            log.info("%s: sending %s", shown_url(url), notes[url].where)
        else:
            notes[url] = KeyNote(url, False, "no keys (none found where Composer looks: COMPOSER_AUTH, "
                                             "auth.json in COMPOSER_HOME and in the project)")
    client.session.auth = auth
    return notes


def explain(error: MagedlError, note: Optional[KeyNote], what: str) -> MagedlError:
    """*error* re-worded for a Composer repository: what was sent, and the next step."""
    if isinstance(error, AuthError):
        if note is not None and note.found:
            return AuthError(f"{what}: the repository refused {note.where} (HTTP 401); {KEYS_HELP}")
        sent = note.where if note is not None else "no keys"
        return AuthError(f"{what}: the repository asks for keys and magedl sent {sent}; {KEYS_HELP}")
    if isinstance(error, EntitlementError):
        return EntitlementError(f"{what}: not entitled: these keys may not fetch it (HTTP 403); the Marketplace "
                                "account needs the licence or the extension")
    return error


def metadata_fetcher(client, notes: dict, limit: Optional[int] = None) -> Callable[[str], bytes]:
    """``fetch(url) -> bytes`` for :class:`ComposerRepository`: retried, capped, errors worded for Composer."""
    limit = limit or client.metadata_limit

    def note_for(url):
        return next((n for u, n in notes.items() if url.startswith(u.rstrip("/"))), None)

    def fetch(url: str) -> bytes:
        where = shown_url(url)

        def attempt():
            response = client.open(url, where, headers={"Accept-Encoding": "gzip"})
            with response:
                try:
                    return read_capped(response, where, limit)
                except requests.exceptions.RequestException as exc:
                    raise transient_from(exc, where, url) from None

        try:
            return client.retry.call(attempt, where)
        except MagedlError as exc:
            raise explain(exc, note_for(url), where) from None

    return fetch


class Prefetcher:
    """A fetch that can read many metadata files at once, ahead of a repository asking for them.

    :class:`ComposerRepository` reads one file at a time; :meth:`names` fetches,
    *jobs* at a time, the p2 files of the packages the resolver is about to
    look up (in repositories of the ``metadata-url`` layout that list them),
    and the repository then finds them here. Each prefetched body is handed
    out once; a failure is not kept (the repository's own request retries
    and reports it).
    """

    def __init__(self, fetch: Callable[[str], bytes], jobs: int = 8):
        self._fetch = fetch
        self._jobs = jobs
        self._ready = {}
        self._lock = threading.Lock()
        self.repos = []

    def __call__(self, url: str) -> bytes:
        with self._lock:
            data = self._ready.pop(url, None)
        return data if data is not None else self._fetch(url)

    def names(self, names: list) -> None:
        urls = []
        for repo in self.repos:
            try:
                if repo.layout != "metadata-url":
                    continue
                listed = set(repo.package_names())
                template = repo.root()["metadata-url"]
            except MagedlError:
                continue  # the lookup itself reports it
            urls += [repo.resolve(template.replace("%package%", n)) for n in names if n in listed]
        if not urls:
            return

        def one(url):
            try:
                data = self._fetch(url)
            except MagedlError:
                return
            with self._lock:
                self._ready[url] = data

        with ThreadPoolExecutor(max_workers=min(self._jobs, len(urls))) as pool:
            list(pool.map(one, urls))


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

    Each item's ``source`` is a :class:`~magedl.mirror.composer_plan.Archive` and
    ``rel`` its path in the mirror. An archive whose SHA-1 differs from the
    repository's is deleted and yields an :class:`IntegrityError` (exit 6).
    """
    root = Path(root)
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
    plain = dataclasses.replace(options, require_checksum=False, sha256=True)
    dist_client = _DistClient(client, {rel: it.source.url for rel, it in by_rel.items()})
    for job, outcome in fetch_many(dist_client, jobs, root, plain, progress=progress, limiter=limiter):
        it = by_rel[job.file_name]
        what = f"{it.source.name} {it.source.version}"
        if isinstance(outcome, MagedlError):
            note = next((n for u, n in notes.items() if it.source.url.startswith(u.rstrip("/"))), None)
            yield it, explain(outcome, note, f"{what} ({redact(it.source.url)})"), ""
            continue
        sha1 = file_digests(outcome.path, ("sha1",))["sha1"]
        if it.source.shasum and sha1 != it.source.shasum:
            try:
                os.unlink(outcome.path)
            except OSError:
                pass
            yield it, IntegrityError(f"{what}: SHA-1 mismatch: the repository says {it.source.shasum}, the "
                                     f"received archive has {sha1}; it was not kept"), ""
            continue
        yield it, outcome, sha1
