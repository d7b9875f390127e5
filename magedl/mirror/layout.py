"""Where things live in a mirror folder, and the rule that a mirror never follows a link out of itself.

::

    DIR/info/json        the feed, reduced to the files the mirror holds (upstream shape)
    DIR/info/files       the same as the service's text table
    DIR/info/versions    the same as the service's versions text
    DIR/file/<file_name> the release archives
    DIR/composer/        the Composer repository (packages.json, p2/, dist/)
    DIR/SHA256SUMS       ``sha256sum -c`` format, paths relative to DIR, over all of the above
    DIR/SHA256SUMS.sig   an SSH signature over SHA256SUMS, when signed (:mod:`magedl.mirror.signature`)
    DIR/.magedl/         bookkeeping (lock, state.sqlite, composer.json, SHA256SUMS.found); never served

The rule: :func:`check_layout` runs before anything is read, written or deleted, and folders are
walked with ``lstat`` (:func:`walk_files`). Why: see docs/design.md, "Notes: the mirror".
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterator

from magedl.errors import LocalFileError, UnsafeNameError
from magedl.paths import BOOKKEEPING, check_name

SUMS = "SHA256SUMS"
SIG = f"{SUMS}.sig"
FILES = "file"
INFO = "info"
INFO_FILES = ("info/json", "info/files", "info/versions")
COMPOSER = "composer"
COMPOSER_DIST = f"{COMPOSER}/dist"  # the archives (magedl.mirror.composer.index says how they are laid out)
COMPOSER_PACKAGES = f"{COMPOSER}/packages.json"
COMPOSER_P2 = f"{COMPOSER}/p2"
STATE_DB = f"{BOOKKEEPING}/state.sqlite"
# Where an older magedl kept the digest cache (moved into STATE_DB by the first run that writes).
STATE = f"{BOOKKEEPING}/state.json"
LOCK = f"{BOOKKEEPING}/lock"
# SHA256SUMS as a run found it, kept until the delta holds what the run's index writes changed (mirror/delta.py).
SUMS_FOUND = f"{BOOKKEEPING}/{SUMS}.found"
# Where Composer archives are fetched until their SHA-1 is checked: never served, never indexed.
INCOMING = f"{BOOKKEEPING}/incoming"
# The mirror's own top-level entries: a link at any of them would lead reads,
# writes or deletes out of the mirror.
OWN = (FILES, INFO, COMPOSER, BOOKKEEPING, SUMS, SIG)
# Folders inside the mirror's own, checked the same way.
NESTED = (f"{COMPOSER}/dist", f"{COMPOSER}/p2")
# Paths a release file name must not take: the mirror's own index files.
RESERVED = frozenset((SUMS, SIG, *INFO_FILES, f"{COMPOSER}/packages.json"))


def check_layout(root: os.PathLike | str, *more: str) -> None:
    """Refuse a mirror whose own folders or index files are symbolic links (or not what they should be).

    Parameters
    ----------
    root : path
        The mirror folder (it may itself be a link: the user chose it).
    *more : str
        Further paths relative to *root* to check the same way.

    Raises
    ------
    LocalFileError
        Naming the link and the way out.
    """
    root = Path(root)
    for rel in (*OWN, *NESTED, *INFO_FILES, *more):
        path = root / rel
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue
        except NotADirectoryError:
            info = None
        if info is not None and stat.S_ISLNK(info.st_mode):
            raise LocalFileError(
                f"{path} is a symbolic link; a mirror never follows links out of itself: "
                f"replace it with the real {'file' if rel in (SUMS, SIG, *INFO_FILES) else 'folder'} "
                f"(or point magedl at the folder the link leads to)")
        folder = rel in (FILES, INFO, COMPOSER, BOOKKEEPING, *NESTED)
        if info is None or (folder and not stat.S_ISDIR(info.st_mode)) or (
                not folder and stat.S_ISDIR(info.st_mode)):
            what = "a folder" if folder else "a file"
            raise LocalFileError(f"{path} is not {what}, as a mirror needs it to be; move it out of the way")


def release_rel(file_name: str) -> str:
    """The path of a release archive relative to the mirror folder."""
    return f"{FILES}/{file_name}"


def check_release_name(file_name: str) -> str:
    """:func:`magedl.paths.check_name`, plus the mirror's own rule: no name that is an index path.

    ``DIR/file/SHA256SUMS`` would not overwrite ``DIR/SHA256SUMS``, but it
    would confuse every person and script that reads the mirror; no real
    feed has such names.

    Raises
    ------
    UnsafeNameError
    """
    check_name(file_name)
    if file_name in RESERVED or file_name.split("/", 1)[0] in (BOOKKEEPING,):
        raise UnsafeNameError(f"refusing file name {file_name!r}: it is one of the mirror's own index paths")
    return file_name


def walk_files(root: os.PathLike | str, top: str) -> Iterator[tuple[str, os.stat_result]]:
    """Every non-folder entry under ``root/top``, as (path relative to *root*, its ``lstat``).

    Folders are descended into only when they are real folders: a symbolic
    link (to a folder or anything else) is yielded as an entry of its own,
    never followed. Nothing is yielded when ``root/top`` is missing.
    """
    for rel, entry in walk_entries(root, top):
        yield rel, entry.stat(follow_symlinks=False)


def walk_entries(root: os.PathLike | str, top: str, *, ordered: bool = True) -> Iterator[tuple[str, os.DirEntry]]:
    """:func:`walk_files`, as (path relative to *root*, its ``os.DirEntry``), in the same order.

    For a caller that needs the ``lstat`` of only some entries
    (``entry.stat(follow_symlinks=False)``): the others cost no system call.
    Without *ordered*, each folder's entries come in the order the system
    lists them, each as it is read: sorting holds every entry of a folder
    (a ``DirEntry`` with its name and path, per file of a large mirror) at once.
    """
    try:
        if not stat.S_ISDIR(os.lstat(Path(root) / top).st_mode):
            return  # a link (or a file) where the folder should be: never followed
    except OSError:
        return
    stack = [top]
    while stack:
        rel = stack.pop()
        try:
            with os.scandir(Path(root) / rel) as entries:
                if ordered:
                    entries = sorted(entries, key=lambda e: e.name)
                for entry in entries:
                    child = f"{rel}/{entry.name}"
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(child)
                    else:
                        yield child, entry
        except (FileNotFoundError, NotADirectoryError):
            continue


def clear_way(root: os.PathLike | str, rel: str) -> None:
    """Make sure no folder on the way to ``root/rel`` is a link (or a file): such an entry is removed.

    The mirror's index files live in folders only magedl writes (``info/``,
    ``composer/p2/<vendor>/``): a link planted there would lead a write out
    of the mirror, so it goes, and the folder is created afresh.
    """
    path = Path(root)
    for part in rel.split("/")[:-1]:
        path = path / part
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(path)
            return
