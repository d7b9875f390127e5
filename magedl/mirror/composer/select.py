"""Which Composer package versions a mirror holds: the closure of requirements, or what a lock lists.

The rule a reader must not break: a package comes from the first repository that lists it, as in
Composer, so an unreadable repository fails the lookups that reach it. What each ``--composer-*`` option
selects: see docs/design.md, "Notes: the mirror", and Composer's own documentation of repositories
(https://getcomposer.org/doc/05-repositories.md).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from magedl.composer.constraints import parse_constraint
from magedl.composer.metadata import carries_credentials, check_package_name, is_package_name, links
from magedl.composer.semver import is_stable_enough, normalize, stability, version_key
from magedl.errors import (
    ConstraintError,
    EntitlementError,
    MagedlError,
    NotFoundError,
    UnsafeNameError,
    UnsatisfiableError,
    UsageError,
)
from magedl.mirror.composer.advisories import AdvisoryOptions
from magedl.mirror.composer.index import KeptEntry
from magedl.mirror.composer.patterns import is_pattern, matcher, offered_matches
from magedl.mirror.defaults import DEFAULT_REPOS
from magedl.secrecy import redact
from magedl.text import printable

log = logging.getLogger(__name__)

PREFETCH_BATCH = 64  # requirements whose metadata is fetched ahead at once (bodies wait only until parsed)

# Composer's PlatformRepository::PLATFORM_PACKAGE_REGEX, roughly: what no repository serves.
_PLATFORM = re.compile(r"^(?:php(?:-64bit|-ipv6|-zts|-debug)?|hhvm|ext-.+|lib-.+|"
                       r"composer(?:-plugin-api|-runtime-api)?)$", re.IGNORECASE)


def is_platform(name: str) -> bool:
    """Whether *name* is a platform requirement (PHP, an extension, a library, Composer itself)."""
    return bool(_PLATFORM.match(name))


@dataclass(frozen=True)
class ComposerOptions:
    """What the Composer part of a mirror holds, and where clients reach it.

    Attributes
    ----------
    requires : tuple of (str, str)
        ``(package name, constraint)`` pairs; the constraint ``"*"`` when none was given.
    locks : tuple of str
        Paths of ``composer.lock`` files.
    repos : tuple of str
        Repository URLs, canonical first.
    dev : bool
        Also the locks' ``packages-dev``.
    php : str or None
        Drop versions whose ``require.php`` this PHP version does not satisfy.
    newest : bool
        Only the newest satisfying version of each constraint.
    url : str or None
        Where clients reach ``DIR/composer/`` (normalised, ends with ``/``); None: keep the
        mirror's, or the default.
    excludes : tuple of str
        Name patterns (lower-case) of packages never selected.
    advisories : AdvisoryOptions
        Where security advisories come from (:mod:`magedl.mirror.composer.advisories`).
    """

    requires: tuple = ()
    locks: tuple = ()
    repos: tuple = DEFAULT_REPOS
    dev: bool = False
    php: Optional[str] = None
    newest: bool = False
    url: Optional[str] = None
    excludes: tuple = ()
    advisories: AdvisoryOptions = AdvisoryOptions()

    @property
    def selects(self) -> bool:
        """Whether these options choose packages (not only where they are reached)."""
        return bool(self.requires or self.locks)


@dataclass
class Failure:
    """A requirement that could not be met, and why."""

    requirement: str
    chain: tuple
    error: MagedlError


@dataclass
class Selection:
    """The versions chosen: ``packages[name][version_normalized]`` -> the upstream entry (once resolved, as the
    mirror keeps it: a :class:`~magedl.mirror.composer.index.KeptEntry`).

    Attributes
    ----------
    repo_of : dict
        Name -> URL of the repository each package came from.
    failures : list of Failure
    cache : MetadataCache or None
        The metadata cache the selection was read through; :meth:`save`
        keeps it (under the mirror's lock, not on a dry run).
    advisory_sources : tuple of str
        The security advisory APIs to ask (``--composer-advisories``, or what the repositories name).
    keep : callable or None
        What :meth:`save` calls besides ``cache.save()``: keeps the resolution for the next run
        (:mod:`~magedl.mirror.composer.recall`).
    """

    packages: dict = field(default_factory=dict)
    repo_of: dict = field(default_factory=dict)
    failures: list = field(default_factory=list)
    cache: object = field(default=None, compare=False, repr=False)
    advisory_sources: tuple = ()
    keep: Optional[Callable[[], None]] = field(default=None, compare=False, repr=False)

    def save(self) -> None:
        """Keep what this selection read for the next run (call under the mirror's lock, never on a dry run)."""
        if self.cache is not None:
            self.cache.save()
        if self.keep is not None:
            self.keep()

    def entries(self):
        """(name, version_normalized, entry) of every version chosen, sorted."""
        for name in sorted(self.packages):
            for vn, entry in self.packages[name].items():
                yield name, vn, entry


class Resolver:
    """Chooses versions over *repos* (``ComposerRepository`` objects, canonical first)."""

    def __init__(self, repos: Sequence, options: ComposerOptions, warn: Callable[[str], None] = log.warning,
                 prefetch: Optional[Callable[[list], None]] = None):
        self.repos = list(repos)
        self.options = options
        self.warn = warn
        self.prefetch = prefetch
        self.selection = Selection()
        self._found = {}
        self._provided = set()
        self._php = normalize(options.php) if options.php else None
        self._excluded = [matcher(p) for p in options.excludes]
        self._from_pattern: set = set()  # (name, constraint) a pattern asked for: optional, not a failure

    def lookup(self, name: str, dev: bool = False):
        """``(repository, entries)`` from the first repository listing *name*; raises what stopped it.

        With *dev*, the entries include the package's branches (packagist's ``~dev`` file): read
        only for a requirement or a lock that names a branch, as Composer does.
        """
        if (name, dev) not in self._found:
            try:
                repo, entries = self._lookup(name, dev)
                # Kept as the mirror keeps them, as text (a quarter of the dicts' memory; the resolution's peak):
                # what is chosen is then held once, the selection's own, and the parsed dicts go at once.
                self._found[name, dev] = repo, [KeptEntry.of(entry) for entry in entries]
                repo.forget_versions(name)
            except MagedlError as exc:
                self._found[name, dev] = exc
        found = self._found[name, dev]
        if isinstance(found, MagedlError):
            raise found
        return found

    def _lookup(self, name, dev):
        for repo in self.repos:
            try:
                return repo, repo.versions(name, dev=dev, shared=True)  # read, never changed
            except NotFoundError:
                continue
        urls = ", ".join(redact(r.url) for r in self.repos)
        from magedl.composer.probe import typo_of  # here: the parser imports this module for its help

        for repo in self.repos:  # a typo is a typo (exit 5, as keys check says), before any entitlement story
            close = typo_of(repo, name)
            if close:
                raise _Unlisted(f"{name}: no such package in {redact(repo.url)} (did you mean {close}?)")
        if name.startswith("magento/"):
            from magedl.composer.remote import NOT_THEIRS

            for repo in self.repos:
                groups = _groups(repo)
                if groups and "Commerce" not in groups:
                    # What `keys check --package` says of it too: listed only to accounts entitled to it.
                    raise _UnlistedForTheKeys(
                        f"{name}: not listed for the keys sent to {redact(repo.url)}, which see only: "
                        f"{', '.join(sorted(groups))}. If it is a Commerce or B2B package: {NOT_THEIRS}; "
                        "otherwise check the name")
        raise _Unlisted(f"{name}: in none of the Composer repositories ({urls})")

    def resolve(self) -> Selection:
        """The closure of :attr:`ComposerOptions.requires` and everything the locks list."""
        for path in self.options.locks:
            self._lock(path)
        wave = []
        for name, constraint in self.options.requires:
            wave += self._expand(name, constraint) if is_pattern(name) else [(name, constraint, ())]
        seen = set()
        while wave:  # one level of the requirement graph at a time, its metadata fetched in parallel
            wave = [w for w in wave if (w[0], w[1]) not in seen and not seen.add((w[0], w[1]))
                    and not self._is_excluded(w[0], w[2])]
            following = []
            for start in range(0, len(wave), PREFETCH_BATCH):
                following += self._level(wave[start:start + PREFETCH_BATCH])
            wave = following
        # A requirement another chosen package replaces or provides needs no package of its own.
        self.selection.failures = [f for f in self.selection.failures
                                   if not (isinstance(f.error, _Unlisted)
                                           and f.requirement.split(" ", 1)[0] in self._provided)]
        # Each chosen entry as the mirror keeps it (those a lock describes on its own are still dicts here).
        for versions in self.selection.packages.values():
            for vn, entry in versions.items():
                versions[vn] = KeptEntry.of(entry)
        return self.selection

    def _level(self, wave: list) -> list:
        """Choose the versions of one batch of requirements: [(dependency, constraint, chain)] of the next level.

        Metadata is fetched ahead for one batch at a time, so bodies waiting to be parsed stay few.
        """
        if self.prefetch is not None:  # valid names only: a URL (and the keys) must never go where a name points
            # Each name of the batch is looked up in what was found (not every name found subtracted per batch).
            found = self._found
            self.prefetch(sorted({name for name, _, _ in wave if is_package_name(name)
                                  and (name, False) not in found and (name, True) not in found}))
        following = []
        for name, constraint, chain in wave:
            for version, entry in self._require(name, constraint, chain):
                for dep, dep_constraint in links(entry, "require"):
                    if is_platform(dep):
                        continue
                    if dep_constraint.strip() == "self.version":
                        dep_constraint = entry.get("version") or "*"
                    following.append((dep, dep_constraint, (f"{name} {version}",) + chain))
        return following

    def _is_excluded(self, name: str, chain: tuple) -> bool:
        if not any(excluded(name.lower()) for excluded in self._excluded):
            return False
        log.info("%s: left out by --composer-exclude%s", printable(name),
                 f" (required by {' <- '.join(chain)})" if chain else "")
        return True

    def _expand(self, pattern: str, constraint: str) -> list:
        """The requirements a name pattern stands for: every matching package the repositories offer."""
        requirement = f"{pattern} {constraint}"
        names = offered_matches(self.repos, pattern, lambda exc: self._fail(requirement, (), exc), self.warn)
        if not names:
            self._fail(requirement, (), NotFoundError(
                f"--composer-require {printable(pattern)}: no package in "
                f"{', '.join(redact(r.url) for r in self.repos)} offered to these keys matches it"))
        log.info("Composer: %s matches %d package(s)", pattern, len(names))
        self._from_pattern |= {(name, constraint) for name in names}
        return [(name, constraint, ()) for name in names]

    def _fail(self, requirement: str, chain: tuple, error: MagedlError) -> None:
        if chain:
            message = f"{error} (required by {' <- '.join(chain)})"
            try:
                error = type(error)(message)
            except TypeError:  # an error class with other arguments: keep its exit code
                code, error = error.exit_code, MagedlError(message)
                error.exit_code = code
        self.selection.failures.append(Failure(requirement, chain, error))

    def _require(self, name: str, constraint_text: str, chain: tuple) -> list:
        """Choose the versions of *name* that satisfy *constraint_text*; [(pretty version, entry)]."""
        requirement = f"{name} {constraint_text}"
        try:
            name = check_package_name(name)
            constraint = parse_constraint(constraint_text)
        except (UnsafeNameError, ConstraintError) as exc:
            if not chain:
                raise
            self.warn(f"{printable(requirement, 200)} (required by {' <- '.join(chain)}): {exc}; skipped")
            return []
        optional = not chain and (name, constraint_text) in self._from_pattern
        flag = constraint.stability_flag("stable")
        branches = flag == "dev"  # dev-main, 2.x-dev or @dev named outright: Composer reads the branches
        try:
            repo, entries = self.lookup(name, dev=branches)
        except MagedlError as exc:
            if optional and isinstance(exc, NotFoundError):
                log.info("%s: offered by the listing but has no versions; skipped", requirement)
                return []
            self._fail(requirement, chain, exc)
            return []
        chosen, php_dropped, dev_skipped = [], 0, 0
        for entry in entries:
            vn = _normalized(entry)
            if vn is None:
                continue
            if stability(vn) == "dev" and not branches:
                dev_skipped += constraint.matches(vn)
                continue
            if not is_stable_enough(vn, "stable", flag) or not constraint.matches(vn):
                continue
            if not self._php_ok(entry):
                php_dropped += 1
                continue
            chosen.append((vn, entry))
        if dev_skipped:
            log.info("%s: %d dev branch version(s) skipped (a mirror holds released versions)", requirement,
                     dev_skipped)
        if not chosen and optional:
            log.info("%s: no version satisfies it; left out (it was matched by a pattern)", requirement)
            return []
        if not chosen:
            released = sorted({vn for vn in map(_normalized, entries) if vn and stability(vn) != "dev"},
                              key=version_key, reverse=True)
            shown = ", ".join(released[:8]) + (" ..." if len(released) > 8 else "") or "none"
            why = f" that PHP {self.options.php} can run" if php_dropped else ""
            self._fail(requirement, chain, UnsatisfiableError(
                f"{printable(requirement, 200)}: no version in {redact(repo.url)}{why} satisfies it "
                f"(released versions there: {shown})"))
            return []
        if self.options.newest:
            chosen = [max(chosen, key=lambda c: version_key(c[0]))]
        out = []
        for vn, entry in chosen:
            if carries_credentials(entry):
                # Its URL would travel into the state file and the JSON output; refused as in a lock.
                self._fail(requirement, chain, UsageError(
                    f"{name} {entry.get('version') or vn}: its dist URL in {redact(repo.url)} carries credentials; "
                    "magedl does not mirror such URLs: ask the repository's maintainer to serve it without them "
                    "(Composer sends keys from auth.json), or mirror it from a lock that names a clean URL"))
                continue
            self._add(name, vn, entry, repo)
            out.append((entry.get("version") or vn, entry))
        return out

    def _add(self, name: str, vn: str, entry: dict, repo) -> None:
        self.selection.packages.setdefault(name, {}).setdefault(vn, entry)
        self.selection.repo_of.setdefault(name, repo.url if repo is not None else None)
        for key in ("replace", "provide"):
            self._provided |= {dep for dep, _ in links(entry, key)}

    def _php_ok(self, entry: dict) -> bool:
        if self._php is None:
            return True
        wanted = dict(links(entry, "require")).get("php")
        if not wanted:
            return True
        try:
            return parse_constraint(wanted).matches(self._php)
        except ConstraintError:
            return True

    def _lock(self, path: str) -> None:
        from magedl.composer.lockfile import read_lock

        for locked in read_lock(path, dev=self.options.dev, warn=self.warn):
            name, version = locked["name"], locked["version"]
            requirement = f"{name} {version}"
            try:
                name = check_package_name(name)
                vn = normalize(version)
            except (UnsafeNameError, ConstraintError) as exc:
                self.warn(f"{path}: {exc}; skipped")
                continue
            where = (f"locked in {path}",)
            try:
                repo, entries = self.lookup(name, dev=stability(vn) == "dev")
            except _Unlisted:
                repo, entries = None, []
            except MagedlError as exc:
                self._fail(requirement, where, exc)
                continue
            entry = next((e for e in entries if _normalized(e) == vn), None)
            dist = locked.get("dist") if isinstance(locked.get("dist"), dict) else {}
            if entry is None and isinstance(dist.get("url"), str) and dist["url"]:
                if carries_credentials(locked):
                    # A password in a lock would travel into the state file and the JSON output.
                    self._fail(requirement, where, UsageError(
                        f"{name} {version}: its dist URL in {path} carries credentials; give them to Composer "
                        "as auth.json or COMPOSER_AUTH instead, and remove them from the lock"))
                    continue
                self.warn(f"{name} {version}: in no repository given; mirrored as {path} describes it")
                entry = dict(locked, version_normalized=vn)  # published in p2 like any other version
            if entry is None and locked.get("type") == "metapackage":
                entry = dict(locked, version_normalized=vn)
            if entry is None:
                listed = f"not in {redact(repo.url)}" if repo is not None else "in none of the repositories"
                self._fail(requirement, where, UnsatisfiableError(f"{name} {version}: {listed}"))
                continue
            self._add(name, vn, entry, repo)


class _Unlisted(UnsatisfiableError):
    """No repository lists the package (a replaced or provided name is then no failure)."""


class _UnlistedForTheKeys(_Unlisted):
    """A ``magento/*`` package unlisted where the keys see no Commerce group: not theirs (exit 4, as keys check)."""

    exit_code = EntitlementError.exit_code


def _groups(repo) -> dict:
    """The provider groups a repository shows these keys; ``{}`` when it has none or cannot say."""
    try:
        return repo.provider_groups()
    except MagedlError:
        return {}


def _normalized(entry: dict) -> Optional[str]:
    vn = entry.get("version_normalized")
    if isinstance(vn, str) and vn:
        return vn
    try:
        return normalize(entry.get("version", ""))
    except (ConstraintError, TypeError):
        return None


def resolve(repos: Sequence, options: ComposerOptions, warn: Callable[[str], None] = log.warning,
            prefetch: Optional[Callable[[list], None]] = None) -> Selection:
    """Choose the versions *options* select over *repos* (see :class:`Resolver`).

    *prefetch*, when given, is called with the package names of each level
    of the requirement graph before they are looked up (to fetch their
    metadata in parallel).
    """
    return Resolver(repos, options, warn, prefetch).resolve()
