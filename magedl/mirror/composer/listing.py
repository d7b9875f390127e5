"""What ``composer/dist/`` holds: listed, or remembered while no folder in it changed since it was listed.

The plan needs every file under ``composer/dist/`` to find those no longer wanted (and strays). Listing
the folders (a ``scandir`` per package) was about a tenth of an up-to-date re-run. A folder's mtime and
ctime move whenever a name in it is added, removed or renamed (ctime cannot be set back), and a new
folder is a new name in its parent: so while every folder's ``lstat`` (times and inode) is the one taken
just before it was listed, the files are the ones listed then. The rule a reader must not break: a folder
is remembered only once its times are older than :data:`SETTLED_NS` (a change within the same clock
tick as the ``lstat`` would leave them equal), and anything that does not check out means listing again.
The files' own contents are no part of this: the plan ``lstat``\\ s each file it keeps as before.
"""

from __future__ import annotations

import json
import os
import stat
import time
from typing import Optional

from magedl.mirror.composer.index import DIST

MEMO = "composer-dist-listing"
#: How long ago a folder must have last changed for its times to vouch for its names.
SETTLED_NS = 2_000_000_000
_TOP = DIST + "/"


def files_under(root, memo) -> tuple:
    """``(files, listing)``: the paths (relative to *root*) of everything under ``composer/dist/`` but its
    folders, and the listing for :func:`remember` (None: the remembered one still holds, or it cannot vouch)."""
    files = _remembered(os.path.join(os.fspath(root), ""), memo)
    if files is not None:
        return files, None
    return _listed(os.path.join(os.fspath(root), ""))


def remember(memo, listing: Optional[str]) -> None:
    """Keep *listing* (from :func:`files_under`) for the next plan (a run that writes, never a dry run)."""
    if memo is not None and listing is not None:
        memo.remember(MEMO, listing)


def _fingerprint(st: os.stat_result) -> list:
    return [st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _remembered(prefix: str, memo) -> Optional[list]:
    try:
        last = json.loads(memo.remembered(MEMO) or "null") if memo is not None else None
        folders, files = last["folders"], last["files"]
        if not folders or not isinstance(files, list) or not all(
                type(rel) is str and rel.startswith(_TOP) and "//" not in rel and "/." not in rel for rel in files):
            return None  # damaged, or a path this plan could never have listed (a dot-name is listed again)
        for rel, fingerprint in folders.items():
            st = os.lstat(prefix + rel)
            if not stat.S_ISDIR(st.st_mode) or _fingerprint(st) != fingerprint:
                return None
        return files
    except (OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError):
        return None


def _listed(prefix: str) -> tuple:
    """List the folders as they are (links and other files yielded, never followed), each ``lstat``\\ ed first."""
    folders, files, settled = {}, [], time.time_ns() - SETTLED_NS
    stack = [DIST]
    while stack:
        rel = stack.pop()
        try:
            st = os.lstat(prefix + rel)  # before its names are read: a later change moves its times
            if not stat.S_ISDIR(st.st_mode):
                continue  # a link (or a file) where the folder should be: never followed
            with os.scandir(prefix + rel) as entries:
                for entry in entries:
                    child = f"{rel}/{entry.name}"
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(child)
                    else:
                        files.append(child)
        except (FileNotFoundError, NotADirectoryError):
            continue
        folders[rel] = _fingerprint(st) if max(st.st_mtime_ns, st.st_ctime_ns) < settled else None
    vouches = folders and all(fingerprint is not None for fingerprint in folders.values())
    return files, json.dumps({"folders": folders, "files": files}, separators=(",", ":")) if vouches else None
