"""What the Composer part publishes for the archives it holds: ``composer/packages.json`` and the p2 files.

The rule a reader must not break: a p2 entry names only an archive that is
held and verified (or a metapackage, which has none), so the index never
vouches for bytes that are not on disk. A package's p2 files are rendered and
written only when what they are made from changed (a memo per package in the
state, as for ``info/``), so an up-to-date re-run renders none; one memo over
the whole index (:data:`WHOLE`) spares it even the per-package digests and reads.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Optional

from magedl import __version__
from magedl.errors import UnsafeNameError
from magedl.fsutil import atomic_write, read_if_regular
from magedl.mirror.composer import index
from magedl.mirror.composer.advisories import ADVISORIES
from magedl.mirror.composer.plan import METAPACKAGES, ComposerPart, package_of
from magedl.mirror.index import remember_rendered, unchanged_since
from magedl.mirror.layout import clear_way, walk_entries

log = logging.getLogger(__name__)

_RENDERING = 2  # bump when render_package's output changes for the same inputs
WHOLE = "composer-p2"  # the memo of the whole index: from what every p2 file was rendered
_BATCH = 2048  # archives hashed at once
_COLLECT_EVERY = 256  # packages rendered between two passes of the collector over young objects


class Published(Mapping):
    """The Composer index files of a run, ``{rel: bytes}``: the p2 files are on disk already, read when asked.

    Attributes
    ----------
    fresh : dict
        ``{rel: bytes}`` still to be written (``packages.json``).
    on_disk : dict
        ``{rel: sha256}`` of the p2 files, written (or left unchanged) by :func:`index_files`.
    """

    def __init__(self, root: Path, fresh: dict, on_disk: dict):
        self.root, self.fresh, self.on_disk = root, fresh, on_disk

    def __getitem__(self, rel: str) -> bytes:
        if rel in self.fresh:
            return self.fresh[rel]
        if rel not in self.on_disk:
            raise KeyError(rel)
        data = read_if_regular(self.root / rel, index.MAX_METADATA_BYTES)
        if data is None:
            raise KeyError(rel)
        return data

    def __iter__(self):
        yield from self.fresh
        yield from self.on_disk

    def __len__(self) -> int:
        return len(self.fresh) + len(self.on_disk)

    def __contains__(self, rel) -> bool:
        return rel in self.fresh or rel in self.on_disk

    def sha256(self, rel: str) -> str:
        """The sha256 of one file, without reading a p2 file again."""
        if rel in self.on_disk:
            return self.on_disk[rel]
        return hashlib.sha256(self.fresh[rel]).hexdigest()


def index_files(root: os.PathLike | str, part: Optional[ComposerPart], held: dict, memo=None) -> Published:
    """Write the p2 files that changed; return ``packages.json`` and the p2 files (:class:`Published`, empty: none).

    *held* maps each held and verified file (relative path) to its state entry. *memo*
    (:class:`magedl.mirror.index.Memo`) remembers from what each package's p2 files were
    rendered: a package whose inputs are the same and whose files were not touched since is
    not rendered again. Call it before ``SHA256SUMS`` is written: it lists the p2 files.
    """
    root = Path(root)
    if part is None:
        return Published(root, {}, {})
    archives = sorted(rel for rel in held if rel.startswith(index.DIST + "/"))
    whole = _whole_inputs(part, held, archives) if memo is not None else ""
    unchanged = unchanged_since(root, memo, WHOLE, whole) if memo is not None else None
    # The memos _remember writes must be there too (a mirror from before them): the plan reads them.
    if unchanged and all(memo.remembered(f"{key}:value") is not None for key in (METAPACKAGES, ADVISORIES)):
        # Rendered from these very inputs, and no p2 file touched since: nothing to render, nor to ask per package.
        names = sorted(rel[len(index.P2) + 1:-len(".json")] for rel in unchanged
                       if not rel.endswith(index.DEV_SUFFIX + ".json"))
        index.write_composer_url(root, part.url)
        return Published(root, {index.PACKAGES: index.render_root(names, part.url, part.advisories)}, unchanged)
    by_name = {}
    for rel in archives:
        entry = held[rel]
        record = index.first_record(entry.records)
        if record is None:
            continue
        try:
            name, _ = package_of(record)
        except UnsafeNameError as exc:
            log.warning("%s: %s; left out of the index", rel, exc)
            continue
        by_name.setdefault(name, []).append((rel, entry))
    names = sorted(n for n in set(by_name) | {n for n, v in part.metadata.items() if v} if index.fits(n))
    if not names:
        return Published(root, {}, {})
    index.write_composer_url(root, part.url)
    on_disk = {}
    with (memo.batch() if hasattr(memo, "batch") else nullcontext()):
        for number, name in enumerate(names, 1):
            on_disk.update(_package_files(root, part, name, by_name.get(name, ()), memo))
            if number % _COLLECT_EVERY == 0:
                # json.dumps with an indent builds its encoder from closures that refer to each other: with the
                # collector paused (magedl.mirror.bulk), each rendering would leave them until the index write
                # ends (about 2 KiB a package; a cold run's peak). A young-generation pass sees only objects
                # made since the last one.
                gc.collect(0)
        if memo is not None:
            _remember(root, part, names, on_disk, memo)
            # Last, once every file is on disk and every memo above is written: a kill before this only costs
            # the next run the per-package path.
            remember_rendered(root, memo, WHOLE, whole, on_disk)
    return Published(root, {index.PACKAGES: index.render_root(names, part.url, part.advisories)}, on_disk)


def _whole_inputs(part: ComposerPart, held: dict, archives: list) -> str:
    """What the whole Composer index is rendered from, as one digest: the held archives (path, SHA-1, records
    text), the metapackage versions, the advisories, the URL and the rendering (see :func:`_package_files`).

    The records are hashed as the state's text (no encoding per archive: an up-to-date plan keeps them as
    read), a batch of archives at a time.
    """
    digest = hashlib.sha256(json.dumps(
        [_RENDERING, __version__, part.url, sorted(part.metadata.items()), part.advisories], sort_keys=True,
        separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass"))
    for start in range(0, len(archives), _BATCH):
        digest.update("".join(f"\n{rel}\0{held[rel].sha1}\0{index.records_text(held[rel].records)}"
                              for rel in archives[start:start + _BATCH]).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def _package_files(root: Path, part: ComposerPart, name: str, held: list, memo) -> dict:
    """``{rel: sha256}`` of one package's p2 files, rendered and written only when their inputs changed."""
    metadata = part.metadata.get(name) or {}
    advisories = None if part.advisories is None else part.advisories.get(name, "none")
    inputs = hashlib.sha256(json.dumps(
        [_RENDERING, __version__, part.url, name, [[rel, e.sha1, index.records_text(e.records)] for rel, e in held],
         sorted(metadata.items()), advisories], sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    ).encode("utf-8", "surrogatepass")).hexdigest()
    key = f"composer-p2:{name}"
    unchanged = unchanged_since(root, memo, key, inputs)
    if unchanged is not None:
        return unchanged
    versions = [index.mirrored_entry(index.first_record(e.records), part.url, rel, e.sha1) for rel, e in held]
    versions += [index.mirrored_entry(e, part.url, None, "") for e in metadata.values()]
    sums = {}
    for rel, data in index.render_package(name, versions, part.advisories).items():
        clear_way(root, rel)
        atomic_write(root / rel, data)
        sums[rel] = hashlib.sha256(data).hexdigest()
    if memo is not None:
        # Remembered only once they are on disk: a kill before this renders them again next time.
        remember_rendered(root, memo, key, inputs, sums)
    return sums


def _remember(root: Path, part: ComposerPart, names: list, on_disk: dict, memo) -> None:
    """Remember the metapackage versions and the advisories the p2 files carry, so that the next
    plan need not read every p2 file for them (:func:`~magedl.mirror.composer.index.remembered_published`)."""
    published = set(names)
    meta = {name: {vn: index.mirrored_entry(e, part.url, None, "") for vn, e in sorted(versions.items())}
            for name, versions in sorted(part.metadata.items()) if versions and name in published}
    index.remember_published(root, memo, METAPACKAGES, meta, {
        rel: on_disk[rel] for name in meta for rel in (index.p2_rel(name), index.p2_rel(name, True)) if rel in on_disk})
    advisories = None if part.advisories is None else {
        name: list(part.advisories[name]) for name in names if name in part.advisories}
    index.remember_published(root, memo, ADVISORIES, advisories, {
        rel: sha for rel, sha in on_disk.items() if not rel.endswith(index.DEV_SUFFIX + ".json")})


def drop_stale(root: os.PathLike | str, written: Mapping) -> None:
    """Remove Composer index files no longer listed (call after SHA256SUMS stopped listing them)."""
    root = Path(root)
    stale = [rel for rel, _ in walk_entries(root, index.P2, ordered=False) if rel not in written]  # no lstat
    if index.PACKAGES not in written and os.path.lexists(root / index.PACKAGES):
        stale.append(index.PACKAGES)
    for rel in stale:
        try:
            os.unlink(root / rel)
        except (FileNotFoundError, IsADirectoryError):
            pass
