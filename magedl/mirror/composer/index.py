"""The Composer part of a mirror on disk: where archives go, and the metadata Composer reads.

::

    DIR/composer/packages.json                 metadata-url + available-packages
    DIR/composer/p2/<vendor>/<name>.json       the mirrored tagged versions of one package
    DIR/composer/p2/<vendor>/<name>~dev.json   its branches (dev-main, 2.x-dev), as packagist splits them
    DIR/composer/dist/<vendor>/<name>/<version_normalized>.<type>   the archives, as served upstream
    DIR/.magedl/composer.json                  the URL the metadata was written for

The p2 files are this part's index, read back by :func:`read_index`; their dist URLs are absolute, written
for ``--composer-url`` (:data:`DEFAULT_URL`) and turned into another address by :func:`rewrite`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Callable, Iterable, Optional
from urllib.parse import urlsplit

from magedl.composer.metadata import check_package_name
from magedl.composer.semver import stability, version_key
from magedl.errors import UnsafeNameError, UsageError
from magedl.fsutil import atomic_write, read_if_regular
from magedl.mirror.defaults import DEFAULT_URL as DEFAULT_URL  # its home; re-exported for the tests
from magedl.mirror.index import remember_rendered, unchanged_since
from magedl.mirror.layout import COMPOSER, COMPOSER_DIST, COMPOSER_P2, COMPOSER_PACKAGES, walk_files
from magedl.mirror.model import StoredRecords, canonical_json, canonical_records
from magedl.paths import BOOKKEEPING, SIDE_SUFFIXES, check_name
from magedl.text import printable
from magedl.urls import check_http_url, folder_url

log = logging.getLogger(__name__)

PACKAGES = COMPOSER_PACKAGES
P2 = COMPOSER_P2
DIST = COMPOSER_DIST
URL_FILE = f"{BOOKKEEPING}/composer.json"
DEV_SUFFIX = "~dev"  # Composer reads a package's branches from p2/NAME~dev.json, only when it may use them
_VERSION_FILE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,99}$")
_DIST_TYPE = re.compile(r"^[a-z0-9]{1,10}$")
# What a mirrored entry must not carry: where to fetch sources from upstream, whom to notify,
# what only a composer.lock holds, and the Composer 1 provider files' repository-wide "uid"
# (meaningless in the mirror's p2 layout, and it would make the same version differ by layout).
DROPPED = ("source", "notification-url", "installation-source", "dev", "transport-options", "uid")
MAX_METADATA_BYTES = 64 << 20
# A file name is at most 255 bytes; the longest made from a name part is its p2 file's temporary
# file (".NAME.json.magedl-tmp-" and 12 hex digits). Composer's rule sets no length; this one does.
MAX_NAME_PART = 200


def check_fits(name: str) -> str:
    """*name* (checked, lower-cased) when each part fits in a file name; UnsafeNameError when it does not."""
    name = check_package_name(name)
    if max(len(part.encode()) for part in name.split("/")) > MAX_NAME_PART:
        raise UnsafeNameError(f"Composer package name {printable(name, 60)!r} is too long for a file name "
                              f"(a part over {MAX_NAME_PART} characters)")
    return name


def normalize_url(url: str, where: str = "--composer-url") -> str:
    """The URL clients reach ``DIR/composer/`` at, checked (see :mod:`magedl.urls`); ends with ``/``."""
    return folder_url(check_http_url(
        url, where, "http(s)://HOST[:PORT]/PATH/ (where clients reach the mirror's composer/ folder)",
        "it is written into every p2 file (and every composer.lock made from it); give credentials to Composer "
        "instead", query=False))


def url_path(url: str) -> str:
    """The path of a composer URL (``/composer/``): packages.json's metadata-url is relative to the host."""
    return urlsplit(url).path or "/"


def dist_rel(name: str, version_normalized: str, dist_type: str) -> str:
    """Where the archive of one version lives, relative to the mirror folder.

    Raises
    ------
    UnsafeNameError
        A name, version or type that would not make a safe path.
    """
    name = check_fits(name)
    if isinstance(version_normalized, str) and version_normalized.startswith("dev-") \
            and not _VERSION_FILE.fullmatch(version_normalized):
        version_normalized = _branch_file(version_normalized)
    if not isinstance(version_normalized, str) or not _VERSION_FILE.fullmatch(version_normalized):
        raise UnsafeNameError(f"refusing version {printable(version_normalized)!r} of {name}: "
                              "not a plain version")
    ext = dist_type.lower() if isinstance(dist_type, str) and dist_type else "zip"
    if not _DIST_TYPE.fullmatch(ext):
        raise UnsafeNameError(f"refusing dist type {printable(dist_type)!r} of {name}")
    rel = f"{DIST}/{name}/{version_normalized}.{ext}"
    # Every part is checked above to start with a letter or digit and to hold only safe characters, so of
    # check_name's rules only the side-file suffixes can refuse it: the rest is asked only then (a plan
    # makes the path of every archive on every run).
    if rel.endswith(SIDE_SUFFIXES) or any(part.endswith(SIDE_SUFFIXES) for part in name.split("/")):
        return check_name(rel)
    return rel


def _branch_file(version_normalized: str) -> str:
    """A file name for a branch whose name is no plain file name (``dev-feature/x``): unique, safe, readable."""
    plain = re.sub(r"[^0-9A-Za-z.+_-]", "_", version_normalized)[:80]
    return f"{plain}-{hashlib.sha1(version_normalized.encode('utf-8')).hexdigest()[:8]}"


def p2_rel(name: str, dev: bool = False) -> str:
    """The p2 file of *name*: branches (dev versions) go to ``NAME~dev.json``, where Composer looks for them."""
    return f"{P2}/{check_fits(name)}{DEV_SUFFIX if dev else ''}.json"


def is_branch(entry: Mapping) -> bool:
    """Whether a version entry is a branch (``dev-main``, ``2.x-dev``): published in the ``~dev`` file."""
    vn = entry.get("version_normalized") or entry.get("version")
    return isinstance(vn, str) and stability(vn) == "dev"


def clean_entry(entry: Mapping) -> dict:
    """A version entry as the mirror keeps it: no source, no notification URL, no lock-only keys."""
    out = {k: copy.deepcopy(v) for k, v in entry.items() if k not in DROPPED}
    return out


def archive_type(entry: Mapping) -> Optional[str]:
    """The dist type of a version entry that has an archive (a dist with a URL), as :func:`dist_rel` takes it
    (``""``: none given); None for an entry without one (a metapackage: metadata only)."""
    dist = entry.get("dist")
    if not isinstance(dist, dict) or not dist.get("url"):
        return None
    kind = dist.get("type")
    return sys.intern(kind) if isinstance(kind, str) else ""  # one string for the many archives of one type


_last_parsed: tuple = ("", {})  # (text, its parse): the one entry read last, often read key by key


class KeptEntry(Mapping):
    """A version entry as the mirror keeps it (:func:`clean_entry`), held as its canonical JSON text.

    The text is what the state stores for the entry (inside a list, see
    :func:`magedl.mirror.model.canonical_records`): about a quarter of the memory of
    the dict, and compared with a stored record without encoding anything. A
    selection holds one per version chosen, through the whole run. Read as a
    mapping it is parsed (the last one read stays parsed, so ``dict(entry)`` parses
    once); what it gives is shared with that parse: never change it in place.
    """

    __slots__ = ("text", "dist_type")

    def __init__(self, text: str, dist_type: Optional[str] = None):
        self.text = text
        #: :func:`archive_type` of the entry, kept beside its text so that a plan finds where its archive goes
        #: without parsing it; None: not known (or no archive), the text says.
        self.dist_type = dist_type

    @classmethod
    def of(cls, entry: Mapping) -> "KeptEntry":
        """*entry* without what the mirror drops (:data:`DROPPED`), as its canonical text."""
        if isinstance(entry, KeptEntry):
            return entry
        return cls(canonical_json({k: v for k, v in entry.items() if k not in DROPPED}), archive_type(entry))

    def parsed(self) -> dict:
        """The entry as a dict of its own (a fresh parse)."""
        return json.loads(self.text)

    def _dict(self) -> dict:
        global _last_parsed
        last = _last_parsed
        if last[0] is self.text or last[0] == self.text:
            return last[1]
        value = self.parsed()
        _last_parsed = (self.text, value)
        return value

    def __getitem__(self, key):
        return self._dict()[key]

    def __iter__(self):
        return iter(self._dict())

    def __len__(self) -> int:
        return len(self._dict())

    def __eq__(self, other) -> bool:
        if isinstance(other, KeptEntry):
            return self.text == other.text
        return Mapping.__eq__(self, other)

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"KeptEntry({self.text!r})"


def records_text(records) -> str:
    """The state's canonical text of an entry's records, encoding nothing when they are kept as text already."""
    if isinstance(records, StoredRecords):
        return records.text
    if records and all(type(r) is KeptEntry for r in records):
        return "[" + ",".join(r.text for r in records) + "]"
    return canonical_records(records)


def first_record(records) -> Optional[dict]:
    """The first of an entry's records as a dict of its own, None when it has none; a stored text is parsed,
    not kept parsed (a plan holds an entry per archive: the parse would stay with it)."""
    if isinstance(records, StoredRecords):
        try:
            parsed = json.loads(records.text)
        except (TypeError, ValueError, RecursionError):
            return None
        return parsed[0] if isinstance(parsed, list) and parsed and isinstance(parsed[0], dict) else None
    if not records:
        return None
    first = records[0]
    return first.parsed() if isinstance(first, KeptEntry) else first


def mirrored_entry(entry: Mapping, url: str, rel: Optional[str], sha1: str) -> dict:
    """The p2 entry for a version held: its dist on the mirror (*url* + the archive's path), its SHA-1."""
    out = clean_entry(entry)
    if rel is not None:
        dist = dict(out.get("dist") or {})
        dist.update(url=url + rel[len(COMPOSER) + 1:], shasum=sha1)
        dist.setdefault("type", "zip")
        dist.setdefault("reference", None)
        out["dist"] = dist
    else:
        out.pop("dist", None)
    return out


def _newest_first(entries: list) -> list:
    def normalized(e):
        return e.get("version_normalized") or e.get("version") or ""

    return sorted(entries, key=lambda e: version_key(normalized(e)), reverse=True)


def render(entries: Mapping[str, Iterable[dict]], url: str, advisories: Optional[Mapping] = None) -> dict:
    """``packages.json`` and the p2 files for *entries* (name -> mirrored entries): ``{rel: bytes}``.

    *advisories* (name -> full advisories; None: the mirror carries none) go where Composer reads them.
    """
    files = {}
    names = sorted(n for n, es in entries.items() if list(es) and fits(n))
    for name in names:
        files.update(render_package(name, list(entries[name]), advisories))
    files[PACKAGES] = render_root(names, url, advisories)
    return files


def render_package(name: str, versions: list, advisories: Optional[Mapping] = None) -> dict:
    """The p2 files of one package (its tagged file, and its ``~dev`` file when it has branches): ``{rel: bytes}``."""
    files = {}
    for dev in (False, True):
        part = [e for e in versions if is_branch(e) == dev]
        if part or not dev:  # a package holding only branches still has its (empty) tagged file
            doc = {"packages": {name: _newest_first(part)}}
            # Composer reads a package's advisories from its tagged file only.
            doc = doc if dev else with_advisories(doc, advisories, name)
            # Keys sorted at every level: an entry fresh from upstream and the same entry read back from
            # the state (kept sorted) give the same bytes, so an unchanged package never churns
            # SHA256SUMS, the delta file and the signature.
            files[p2_rel(name, dev)] = _dump(doc, canonical=True)
    return files


def render_root(names: list, url: str, advisories: Optional[Mapping] = None) -> bytes:
    """``packages.json`` for the packages *names* (sorted), their p2 files reached at *url*."""
    root = {"packages": [], "metadata-url": f"{url_path(url)}p2/%package%.json", "available-packages": names}
    return _dump(with_advisories(root, advisories))


def fits(name: str) -> bool:
    """Whether *name* fits in a file name (a warning says when it does not)."""
    try:
        check_fits(name)
    except UnsafeNameError as exc:
        log.warning("%s; left out of the index", exc)
        return False
    return True


def with_advisories(doc: dict, advisories: Optional[Mapping], name: Optional[str] = None) -> dict:
    """*doc* with the ``security-advisories`` key Composer reads (see :mod:`~magedl.mirror.composer.advisories`).

    The root file says ``{"metadata": true}`` (read them from each p2 file, no API); a p2 file lists its
    package's full advisories (``[]``: asked, none known; no key: never asked).
    """
    if advisories is not None and (name is None or name in advisories):
        doc["security-advisories"] = {"metadata": True} if name is None else list(advisories[name])
    return doc


def _dump(doc, canonical: bool = False) -> bytes:
    return (json.dumps(doc, indent=1, ensure_ascii=False, sort_keys=canonical) + "\n").encode("utf-8")


def _load(root: Path, rel: str) -> Optional[object]:
    raw = read_if_regular(root / rel, MAX_METADATA_BYTES)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def remember_published(root: Path, memo, key: str, value, files: Mapping[str, str]) -> None:
    """Remember under *key* that the files *files* (``{rel: sha256}``, on disk) publish *value* (JSON).

    The value's text is built once and kept under its own key; the memo of the files keeps its digest
    (with the files' names), not a second, escaped copy of it.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    inputs = _published_digest(text, files)
    if unchanged_since(root, memo, key, inputs) is None:
        memo.remember(f"{key}:value", text)  # first: a kill between the two leaves a memo whose digest differs
        remember_rendered(root, memo, key, inputs, files)


def _published_digest(text: str, files) -> str:
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass"))
    digest.update("\0".join(sorted(files)).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def remembered_published(root: Path, memo, key: str) -> tuple:
    """``(True, value)`` remembered by :func:`remember_published` while none of its files was touched since;
    ``(False, None)`` otherwise (then read the files themselves)."""
    try:
        last = json.loads((memo.remembered(key) if memo is not None else None) or "null")
        inputs = last["inputs"] if isinstance(last, dict) else None
        text = memo.remembered(f"{key}:value") if isinstance(inputs, str) else None
        if not isinstance(text, str) or _published_digest(text, last["files"]) != inputs \
                or unchanged_since(root, memo, key, inputs) is None:
            return False, None
        return True, json.loads(text)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        return False, None


def read_index(root: os.PathLike | str, warn: Callable[[str], None] = log.warning) -> dict:
    """The versions the Composer part held before this run: ``{name: [entry, ...]}``, as written.

    Read from the p2 files (never through a link); a file that does not
    parse, or an entry that is not an object, is skipped with a warning.
    """
    root = Path(root)
    out = {}
    for rel, _ in walk_files(root, P2):
        if not rel.endswith(".json"):
            continue
        name = rel[len(P2) + 1:-len(".json")]
        name = name[:-len(DEV_SUFFIX)] if name.endswith(DEV_SUFFIX) else name
        try:
            name = check_package_name(name)
        except UnsafeNameError:
            continue
        doc = _load(root, rel)
        versions = doc.get("packages", {}).get(name) if isinstance(doc, dict) and isinstance(
            doc.get("packages"), dict) else None
        if not isinstance(versions, list):
            warn(f"{rel}: not a p2 file of {name}; its versions are left out")
            continue
        out.setdefault(name, []).extend(e for e in versions if isinstance(e, dict))
    return out


def entry_rel(entry: Mapping, written_for: Optional[str]) -> Optional[str]:
    """The archive a mirrored entry names, relative to the mirror folder; None for a metapackage.

    The URL was written for *written_for*; without it (the bookkeeping is
    gone), the path after the last ``/dist/`` is taken.

    Raises
    ------
    UnsafeNameError
        The URL names no archive of this mirror.
    """
    dist = entry.get("dist")
    if not isinstance(dist, dict) or not dist:
        return None
    url = dist.get("url")
    if not isinstance(url, str):
        raise UnsafeNameError("a dist without a URL")
    if written_for and url.startswith(written_for):
        rel = f"{COMPOSER}/{url[len(written_for):]}"
    else:
        path = urlsplit(url).path
        cut = path.rfind("/dist/")
        if cut < 0:
            raise UnsafeNameError(f"dist URL {printable(url)!r} names no archive of this mirror")
        rel = f"{COMPOSER}{path[cut:]}"
    if not rel.startswith(DIST + "/") or rel.count("/") != 4:
        raise UnsafeNameError(f"dist URL {printable(url)!r} names no archive of this mirror")
    return check_name(rel)


def read_composer_url(root: os.PathLike | str) -> Optional[str]:
    """The URL the Composer metadata of the mirror at *root* was written for, or None."""
    doc = _load(Path(root), URL_FILE)
    url = doc.get("url") if isinstance(doc, dict) else None
    try:
        return normalize_url(url) if isinstance(url, str) else None
    except UsageError:
        return None


def write_composer_url(root: os.PathLike | str, url: str) -> None:
    atomic_write(Path(root) / URL_FILE, _dump({"version": 1, "url": url}))


def rewrite(data: bytes, written_for: str, reached_at: str) -> bytes:
    """A ``packages.json`` or p2 body with its URLs turned from *written_for* to *reached_at*.

    Every ``dist.url`` that starts with *written_for* is re-based on
    *reached_at*, and ``metadata-url`` moves to *reached_at*'s path. A body
    that does not parse is returned unchanged.
    """
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return data
    if not isinstance(doc, dict):
        return data
    if isinstance(doc.get("metadata-url"), str):
        doc["metadata-url"] = f"{url_path(reached_at)}p2/%package%.json"
    packages = doc.get("packages")
    if isinstance(packages, dict):
        for versions in packages.values():
            for entry in versions if isinstance(versions, list) else ():
                dist = entry.get("dist") if isinstance(entry, dict) else None
                url = dist.get("url") if isinstance(dist, dict) else None
                if isinstance(url, str) and url.startswith(written_for):
                    dist["url"] = reached_at + url[len(written_for):]
    return _dump(doc)
