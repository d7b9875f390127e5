"""What the Composer part publishes for the archives it holds: ``composer/packages.json`` and the p2 files.

The rule a reader must not break: a p2 entry names only an archive that is
held and verified (or a metapackage, which has none), so the index never
vouches for bytes that are not on disk.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional

from magedl.errors import UnsafeNameError
from magedl.mirror.composer import index
from magedl.mirror.composer.plan import ComposerPart, package_of
from magedl.mirror.layout import walk_files

log = logging.getLogger(__name__)


def index_files(root: os.PathLike | str, part: Optional[ComposerPart], held: dict) -> dict:
    """``packages.json`` and the p2 files for the Composer versions held: ``{rel: bytes}`` (``{}``: none).

    *held* maps each held and verified file (relative path) to its state entry.
    """
    if part is None:
        return {}
    entries = {}
    for rel, entry in held.items():
        if not rel.startswith(index.DIST + "/") or not entry.records:
            continue
        try:
            name, _ = package_of(entry.records[0])
        except UnsafeNameError as exc:
            log.warning("%s: %s; left out of the index", rel, exc)
            continue
        entries.setdefault(name, []).append(index.mirrored_entry(entry.records[0], part.url, rel, entry.sha1))
    for name, versions in part.metadata.items():
        entries.setdefault(name, []).extend(index.mirrored_entry(e, part.url, None, "") for e in versions.values())
    if not entries:
        return {}
    index.write_composer_url(root, part.url)
    return index.render(entries, part.url, part.advisories)


def drop_stale(root: os.PathLike | str, written: dict) -> None:
    """Remove Composer index files no longer listed (call after SHA256SUMS stopped listing them)."""
    root = Path(root)
    stale = [rel for rel, _ in walk_files(root, index.P2) if rel not in written]
    if index.PACKAGES not in written and os.path.lexists(root / index.PACKAGES):
        stale.append(index.PACKAGES)
    for rel in stale:
        try:
            os.unlink(root / rel)
        except (FileNotFoundError, IsADirectoryError):
            pass
