"""Finding Marketplace keys the way Composer finds them.

:func:`find_keys` reads every place Composer reads, in Composer's order, and reports which entry wins
and which others exist. Rule: no key ever appears in a message, a repr or a log record. The load
order and host matching: see docs/design.md, "Notes: Marketplace keys".
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from magedl.composer.home import composer_file, composer_home, project_auth_path
from magedl.composer.hosts import EXACT, MARKETPLACE_HOST, MARKETPLACE_URL, host_key, parse_target
from magedl.composer.keys import key_shape_problems, mask_public
from magedl.composer.sources import (
    NOTE,
    WARNING,
    Entry,
    Finding,
    Source,
    SourceStatus,
    host_entries,
    read_composer_auth,
    read_json_file,
)

log = logging.getLogger(__name__)

__all__ = ["Candidate", "KeyLookup", "find_keys"]

# Lowest to highest precedence, as Composer merges them.
_ORDER_NEW = (Source.GLOBAL_CONFIG, Source.GLOBAL_AUTH, Source.PROJECT_CONFIG,
              Source.PROJECT_AUTH, Source.COMPOSER_AUTH)
_ORDER_OLD = (Source.GLOBAL_CONFIG, Source.GLOBAL_AUTH, Source.COMPOSER_AUTH,
              Source.PROJECT_CONFIG, Source.PROJECT_AUTH)


@dataclass(frozen=True)
class Candidate:
    """An entry for the host that did not win, compared with the winner.

    Attributes
    ----------
    source, path
        Where it is (``path`` is None for ``COMPOSER_AUTH``).
    key : str
        The entry's name as written (``repo.magento.com``, ``REPO.magento.com:443``...).
    public_masked : str
        Its public key shortened by :func:`~magedl.composer.keys.mask_public`.
    agrees : bool
        Same public and private key as the winner.
    same_public : bool
        Same public key as the winner (the private key may still differ).
    composer_match : bool
        Composer's own exact lookup would find this entry.
    """

    source: Source
    path: Path | None
    key: str
    public_masked: str
    agrees: bool
    same_public: bool
    composer_match: bool


@dataclass(frozen=True)
class KeyLookup:
    """The outcome of :func:`find_keys`.

    Attributes
    ----------
    url : str
        The repository URL looked up (without any userinfo).
    host_key : str
        The host in canonical form: lower case, ``:port`` only when not the default.
    composer_origin : str
        The exact key Composer looks up for ``url``.
    credentials : tuple of (str, str) or None
        ``(public key, private key)`` of the winning entry. Not shown by ``repr``.
    source, path, entry_key
        Where the winner is, and its entry name as written; None when nothing was found.
    others : tuple of Candidate
        Every other entry for this host, in precedence order, highest first.
    findings : tuple of Finding
        Warnings and notes, in the order they were found.
    searched : tuple of SourceStatus
        Every place consulted, in Composer's load order.
    composer_home : Path
        ``$COMPOSER_HOME`` as Composer computes it.
    """

    url: str
    host_key: str
    composer_origin: str
    credentials: tuple[str, str] | None = field(repr=False)
    source: Source | None
    path: Path | None
    entry_key: str | None
    others: tuple[Candidate, ...]
    findings: tuple[Finding, ...]
    searched: tuple[SourceStatus, ...]
    composer_home: Path

    @property
    def found(self) -> bool:
        """True when some source holds keys for the host."""
        return self.credentials is not None

    @property
    def public_masked(self) -> str | None:
        """The winning public key shortened by :func:`~magedl.composer.keys.mask_public`, or None."""
        return mask_public(self.credentials[0]) if self.credentials else None

    @property
    def warnings(self) -> tuple[Finding, ...]:
        """Only the warning-level findings."""
        return tuple(f for f in self.findings if f.level == WARNING)


def find_keys(url: str = MARKETPLACE_URL, *,
              project_dir: os.PathLike[str] | str | None = None,
              env: Mapping[str, str] | None = None,
              platform: str | None = None,
              check_shape: bool | None = None) -> KeyLookup:
    """Find the credentials Composer would send to *url*, and everything else held for its host.

    Parameters
    ----------
    url : str
        The repository URL (a bare host is taken as https).
    project_dir : path, optional
        The project folder holding composer.json; the current directory by default.
    env : mapping, optional
        The environment; ``os.environ`` by default.
    platform : str, optional
        ``sys.platform`` by default (for :func:`~magedl.composer.home.composer_home`).
    check_shape : bool, optional
        Check that the winning pair looks like Marketplace keys; by default only
        for ``repo.magento.com``.

    Returns
    -------
    KeyLookup

    Raises
    ------
    ConfigError
        ``COMPOSER_AUTH`` is malformed, or a file Composer reads is not valid JSON
        or cannot be read (Composer stops on these too). Wrong-typed entries are
        findings, not errors.
    UsageError
        *url* is not an http(s) URL.
    """
    env = os.environ if env is None else env
    target = parse_target(url)
    findings: list[Finding] = []
    if target.had_userinfo:
        findings.append(Finding(NOTE, "the repository URL holds credentials; they were left out "
                                "of this lookup"))
    home = composer_home(env, platform)
    by_source: dict[Source, list[Entry]] = {}
    searched: list[SourceStatus] = []

    def add(source: Source, path: Path | None, present: bool, data: Any) -> None:
        searched.append(SourceStatus(source, path, present))
        if present:
            by_source[source] = host_entries(data, source, path, target, findings)
            if source in (Source.GLOBAL_AUTH, Source.PROJECT_AUTH) and by_source[source]:
                _check_private(path, source, findings)

    for source, path in ((Source.GLOBAL_CONFIG, home / "config.json"),
                         (Source.GLOBAL_AUTH, home / "auth.json")):
        add(source, path, *read_json_file(path))
    add(Source.COMPOSER_AUTH, None, *read_composer_auth(env))

    cfile = composer_file(project_dir, env)
    auth_path = project_auth_path(project_dir, env)
    if cfile.is_file():
        add(Source.PROJECT_CONFIG, cfile, *read_json_file(cfile))
        if _same_file(auth_path, home / "auth.json"):
            # `composer global` runs in COMPOSER_HOME: one file, already read.
            searched.append(SourceStatus(Source.PROJECT_AUTH, auth_path, False))
        else:
            add(Source.PROJECT_AUTH, auth_path, *read_json_file(auth_path))
    else:
        searched.append(SourceStatus(Source.PROJECT_CONFIG, cfile, False))
        searched.append(SourceStatus(Source.PROJECT_AUTH, auth_path, False))
        if auth_path.is_file():
            findings.append(Finding(NOTE, f"{auth_path} is not read: Composer reads a project "
                                    f"auth.json only next to a composer.json (none at {cfile})",
                                    Source.PROJECT_AUTH, auth_path))

    winner = _winner(by_source, _ORDER_NEW)
    others: list[Candidate] = []
    if winner is not None:
        creds = (winner.username, winner.password)
        for source in reversed(_ORDER_NEW):
            for entry in by_source.get(source, []):
                if entry is winner:
                    continue
                others.append(Candidate(
                    entry.source, entry.path, entry.key, mask_public(entry.username),
                    agrees=(entry.username, entry.password) == creds,
                    same_public=entry.username == winner.username,
                    composer_match=entry.kind == EXACT))
        old = _winner(by_source, _ORDER_OLD)
        if old is not None and (old.username, old.password) != creds:
            findings.append(Finding(
                NOTE, f"{winner.describe()} and {old.describe()} hold different keys for "
                f"{target.origin}: Composer 2.7.8 and later use {winner.source.label}, older "
                f"versions use {old.source.label}; keep only one of them"))
        if check_shape is None:
            check_shape = target.host == MARKETPLACE_HOST
        if check_shape:
            for problem in key_shape_problems(*creds):
                findings.append(Finding(WARNING, f"{winner.describe()}: {problem}",
                                        winner.source, winner.path))
        log.debug("keys for %s from %s (public key %s)", target.origin, winner.describe(),
                  mask_public(winner.username))
    else:
        creds = None
        log.debug("no keys for %s in any Composer source", target.origin)

    return KeyLookup(
        url=target.url, host_key=host_key(target.url), composer_origin=target.origin,
        credentials=creds,
        source=winner.source if winner else None,
        path=winner.path if winner else None,
        entry_key=winner.key if winner else None,
        others=tuple(others), findings=tuple(findings), searched=tuple(searched),
        composer_home=home,
    )


def _pick(entries: list[Entry]) -> Entry | None:
    """One source's entry: the exact match if any, else the first other spelling."""
    for entry in entries:
        if entry.kind == EXACT:
            return entry
    return entries[0] if entries else None


def _winner(by_source: dict[Source, list[Entry]], order: tuple[Source, ...]) -> Entry | None:
    picks = [_pick(by_source.get(s, [])) for s in reversed(order)]
    picks = [p for p in picks if p is not None]
    for pick in picks:  # whatever Composer itself would use wins
        if pick.kind == EXACT:
            return pick
    return picks[0] if picks else None


def _check_private(path: Path, source: Source, findings: list) -> None:
    """The one rule for files that hold secrets, as a warning: Composer reads such a file, so magedl does too."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if os.name != "nt" and mode & 0o077:
        findings.append(Finding(WARNING, f"{path} has mode {stat.S_IMODE(mode):04o}: other users can read the "
                                f"private key in it (Composer never tightens it); run 'chmod 600 {path}'",
                                source, path))


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
