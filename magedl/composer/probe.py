"""Ask a Composer repository what a pair of Marketplace keys unlocks, as Composer would see it.

Rule: an archive is checked with a one-byte ranged GET, never fetched whole, and the keys travel only
to the repository's own host. What it checks and its exit codes: see docs/design.md, "Notes:
Marketplace keys".
"""

import difflib
import logging
import re
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Tuple

from magedl.composer.remote import NOT_THEIRS, KeyNote, metadata_fetcher, not_entitled
from magedl.composer.repository import ComposerRepository
from magedl.config import shown_url
from magedl.errors import AuthError, EntitlementError, MagedlError, NotFoundError, UsageError
from magedl.secrecy import register_secret
from magedl.text import printable

log = logging.getLogger(__name__)

__all__ = ["PackageAnswer", "Probe", "parse_package", "probe", "keys_client"]

_PACKAGE = re.compile(r"^[a-z0-9]([_.-]?[a-z0-9]+)*/[a-z0-9](([_.]|-{1,2})?[a-z0-9]+)*$")
COMMERCE_GROUP = "Commerce"


@dataclass(frozen=True)
class PackageAnswer:
    """Whether the account may fetch one package's archive.

    Attributes
    ----------
    asked : str
        ``NAME`` or ``NAME:VERSION`` as given.
    name, version : str
        The package, and the version checked (the newest stable one when none was asked).
    ok : bool
    exit_code : int
        0, 4 (not theirs) or 5 (no such package or version).
    detail : str
        A person's explanation.
    archive : str or None
        The archive URL checked (no credentials in it).
    """

    asked: str
    name: str
    version: Optional[str]
    ok: bool
    exit_code: int
    detail: str
    archive: Optional[str] = None

    def to_dict(self) -> dict:
        return {"package": self.name, "version": self.version, "ok": self.ok, "exit_code": self.exit_code,
                "detail": self.detail, "archive": self.archive}


@dataclass(frozen=True)
class Probe:
    """What the keys unlock on one repository.

    Attributes
    ----------
    url : str
    layout : str
        ``inline``, ``providers`` or ``metadata-url``.
    groups : dict
        Provider group label (``Open Source``, ``Commerce``, ``B2B``,
        ``Marketplace extensions``) -> packages it lists; empty for layouts
        without groups.
    listed : int or None
        Packages the repository lists for these keys, when it says.
    packages : tuple of PackageAnswer
    sample : PackageAnswer or None
        With no package asked about: one listed archive, fetched one byte of,
        so keys that may read metadata but fetch nothing (a lapsed
        entitlement) are caught.
    """

    url: str
    layout: str
    groups: Dict[str, int] = field(default_factory=dict)
    listed: Optional[int] = None
    packages: Tuple[PackageAnswer, ...] = ()
    sample: Optional[PackageAnswer] = None

    @property
    def exit_code(self) -> int:
        """0, or the exit code of the first check that failed (the sample archive, then each package)."""
        checks = ([self.sample] if self.sample else []) + list(self.packages)
        return next((p.exit_code for p in checks if not p.ok), 0)

    def to_dict(self) -> dict:
        return {"repo_url": shown_url(self.url), "layout": self.layout, "groups": dict(self.groups),
                "listed": self.listed, "packages": [p.to_dict() for p in self.packages],
                "sample_archive": self.sample.to_dict() if self.sample else None, "exit_code": self.exit_code}


def parse_package(text: str) -> Tuple[str, Optional[str]]:
    """``"magento/product-community-edition:2.4.7"`` -> ``(name, "2.4.7")``; the version is optional.

    Raises
    ------
    UsageError
        Not ``vendor/name`` (lower-case, as Composer names are), or an empty version.
    """
    name, sep, version = text.strip().partition(":")
    name = name.strip().lower()
    if not _PACKAGE.match(name):
        raise UsageError(f"--package {printable(text)!r}: not a Composer package name; write vendor/name or "
                         "vendor/name:VERSION, as magento/product-community-edition:2.4.7")
    if sep and not version.strip():
        raise UsageError(f"--package {printable(text)!r}: the version after ':' is empty")
    return name, (version.strip() or None) if sep else None


def keys_client(url: str, public: str, private: str, *, ca_bundle: Optional[str] = None, insecure: bool = False,
                retry=None, timeout=(15.0, 60.0)):
    """A :class:`magedl.service.api.Client` that sends the keys to *url*'s host only, and never shows them."""
    from magedl.config import Credentials, Settings
    from magedl.service.api import Client

    register_secret(public)
    register_secret(private)
    settings = Settings(url, Credentials(public, private), ca_bundle=ca_bundle, insecure=insecure)
    return Client(settings, retry=retry, timeout=timeout)


def probe(client, url: str, packages: Sequence[str] = (), *, keys_label: str = "the keys") -> Probe:
    """Read the repository at *url* with *client*'s keys; check each of *packages* (``NAME[:VERSION]``).

    Parameters
    ----------
    client : magedl.service.api.Client
        From :func:`keys_client` (or without keys, to see what an anonymous
        Composer would).
    keys_label : str
        How messages name the keys (``"public key abcd… from auth.json"``); never the keys.

    Raises
    ------
    AuthError
        401: keys missing, wrong or disabled; the server's warning relayed (exit 3).
    NetworkError
        The repository cannot be reached after every retry (exit 7).
    NotFoundError
        No ``packages.json`` at *url* (exit 5).
    IntegrityError
        A provider file does not match the sha256 its listing gives (exit 6).
    FeedError
        ``packages.json`` or a file it points to is not Composer metadata (exit 1).
    """
    wanted = [(asked, *parse_package(asked)) for asked in packages]  # refuse a typo before any request
    fetch = metadata_fetcher(client, KeyNote(url, client.credentials is not None,
                                             keys_label if client.credentials is not None else ""))
    repo = ComposerRepository(url, fetch, warn=lambda msg: log.warning("%s", msg))
    repo.root()
    groups = repo.provider_groups()  # reads every provider include, each checked against its sha256
    listed = _listed(repo)
    answers = [_check_package(client, repo, asked, name, version, groups, keys_label)
               for asked, name, version in wanted]
    sample = None if wanted else _sample_archive(client, repo, keys_label)
    return Probe(url, repo.layout, groups, listed, tuple(answers), sample)


# Packages most accounts see, each with archives: tried first for the sample archive.
_SAMPLES = ("magento/magento2-base", "magento/framework")


def _sample_archive(client, repo, keys_label):
    """One byte of one listed archive (a lapsed entitlement lists metadata but refuses every archive)."""
    names = repo.package_names()
    for name in [n for n in _SAMPLES if n in names] + [n for n in names if n not in _SAMPLES][:3]:
        answer = _check_package(client, repo, name, name, None, {}, keys_label)
        if answer.archive is not None or not answer.ok:
            return answer
    return None


def _listed(repo):
    root = repo.root()
    if repo.layout == "metadata-url" and not isinstance(root.get("available-packages"), list):
        return None
    return len(repo.package_names())


# -- packages --------------------------------------------------------------------------


def _check_package(client, repo, asked, name, version, groups, keys_label):
    from magedl.composer.semver import normalize, sort_versions, stability

    try:
        entries = repo.versions(name, dev=bool(version))
    except NotFoundError:
        return _unlisted(client, repo, asked, name, version, groups, keys_label)
    by_version = {e.get("version"): e for e in entries if isinstance(e.get("version"), str)}
    ordered = _newest_first(by_version, sort_versions)
    if version is None:
        chosen = next((v for v in ordered if stability(v) == "stable"), ordered[0] if ordered else None)
    else:
        chosen = version if version in by_version else _same_normalized(version, by_version, normalize)
    if chosen is None:
        newest = ", ".join(ordered[:5]) or "none"
        return PackageAnswer(asked, name, version, False, NotFoundError.exit_code,
                             f"{name} has no version {printable(version)} in this repository (newest: {newest})")
    dist = by_version[chosen].get("dist")
    if not isinstance(dist, dict) or not isinstance(dist.get("url"), str):
        return PackageAnswer(asked, name, chosen, True, 0,
                             f"{name} {chosen} is listed and has no archive (a metapackage): nothing to fetch")
    return _fetch_archive(client, repo.resolve(dist["url"]), asked, name, chosen, keys_label)


def _newest_first(by_version, sort_versions):
    try:
        return sort_versions(by_version)
    except (MagedlError, ValueError):  # a version Composer could not parse either: keep the listing's order
        return list(by_version)


def _same_normalized(version, by_version, normalize):
    try:
        want = normalize(version)
    except (MagedlError, ValueError):
        return None
    for candidate in by_version:
        try:
            if normalize(candidate) == want:
                return candidate
        except (MagedlError, ValueError):
            continue
    return None


def _fetch_archive(client, url, asked, name, version, keys_label):
    """One byte of the archive: 200/206 yours, 403 or 404 not yours (the account does not list it)."""
    what = f"{name} {version} archive"
    response = client.retry.call(
        lambda: client.open(url, what, headers={"Range": "bytes=0-0", "Accept-Encoding": "identity"},
                            allow=(401, 403, 404)), what)
    status = response.status_code
    response.close()  # never read the rest: one byte asked, and a server ignoring Range is cut off here
    shown = shown_url(url)
    if status in (200, 206):
        return PackageAnswer(asked, name, version, True, 0, f"{name} {version}: the archive may be fetched", shown)
    if status == 401:
        return PackageAnswer(asked, name, version, False, AuthError.exit_code,
                             f"{name} {version}: the archive's server refused {keys_label} (HTTP 401)", shown)
    return PackageAnswer(asked, name, version, False, EntitlementError.exit_code,
                         str(not_entitled(f"{name} {version}", status)), shown)


def typo_of(repo, name: str) -> Optional[str]:
    """The package *repo* lists that *name* is a typo of, or None: one rule for ``keys check`` and ``mirror``."""
    listed = repo.package_names() if repo.layout != "metadata-url" or repo.root().get("available-packages") else []
    close = difflib.get_close_matches(name, listed, n=1, cutoff=0.85)  # a typo, not a sibling package
    return close[0] if close else None


def _unlisted(client, repo, asked, name, version, groups, keys_label):
    """A package the repository does not list for these keys: not theirs, or not there at all."""
    close = typo_of(repo, name)
    if close:
        return PackageAnswer(asked, name, version, False, NotFoundError.exit_code,
                             f"{name}: no such package in {shown_url(repo.url)} (did you mean {close}?)")
    if version is not None:
        guessed = _guessed_archive(client, repo, asked, name, version, keys_label)
        if guessed is not None:
            return guessed
    if name.startswith("magento/") and COMMERCE_GROUP not in groups:
        seen = f", which see only: {', '.join(sorted(groups))}" if groups else ""
        return PackageAnswer(asked, name, version, False, EntitlementError.exit_code,
                             f"{name} is not listed for {keys_label}{seen}. If it is a Commerce or B2B package: "
                             f"{NOT_THEIRS}; otherwise check the name")
    return PackageAnswer(asked, name, version, False, NotFoundError.exit_code,
                         f"{name}: no such package in {shown_url(repo.url)} as {keys_label} see it (a Marketplace "
                         "extension is listed only to the account that bought it); check the name")


def _guessed_archive(client, repo, asked, name, version, keys_label):
    """repo.magento.com keeps archives at a fixed place: a 403 there tells a package that exists but is not theirs."""
    from magedl.composer.semver import normalize

    try:
        normalized = normalize(version)
    except (MagedlError, ValueError):
        return None
    vendor, package = name.split("/", 1)
    url = repo.resolve(f"/archives/{name}/{vendor}-{package}-{normalized}.zip")
    answer = _fetch_archive(client, url, asked, name, version, keys_label)
    if answer.ok:
        return answer
    if answer.exit_code == EntitlementError.exit_code and "HTTP 403" in answer.detail:
        return PackageAnswer(asked, name, version, False, EntitlementError.exit_code,
                             f"{name} {version} exists but is not listed for {keys_label}, and its archive is "
                             f"refused (HTTP 403): {NOT_THEIRS}", answer.archive)
    return None
