"""Security advisories for the packages a Composer mirror holds, so ``composer audit`` works behind the gap.

The rule a reader must not break: only a full advisory (:func:`full_advisory`) is published, since one bad
entry stops ``composer audit``; and advisories never stop a run. Sources, re-runs and where they live on
disk: see docs/design.md, "Notes: the mirror".
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional
from urllib.parse import quote

from magedl.composer.constraints import parse_constraint
from magedl.composer.metadata import check_package_name
from magedl.composer.semver import normalize
from magedl.config import shown_url
from magedl.errors import ConstraintError, FeedError, MagedlError, UnsafeNameError, UsageError
from magedl.fsutil import atomic_write, read_if_regular
from magedl.mirror.composer.index import P2, PACKAGES, remembered_published
from magedl.mirror.layout import walk_files
from magedl.mirror.model import Action
from magedl.paths import BOOKKEEPING
from magedl.safejson import parse_json
from magedl.secrecy import redact
from magedl.text import printable
from magedl.urls import check_http_url

log = logging.getLogger(__name__)

BOOK = f"{BOOKKEEPING}/advisories.json"
ADVISORIES = "composer-advisories"  # the memo of the advisories the p2 files carry (publish.index_files)
#: Names per ``packages[]`` request, and the longest query string sent (servers cap request lines near 8 KiB).
BATCH, MAX_QUERY = 100, 4000
#: Largest answer read; an ``updatedSince`` answer bigger than this falls back to asking by name.
MAX_ANSWER_BYTES = 8 << 20
#: Advisories kept per package, and the longest text kept in a field.
MAX_PER_PACKAGE, MAX_TEXT = 500, 2000
#: ``updatedSince`` asks from this long before the last answer (clocks differ; merging twice is harmless).
SKEW = 600
#: After this long without a full answer, a source is asked about every name again.
FULL_EVERY = 7 * 24 * 3600
_TEXT_FIELDS = ("advisoryId", "remoteId", "title", "link", "cve", "source", "reportedAt", "composerRepository",
                "severity")
_REPORTED = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$")


@dataclass(frozen=True)
class AdvisoryOptions:
    """Where advisories come from: ``url`` for every repository (``--composer-advisories``), else each
    repository's own; ``enabled`` False (``--no-composer-advisories``): the mirror carries none."""

    url: Optional[str] = None
    enabled: bool = True


def check_source_url(url: str, where: str = "--composer-advisories") -> str:
    """An advisory API URL, checked (see :mod:`magedl.urls`): credentials come from auth.json, bound to their host."""
    check_http_url(url, where, "an http(s) URL such as https://packagist.org/api/security-advisories/",
                   "magedl finds credentials where Composer does (auth.json, COMPOSER_AUTH)")
    return url


def sources_of(repos: Iterable, options: AdvisoryOptions, warn: Callable[[str], None] = log.warning) -> tuple:
    """The advisory APIs to ask: *options*' URL, or those the repositories' root files name (deduplicated)."""
    if not options.enabled:
        return ()
    if options.url:
        return (options.url,)
    out = []
    for repo in repos:
        try:
            config = repo.root().get("security-advisories")
        except MagedlError:
            continue  # the repository's own lookups report it
        api = config.get("api-url") if isinstance(config, dict) else None
        if api is None:
            continue
        try:
            url = check_source_url(repo.resolve(api) if isinstance(api, str) else "", "security-advisories.api-url")
        except UsageError as exc:
            warn(f"{redact(repo.url)}: {exc}; no advisories from it")
            continue
        if url not in out:
            out.append(url)
    return tuple(out)


def full_advisory(name: str, data) -> Optional[dict]:
    """*data* as a full advisory Composer's audit accepts for *name*, bounded; None when it is not one."""
    if not isinstance(data, dict):
        return None
    out = {}
    for key in _TEXT_FIELDS:
        value = data.get(key)
        if isinstance(value, str) and len(value) <= MAX_TEXT:
            out[key] = value
        elif value is None and key in ("cve", "link", "remoteId", "severity", "composerRepository", "source"):
            out[key] = None
        else:
            return None
    affected = data.get("affectedVersions")
    sources = data.get("sources")
    if not (out["advisoryId"] and out["title"] and isinstance(affected, str) and len(affected) <= MAX_TEXT
            and _REPORTED.match(out["reportedAt"]) and isinstance(sources, list) and 0 < len(sources) <= 20):
        return None
    if not all(isinstance(s, dict) and isinstance(s.get("name"), str) and isinstance(s.get("remoteId"), str)
               and len(s["name"]) + len(s["remoteId"]) <= MAX_TEXT for s in sources):
        return None
    try:
        parse_constraint(affected)
    except ConstraintError:
        return None
    out.update(packageName=name, affectedVersions=affected,
               sources=[{"name": s["name"], "remoteId": s["remoteId"]} for s in sources])
    return out


def _keep(name: str, entries, where: str, warn) -> list:
    """The full advisories among *entries*, one per advisoryId, at most :data:`MAX_PER_PACKAGE`."""
    kept = {}
    for data in entries if isinstance(entries, list) else ():
        advisory = full_advisory(name, data)
        if advisory is None:
            shown = data.get("advisoryId") if isinstance(data, dict) else None
            warn(f"{where}: an advisory of {name} ({printable(str(shown))[:80]}) is not a full advisory Composer "
                 "can read; left out")
            continue
        kept[advisory["advisoryId"]] = advisory
    if len(kept) > MAX_PER_PACKAGE:
        warn(f"{where}: {name} has {len(kept)} advisories; only the newest {MAX_PER_PACKAGE} are kept")
    return sorted(kept.values(), key=lambda a: (a["reportedAt"], a["advisoryId"]), reverse=True)[:MAX_PER_PACKAGE]


# -- on disk ---------------------------------------------------------------------


def read_published(root, warn: Callable[[str], None] = log.warning, memo=None) -> Optional[dict]:
    """The advisories the mirror's p2 files carry: ``{name: [advisory]}``; None when it publishes none.

    A p2 file without the key holds a package the advisory sources were never asked about. *memo*:
    the state, where the last index write remembered them (used while no p2 file was touched since).
    """
    root = Path(root)
    found, remembered = remembered_published(root, memo, ADVISORIES)
    if found and (remembered is None or isinstance(remembered, dict)):
        return remembered
    doc = _load(root / PACKAGES)
    if not isinstance(doc, dict) or not isinstance(doc.get("security-advisories"), dict):
        return None
    out = {}
    for rel, _ in walk_files(root, P2):
        if not rel.endswith(".json") or rel.endswith("~dev.json"):
            continue
        try:
            name = check_package_name(rel[len(P2) + 1:-len(".json")])
        except UnsafeNameError:
            continue
        p2 = _load(root / rel)
        if isinstance(p2, dict) and "security-advisories" in p2:
            out[name] = _keep(name, p2["security-advisories"], rel, warn)
    return out


def _load(path: Path):
    raw = read_if_regular(path, 64 << 20)
    try:
        return json.loads(raw) if raw is not None else None
    except (ValueError, RecursionError):
        return None


def _read_book(root: Path) -> dict:
    """``{source URL: {"since": T, "full": T}}`` from the bookkeeping; ``{}`` when missing or damaged."""
    doc = _load(root / BOOK)
    sources = doc.get("sources") if isinstance(doc, dict) and doc.get("version") == 1 else None
    if not isinstance(sources, dict):
        return {}
    return {url: times for url, times in sources.items() if isinstance(times, dict)
            and all(isinstance(times.get(k), int) for k in ("since", "full"))}


# -- what the mirror holds ---------------------------------------------------------


def mirrored_versions(part) -> dict:
    """``{name: {version_normalized: pretty version}}`` the Composer part will publish after the run; the pretty
    version of an archive the plan found unchanged is its entry, read (:func:`pretty`) only when shown."""
    from magedl.mirror.composer.plan import Archive, package_of

    out = {}
    for name, versions in part.metadata.items():
        for vn, entry in versions.items():
            out.setdefault(name, {})[vn] = str(entry.get("version") or vn)
    for name, vn, entry in part.unchanged.values():
        out.setdefault(name, {})[vn] = entry  # its text is parsed only if an advisory affects it
    for it in part.items:
        if it.action in (Action.PRUNE, Action.SKIP, Action.STRAY):
            continue
        if isinstance(it.source, Archive):
            out.setdefault(it.source.name, {})[it.source.version_normalized] = it.source.version
        elif it.entry is not None and it.entry.records:
            try:
                name, vn = package_of(it.entry.records[0])
            except UnsafeNameError:
                continue
            out.setdefault(name, {})[vn] = str(it.entry.records[0].get("version") or vn)
    return out


def pretty(version, vn: str) -> str:
    """The pretty version of a :func:`mirrored_versions` value: the version itself, or the entry that has it."""
    return version if isinstance(version, str) else str(version.get("version") or vn)


def affecting(advisories: Iterable[dict], version: str) -> list:
    """The advisories among *advisories* whose ``affectedVersions`` take in *version* (pretty or normalized)."""
    try:
        vn = normalize(version)
    except (ConstraintError, TypeError):
        return []
    out = []
    for advisory in advisories:
        try:
            if parse_constraint(advisory["affectedVersions"]).matches(vn):
                out.append(advisory)
        except (ConstraintError, KeyError):
            continue
    return out


# -- the network -----------------------------------------------------------------


@dataclass
class Refresh:
    """What a refresh did: the advisories to publish, the requests made, and what failed."""

    advisories: Optional[dict]
    sources: tuple = ()
    requests: int = 0
    errors: list = field(default_factory=list)


def _batches(names: list) -> Iterable[list]:
    batch, length = [], 0
    for name in names:
        cost = len("packages%5B%5D=") + len(quote(name, safe="/")) + 1
        if batch and (len(batch) >= BATCH or length + cost > MAX_QUERY):
            yield batch
            batch, length = [], 0
        batch.append(name)
        length += cost
    if batch:
        yield batch


def _ask(client, url: str, query: str) -> dict:
    """One GET of an advisory API: ``{name: [raw advisory]}``; raises MagedlError (retried as every request)."""
    from magedl.service.api import read_capped  # requests is loaded when advisories are asked for, not before
    from magedl.service.neterrors import transient_from
    target = f"{url}{'&' if '?' in url else '?'}{query}"
    what = f"advisories from {shown_url(url)}"

    def attempt():
        response = client.open(target, what, headers={"Accept-Encoding": "gzip", "Accept": "application/json"})
        try:
            return read_capped(response, what, MAX_ANSWER_BYTES)
        except OSError as exc:
            raise transient_from(exc, what, url) from None
        finally:
            response.close()

    doc = parse_json(client.retry.call(attempt, what), what)
    found = doc.get("advisories") if isinstance(doc, dict) else None
    if isinstance(found, list) and not found:
        return {}  # PHP writes an empty map as []
    if not isinstance(found, dict):
        raise FeedError(f"{what}: not an advisory answer (no \"advisories\" object)")
    return {n.lower(): v for n, v in found.items() if isinstance(n, str)}


def refresh(client, sources: tuple, names: Iterable[str], root, held: Optional[dict], *,
            now: Optional[float] = None, warn: Callable[[str], None] = log.warning) -> Refresh:
    """Ask *sources* about *names* (the packages the mirror holds); the advisories to publish.

    *held* is what the p2 files carried (:func:`read_published`). When the
    same sources were asked before (``DIR/.magedl/advisories.json``), each is
    asked once what changed since then, plus about the names *held* has no
    entry for; otherwise (a new or dropped source, a week since the last full
    answer, no advisories held) every source about every name, in batches.
    A source that fails leaves *held* as it was; the bookkeeping is written
    only for what answered.
    """
    root, now = Path(root), int(time.time() if now is None else now)
    names = sorted(set(names))
    report = Refresh(advisories=held, sources=tuple(sources))
    if not sources:
        report.advisories = None
        return report
    book = _read_book(root)
    full = (held is None or set(book) != set(sources)
            or any(now - times["full"] > FULL_EVERY for times in book.values()))
    found: dict = {} if full else {n: {a["advisoryId"]: a for a in held.get(n, ())} for n in names}
    new_book, wanted, answered = {}, set(names), set()
    for url in sources:
        try:  # each answer merged as it arrives: one answer in memory at a time
            for answer in _answers(client, url, names, None if full else held, None if full else book[url]):
                report.requests += 1
                for name, entries in answer.items():
                    if name in wanted:
                        answered.add(name)
                        for advisory in _keep(name, entries, shown_url(url), warn):
                            found.setdefault(name, {})[advisory["advisoryId"]] = advisory
        except MagedlError as exc:
            report.requests += 1
            report.errors.append(f"{shown_url(url)}: {exc}")
            warn(f"advisories: {exc}; the mirror keeps the advisories it held")
            if full:
                return report  # half an answer would drop the other sources' advisories
            book.pop(url)  # asked about everything next time
            continue
        new_book[url] = {"since": now, "full": now if full else book[url]["full"]}
    # A name no source could be asked about gets no key: "[]" would claim it was asked and is clean.
    asked = names if full or not report.errors else [n for n in names if n in held]
    # A name no answer named keeps what it held, which _keep made already (an up-to-date run: every name).
    report.advisories = {n: _keep(n, list(found.get(n, {}).values()), "advisories", warn)
                         if full or n in answered or n not in held else list(held[n]) for n in asked}
    book = {**{u: t for u, t in book.items() if u in sources and not full}, **new_book}
    atomic_write(root / BOOK, (json.dumps({"version": 1, "sources": book}, indent=1) + "\n").encode("utf-8"))
    return report


def _answers(client, url: str, names: list, held: Optional[dict], times: Optional[dict]):
    """Yield one source's answers: what changed since *times* and the names *held* lacks, or every name.

    An ``updatedSince`` answer too big (or malformed) falls back to asking about every name.
    """
    todo = names if held is None else [n for n in names if n not in held]
    if times is not None:
        try:
            changed = _ask(client, url, f"updatedSince={max(0, times['since'] - SKEW)}")
        except FeedError as exc:
            log.info("%s; asking about every package by name instead", exc)
            todo, changed = names, {}
        yield changed
    for batch in _batches(todo):
        yield _ask(client, url, "&".join(f"packages%5B%5D={quote(n, safe='/')}" for n in batch))


def summarise(advisories: Mapping, versions: Mapping) -> dict:
    """``{name: {pretty version: [advisory]}}`` for every mirrored version an advisory affects."""
    out = {}
    for name, by_vn in versions.items():
        for vn, shown in by_vn.items():
            hits = affecting(advisories.get(name, ()), vn)
            if hits:
                out.setdefault(name, {})[pretty(shown, vn)] = hits
    return out


def lock_warnings(locks: Iterable[str], advisories: Mapping) -> list:
    """One line per locked version an advisory affects, for each ``composer.lock`` in *locks*."""
    from magedl.composer.lockfile import read_lock

    lines = []
    for path in locks:
        try:
            locked = read_lock(path, warn=lambda message: None)
        except MagedlError:
            continue  # the selection already reported it
        for package in locked:
            name = package["name"].lower()
            for advisory in affecting(advisories.get(name, ()), package["version"]):
                lines.append(f"{path}: {name} {package['version']} is affected by {describe(advisory)}")
    return lines


def describe(advisory: Mapping) -> str:
    """``CVE-2024-34102 "Title" (affected: >=2.4.7,<2.4.7-p1, https://...)``, printable."""
    ident = advisory.get("cve") or advisory.get("remoteId") or advisory["advisoryId"]
    link = f", {advisory['link']}" if advisory.get("link") else ""
    return printable(f"{ident} \"{advisory['title']}\" (affected: {advisory['affectedVersions']}{link})")


@dataclass
class AdvisoryReport:
    """What the mirror carries after a run, for its summary: the *refresh*, the *count* published, the
    mirrored versions an advisory *affected* (``{name: {pretty version: [advisory]}}``; still mirrored: a
    team may need one to upgrade from), and one line per version a ``--composer-lock`` file *locked* so."""

    refresh: Refresh
    count: int = 0
    affected: dict = field(default_factory=dict)
    locked: list = field(default_factory=list)

    def for_row(self, row: dict) -> Optional[list]:
        """The advisories affecting the version a ``mirror --json`` Composer row describes (None: not one)."""
        if row.get("type") != "composer" or not isinstance(row.get("name"), str):
            return None
        hits = affecting(self.refresh.advisories.get(row["name"], ()), str(row.get("version")))
        return [{k: a[k] for k in ("advisoryId", "cve", "title", "link", "affectedVersions", "severity",
                                   "reportedAt")} for a in hits]


def update_part(client, part, sources: tuple, options: AdvisoryOptions, root, locks: Iterable[str] = (),
                warn: Callable[[str], None] = log.warning) -> Optional[AdvisoryReport]:
    """Refresh the advisories the Composer *part* of a plan will publish; the report, or None when it carries none.

    *part.advisories* holds what the p2 files carried; it becomes what they will carry.
    """
    if not options.enabled:
        part.advisories = None
        return None
    if not sources:
        message = ("advisories: no advisory source (no repository names one, and no --composer-advisories URL): "
                   "the mirror carries none, and composer audit on the far side finds none")
        (warn if part.advisories is not None else log.info)(message)  # a change is news; no source ever is not
        part.advisories = None
        return None
    versions = mirrored_versions(part)
    done = refresh(client, sources, versions, root, part.advisories, warn=warn)
    part.advisories = done.advisories
    if done.advisories is None:
        return None
    report = AdvisoryReport(done, count=sum(len(a) for n, a in done.advisories.items() if n in versions))
    report.affected = summarise(done.advisories, versions)
    report.locked = lock_warnings(locks, done.advisories)
    return report
