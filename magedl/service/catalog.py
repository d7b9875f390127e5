"""The catalogue: the ``info/json`` feed as release records, and filters on them.

The feed is an object keyed by category (``ce-full``, ``ee-full``,
``ce-patch``, ``ee-patch``, ``other`` and possibly unknown ones). A category
holds either an object mapping version -> list of entries, or a plain list of
entries. The feed is old and loosely kept, so a bad entry is skipped with a
warning instead of failing the whole listing.
"""

import dataclasses
import posixpath
import re
from dataclasses import dataclass, field

from magedl.errors import FeedError, IntegrityError
from magedl.versions import version_key, version_matches

# Fields that become attributes; everything else in an entry goes to extra.
# "type" and "version" come from the entry's position in the feed, so a
# conflicting copy inside the entry is dropped rather than kept twice.
_CORE = ("name", "file_name", "version", "type", "md5", "ce_versions", "ee_versions")
_MD5 = re.compile(r"[0-9a-f]{32}")
# Suffixes of two parts; a plain last extension covers the rest.
_COMPOUND_SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz")


def file_suffix(file_name):
    """Archive suffix of a file name, lower-case (``".tar.gz"``, ``".zip"``...), or ``""``.

    A purely numeric last part (``magento-1.9.4.5``) is a version, not an
    extension.
    """
    base = file_name.rsplit("/", 1)[-1].lower()
    for compound in _COMPOUND_SUFFIXES:
        if base.endswith(compound):
            return compound
    ext = posixpath.splitext(base)[1]
    return ext if len(ext) > 1 and not ext[1:].isdigit() else ""


@dataclass(frozen=True)
class Release:
    """One downloadable file, as one feed entry lists it.

    A file listed under several versions gives one record per version.
    """

    name: str
    file_name: str
    version: str
    type: str
    md5: str
    ce_versions: tuple = ()
    ee_versions: tuple = ()
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def suffix(self):
        """Archive suffix, lower-case (``".tar.gz"``, ``".zip"``...), or ``""``.

        A purely numeric last part (``magento-1.9.4.5``) is a version, not an
        extension.
        """
        return file_suffix(self.file_name)

    def to_dict(self):
        """Return a JSON-ready dict: the core fields, then every extra field."""
        out = {
            "name": self.name,
            "file_name": self.file_name,
            "version": self.version,
            "type": self.type,
            "md5": self.md5,
        }
        if self.ce_versions:
            out["ce_versions"] = list(self.ce_versions)
        if self.ee_versions:
            out["ee_versions"] = list(self.ee_versions)
        for key, value in self.extra.items():
            if key not in _CORE:
                out[key] = value
        return out


def _ignore(message):
    pass


def parse_feed(data, warn=None):
    """Turn the decoded ``info/json`` feed into release records.

    Parameters
    ----------
    data : object
        The decoded JSON.
    warn : callable, optional
        Called with a one-line message for each thing skipped or repaired.

    Returns
    -------
    list of Release
        In feed order. Repeats of the same (type, version, file_name) are
        dropped with a warning.

    Raises
    ------
    FeedError
        If ``data`` is not a JSON object.
    """
    warn = warn or _ignore
    if not isinstance(data, dict):
        raise FeedError(
            f"the catalogue feed is not a JSON object (got {type(data).__name__}); "
            "the service may have sent an error page"
        )
    releases, seen = [], set()
    for category, value in data.items():
        for where, version, entry in _entries(str(category), value, warn):
            release = _release(entry, str(category), version, where, warn)
            if release is None:
                continue
            key = (release.type, release.version, release.file_name)
            if key in seen:
                warn(f"feed {where}: repeats {release.file_name}; skipped")
                continue
            seen.add(key)
            releases.append(release)
    return releases


def _entries(category, value, warn):
    """Yield (where, version, entry); version None means "ask the entry"."""
    if isinstance(value, dict):
        for version, entries in value.items():
            if not isinstance(entries, list):
                warn(f"feed {category}/{version}: not a list of entries; skipped")
                continue
            for i, entry in enumerate(entries):
                yield f"{category}/{version}[{i}]", str(version), entry
    elif isinstance(value, list):
        for i, entry in enumerate(value):
            yield f"{category}[{i}]", None, entry
    else:
        warn(f"feed {category}: neither an object nor a list; skipped")


def _release(entry, category, version, where, warn):
    """Build one Release from a feed entry, or return None to skip it."""
    if not isinstance(entry, dict):
        warn(f"feed {where}: entry is not an object; skipped")
        return None
    file_name = entry.get("file_name")
    if not isinstance(file_name, str) or not file_name:
        warn(f"feed {where}: no usable file_name; skipped")
        return None
    if version is None:
        version = entry.get("version", "")
        if not isinstance(version, str):
            warn(f"feed {where}: version of {file_name} is not a string; left unknown")
            version = ""
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        if name is not None:
            warn(f"feed {where}: name of {file_name} is not a string; using the file name")
        name = file_name
    return Release(
        name=name,
        file_name=file_name,
        version=version,
        type=category,
        md5=_md5(entry.get("md5"), file_name, where, warn),
        ce_versions=_version_list(entry, "ce_versions", where, warn),
        ee_versions=_version_list(entry, "ee_versions", where, warn),
        extra={k: v for k, v in entry.items() if k not in _CORE},
    )


def _md5(value, file_name, where, warn):
    if value is None or value == "":
        return ""
    if isinstance(value, str) and _MD5.fullmatch(value.strip().lower()):
        return value.strip().lower()
    warn(f"feed {where}: md5 of {file_name} is not 32 hex digits; ignored")
    return ""


def _version_list(entry, key, where, warn):
    value = entry.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        warn(f"feed {where}: {key} is not a list of strings; ignored")
        return ()
    return tuple(value)


def releases_to_feed(releases):
    """Build a feed of upstream shape from records (the inverse of parse_feed).

    Categories become version -> entries objects, except ``other`` and any
    category holding a record without a version: those become plain lists
    whose entries carry their own ``version``. ``parse_feed`` of the result
    gives back the same records, in the same order when they were grouped by
    category and version as ``parse_feed`` returns them.
    """
    listed = {r.type for r in releases if r.type == "other" or not r.version}
    feed = {}
    for release in releases:
        entry = release.to_dict()
        del entry["type"]
        if release.type in listed:
            if not release.version:
                del entry["version"]
            feed.setdefault(release.type, []).append(entry)
        else:
            del entry["version"]
            feed.setdefault(release.type, {}).setdefault(release.version, []).append(entry)
    return feed


def _normal_suffix(fmt):
    return "." + fmt.strip().lower().lstrip(".")


def select(releases, *, types=(), versions=(), names=(), formats=(), latest=False):
    """Filter records; each empty filter lets everything through.

    Parameters
    ----------
    releases : iterable of Release
    types : iterable of str
        Exact categories.
    versions : iterable of str
        Globs; a record passes when any matches its version.
    names : iterable of str
        Exact file names.
    formats : iterable of str
        Suffixes, with or without the dot, any case (``"tar.gz"``, ``".ZIP"``).
    latest : bool
        Per type, keep only the newest version left after the other filters.

    Returns
    -------
    list of Release
        Newest version first, then by type, then by file name.
    """
    types, names = set(types), set(names)
    suffixes = {_normal_suffix(f) for f in formats}
    versions = list(versions)
    chosen = [
        r for r in releases
        if (not types or r.type in types)
        and (not names or r.file_name in names)
        and (not suffixes or r.suffix in suffixes)
        and (not versions or any(version_matches(r.version, v) for v in versions))
    ]
    if latest:
        newest = {}
        for r in chosen:
            if r.type not in newest or version_key(r.version) > version_key(newest[r.type]):
                newest[r.type] = r.version
        chosen = [r for r in chosen if r.version == newest[r.type]]
    # Two stable sorts: the second (by version) keeps the first's order on ties.
    chosen.sort(key=lambda r: (r.type, r.file_name))
    chosen.sort(key=lambda r: version_key(r.version), reverse=True)
    return chosen


def unique_files(releases):
    """Return one record per file name, the first seen, in input order."""
    seen, out = set(), []
    for release in releases:
        if release.file_name not in seen:
            seen.add(release.file_name)
            out.append(release)
    return out


def find_by_name(releases, name):
    """Return the first record whose file name is exactly ``name``, or None."""
    return next((r for r in releases if r.file_name == name), None)


def settle_md5(release, releases):
    """*release* with the md5 the whole feed gives its file name.

    The same file may be listed several times (under several versions), not
    always with its md5; any listing's md5 then applies to all. Returns the
    release unchanged when no listing has one.

    Raises
    ------
    IntegrityError
        When listings of the same file name give different md5s: nothing
        could tell which download is the right one.
    """
    md5s = {r.md5 for r in releases if r.file_name == release.file_name and r.md5}
    if len(md5s) > 1:
        raise IntegrityError(f"{release.file_name}: the feed lists it with different md5s "
                             f"({', '.join(sorted(md5s))}); refusing to guess which is right")
    if md5s and not release.md5:
        return dataclasses.replace(release, md5=md5s.pop())
    return release
