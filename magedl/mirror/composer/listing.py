"""What ``composer/dist/`` holds: each folder listed, or remembered while it did not change since it was listed.

The plan needs every file under ``composer/dist/`` to find those no longer wanted (and strays). Listing
the folders (a ``scandir`` per package) was about a tenth of an up-to-date re-run. A folder's mtime and
ctime move whenever a name in it is added, removed or renamed (ctime cannot be set back), and a new
folder is a new name in its parent: so while a folder's ``lstat`` (times and inode) is the one taken just
before it was listed, its names are the ones listed then. Each folder is remembered on its own, so only
the folders that changed are listed again. The rule a reader must not break: a folder is remembered only
once its times are older than :data:`SETTLED_NS` (a change within the same clock tick as the ``lstat``
would leave them equal), and anything that does not check out means listing that folder again. The files'
own contents are no part of this: the plan ``lstat``\\ s each file it keeps as before. It assumes a local
filesystem whose folder times come from this host's clock, and a clock that never steps back by more than
:data:`SETTLED_NS`: on NFS a client's attribute cache can show a folder's old times for a while, so a file
another host added may be noticed a run later.

A run that landed or removed archives lists the folders it changed once more at its end (:func:`refresh`),
so the next run lists only those changed in the last moments of this one.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat
import time
from typing import Optional

from magedl.mirror.composer.index import DIST
from magedl.mirror.model import Action

log = logging.getLogger(__name__)

MEMO = "composer-dist-listing"
_FORMAT = 2  # 2: each folder on its own, {folder: [mtime_ns, ctime_ns, inode, [file names], [folder names]]}
#: How long ago a folder must have last changed for its times to vouch for its names.
SETTLED_NS = 2_000_000_000


def files_under(root, memo) -> tuple:
    """``(files, listing)``: the paths (relative to *root*) of everything under ``composer/dist/`` but its
    folders, and the listing for :func:`remember` (None: the remembered one still holds as it is)."""
    prefix = os.path.join(os.fspath(root), "")
    last = _remembered(memo)
    settled, kept, files, changed = time.time_ns() - SETTLED_NS, {}, [], last is None
    stack = [DIST]
    while stack:
        rel = stack.pop()
        try:
            st = os.lstat(prefix + rel)  # before its names are read: a later change moves its times
            if not stat.S_ISDIR(st.st_mode):
                continue  # a link (or a file) where the folder should be: never followed
            known = last.get(rel) if last else None
            if (type(known) is list and len(known) == 5 and known[0] == st.st_mtime_ns
                    and known[1] == st.st_ctime_ns and known[2] == st.st_ino and _plain(known[3])
                    and _plain(known[4])):
                names, folders = known[3], known[4]
            else:
                names, folders = _listed(prefix + rel)
                known, changed = [st.st_mtime_ns, st.st_ctime_ns, st.st_ino, names, folders], True
        except (FileNotFoundError, NotADirectoryError):
            continue  # gone: a remembered one is then missing from what is kept
        files += [f"{rel}/{name}" for name in names]
        stack += [f"{rel}/{name}" for name in folders]
        if max(st.st_mtime_ns, st.st_ctime_ns) < settled:
            kept[rel] = known
        else:
            changed = True  # too fresh to vouch: listed again next time
    if not changed and len(kept) == len(last):  # every folder remembered as it was, and only those
        return files, None
    return files, json.dumps({"format": _FORMAT, "folders": kept}, separators=(",", ":"))


def remember(memo, listing: Optional[str]) -> None:
    """Keep *listing* (from :func:`files_under`) for the next plan."""
    if memo is not None and listing is not None:
        memo.remember(MEMO, listing)


def refresh(root, memo, part) -> None:
    """At the end of a run (never a dry run), keep what ``composer/dist/`` holds for the next plan: what the plan
    of the Composer *part* listed, or, when the run landed or removed archives, the folders that changed since
    then listed again, so that the next run need not (those still too fresh to vouch are left for it). Only a
    saving for the next run: a folder that cannot be read, or a state that cannot be written, leaves it to
    list them (logged, never raised)."""
    listed, part.listing = part.listing, None
    try:
        if any(it.rel.startswith(DIST + "/") and (it.action.fetches or it.action is Action.PRUNE) for it in part.items):
            listed = files_under(root, memo)[1]
        remember(memo, listed)
    except (OSError, sqlite3.Error) as exc:
        log.debug("composer/dist/ not remembered for the next run: %s", exc)


def _remembered(memo) -> Optional[dict]:
    """``{folder: [mtime_ns, ctime_ns, inode, names, folders]}`` as remembered; None when there is none (or
    it is damaged): every folder is listed. Only the folders met on the walk are read, each checked as it
    is used (a foreign key is never looked up, and makes the listing be remembered anew)."""
    try:
        last = json.loads(memo.remembered(MEMO) or "null") if memo is not None else None
        folders = last["folders"] if last["format"] == _FORMAT else None
        return folders if isinstance(folders, dict) else None
    except (ValueError, TypeError, KeyError, RecursionError):
        return None


def _plain(names) -> bool:
    """Whether remembered *names* could have been listed here: a list of names of one part each (a dot-name,
    or anything else, means listing the folder again). Checked over their join: one pass in C per folder."""
    if not isinstance(names, list):
        return False
    try:
        joined = "\n" + "\n".join(names) + "\n"  # a TypeError for anything but text
    except TypeError:
        return False
    return not names or ("/" not in joined and "\0" not in joined and "\n." not in joined and "\n\n" not in joined)


def _listed(path: str) -> tuple:
    """``(file names, folder names)`` of one folder as it is (links and other files are files, never followed)."""
    names, folders = [], []
    with os.scandir(path) as entries:
        for entry in entries:
            (folders if entry.is_dir(follow_symlinks=False) else names).append(entry.name)
    return names, folders


class Links:
    """Which folders on the way to an archive under ``composer/dist/`` are links (or not folders at all).

    A folder there planted as a link out of the mirror must never lead a read, a removal or a write
    elsewhere; the plan asks once per folder (:meth:`on_the_way`), an ``lstat`` per level not asked before
    (``composer/dist`` itself is vouched for by ``check_layout``). A folder not made yet is none: the archive
    is placed through :class:`~magedl.paths.Destinations`, which checks again as it lands.
    """

    def __init__(self, root):
        self._prefix = os.path.join(os.fspath(root), "")
        self._known: dict = {}  # a folder's path -> whether it is a link or another non-folder

    def on_the_way(self, rel: str) -> Optional[str]:
        """The first folder on the way to *rel* (under ``composer/dist/``) that is a link or not a folder; None."""
        at = rel.find("/", len(DIST) + 1)
        while at >= 0:
            folder = rel[:at]
            bad = self._known.get(folder)
            if bad is None:
                try:
                    bad = not stat.S_ISDIR(os.lstat(self._prefix + folder).st_mode)
                except FileNotFoundError:
                    bad = False
                self._known[folder] = bad
            if bad:
                return folder
            at = rel.find("/", at + 1)
        return None
