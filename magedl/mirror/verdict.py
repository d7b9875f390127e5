"""What :mod:`magedl.mirror.verify` says of each path of a mirror: its verdicts and findings.

Rule: :func:`kind` follows no symbolic link on the way to a path; a link is a verdict of its own.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Optional

from magedl.mirror.layout import FILES

LINK = "a symbolic link: a mirror holds only plain files, and verify never reads through a link"


class Verdict(str, Enum):
    """The verdict on one path of a mirror.

    ``missing``: listed, not on disk. ``bad``: digest differs, an index file is damaged, or a link or
    other non-file where a file should be. ``unlisted``: in one index but not the other. ``extra``: under
    ``file/`` but listed nowhere. ``partial``: an unfinished download's side file (reported, not a
    failure). ``unverified``: nothing to check it against (a failure).
    """

    OK = "ok"
    MISSING = "missing"
    BAD = "bad"
    UNLISTED = "unlisted"
    EXTRA = "extra"
    PARTIAL = "partial"
    UNVERIFIED = "unverified"

    def __str__(self) -> str:
        return self.value

    @property
    def failed(self) -> bool:
        return self in (Verdict.MISSING, Verdict.BAD, Verdict.UNLISTED, Verdict.EXTRA)


@dataclass
class Finding:
    """The verdict on one path of a mirror, and what it was found to be."""

    root: Path
    rel: str
    status: Verdict = Verdict.OK
    problem: str = ""
    size: Optional[int] = None
    md5: str = ""
    sha256: str = ""
    record: Any = None

    @property
    def path(self) -> Path:
        return self.root / self.rel

    @property
    def failed(self) -> bool:
        return self.status.failed

    def to_dict(self) -> dict:
        if self.record is not None:
            out = self.record.to_dict()
        else:
            name = self.rel[len(FILES) + 1:] if self.rel.startswith(FILES + "/") else None
            out = {"name": name, "file_name": name, "version": None, "type": None, "md5": None}
        out.update(path=str(self.path), status=self.status.value, size=self.size, actual_md5=self.md5 or None,
                   sha256=self.sha256 or None)
        if self.problem:
            out["problem"] = self.problem
        return out


def kind(root: os.PathLike | str, rel: str) -> str:
    """``"file"``, ``"missing"``, ``"link"`` or ``"other"`` for ``root/rel``, following no link on the way."""
    path = os.fspath(root)
    parts = rel.split("/")
    for i, part in enumerate(parts):
        if part not in ("", "."):  # as pathlib joins: no empty or "." step (a string: verify calls this per file)
            path = f"{path}/{part}"
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return "missing"
        except NotADirectoryError:
            return "other"
        if stat.S_ISLNK(st.st_mode):
            return "link"
        if i < len(parts) - 1 and not stat.S_ISDIR(st.st_mode):
            return "other"
    return "file" if stat.S_ISREG(st.st_mode) else "other"
