"""The partial file and its sidecar: what survives a killed run, and what a later run may trust.

Rule: the sidecar is read as untrusted input and written only after the bytes it counts are synced,
so after a power cut it never claims bytes the partial file lacks. See docs/transfer.md, "The side
files".
"""

import errno
import json
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from magedl.errors import LocalFileError
from magedl.fsutil import FILE_MODE, atomic_write, fsync_dir, open_nofollow, read_if_regular
from magedl.paths import LOCK_SUFFIX, PART_SUFFIX, STATE_SUFFIX, side_file
from magedl.ranges import Validators
from magedl.secrecy import redact
from magedl.text import human_bytes
from magedl.transfer import segments as seglib
from magedl.transfer.segments import Segment

log = logging.getLogger(__name__)

#: The sidecar's format version; a sidecar with another (or none) is not trusted.
FORMAT = 1
TOOL = "magedl"
SIDECAR_LIMIT = 4 << 20  # far above any real sidecar (a few hundred segments), far below harm
_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


@dataclass
class PartialState:
    """What is known about one attempt at a file: the sidecar's content, live.

    A fresh start builds a new one; workers update ``segments`` (under the
    download's lock) and ``size`` once the server states it.

    Attributes
    ----------
    md5 : str
        The feed's md5 this partial is for (``""`` when the feed has none).
    url : str
        Where the bytes came from (credentials masked); a resume may use another source.
    size : int or None
        Full size, once known.
    validators : Validators
        What the source identified this version by; empty when resuming from a
        source whose validators would mean nothing.
    segments : list of Segment
        Byte ranges and how much of each is on disk.
    splittable : bool
        The source honours Range and gave a size and a validator: more
        connections may share the file (how many is this run's choice).
    resumed_from : int
        Bytes continued from an earlier run; 0 for a fresh start.
    strict : bool
        Nothing but a validator vouches for the data (another source, no md5):
        every ranged answer must show a matching one.
    joined : bool
        The bytes came from more than one answer (a resume, a retried or a
        split segment): an md5 mismatch may then be a splice, worth one
        fetch of the whole file.
    """

    md5: str
    url: str
    size: Optional[int] = None
    validators: Validators = field(default_factory=Validators)
    segments: List[Segment] = field(default_factory=list)
    splittable: bool = False
    resumed_from: int = 0
    strict: bool = False
    joined: bool = False

    @property
    def done(self) -> int:
        return sum(s.done for s in self.segments)

    def to_json(self) -> dict:
        """The sidecar document (call under the lock that guards ``segments``)."""
        return {
            "format": FORMAT,
            "tool": TOOL,
            "md5": self.md5,
            "url": self.url,
            "size": self.size,
            "etag": self.validators.etag,
            "last_modified": self.validators.last_modified,
            "splittable": self.splittable,
            "segments": seglib.segments_to_json(self.segments),
        }


class Sidecar:
    """The partial file and sidecar of one destination: load, open, save, discard, finish.

    Parameters
    ----------
    dest : path
        The final path; the side files sit beside it.
    file_name : str
        The catalogue name, for messages.
    """

    def __init__(self, dest, file_name):
        self.dest = Path(dest)
        self.file_name = file_name
        self.part = side_file(self.dest, PART_SUFFIX)
        self.path = side_file(self.dest, STATE_SUFFIX)
        self.lock_path = side_file(self.dest, LOCK_SUFFIX)
        self.saved = False  # a sidecar may be on disk (found or written): remove it at the end

    # -- reading ------------------------------------------------------------

    def load(self, md5: str, url: str) -> Optional[PartialState]:
        """The state of a partial file a run may continue, or ``None`` (anything unusable discarded).

        Raises :class:`LocalFileError` when a symbolic link sits at the partial
        file or the sidecar (see :meth:`refuse_links`).
        """
        found = [self._present(self.path), self._present(self.part)]  # both checked for links
        if not any(found):
            return None
        self.saved = True
        self.remove_stale_temporaries()
        state, reason = self._read(md5, url)
        if state is None:
            log.info("%s: not resuming: %s; starting from byte 0", self.file_name, reason)
            self.discard()
            return None
        return state

    def _read(self, md5, url):
        raw = read_if_regular(self.path, SIDECAR_LIMIT)
        if raw is None:
            return None, "the partial file has no usable sidecar"
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError):
            return None, "its sidecar is corrupt"
        if not isinstance(doc, dict):
            return None, "its sidecar is corrupt"
        if "format" not in doc:
            return None, "it was left by an older magedl"
        if type(doc["format"]) is not int or doc["format"] != FORMAT or doc.get("tool") != TOOL:
            return None, "its sidecar is from a newer magedl or another tool"
        size, etag, date = doc.get("size"), doc.get("etag"), doc.get("last_modified")
        fields_ok = (
            isinstance(doc.get("md5"), str) and isinstance(doc.get("url"), str)
            and isinstance(doc.get("splittable"), bool)
            and (size is None or (type(size) is int and size >= 0))
            and all(v is None or isinstance(v, str) for v in (etag, date))
        )
        segments = seglib.segments_from_json(doc.get("segments"), size) if fields_ok else None
        if segments is None:
            return None, "its sidecar is corrupt"
        if doc["md5"] != md5:
            return None, "it is of another version of the file (md5 differs)"
        reason = self._check_part(max(s.pos for s in segments))
        if reason:
            return None, reason
        state = PartialState(md5, doc["url"], size, Validators(etag, date), segments, doc["splittable"])
        state.resumed_from = state.done
        state.joined = state.done > 0
        if doc["url"] != redact(url):
            if md5:
                # Another source's ETag means nothing here: the feed's md5 vouches instead
                # (checked at the end, with one full refetch if the result is wrong).
                log.info("%s: continuing a partial file begun from another source; the md5 check vouches",
                         self.file_name)
                state.validators = Validators()
            elif state.validators:
                state.strict = True
            else:
                return None, "it was begun from another source and nothing can show the file is the same"
            state.url = redact(url)
        return state, None

    def _check_part(self, needed):
        """Why the partial file cannot hold the recorded bytes, or ``None``."""
        try:
            info = os.lstat(self.part)
        except FileNotFoundError:
            return "its partial file is missing"
        if stat.S_ISLNK(info.st_mode):
            raise self.link_error(self.part)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            return "its partial file is not a plain file of its own (a link or something else)"
        if info.st_size < needed:
            return "its partial file is shorter than the sidecar says"
        return None

    def head(self, size: int) -> bytes:
        """The first *size* bytes of the partial file (for an error message)."""
        data = read_if_regular(self.part, 1 << 30)
        return (data or b"")[:size]

    def held(self) -> int:
        """Bytes the partial file occupies on disk now (it may be sparse)."""
        try:
            info = os.lstat(self.part)
        except FileNotFoundError:
            return 0
        return min(info.st_size, info.st_blocks * 512) if stat.S_ISREG(info.st_mode) else 0

    # -- writing ------------------------------------------------------------

    def refuse_links(self):
        """Raise :class:`LocalFileError` if a symlink sits at any side-file path.

        Someone who can write into the folder may plant one to make magedl
        write, truncate or create the link's target; every later open also
        refuses links (``O_NOFOLLOW``), this only says so up front and clearly.
        (A download checks the lock when it opens it, and the other two in
        :meth:`load`.)
        """
        for path in (self.lock_path, self.part, self.path):
            self._present(path)

    def _present(self, path) -> bool:
        """Whether something is at *path*; a symbolic link there is refused."""
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return False
        if stat.S_ISLNK(info.st_mode):
            raise self.link_error(path)
        return True

    def link_error(self, path) -> LocalFileError:
        return LocalFileError(
            f"{self.file_name}: {path} is a symbolic link; magedl never writes through one. "
            "Remove it if you did not put it there, and check who else can write to that folder"
        )

    def open(self, fresh: bool) -> int:
        """An fd (read-write) on the partial file; *fresh* creates it anew, exclusively."""
        flags = os.O_RDWR | (os.O_CREAT | os.O_EXCL if fresh else 0)
        try:
            try:
                fd = open_nofollow(self.part, flags, FILE_MODE)
            except FileExistsError:  # a leftover (or something planted): remove it, never follow it
                self.discard()
                fd = open_nofollow(self.part, flags, FILE_MODE)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EEXIST):  # planted between our checks and now
                raise self.link_error(self.part) from None
            raise
        if fresh:
            return fd  # created here and now (O_EXCL, no link followed): a plain file of its own
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            os.close(fd)
            raise LocalFileError(f"{self.file_name}: {self.part} is not a plain file of its own; remove it")
        return fd

    def save(self, doc: dict, fd: Optional[int] = None):
        """Replace the sidecar with *doc*; with *fd*, the bytes it counts are synced first.

        The sidecar must never claim bytes that a power cut could lose.
        """
        if fd is not None:
            os.fdatasync(fd)
        self.saved = True
        atomic_write(self.path, json.dumps(doc).encode("utf-8"), FILE_MODE)

    def discard(self):
        """Remove the partial file and its sidecar (links only ever unlinked, never followed)."""
        for path in (self.part, self.path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def finish(self, size: int, fd: Optional[int] = None):
        """Cut the partial file to *size*, sync it and move it to the destination; drop the sidecar.

        *fd*, an open descriptor of the partial file, is used and closed
        (else the file is opened here).
        """
        if fd is None:
            fd = self.open(fresh=False)
        try:
            os.ftruncate(fd, size)  # a reserved tail beyond a shorter body must not survive
            os.fdatasync(fd)
        finally:
            os.close(fd)
        os.replace(self.part, self.dest)  # replaces a link at dest, never writes through it
        fsync_dir(self.dest.parent)
        self.drop()

    def hand_over(self, size: int, fd: int, committer, on_committed):
        """:meth:`finish` by a :class:`magedl.transfer.commit.Committer`, batched with other files.

        Returns at once; *fd* belongs to the committer from here. Once the
        file is in place (or that failed) the sidecar is dropped (or kept)
        and ``on_committed(error)`` is called, from the committer's thread.
        """
        try:
            os.ftruncate(fd, size)  # a reserved tail beyond a shorter body must not survive
        except BaseException:
            os.close(fd)
            raise

        def done(error):
            if error is None:
                self.drop()
            on_committed(error)

        committer.submit(fd, self.part, self.dest, done)

    def drop_orphan(self):
        """Remove a sidecar whose partial file is gone: a run killed between moving the file into place and
        removing the sidecar left it, and nothing else ever would (the file is found in place first)."""
        try:
            os.lstat(self.part)
            return  # a partial file of its own: load() judges the pair
        except FileNotFoundError:
            pass
        try:
            os.unlink(self.path)  # a link is removed, never followed
            log.debug("%s: removed a sidecar left without its partial file", self.file_name)
        except FileNotFoundError:
            return
        self.remove_stale_temporaries()

    def remove_stale_temporaries(self):
        """Remove temporaries of the sidecar a killed run left (``.NAME.magedl-part.json.magedl-tmp-*``).

        Only called when a killed run left something else behind (a partial
        file or a sidecar), so a folder of many finished files is not listed
        once per file. The caller holds the file's lock: no other run is
        writing one of these now.
        """
        prefix = f".{self.path.name}.magedl-tmp-"
        try:
            with os.scandir(self.path.parent) as entries:
                stale = [e.path for e in entries if e.name.startswith(prefix)]
        except OSError:
            return
        for path in stale:
            try:
                os.unlink(path)  # a link is removed, never followed
            except OSError:
                pass

    def drop(self):
        """Remove the sidecar once the file is in place (when one may have been written)."""
        if self.saved:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    # -- errors -------------------------------------------------------------

    def check_space(self, size: Optional[int], done: int = 0):
        """Refuse, before writing anything, a file the disk has no room for.

        *done* bytes of it are already on disk; what the partial file holds
        counts as available, since it is overwritten, not added to.
        """
        if size is None:
            return
        free = _free_bytes(self.dest.parent)
        needed = size - max(done, self.held())
        if free is not None and needed > free:
            raise LocalFileError(
                f"{self.file_name}: not enough free space in {self.dest.parent}: it needs {human_bytes(needed, 'MiB')} "
                f"more, {human_bytes(free, 'MiB')} is free. Free some space there (partial downloads you no longer "
                "need are the *.magedl-part files) or choose another folder"
            )

    def error(self, exc: OSError, state: Optional[PartialState] = None, path=None) -> LocalFileError:
        """A disk-side OSError as a typed error naming the file; a full disk says what is missing."""
        if exc.errno in _FULL:
            free = _free_bytes(self.dest.parent) or 0
            kept = f"; the {human_bytes(state.done, 'MiB')} received are kept for a resume" if state else ""
            missing = ""
            if state is not None and state.size is not None:
                missing = f", {human_bytes(max(1, state.size - state.done - free), 'MiB')} more is needed"
            return LocalFileError(
                f"{self.file_name}: the disk is full in {self.dest.parent} "
                f"({human_bytes(free, 'MiB')} free{missing}){kept}. "
                "Free some space there (partial downloads you no longer need are the *.magedl-part files) "
                "and run again"
            )
        if exc.errno == errno.ELOOP:
            return self.link_error(exc.filename or path or self.part)
        where = exc.filename2 or exc.filename or path or self.dest  # for a rename, the target is what failed
        return LocalFileError(f"{self.file_name}: cannot write {where}: {exc.strerror or exc}")


def _free_bytes(folder) -> Optional[int]:
    """Bytes an unprivileged writer may still use in *folder*, or ``None`` if unknown."""
    try:
        info = os.statvfs(folder)
    except (OSError, AttributeError):
        return None
    return info.f_bavail * info.f_frsize


@dataclass(frozen=True)
class Unfinished:
    """A partial file left in a folder: a download that ``get`` resumes (its sidecar beside it)."""

    name: str  # NAME.magedl-part
    file_name: str  # NAME, the file it becomes


def unfinished_downloads(folder) -> List[Unfinished]:
    """The partial files in *folder*, by name (none when it is no folder); OSError when it cannot be listed."""
    names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    return [Unfinished(name, name[: -len(PART_SUFFIX)]) for name in names if name.endswith(PART_SUFFIX)]
