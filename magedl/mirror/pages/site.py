"""The front page (``index.html``), and the whole page set a mirror run writes next to its index files.

The rule a reader must not break: a run that changed nothing rewrites no page; the front page's time and
version are reused while the content digest (``<meta name="magedl-content">``) is unchanged. See
docs/design.md, "Notes: the mirror".
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Optional

from magedl.fsutil import atomic_write, read_if_regular
from magedl.mirror.index import records_digest, remember_rendered, unchanged_since
from magedl.mirror.layout import FILES, SIG, SUMS, clear_way, walk_entries
from magedl.mirror.model import SLOTS
from magedl.mirror.pages import composer as composer_pages
from magedl.mirror.pages import releases as release_pages
from magedl.mirror.pages.html import POLICY, STYLE, frame, link, text
from magedl.text import human_bytes

INDEX = "index.html"
# Folders only pages live in: a file there that this run did not write is a stale page.
PAGE_FOLDERS = (release_pages.FOLDER, composer_pages.BROWSE)
PAGE_FILES = (INDEX, composer_pages.INDEX)
_STAMP = re.compile(rb'<meta name="magedl-content" content="([0-9a-f]{64}) ([0-9]{1,12}) ([0-9A-Za-z.+_-]{1,40})">')
MAX_PAGE_BYTES = 64 << 20


@dataclass(frozen=True, **SLOTS)  # made per row as a page is rendered (_Files): no __dict__ each
class HeldFile:
    """What a page says of one file the mirror holds and verified."""

    size: int
    md5: str
    sha256: str
    sha1: str = ""


def is_page(rel: str) -> bool:
    """Whether *rel* (relative to the mirror) is one of the pages (what ``serve`` answers as HTML)."""
    return rel in PAGE_FILES or (rel.endswith(".html") and rel.startswith(tuple(f + "/" for f in PAGE_FOLDERS)))


class _Files:
    """What the pages say of each held file, made from its entry as a row asks for it.

    *entries* is ``{path: Entry}`` or a :class:`~magedl.mirror.held.Held`, which looks one row up in the
    state per call: the pages hold the files of the page being rendered, never one object per file held.
    """

    def __init__(self, entries: Mapping):
        self._entries = entries

    def get(self, rel: str, default=None) -> Optional[HeldFile]:
        e = self._entries.get(rel)
        return default if e is None else HeldFile(e.fingerprint.size, e.md5, e.sha256, e.sha1)

    def totals(self, folder: str) -> tuple:
        """``(count, bytes)`` of the files under *folder* (``file/``, ``composer/dist/``)."""
        totals = getattr(self._entries, "totals", None)
        if totals is not None:
            return totals(folder)
        n = size = 0
        for rel, e in self._entries.items():
            if rel.startswith(folder):
                n, size = n + 1, size + e.fingerprint.size
        return n, size


def _sum_sizes(held, folder: str) -> tuple:
    if isinstance(held, _Files):
        return held.totals(folder)
    n = size = 0
    for rel, f in held.items():
        if rel.startswith(folder):
            n, size = n + 1, size + f.size
    return n, size


def _front(records: list, held: Mapping, packages: Mapping, signer: str, release_html: str) -> str:
    """Everything on ``index.html`` but the time: HTML, escaped."""
    n_files, n_bytes = _sum_sizes(held, FILES + "/")
    n_dist, dist_bytes = _sum_sizes(held, "composer/dist/")
    versions = sum(p.count for p in packages.values())
    advised = sum(1 for p in packages.values() if p.advisories)
    api = ", ".join(link(INDEX, rel, rel) for rel in ("info/json", "info/files", "info/versions"))
    signature = (f'{link(INDEX, SIG, SIG)}, made with the {text(signer)}: check it with '
                 "<code>magedl verify --allowed-signers FILE DIR</code>" if signer else
                 '<span class="muted">none when this page was written</span>')
    facts = [
        ("Release archives", f"{n_files} files, {human_bytes(n_bytes)}"),
        ("Composer", f"{len(packages)} packages, {versions} versions, {n_dist} archives, {human_bytes(dist_bytes)}"
                     + (f', <span class="adv">{advised} with security advisories</span>' if advised else "")),
        ("Checksums", f"{link(INDEX, SUMS, SUMS)} lists every file with its sha256: "
                      "<code>sha256sum -c SHA256SUMS</code> or <code>magedl verify DIR</code>"),
        ("Signature", signature),
        ("Downloads API", f"{api}: <code>magedl --base-url URL-OF-THIS-FOLDER list</code>"),
    ]
    out = ['<dl class="facts">', *(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts), "</dl>\n",
           "<h2>Release archives</h2>\n", release_html]
    if packages:
        vendors = composer_pages.by_vendor(packages)
        items = "".join(f'<li class="item">{link(INDEX, composer_pages.vendor_page(v), v)} <span class="muted">'
                        f"({len(ms)})</span></li>" for v, ms in vendors.items())
        out += [f"<h2>Composer packages</h2>\n<p>{link(INDEX, composer_pages.INDEX, 'Every package')}, "
                f"by vendor ({len(vendors)}):</p>\n", f'<ul class="cols">{items}</ul>\n']
    return "".join(out)


def render_pages(records: Iterable, held, composer_files: Mapping[str, bytes], *,
                 composer_url: Optional[str] = None, signer: str = "", version: str = "",
                 now: Optional[float] = None, previous: Optional[bytes] = None) -> Iterator[tuple]:
    """Every page of a mirror, one ``(path relative to the mirror, bytes)`` at a time, ``index.html`` last.

    A page is rendered only when taken, so a mirror of 100,000 archives never
    holds its pages in memory together.

    Parameters
    ----------
    records : iterable of Release
        The feed records of the release files held (as ``info/json`` lists them).
    held : mapping
        Path -> :class:`HeldFile` for every archive held and verified; only ``get`` is asked of it, a row at
        a time (:func:`write_pages` hands a view that makes each from the state as it is asked).
    composer_files : mapping
        The Composer index files this run writes (``composer/p2/...`` -> bytes).
    composer_url : str, optional
        The URL the p2 files were written for (to find each archive's path).
    signer : str
        The key ``SHA256SUMS.sig`` is (or will be) made with (``ED25519 key SHA256:...``); empty when unsigned.
    version : str
        The magedl that writes the pages.
    now : float, optional
        Epoch seconds for "last changed"; the current time by default.
    previous : bytes, optional
        The ``index.html`` on disk: kept as it is when the content is unchanged.
    """
    records = list(records)
    release_html, release_pages_ = release_pages.render(records, held, INDEX)
    yield from release_pages_
    packages = composer_pages.packages_from(composer_files)
    if packages:
        yield from composer_pages.render(packages, composer_files, composer_url, held)
    body = _front(records, held, packages, signer, release_html)
    digest = hashlib.sha256((STYLE + POLICY + body).encode("utf-8")).hexdigest()  # the frame too
    when, by = int(time.time() if now is None else now), version or "unknown"
    found = _STAMP.search(previous or b"")
    if found and found.group(1).decode() == digest:  # same content: same stamp, so the same bytes
        when, by = int(found.group(2)), found.group(3).decode()
    shown = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(when))
    stamp = f'<p class="muted">Content last changed {shown} by magedl {text(by)}.</p>\n'
    yield INDEX, frame(INDEX, "Magento mirror", stamp + body,
                       meta=f'<meta name="magedl-content" content="{digest} {when} {text(by)}">\n')


def _inputs(records: str, held: Mapping, composer_files: Mapping[str, bytes], composer_url: Optional[str],
            signer: str, version: str) -> str:
    """A digest of everything the pages are rendered from (their time stamp aside).

    *records*: their digest; *held*: the :class:`~magedl.mirror.model.Entry` of each file by path
    (or a :class:`~magedl.mirror.held.Held`, which digested its files' lines as it read them).
    """
    digest = hashlib.sha256(json.dumps([version, STYLE + POLICY, composer_url, signer, records],
                                       ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))
    # One line per file (a path holds no newline: SHA256SUMS lists them one a line), digested apart: the
    # held files read from the state (magedl.mirror.held.Held) have that digest from their one pass.
    if hasattr(held, "lines_digest"):
        digest.update(held.lines_digest().encode("ascii"))
    else:
        lines = hashlib.sha256()
        rels = sorted(held)
        for start in range(0, len(rels), 2048):
            lines.update("".join(f"{rel}\0{e.fingerprint.size}\0{e.md5}\0{e.sha256}\0{e.sha1}\n"
                                 for rel, e in ((rel, held[rel]) for rel in rels[start:start + 2048])
                                 ).encode("utf-8", "surrogatepass"))
        digest.update(lines.hexdigest().encode("ascii"))
    # The Composer part knows the sha256 of the p2 files it left on disk: they are not read again for it.
    sha256 = getattr(composer_files, "sha256", None) or (lambda rel: hashlib.sha256(composer_files[rel]).hexdigest())
    for rel in sorted(composer_files):
        digest.update(f"{rel}\0{sha256(rel)}\n".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def write_pages(root: os.PathLike | str, records: Iterable, held_entries: Mapping,
                composer_files: Mapping[str, bytes], composer_url: Optional[str] = None, signer: str = "",
                memo=None, digest: str = "") -> dict:
    """Write the pages of the mirror at *root* (only those whose bytes changed); ``{rel: sha256}`` of all.

    *held_entries* are the state's :class:`~magedl.mirror.model.Entry` by path.
    Call before ``SHA256SUMS`` is written (it lists the pages) and signed.
    *signer* names the key it is (or will be) signed with, as :func:`render_pages` takes it.
    *memo* (:class:`magedl.mirror.index.Memo`) remembers what the pages were rendered from:
    when that is the same and no page was touched since, none is rendered again (they would
    come out byte for byte the same). *digest*: :func:`~magedl.mirror.index.records_digest` of
    *records*, when the caller has it already.
    """
    from magedl import __version__

    root = Path(root)
    records = list(records)
    inputs = _inputs(digest or records_digest(records), held_entries, composer_files, composer_url, signer,
                     __version__)
    unchanged = unchanged_since(root, memo, "pages", inputs)
    if unchanged is not None:
        return unchanged
    pages = render_pages(records, _Files(held_entries), composer_files, composer_url=composer_url, signer=signer,
                         version=__version__, previous=read_if_regular(root / INDEX, MAX_PAGE_BYTES))
    written = {}
    for rel, data in pages:
        clear_way(root, rel)
        # Not fsynced one by one (thousands of pages): a page is derived from the data, SHA256SUMS
        # lists its sha256 so verify names one a power cut lost, and the next run writes it again.
        atomic_write(root / rel, data, durable=False)
        written[rel] = hashlib.sha256(data).hexdigest()
    if memo is not None:
        # Remembered only once they are all on disk: a kill before this renders them again next time.
        remember_rendered(root, memo, "pages", inputs, written)
    return written


def drop_stale(root: os.PathLike | str, written: Mapping) -> None:
    """Remove pages this run did not write (call once ``SHA256SUMS`` stopped listing them)."""
    root = Path(root)
    stale = [rel for rel in PAGE_FILES if rel not in written and os.path.lexists(root / rel)]
    for folder in PAGE_FOLDERS:
        stale += [rel for rel, _ in walk_entries(root, folder, ordered=False) if rel not in written]  # no lstat
    for rel in stale:
        try:
            os.unlink(root / rel)
        except (FileNotFoundError, IsADirectoryError):
            pass
    for folder in PAGE_FOLDERS:
        _remove_empty(root / folder)


def _remove_empty(top: Path) -> None:
    """Remove empty folders under *top* (and *top*), deepest first; links are never followed."""
    try:
        entries = list(os.scandir(top))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            _remove_empty(Path(entry.path))
    try:
        top.rmdir()
    except OSError:
        pass
