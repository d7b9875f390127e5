"""Safe local paths for untrusted file names, and the names of our side files."""

import os
import re
from pathlib import Path, PurePosixPath
from typing import Optional

from magedl.errors import UnsafeNameError

PART_SUFFIX = ".magedl-part"
STATE_SUFFIX = ".magedl-part.json"
LOCK_SUFFIX = ".magedl-lock"
# The mirror's bookkeeping folder, and the names of magedl's own files: side
# files beside a download (older versions also left "*.json.tmp") and the
# temporary files of atomic writes (magedl.fsutil.temp_name).
BOOKKEEPING = ".magedl"
SIDE_SUFFIXES = (PART_SUFFIX, STATE_SUFFIX, STATE_SUFFIX + ".tmp", LOCK_SUFFIX)
_TEMP = re.compile(r"^\..*\.magedl-tmp-[0-9a-f]+$")

_DRIVE = re.compile(r"^[A-Za-z]:")
# Unicode's control characters (category Cc) are exactly these: one search instead of a lookup per character.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
# A name of one component starting with a letter or digit, from a small alphabet: none of the
# checks below can refuse it but the side-file suffixes (every real archive name is one; the plan
# checks each of a large feed's names on every run).
_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


def check_name(file_name):
    """Refuse a feed or command-line name that could escape the target folder.

    Names may contain ``/`` (the feed has such names), but no empty, ``.`` or
    ``..`` component, no leading ``/``, no backslash, no drive letter and no
    NUL or other control character.

    Raises
    ------
    UnsafeNameError
    """
    if isinstance(file_name, str) and _PLAIN.fullmatch(file_name) and not file_name.endswith(SIDE_SUFFIXES):
        return file_name
    reason = None
    if not file_name or not isinstance(file_name, str):
        reason = "empty name"
    elif _CONTROL.search(file_name):
        reason = "control character in name"
    elif file_name.startswith("/") or "\\" in file_name or _DRIVE.match(file_name):
        reason = "absolute or Windows-style path"
    elif any(part in ("", ".", "..") for part in file_name.split("/")):
        reason = "'..', '.' or empty path component"
    elif is_side_name(file_name):
        reason = "name clashes with magedl's own side files (.magedl-part, .magedl-lock, .magedl/)"
    if reason:
        shown = file_name.encode("unicode_escape").decode("ascii") if isinstance(file_name, str) else repr(file_name)
        raise UnsafeNameError(f"refusing unsafe file name {shown!r}: {reason}")
    return file_name


def is_side_name(rel_path):
    """Whether *rel_path* names one of magedl's own files (partial, sidecar, lock, temp, bookkeeping)."""
    return any(part == BOOKKEEPING or part.endswith(SIDE_SUFFIXES) or _TEMP.match(part)
               for part in rel_path.split("/"))


def destination(folder, file_name):
    """The final local path of *file_name* inside *folder*, checked.

    Besides :func:`check_name`, the resolved path must stay inside the
    resolved folder, so a symlinked sub-folder cannot lead elsewhere.
    """
    check_name(file_name)
    try:
        root = Path(folder).resolve()
        path = root.joinpath(*PurePosixPath(file_name).parts)
        parent = path.parent.resolve()
    except RuntimeError:  # pathlib's "Symlink loop" (Python 3.9 to 3.12): a link that leads nowhere
        raise UnsafeNameError(f"refusing {file_name!r}: a symbolic link loop on its way in {folder}") from None
    if parent != root and root not in parent.parents:
        raise UnsafeNameError(f"refusing {file_name!r}: it resolves outside {folder}")
    return parent / path.name


class Destinations:
    """:func:`destination` for many names in one *folder*: each folder found once, and checked per name.

    ``Destinations(folder)(name)`` is ``destination(folder, name)``. The
    folder is resolved on first use, and each sub-folder the names lead
    through with one ``lstat`` the first time a name needs it (the names
    under a sub-folder that is a symlink go to :func:`destination`, every
    time). Then each name checks, with the
    kernel, that the folder it goes in really is where it was found: opened,
    its path as the kernel names it (``/proc/self/fd``) must be that text
    (a folder not made yet: the nearest folder above it that is made).
    A folder moved away and replaced by a link, or a link swapped in at any
    level, fails that check, and the name is resolved by :func:`destination`
    itself, whose rule it then follows.
    Resolving every path in full cost a run an ``lstat`` per folder level per
    file, each a hand-over of the interpreter lock among its download
    threads (docs/scale.md, the Composer cold run).
    """

    def __init__(self, folder):
        self._folder = folder
        self._root = None  # the resolved folder as text, without a trailing "/" ("" for "/")
        self._dirs: dict = {}  # "a/b" -> where it was found, as text (a Path is several times larger)

    def __call__(self, file_name) -> Path:
        check_name(file_name)
        if self._root is None:
            self._root = str(Path(self._folder).resolve()).rstrip("/")
        head, _, name = file_name.rpartition("/")
        parent = self._dir(head) if head else self._root or "/"
        if parent is None or not self._where_found(parent):  # under a link, moved, or swapped
            return destination(self._folder, file_name)
        return Path(f"{parent.rstrip('/')}/{name}")

    def _where_found(self, folder: str, tries: int = 3) -> bool:
        """Whether *folder* is where it was found; one not made yet: whether the folder above it that is, is.

        A folder not made yet is the common case of a cold run (each new
        package's first archive). The nearest folder above it that opens must
        be where it was found, and the level below that must not exist at
        all: a link there, even a dangling one, is left to :func:`destination`.
        Levels made meanwhile (by another download of the same package, one at
        a time) are looked at again, up to *tries* times in all.
        """
        real = _real_path(folder)
        if real is not None:
            return real == folder
        below = folder
        while True:
            above = below.rpartition("/")[0]
            if len(above) < len(self._root):  # the mirror folder itself is gone
                return False
            real = _real_path(above or "/")
            if real is not None:
                break
            below = above
        if real != (above or "/"):
            return False
        try:
            os.lstat(below)
        except FileNotFoundError:
            return True
        except OSError:
            return False
        return tries > 1 and self._where_found(folder, tries - 1)

    def _dir(self, rel: str) -> Optional[str]:
        """Where the sub-folder *rel* was found, as text; None when a level of it was a link.

        A name under a link is resolved by :func:`destination` each time: where
        the link led when first seen says nothing of where it leads now.
        """
        if rel not in self._dirs:
            head, _, last = rel.rpartition("/")
            above = self._dir(head) if head else self._root
            found = f"{above}/{last}" if above is not None else None
            self._dirs[rel] = None if found is None or os.path.islink(found) else found
        return self._dirs[rel]


def _real_path(path: str) -> Optional[str]:
    """Where the folder at *path* is, as the kernel names it once opened (links followed); None: no folder."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:  # no /proc: resolved a level at a time instead
        return os.path.realpath(path)
    finally:
        os.close(fd)


def side_file(path, suffix):
    """The path of a side file (partial data, state, lock) next to *path*."""
    return Path(os.fspath(path) + suffix)
