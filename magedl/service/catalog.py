"""The catalogue: the ``info/json`` feed as release records, and filters on them.

Rule: the feed is old and loosely kept, so a bad entry is skipped with a warning instead of failing
the whole listing. The feed's shape: see docs/service.md, "The JSON feed".
"""

import dataclasses
import difflib
import posixpath
import sys
from dataclasses import dataclass, field
from operator import attrgetter
from types import MappingProxyType
from typing import Callable, Iterable, List, Optional, Sequence

from magedl.errors import FeedError, IntegrityError, NotFoundError
from magedl.service.feedjson import MD5 as _MD5
from magedl.service.feedjson import CompactEntry, deeper_than, plain_fields, restored
from magedl.text import printable
from magedl.versions import sort_versions, unclosed_bracket, version_key, version_matches

# Fields that become attributes; everything else in an entry goes to extra.
# "type" and "version" come from the entry's position in the feed, so a
# conflicting copy inside the entry is dropped rather than kept twice.
_CORE = ("name", "file_name", "version", "type", "md5", "ce_versions", "ee_versions")
_CORE_KEYS = frozenset(_CORE)
_NO_EXTRA = MappingProxyType({})
# Extra fields nested deeper than this are dropped: nothing magedl shows needs them, and printing
# them as JSON later would hit Python's recursion limit.
_EXTRA_DEPTH = 32
# Suffixes of two parts; a plain last extension covers the rest.
_COMPOUND_SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz")


def file_suffix(file_name: str) -> str:
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


# Without a __dict__ a record takes a fraction of the memory: a catalogue holds 100,000 of them (Python 3.10+).
@dataclass(frozen=True, **({"slots": True} if sys.version_info >= (3, 10) else {}))
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


def parse_feed(data: object, warn: Optional[Callable[[str], None]] = None, consume: bool = False) -> List["Release"]:
    """Turn the decoded ``info/json`` feed into release records.

    Parameters
    ----------
    data : object
        The decoded JSON.
    warn : callable, optional
        Called with a one-line message for each thing skipped or repaired.
    consume : bool
        The caller hands *data* over: each entry is dropped from it once read, so
        the decoded feed and its records are never both held whole.

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
    if type(data) is CompactEntry:  # an object the decoder took for an entry: the dict it stands for
        data = data.as_dict()
    if not isinstance(data, dict):
        raise FeedError(
            f"the catalogue feed is not a JSON object (got {type(data).__name__}); "
            "the service may have sent an error page"
        )
    releases, seen = [], {}  # (type, version) -> file name -> index in releases
    for category, value in data.items():
        group = names = None  # the (type, version) of the entry before: a feed lists each version's together
        for where, version, entry in _entries(str(category), value, warn, consume):
            if type(entry) is CompactEntry:
                release = _compact(entry, str(category), version)
            else:
                release = _plain(entry, str(category), version) or _release(entry, str(category), version, where, warn)
            if release is None:
                continue
            if group != (release.type, release.version):
                group = (release.type, release.version)
                names = seen.setdefault(group, {})
            kept = names.get(release.file_name)
            if kept is None:
                names[release.file_name] = len(releases)
                releases.append(release)
            elif release.md5 and not releases[kept].md5:
                # Whichever listing comes first, an md5 the feed gives is never lost.
                releases[kept] = dataclasses.replace(releases[kept], md5=release.md5)
                warn(f"feed {where}: repeats {release.file_name}; its md5 kept")
            elif release.md5 and release.md5 != releases[kept].md5:
                # Kept as a second listing, so settle_md5 refuses the file instead of guessing.
                warn(f"feed {where}: repeats {release.file_name} with another md5")
                releases.append(release)
            else:
                warn(f"feed {where}: repeats {release.file_name}; skipped")
    return releases


def _entries(category, value, warn, consume=False):
    """Yield (where, version, entry); version None means "ask the entry"; *consume*: drop each once read."""
    if type(value) is CompactEntry:
        value = value.as_dict()
    if isinstance(value, dict):
        for version, entries in value.items():
            if not isinstance(entries, list):
                warn(f"feed {category}/{version}: not a list of entries; skipped")
                continue
            version = str(version)
            for i, entry in enumerate(entries):
                if consume:
                    entries[i] = None
                yield f"{category}/{version}[{i}]", version, entry
    elif isinstance(value, list):
        for i, entry in enumerate(value):
            if consume:
                value[i] = None
            yield f"{category}[{i}]", None, entry
    else:
        warn(f"feed {category}: neither an object nor a list; skipped")


def _compact(entry, category, version):
    """The record :func:`_plain` (or :func:`_release`, *version* None) makes of the plain entry *entry*."""
    name, file_name, md5, own, _ = entry
    if version is None:
        version = "" if own is None else own
    return Release(name, file_name, version, category, md5 or "", (), (), _NO_EXTRA)


def _plain(entry, category, version):
    """:func:`_release` of the common entry (a name, a file name and a good md5 or none, under a version of
    its category), with none of its checks to make; None for any other entry (which :func:`_release` takes)."""
    fields = plain_fields(entry) if version is not None else None
    if fields is None:
        return None
    name, file_name, md5 = fields
    return Release(file_name if name == file_name else name, file_name, version, category, md5, (), (), _NO_EXTRA)


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
    elif name == file_name:
        name = file_name  # one string for both, not two
    return Release(
        name=name,
        file_name=file_name,
        version=version,
        type=category,
        md5=_md5(entry.get("md5"), file_name, where, warn),
        ce_versions=_version_list(entry, "ce_versions", where, warn),
        ee_versions=_version_list(entry, "ee_versions", where, warn),
        extra=_extra(entry, file_name, where, warn),
    )


def _extra(entry, file_name, where, warn):
    if entry.keys() <= _CORE_KEYS:
        return _NO_EXTRA  # the common case: one shared, read-only empty mapping rather than a dict per record
    extra = {}
    for key, value in entry.items():
        if key in _CORE:
            continue
        if deeper_than(value, _EXTRA_DEPTH):
            warn(f"feed {where}: field {key!r} of {file_name} is nested too deeply; dropped")
            continue
        extra[key] = restored(value)
    return extra


def _md5(value, file_name, where, warn):
    if value is None or value == "":
        return ""
    if isinstance(value, str) and _MD5.fullmatch(value):
        return value  # already as kept: no copy
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


def releases_to_feed(releases: Iterable["Release"]) -> dict:
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


def select(releases: Iterable["Release"], *, types: Iterable[str] = (), versions: Iterable[str] = (),
           names: Iterable[str] = (), formats: Iterable[str] = (), latest: bool = False) -> List["Release"]:
    """Filter records; each empty filter lets everything through.

    A plain filter: an empty result is not an error here (the server's
    ``info/filter`` routes answer it with "No results found."). Commands use
    :func:`select_checked`, which names a typo and what exists.

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
    # Two stable sorts: the second (by version) keeps the first's order on ties. A key per version, not per
    # record: a catalogue lists thousands of files under each.
    chosen.sort(key=attrgetter("type", "file_name"))
    keys = {v: version_key(v) for v in {r.version for r in chosen}}
    chosen.sort(key=lambda r: keys[r.version], reverse=True)
    return chosen


def select_checked(releases: Iterable["Release"], *, types: Iterable[str] = (), versions: Iterable[str] = (),
                   names: Iterable[str] = (), formats: Iterable[str] = (), latest: bool = False) -> List["Release"]:
    """:func:`select`, for what a person typed: a typo is an error that lists what exists.

    One behaviour for ``list``, ``versions``, ``get`` and ``mirror``: an
    unknown type, a version glob that matches nothing (a broken glob such as
    ``2.4.[7`` included), an unknown file name or format, or filters that
    together match nothing raise :class:`NotFoundError` (exit 5) naming the
    value, the closest match and what the catalogue has. With no filter at
    all the result may be empty (an empty catalogue is not a typo).

    Raises
    ------
    NotFoundError
    """
    releases = list(releases)
    types, versions, names, formats = list(types), list(versions), list(names), list(formats)
    known = sorted({r.type for r in releases})
    for type_ in types:
        if type_ not in known:
            raise NotFoundError(f"unknown --type '{printable(type_)}'{_closest(type_, known)}; "
                                f"the catalogue has: {_listing(known)}")
    pool = [r for r in releases if not types or r.type in types]
    in_pool = sort_versions(r.version for r in pool if r.version)
    scope = f" of {', '.join(map(printable, types))}" if types else ""
    for glob in versions:
        if not any(version_matches(v, glob) for v in in_pool):
            broken = " (its '[' is never closed, so it is taken literally)" if unclosed_bracket(glob) else ""
            raise NotFoundError(f"--version '{printable(glob)}'{broken} matches no version{scope}"
                                f"{_closest(glob, in_pool)}; versions{scope}: {_listing(in_pool)} "
                                "(see 'magedl versions')")
    for name in names:
        if find_by_name(releases, name) is None:
            raise NotFoundError(f"'{printable(name)}' is not in the catalogue"
                                f"{_closest(name, sorted({r.file_name for r in releases}))} (see 'magedl list')")
    chosen = select(releases, types=types, versions=versions, names=names, formats=formats, latest=latest)
    if not chosen and (types or versions or names or formats or latest):
        have = sorted({r.suffix for r in select(releases, types=types, versions=versions, names=names) if r.suffix})
        if formats and have:
            raise NotFoundError(f"no file of that selection has the format {', '.join(map(printable, formats))}; "
                                f"formats there: {', '.join(s.lstrip('.') for s in have)}")
        raise NotFoundError("nothing in the catalogue matches that selection as a whole; see 'magedl versions' "
                            "and 'magedl list' for what there is")
    return chosen


def _closest(value: str, known: Sequence[str]) -> str:
    # Case-blind: 'CE-full' is a ce-full typo, not an ee-full one.
    lowered = {k.lower(): k for k in known}
    close = difflib.get_close_matches(value.lower(), list(lowered), n=1, cutoff=0.6)
    return f" (did you mean '{printable(lowered[close[0]])}'?)" if close else ""


def _listing(values: Sequence[str], limit: int = 12) -> str:
    """*values* as a short, printable list: the first *limit*, then how many more."""
    if not values:
        return "nothing"
    shown = ", ".join(printable(v) for v in values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


def unique_files(releases: Iterable["Release"]) -> List["Release"]:
    """Return one record per file name, the first seen, in input order."""
    seen, out = set(), []
    for release in releases:
        if release.file_name not in seen:
            seen.add(release.file_name)
            out.append(release)
    return out


def find_by_name(releases: Iterable["Release"], name: str) -> Optional["Release"]:
    """Return the first record whose file name is exactly ``name``, or None."""
    return next((r for r in releases if r.file_name == name), None)


def settle_md5(release: "Release", releases: Iterable["Release"]) -> "Release":
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
