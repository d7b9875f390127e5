"""Composer version entries: minified (``composer/2.0``) lists, checked entries, provider names."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from urllib.parse import urlsplit

from magedl.composer.semver import normalize
from magedl.errors import ConstraintError, FeedError, UnsafeNameError
from magedl.secrecy import register_secret
from magedl.text import printable

log = logging.getLogger(__name__)

PROVIDER_LABELS = {"provider-ce": "Open Source", "provider-ee": "Commerce",
                   "provider-b2b": "B2B",
                   "provider-marketplace-extensions": "Marketplace extensions"}
MINIFIED = "composer/2.0"
# Dependency maps of a version entry: PHP writes an empty one as [].
_LINK_KEYS = ("require", "require-dev", "conflict", "replace", "provide", "suggest")
# What one minified document may expand to, in JSON values (see expand_minified): a real p2
# file of a package with a thousand versions is far below it.
MAX_EXPANDED_VALUES = 1_000_000
# Composer's own rule for package names (ValidatingArrayLoader), lower case.
_NAME = re.compile(r"^[a-z0-9](?:[_.-]?[a-z0-9]+)*/[a-z0-9](?:(?:[_.]|-{1,2})?[a-z0-9]+)*$")


def check_package_name(name: str) -> str:
    """A Composer package name, lower-cased; refused when Composer would refuse it.

    Every URL and path built from a name (``%package%``, ``p2/NAME.json``,
    ``dist/NAME/...``) is built from a name this returned, so a name from a
    repository cannot choose where a request (with the keys) goes.

    Raises
    ------
    UnsafeNameError
    """
    lowered = name.lower() if isinstance(name, str) else ""
    if not _NAME.fullmatch(lowered):
        raise UnsafeNameError(f"refusing Composer package name {printable(name)!r}: not vendor/name "
                              "in Composer's characters")
    return lowered


def expand_minified(versions: list, warn: Callable[[str], None] | None = None, *,
                    where: str = "minified metadata", limit: int | None = None) -> list[dict]:
    """Expand a minified (``composer/2.0``) version list into full entries.

    Each entry after the first holds only the keys that changed from the
    previous expanded one; the value ``"__unset"`` removes a key.  Entries
    that are not objects are skipped with a warning.

    Expansion multiplies: a wide first entry followed by thousands of ``{}``
    turns 60 KB into gigabytes.  The expanded entries are therefore counted
    as they are made, in JSON values (a key, a string, a nested object's
    every value; a value shared by several entries counts once per entry, as
    every later copy of it costs that much), and a document over *limit*
    (:data:`MAX_EXPANDED_VALUES`) is refused before more is built.

    Raises
    ------
    FeedError
        The document expands to more than *limit* values (names *where*).

    Examples
    --------
    >>> expand_minified([{"name": "a/b", "version": "2.0"}, {"version": "1.0"}])
    [{'name': 'a/b', 'version': '2.0'}, {'name': 'a/b', 'version': '1.0'}]
    """
    warn = warn or log.warning
    limit = MAX_EXPANDED_VALUES if limit is None else limit
    expanded: list[dict] = []
    current: dict | None = None
    weight = total = 0  # values in the current entry; in all entries so far
    for diff in versions:
        if not isinstance(diff, dict):
            warn(f"a minified version entry is a {type(diff).__name__}, not an object; skipped")
            continue
        if not current:  # as Composer: an empty first entry starts afresh
            weight = sum(1 + json_size(v) for v in diff.values())
            changes = None
        else:
            for key, value in diff.items():
                if key in current:
                    weight -= 1 + json_size(current[key])
                if value != "__unset":
                    weight += 1 + json_size(value)
            changes = diff
        total += weight
        if total > limit:
            raise FeedError(f"{where}: minified metadata that expands to more than {limit:,} values "
                            f"(entries x keys); refused. The repository's file is malformed or hostile: "
                            "ask its maintainer, or leave the package out")
        if changes is None:
            current = dict(diff)
        else:
            current = dict(current)
            for key, value in changes.items():
                if value == "__unset":
                    current.pop(key, None)
                else:
                    current[key] = value
        expanded.append(current)
    return expanded


def json_size(value) -> int:
    """The number of JSON values in *value* (1 for a scalar; an object counts its keys and values)."""
    if isinstance(value, dict):
        return 1 + sum(1 + json_size(v) for v in value.values())
    if isinstance(value, list):
        return 1 + sum(json_size(v) for v in value)
    return 1


def minify_versions(versions: list[dict]) -> list[dict]:
    """Minify full version entries, the inverse of :func:`expand_minified`."""
    out: list[dict] = []
    last: dict | None = None
    for version in versions:
        if not last:
            last = dict(version)
            out.append(dict(version))
            continue
        diff = {k: v for k, v in version.items() if k not in last or not _same(last[k], v)}
        diff.update({k: "__unset" for k in last if k not in version})
        last = dict(version)
        out.append(diff)
    return out


def _same(a, b) -> bool:
    # == alone says 1 == True == 1.0; a diff must not lose a type change.
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def provider_label(include: str) -> str:
    """Name a provider include for people: ``p/provider-ce$%hash%.json`` -> ``"Open Source"``.

    Unknown groups keep their file's name (``provider-foo``).
    """
    stem = include.rsplit("/", 1)[-1].replace("$%hash%", "").replace("%hash%", "")
    stem = stem.removesuffix(".json")
    return PROVIDER_LABELS.get(stem, stem)


def valid_entry(item, key: str, where: str, warn: Callable[[str], None]) -> dict | None:
    """Return a checked copy of one version entry of package *key*, or None to skip it.

    ``name`` is filled in when missing, and ``version_normalized`` (which
    Composer computes when a repository leaves it out); an entry of another package is
    dropped silently (Composer loads only the named package from a file);
    wrong-typed fields drop the entry with a warning.
    """
    if not isinstance(item, dict):
        warn(f"{where}: a version of {key} is a {type(item).__name__}, not an object; skipped")
        return None
    entry = dict(item)
    name = entry.setdefault("name", key)
    if not isinstance(name, str):
        warn(f"{where}: a version of {key} has a non-string name; skipped")
        return None
    if name.lower() != key:
        log.debug("%s: entry of %s in the file of %s ignored", where, name, key)
        return None
    problem = None
    if not isinstance(entry.get("version"), str) or not entry["version"]:
        problem = "no version string"
    elif not isinstance(entry.get("version_normalized", ""), str):
        problem = "a non-string version_normalized"
    elif not isinstance(entry.get("dist", {}), dict) or not isinstance(
            entry.get("dist", {}).get("url", ""), str):
        problem = "a malformed dist"
    elif not entry.get("version_normalized"):
        try:
            entry["version_normalized"] = normalize(entry["version"])
        except ConstraintError as exc:
            problem = f"a version Composer cannot read ({exc})"
    for link in _LINK_KEYS:
        value = entry.get(link)
        if value == []:
            entry[link] = {}
        elif value is not None and not (isinstance(value, dict) and all(
                isinstance(v, str) for v in value.values())):
            problem = problem or f"a malformed '{link}'"
    if problem:
        warn(f"{where}: a version of {key} has {problem}; skipped")
        return None
    return entry


def containers_of(doc: dict, key: str, where: str, warn: Callable[[str], None]) -> list:
    """The version containers (dicts or lists) under ``doc['packages']`` for package *key*, expanded if minified."""
    packages = doc.get("packages")
    if not isinstance(packages, dict):
        if packages not in (None, []):
            warn(f"{where}: 'packages' is not an object; ignored")
        return []
    found = []
    for pkg, versions in packages.items():
        if pkg.lower() != key:
            continue
        if isinstance(versions, list) and doc.get("minified") == MINIFIED:
            versions = expand_minified(versions, warn, where=where)
        if isinstance(versions, (dict, list)):
            found.append(versions)
        else:
            warn(f"{where}: versions of {pkg} are not a list or object; skipped")
    return found


def collect_entries(containers: list, key: str, where: str, warn: Callable[[str], None]) -> list[dict]:
    """The checked entries (:func:`valid_entry`) of package *key* in version dicts or lists."""
    out = []
    for container in containers:
        raw = container.values() if isinstance(container, dict) else container
        for item in raw:
            entry = valid_entry(item, key, where, warn)
            if entry is not None:
                out.append(entry)
    return out


def carries_credentials(entry: dict) -> bool:
    """Whether a version entry's dist URL holds a user or password (its password is registered as a secret)."""
    dist = entry.get("dist")
    url = dist.get("url") if isinstance(dist, dict) else None
    if not isinstance(url, str) or "@" not in url:
        return False
    try:
        parts = urlsplit(url)
        register_secret(parts.password)
        return "@" in parts.netloc
    except ValueError:  # not a URL at all: the fetch refuses it
        return False


def is_package_name(name: str) -> bool:
    """Whether *name* is a Composer package name (see :func:`check_package_name`)."""
    try:
        check_package_name(name)
    except UnsafeNameError:
        return False
    return True


def links(entry: dict, key: str) -> list:
    """``[(name lower-cased, constraint)]`` of a version entry's link map (PHP writes an empty one as [])."""
    links = entry.get(key)
    if not isinstance(links, dict):
        return []
    return [(n.lower(), c) for n, c in links.items() if isinstance(n, str) and isinstance(c, str)]
