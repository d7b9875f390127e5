"""Offline check of a mirror: every file re-hashed against SHA256SUMS and info/json.

The rule a reader must not break: nothing here touches the network, trusts ``.magedl/`` or follows a
symbolic link (each link is reported :attr:`Verdict.BAD`): the far side of an air gap has only the files.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from magedl.errors import NotFoundError, UnsafeNameError, UnsafeSourceError
from magedl.mirror.composer.index import DIST, P2, PACKAGES, entry_rel, read_composer_url, read_index
from magedl.mirror.index import MAX_INDEX_BYTES, parse_sums, read_feed
from magedl.mirror.layout import COMPOSER, FILES, INFO, INFO_FILES, SIG, SUMS, walk_files
from magedl.paths import BOOKKEEPING, SIDE_SUFFIXES, check_name
from magedl.service.fileadapter import open_published

BLOCK = 1 << 20
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


@dataclass
class Expected:
    """What the indexes say one path should hold."""

    sha256: Optional[str] = None
    md5s: set = field(default_factory=set)
    record: Any = None
    sha1s: dict = field(default_factory=dict)  # SHA-1 -> the p2 file that gives it


@dataclass
class _Check:
    """A file to hash, and what its digests must be."""

    finding: Finding
    expected: Expected
    unlisted: str = ""


def kind(root: Path, rel: str) -> str:
    """``"file"``, ``"missing"``, ``"link"`` or ``"other"`` for ``root/rel``, following no link on the way."""
    path = root
    parts = rel.split("/")
    for i, part in enumerate(parts):
        path = path / part
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


def _mirror_root(path: Path) -> Optional[Path]:
    for folder in [path, *path.parents]:
        if kind(folder, SUMS) == "file" or kind(folder, "info/json") == "file":
            return folder
    return None


def verify(targets: Iterable, progress: Optional[Callable[[int, int], None]] = None,
           signed_sums: Optional[dict] = None) -> list:
    """Check mirrors (folders) or single files inside mirrors.

    Parameters
    ----------
    targets : list of path
    progress : callable, optional
        Called as ``progress(done_bytes, total_bytes)`` while hashing.
    signed_sums : dict, optional
        Mirror folder -> the SHA256SUMS bytes whose signature was checked: used instead of reading it again.

    Returns
    -------
    list of Finding
        One per path checked; any with ``failed`` means the mirror is not intact.

    Raises
    ------
    NotFoundError
        A target that does not exist or is not inside a mirror.
    """
    findings, todo = [], []
    for root, only in _groups(targets).items():
        found, checks = _inspect(root, only, (signed_sums or {}).get(root))
        findings += found + [check.finding for check in checks]
        todo += checks
    total = sum(c.finding.size or 0 for c in todo)
    done = [0]

    def advance(n):
        done[0] += n
        if progress is not None:
            progress(done[0], total)

    for check in todo:
        _check(check, advance)
    findings.sort(key=lambda f: (str(f.root), f.rel))
    return findings


def mirror_roots(targets: Iterable) -> list:
    """The mirror folders *targets* (mirrors, or files inside them) belong to, as :func:`verify` finds them."""
    return list(_groups(targets))


def _groups(targets: Iterable) -> dict:
    """Mirror folder -> None (the whole mirror) or the set of paths in it to check."""
    groups = {}
    for target in targets:
        path = Path(os.path.abspath(target))
        if path.is_dir() and any(os.path.lexists(path / rel) for rel in (SUMS, "info/json")):
            groups[path] = None
            continue
        if path.is_dir() and not path.is_symlink():
            raise NotFoundError(f"{target}: not a mirror (no {SUMS} or info/json in it)")
        if not os.path.lexists(path):
            raise NotFoundError(f"{target}: no such file or folder")
        root = _mirror_root(path.parent)
        if root is None:
            raise NotFoundError(f"{target}: not inside a mirror (no {SUMS} above it)")
        if groups.get(root, set()) is not None:
            groups.setdefault(root, set()).add(path.relative_to(root).as_posix())
    return groups


def _read_index(root: Path, rel: str, findings: list, only) -> Optional[bytes]:
    """The bytes of one index file, or None (with a finding when it is a link or unreadable)."""
    what = kind(root, rel)
    if what == "missing":
        return None
    if what != "file":
        if only is None or rel in only:
            findings.append(Finding(root, rel, Verdict.BAD, LINK if what == "link" else "not a plain file"))
        return None
    try:
        f, info = open_published(root, rel)
    except UnsafeSourceError as exc:
        findings.append(Finding(root, rel, Verdict.BAD, exc.reason))
        return None
    except OSError as exc:
        findings.append(Finding(root, rel, Verdict.BAD, f"unreadable: {exc.strerror or exc}"))
        return None
    with f:
        if info.st_size > MAX_INDEX_BYTES:  # a hostile carried disk must not exhaust memory
            findings.append(Finding(root, rel, Verdict.BAD, f"larger than the {MAX_INDEX_BYTES >> 20} MiB an index "
                                                           "may be"))
            return None
        return f.read(MAX_INDEX_BYTES)


def _inspect(root: Path, only, signed_sums: Optional[bytes] = None) -> tuple:
    """Findings decided without reading archives, and the checks that need hashing."""
    findings = []
    wants = (lambda rel: True) if only is None else (lambda rel: rel in only)
    if only is None:
        for own in (FILES, INFO, COMPOSER, BOOKKEEPING):
            if kind(root, own) == "link":
                findings.append(Finding(root, own, Verdict.BAD, LINK))
    raw = signed_sums if signed_sums is not None else _read_index(root, SUMS, findings, only)
    sums, sums_ok = {}, raw is not None
    if raw is not None:
        sums, bad_lines = parse_sums(raw.decode("utf-8", errors="replace"))
        if bad_lines:
            shown = ", ".join(map(str, bad_lines[:5])) + (" ..." if len(bad_lines) > 5 else "")
            findings.append(Finding(root, SUMS, Verdict.BAD, f"line {shown}: not '<sha256>  <path>', "
                                                             "or a second, different sum for a path"))
    elif only is None and kind(root, SUMS) == "missing":
        findings.append(Finding(root, SUMS, Verdict.MISSING, "the mirror's checksum list is gone"))
    records, feed_ok = {}, kind(root, "info/json") == "file"
    if kind(root, "info/json") in ("link", "other") and wants("info/json"):
        findings.append(Finding(root, "info/json", Verdict.BAD, LINK if kind(root, "info/json") == "link"
                                else "not a plain file"))
    if feed_ok:
        releases = read_feed(root / "info" / "json")
        if releases is None:
            findings.append(Finding(root, "info/json", Verdict.BAD, "not a readable feed"))
            releases, feed_ok = [], False
        for r in releases:
            records.setdefault(r.file_name, []).append(r)
    expected = {rel: Expected(sha) for rel, sha in sums.items()}
    for name, recs in records.items():
        entry = expected.setdefault(f"{FILES}/{name}", Expected())
        entry.md5s |= {r.md5 for r in recs if r.md5}
        entry.record = recs[0]
    composer_ok = _composer_expectations(root, expected, findings, wants)
    checks = []
    reported = {f.rel for f in findings}
    for rel in sorted(expected):
        if not wants(rel) or rel in reported:
            continue
        want = expected[rel]
        try:
            check_name(rel)
        except UnsafeNameError as exc:
            findings.append(Finding(root, rel, Verdict.BAD, f"an index lists an unsafe path ({exc})"))
            continue
        finding = Finding(root, rel, record=want.record)
        what = kind(root, rel)
        if what == "missing":
            finding.status, finding.problem = Verdict.MISSING, "listed but not on disk"
            findings.append(finding)
            continue
        if what != "file":
            finding.status = Verdict.BAD
            finding.problem = LINK if what == "link" else "not a plain file (or a link on the way to it)"
            findings.append(finding)
            continue
        unlisted = ""
        if rel.startswith(FILES + "/"):
            if sums_ok and want.sha256 is None:
                unlisted = f"in info/json but not in {SUMS}"
            elif feed_ok and want.record is None:
                unlisted = f"in {SUMS} but not in info/json"
        elif rel.startswith(DIST + "/"):
            if sums_ok and want.sha256 is None:
                unlisted = f"named by {', '.join(sorted(set(want.sha1s.values())))} but not in {SUMS}"
            elif composer_ok and not want.sha1s:
                unlisted = f"in {SUMS} but named by no composer/p2 file"
        finding.size = os.lstat(root / rel).st_size
        checks.append(_Check(finding, want, unlisted))
    if only is None:
        for rel in INFO_FILES:  # a mirror is not usable without its index, listed and checked
            if rel in expected or rel in reported:
                continue
            what = kind(root, rel)
            if what == "missing":
                findings.append(Finding(root, rel, Verdict.MISSING, "the mirror's index file is gone"))
            elif what != "file":
                findings.append(Finding(root, rel, Verdict.BAD, LINK if what == "link" else "not a plain file"))
            elif sums_ok:
                findings.append(Finding(root, rel, Verdict.BAD, f"not listed in {SUMS}: its content is unchecked"))
    for top in (FILES, COMPOSER):
        if kind(root, top) == "link":
            continue
        for rel, st in walk_files(root, top):
            if rel in expected or not wants(rel):
                continue
            if stat.S_ISLNK(st.st_mode):
                findings.append(Finding(root, rel, Verdict.BAD, LINK))
            elif rel.endswith(SIDE_SUFFIXES):
                findings.append(Finding(root, rel, Verdict.PARTIAL, "an unfinished download", size=st.st_size))
            else:
                findings.append(Finding(root, rel, Verdict.EXTRA, "not listed in the mirror's indexes",
                                        size=st.st_size if stat.S_ISREG(st.st_mode) else None))
    for rel in sorted((only or set()) - set(expected)):
        what = kind(root, rel)
        if what == "missing":
            findings.append(Finding(root, rel, Verdict.MISSING, "not on disk and not listed in the mirror"))
        elif what == "link" and not rel.startswith((FILES + "/", COMPOSER + "/")):
            findings.append(Finding(root, rel, Verdict.BAD, LINK))
        elif not rel.startswith((FILES + "/", COMPOSER + "/")) and rel not in (SUMS, SIG, *INFO_FILES):
            findings.append(Finding(root, rel, Verdict.EXTRA, "not listed in the mirror's indexes"))
    return findings, checks


def _composer_expectations(root: Path, expected: dict, findings: list, wants) -> bool:
    """Add what the p2 files say of each Composer archive to *expected*; whether there is a Composer index.

    Every p2 entry must name an archive of this mirror, which must be on disk
    and have the SHA-1 the entry gives.
    """
    if kind(root, PACKAGES) != "file" and kind(root, P2) == "missing":
        return False
    written_for = read_composer_url(root)
    problems = []
    for name, entries in read_index(root, warn=problems.append).items():
        p2 = f"{P2}/{name}.json"
        for entry in entries:
            try:
                rel = entry_rel(entry, written_for)
            except UnsafeNameError as exc:
                if wants(p2):
                    findings.append(Finding(root, p2, Verdict.BAD, f"{entry.get('version')}: {exc}"))
                continue
            if rel is None:
                continue
            shasum = (entry.get("dist") or {}).get("shasum")
            want = expected.setdefault(rel, Expected())
            want.sha1s[shasum.lower() if isinstance(shasum, str) and shasum else ""] = p2
    for problem in problems:
        rel = problem.split(":", 1)[0]
        if wants(rel):
            findings.append(Finding(root, rel, Verdict.BAD, problem.split(": ", 1)[-1]))
    return True


def _check(check: _Check, advance: Callable[[int], None]) -> None:
    finding, want = check.finding, check.expected
    md5, sha256, sha1 = hashlib.md5(), hashlib.sha256(), hashlib.sha1()
    try:
        f, _ = open_published(finding.root, finding.rel)
        with f:
            for block in iter(lambda: f.read(BLOCK), b""):
                md5.update(block)
                sha256.update(block)
                if want.sha1s:
                    sha1.update(block)
                advance(len(block))
    except UnsafeSourceError as exc:  # a link, a non-file or a second hard link: never read, never "intact"
        finding.status, finding.problem = Verdict.BAD, exc.reason
        return
    except OSError as exc:
        finding.status, finding.problem = Verdict.BAD, f"unreadable: {exc.strerror or exc}"
        return
    finding.md5, finding.sha256 = md5.hexdigest(), sha256.hexdigest()
    problems = []
    if want.sha256 is not None and finding.sha256 != want.sha256:
        problems.append(f"sha256 differs from {SUMS}")
    if len(want.md5s) > 1:
        problems.append("info/json gives it conflicting md5s")
    elif want.md5s and finding.md5 not in want.md5s:
        problems.append("md5 differs from info/json")
    for shasum, p2 in sorted(want.sha1s.items()):
        if not shasum:
            problems.append(f"{p2} gives no SHA-1 for it")
        elif shasum != sha1.hexdigest():
            problems.append(f"SHA-1 differs from {p2}")
    if problems:
        finding.status, finding.problem = Verdict.BAD, "; ".join(problems)
    elif check.unlisted:
        finding.status, finding.problem = Verdict.UNLISTED, check.unlisted
    elif want.sha256 is None and not want.md5s and not want.sha1s:
        finding.status, finding.problem = Verdict.UNVERIFIED, "no sha256 and no md5 to check it against"
