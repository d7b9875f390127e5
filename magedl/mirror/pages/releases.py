"""The release part of the pages: archives by edition and version, patches by the versions they apply to.

Up to :data:`INLINE_MAX` files are listed on ``index.html`` itself; more get one page per category and
version line (``releases/ce-full/2.4.html``) in parts of :data:`PAGE_ROWS` rows, so a new release rewrites
only its own line's page.
"""

from __future__ import annotations

import hashlib
import re
from typing import Iterable, Mapping

from magedl.mirror.layout import release_rel
from magedl.mirror.pages.html import frame, href, link, size, sums, table, text
from magedl.versions import version_key

INLINE_MAX = 3000
PAGE_ROWS = 2000
FOLDER = "releases"
TITLES = {
    "ce-full": "Magento Open Source releases",
    "ee-full": "Adobe Commerce releases",
    "ce-patch": "Magento Open Source patches",
    "ee-patch": "Adobe Commerce patches",
    "other": "Other files",
}
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def slug(value: str) -> str:
    """A path component for an upstream string: safe characters only, unique (a hash when any were replaced)."""
    value = value or "none"
    clean = _SAFE.sub("_", value)[:60].lstrip(".") or "_"
    if clean != value:
        clean += "-" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return clean


def line_of(version: str) -> str:
    """The version line a release belongs to: ``2.4.7-p3`` -> ``2.4``; no version -> ``other``."""
    parts = re.findall(r"\d+", version or "")
    return ".".join(parts[:2]) if parts else "other"


def is_patch(category: str) -> bool:
    return category.endswith("-patch") or category == "patch"


def _applies_to(record) -> str:
    versions = [("CE", v) for v in record.ce_versions] + [("EE", v) for v in record.ee_versions]
    if not versions:
        return text(record.version)
    shown = ", ".join(f"{ed}&nbsp;{text(v, 40)}" for ed, v in versions[:40])
    return shown + (f" and {len(versions) - 40} more" if len(versions) > 40 else "")


def _row(page: str, record, held: Mapping, patch: bool) -> str:
    rel = release_rel(record.file_name)
    f = held.get(rel)
    name = f'<a class="name" href="{href(page, rel)}">{text(record.file_name)}</a>'
    if record.name and record.name != record.file_name:
        name += f'<div class="desc">{text(record.name)}</div>'
    cells = [f"<td>{text(record.version, 60)}</td>", f"<td>{name}</td>"]
    if patch:
        cells.append(f"<td>{_applies_to(record)}</td>")
    cells.append(f'<td class="num">{size(f.size if f else None)}</td>')
    cells.append(f'<td class="wide">{sums(md5=f.md5 if f else record.md5, sha256=f.sha256 if f else "")}</td>')
    return f"<tr>{''.join(cells)}</tr>\n"


def _table(page: str, category: str, records: list, held: Mapping) -> str:
    patch = is_patch(category)
    headers = ["Version", "File", *(["Applies to"] if patch else []), "Size", "Checksums"]
    return table(headers, (_row(page, r, held, patch) for r in records), wide=(len(headers) - 1,))


def by_category(records: Iterable) -> dict:
    """Records grouped by feed category (known ones first), each newest version first, then by file name."""
    groups: dict = {}
    for r in records:
        groups.setdefault(r.type or "other", []).append(r)
    order = [c for c in TITLES if c in groups] + sorted(c for c in groups if c not in TITLES)
    return {c: _newest_first(groups[c]) for c in order}


def _newest_first(records: list) -> list:
    by_name = sorted(records, key=lambda r: r.file_name)
    # One key per distinct version, not per record (a sort holds every record's key at once).
    keys = {v: version_key(v) for v in {r.version for r in records}}
    return sorted(by_name, key=lambda r: keys[r.version], reverse=True)  # stable: names stay ordered


def title(category: str) -> str:
    return TITLES.get(category, f"Category {category}")


def render(records: Iterable, held: Mapping, index: str = "index.html") -> tuple:
    """The release section of *index*, and the pages it links to, rendered one at a time as they are taken.

    Returns ``(html, iterator of (rel, bytes))``; pages exist only for a mirror past :data:`INLINE_MAX` files.
    """
    groups = by_category(records)
    total = sum(len(rs) for rs in groups.values())
    if not groups:
        return '<p class="muted">No release archives in this mirror.</p>\n', iter(())
    if total <= INLINE_MAX:
        parts = [f'<h3 id="{text(slug(c))}">{text(title(c))} <span class="muted">({text(c)}, {len(rs)})</span></h3>\n'
                 + _table(index, c, rs, held) for c, rs in groups.items()]
        return "".join(parts), iter(())
    shelves, items = [], []
    for category, rs in groups.items():
        lines: dict = {}
        for r in rs:
            lines.setdefault(line_of(r.version), []).append(r)
        links = []
        for line, members in lines.items():
            chunks = [members[i:i + PAGE_ROWS] for i in range(0, len(members), PAGE_ROWS)]
            for n, chunk in enumerate(chunks, 1):
                rel = f"{FOLDER}/{slug(category)}/{slug(line)}{'' if n == 1 else f'-{n}'}.html"
                label = f"{line}" + ("" if len(chunks) == 1 else f" (part {n})")
                shelves.append((rel, f"{title(category)}: {label}", category, chunk))
                links.append(f'<li class="item">{link(index, rel, label)} <span class="muted">'
                             f"({len(chunk)} files)</span></li>")
        items.append(f'<h3>{text(title(category))} <span class="muted">({text(category)}, {len(rs)})</span></h3>\n'
                     f'<ul class="cols">{"".join(links)}</ul>\n')
    pages = ((rel, frame(rel, name, _table(rel, category, chunk, held), crumbs=((index, "Mirror"),)))
             for rel, name, category, chunk in shelves)
    return "".join(items), pages
