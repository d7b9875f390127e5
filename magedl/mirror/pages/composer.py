"""The Composer part of the pages: packages by vendor, and one page per package with every version held.

::

    composer/index.html                         every package by vendor (vendors only past INLINE_MAX)
    composer/browse/<vendor>.html               one vendor's packages
    composer/browse/<vendor>/<name>.html        one package: advisories, then each version with its
                                                requirements, licence, release date, advisories, archive

Read from the p2 files this run writes, so the pages show what Composer sees. Entries are untrusted:
a field of the wrong type is shown as empty.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Iterator, Mapping, Optional

from magedl.errors import MagedlError
from magedl.mirror.layout import COMPOSER_P2 as P2
from magedl.mirror.pages.html import frame, href, link, size, sums, table, text

log = logging.getLogger(__name__)

INDEX = "composer/index.html"
BROWSE = "composer/browse"
INLINE_MAX = 3000
MAX_ADVISORIES = 500
MAX_REQUIRES = 300


@dataclass
class Package:
    """One package as the mirror's p2 file(s) describe it: versions newest first, and its advisories."""

    name: str
    versions: list = field(default_factory=list)
    advisories: list = field(default_factory=list)

    @property
    def vendor(self) -> str:
        return self.name.split("/", 1)[0]

    @property
    def newest(self) -> dict:
        return self.versions[0] if self.versions else {}


@dataclass(frozen=True)
class Summary:
    """What the lists say of a package; the versions themselves are read again for its own page only."""

    name: str
    count: int
    newest_version: str
    description: str
    advisories: int

    @property
    def vendor(self) -> str:
        return self.name.split("/", 1)[0]


def _p2_files(files: Mapping[str, bytes]) -> dict:
    """``{package name: [its p2 rels]}`` (the tagged file first, then ``~dev``), names checked."""
    from magedl.composer.metadata import check_package_name  # imported by a mirror that has a Composer part

    out: dict = {}
    for rel in sorted(files):
        if not (rel.startswith(P2 + "/") and rel.endswith(".json")):
            continue
        try:
            name = check_package_name(rel[len(P2) + 1:-len(".json")].removesuffix("~dev"))
        except MagedlError:
            continue
        out.setdefault(name, []).append(rel)
    return out


def load(name: str, rels: list, files: Mapping[str, bytes]) -> Package:
    """One package, parsed from its p2 file(s); entries that are not objects are left out."""
    package = Package(name)
    for rel in rels:
        try:
            doc = json.loads(files[rel])
        except (ValueError, RecursionError):
            continue
        versions = doc.get("packages", {}).get(name) if isinstance(doc, dict) and isinstance(
            doc.get("packages"), dict) else None
        package.versions += [e for e in versions if isinstance(e, dict)] if isinstance(versions, list) else []
        advisories = doc.get("security-advisories") if isinstance(doc, dict) else None
        if isinstance(advisories, dict):  # the API shape: {name: [...]}
            advisories = advisories.get(name)
        if isinstance(advisories, list):
            package.advisories += [a for a in advisories if isinstance(a, dict)][:MAX_ADVISORIES]
    return package


def packages_from(files: Mapping[str, bytes]) -> dict:
    """``{name: Summary}`` of every package the p2 files (``composer/p2/...`` -> bytes) hold a version of.

    Parsed one package at a time and summarised: the parsed metadata of a
    large mirror is several times its bytes, and is never held all at once.
    """
    out = {}
    for name, rels in _p2_files(files).items():
        p = load(name, rels, files)
        if p.versions:
            out[name] = Summary(name, len(p.versions), _str(p.newest.get("version")),
                                _str(p.newest.get("description"))[:200], len(p.advisories))
    return out


def package_page(name: str) -> str:
    return f"{BROWSE}/{name}.html"


def vendor_page(vendor: str) -> str:
    return f"{BROWSE}/{vendor}.html"


def _str(value) -> str:
    return value if isinstance(value, str) else ""


def _licence(entry: dict) -> str:
    value = entry.get("license")
    if isinstance(value, str):
        value = [value]
    return ", ".join(text(v, 80) for v in value if isinstance(v, str)) if isinstance(value, list) else ""


def _affected(package: Package) -> dict:
    """version -> the advisories whose ``affectedVersions`` it satisfies (an unreadable constraint matches none)."""
    from magedl.composer.constraints import parse_constraint
    from magedl.composer.semver import normalize

    out: dict = {}
    for adv in package.advisories:
        try:
            constraint = parse_constraint(_str(adv.get("affectedVersions"))[:2000])
        except (MagedlError, ValueError, RecursionError):
            continue
        for entry in package.versions:
            try:
                version = _str(entry.get("version_normalized")) or normalize(_str(entry.get("version")))
                if constraint.matches(version):
                    out.setdefault(id(entry), []).append(adv)
            except (MagedlError, ValueError, RecursionError):
                continue
    return out


def _adv_label(adv: dict) -> str:
    return _str(adv.get("cve")) or _str(adv.get("advisoryId")) or _str(adv.get("remoteId")) or "advisory"


def _requires(entry: dict) -> str:
    req = entry.get("require")
    if not isinstance(req, dict) or not req:
        return ""
    items = [f"<li>{text(k, 120)} <code>{text(v, 120)}</code></li>" for k, v in list(req.items())[:MAX_REQUIRES]]
    more = f"<li>and {len(req) - MAX_REQUIRES} more</li>" if len(req) > MAX_REQUIRES else ""
    return f'<ul class="req">{"".join(items)}{more}</ul>'


def _archive(page: str, entry: dict, url: Optional[str], held: Mapping) -> str:
    from magedl.mirror.composer.index import entry_rel  # imported by a mirror that has a Composer part

    dist = entry.get("dist")
    if not isinstance(dist, dict) or not dist:
        return '<span class="muted">no archive (metapackage)</span>'
    try:
        rel = entry_rel(entry, url)
    except MagedlError:
        return '<span class="muted">archive outside this mirror</span>'
    f = held.get(rel)
    name = rel.rsplit("/", 1)[1]
    return (f'<a class="name" href="{href(page, rel)}">{text(name)}</a> {size(f.size if f else None)}'
            f'{sums(sha1=_str(dist.get("shasum")) or (f.sha1 if f else ""), sha256=f.sha256 if f else "")}')


def _version_rows(page: str, package: Package, url: Optional[str], held: Mapping) -> list:
    affected = _affected(package)
    rows = []
    for entry in package.versions:
        advs = affected.get(id(entry), [])
        flags = "".join(f' <span class="adv" title="{text(a.get("title"))}">{text(_adv_label(a), 60)}</span>'
                        for a in advs[:20])
        rows.append(f"<tr><td><b>{text(entry.get('version'), 80)}</b>{flags}</td>"
                    f"<td class=\"date\">{text(_str(entry.get('time'))[:10], 10)}</td><td>{_licence(entry)}</td>"
                    f"<td>{_requires(entry)}</td><td>{_archive(page, entry, url, held)}</td></tr>\n")
    return rows


def _advisory_table(package: Package) -> str:
    if not package.advisories:
        return '<p class="ok">No known security advisories in this mirror\'s metadata.</p>\n'
    rows = [f"<tr><td>{text(a.get('title'))}<span class=\"sum\">{text(a.get('link'), 300)}</span></td>"
            f"<td>{text(_adv_label(a), 80)}</td><td>{text(a.get('severity'), 40)}</td>"
            f"<td><code>{text(a.get('affectedVersions'), 300)}</code></td>"
            f"<td class=\"date\">{text(_str(a.get('reportedAt'))[:10], 10)}</td></tr>\n" for a in package.advisories]
    return (f"<h2>Security advisories ({len(package.advisories)})</h2>\n"
            + table(["Advisory", "Id", "Severity", "Affected versions", "Reported"], rows))


def _package_page(package: Package, url: Optional[str], held: Mapping) -> bytes:
    page = package_page(package.name)
    newest = package.newest
    facts = [("Vendor", link(page, vendor_page(package.vendor), package.vendor)),
             ("Versions held", str(len(package.versions))),
             ("Type", text(newest.get("type") or "library", 60)),
             ("Licence", _licence(newest)),
             ("Homepage", text(newest.get("homepage"), 300)),
             ("Install", f"<code>composer require {text(package.name)}:{text(newest.get('version'), 80)}</code>")]
    body = (f'<p class="desc">{text(newest.get("description"))}</p>\n<dl class="facts">'
            + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts if v) + "</dl>\n"
            + _advisory_table(package) + "<h2>Versions</h2>\n"
            + table(["Version", "Released", "Licence", "Requires", "Archive"],
                    _version_rows(page, package, url, held)))
    return frame(page, package.name, body, crumbs=(("index.html", "Mirror"), (INDEX, "Composer packages"),
                                                    (vendor_page(package.vendor), package.vendor)))


def _package_rows(page: str, packages: list) -> list:
    return [f'<tr><td>{link(page, package_page(p.name), p.name)}<div class="desc">'
            f'{text(p.description, 160)}</div></td><td>{text(p.newest_version, 60)}</td>'
            f'<td class="num">{p.count}</td><td class="num">'
            f'{f"<span class=adv>{p.advisories}</span>" if p.advisories else ""}</td></tr>\n' for p in packages]


def _packages_table(page: str, packages: list) -> str:
    return table(["Package", "Newest", "Versions", "Advisories"], _package_rows(page, packages), css="packages")


def by_vendor(packages: Mapping) -> dict:
    out: dict = {}
    for p in packages.values():
        out.setdefault(p.vendor, []).append(p)
    return out


def render(packages: Mapping, files: Mapping[str, bytes], url: Optional[str], held: Mapping) -> Iterator[tuple]:
    """``composer/index.html``, the vendor and package pages, one ``(rel, bytes)`` at a time.

    *packages* is :func:`packages_from` of the p2 *files*; each package is
    parsed again for its own page, and dropped once that is rendered.
    """
    vendors = by_vendor(packages)
    rels = _p2_files(files)
    for name in packages:
        yield package_page(name), _package_page(load(name, rels[name], files), url, held)
    for vendor, members in vendors.items():
        page = vendor_page(vendor)
        yield page, frame(page, f"Vendor {vendor}", _packages_table(page, members),
                          crumbs=(("index.html", "Mirror"), (INDEX, "Composer packages")))
    use = (f"<p>Point Composer at this folder's URL (the metadata was written for <code>{text(url)}</code>; "
           "<code>magedl serve</code> rewrites it to the address it is reached at):</p>\n"
           "<pre>composer config repositories.mirror composer URL-OF-THIS-FOLDER\n"
           "composer config repo.packagist false</pre>\n")
    if len(packages) <= INLINE_MAX:
        listing = "".join(f'<h3>{link(INDEX, vendor_page(v), v)}</h3>\n' + _packages_table(INDEX, ms)
                          for v, ms in vendors.items())
    else:
        rows = [f"<tr><td>{link(INDEX, vendor_page(v), v)}</td><td class=\"num\">{len(ms)}</td>"
                f"<td class=\"num\">{sum(p.count for p in ms)}</td></tr>\n" for v, ms in vendors.items()]
        listing = table(["Vendor", "Packages", "Versions"], rows)
    yield INDEX, frame(INDEX, "Composer packages", use + listing, crumbs=(("index.html", "Mirror"),))
