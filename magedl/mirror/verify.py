"""Offline check of a mirror: every file re-hashed against SHA256SUMS and info/json.

The rule a reader must not break: nothing here touches the network, trusts ``.magedl/`` or follows a
symbolic link (each link is reported :attr:`Verdict.BAD`): the far side of an air gap has only the files.

Scale: the indexes are read into one compact expectation per listed path; the findings then come one at
a time in path order (:meth:`Verification.findings`), each file hashed as its turn comes, so nothing per
file is held once its finding is given (figures: docs/scale.md, "verify's memory").
"""

from __future__ import annotations

import hashlib
import heapq
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

from magedl.errors import NotFoundError, UnsafeNameError, UnsafeSourceError
from magedl.mirror.composer.index import DIST, P2, PACKAGES, entry_rel, read_composer_url, read_index
from magedl.mirror.index import MAX_INDEX_BYTES, parse_sums, read_feed
from magedl.mirror.layout import COMPOSER, FILES, INFO, INFO_FILES, SIG, SUMS, walk_entries
from magedl.mirror.verdict import LINK, Finding, Verdict, kind
from magedl.paths import BOOKKEEPING, SIDE_SUFFIXES, check_name
from magedl.service.fileadapter import open_published

BLOCK = 1 << 20

__all__ = ["Finding", "Verdict", "Verification", "kind", "mirror_roots", "verify"]


class Expected:
    """What the indexes say one path should hold (one per listed path of a large mirror: kept small)."""

    __slots__ = ("sha256", "md5s", "record", "sha1s")

    def __init__(self, sha256: Optional[str] = None):
        self.sha256 = sha256
        self.md5s: tuple = ()  # the distinct md5s info/json gives
        self.record: Any = None  # its first info/json record
        self.sha1s: Optional[dict] = None  # SHA-1 -> the p2 file that gives it


def _mirror_root(path: Path) -> Optional[Path]:
    for folder in [path, *path.parents]:
        if kind(folder, SUMS) == "file" or kind(folder, "info/json") == "file":
            return folder
    return None


def verify(targets: Iterable, progress: Optional[Callable[[int, int], None]] = None,
           signed_sums: Optional[dict] = None) -> list:
    """Check mirrors (folders) or single files inside mirrors: :class:`Verification`, its findings in a list.

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
        One per path checked, in (mirror, path) order; any with ``failed`` means the mirror is not intact.

    Raises
    ------
    NotFoundError
        A target that does not exist or is not inside a mirror.
    """
    return list(Verification(targets, signed_sums, sized=progress is not None).findings(progress))


class Verification:
    """The check of mirrors (folders) or single files inside mirrors, its findings given one at a time.

    Made, it has read every index and listed every folder (so a target that
    is not in a mirror raises :class:`~magedl.errors.NotFoundError` here);
    :meth:`findings` then hashes. Parameters as :func:`verify`; *sized*:
    add up :attr:`total` (one ``lstat`` per file) for a progress display.

    Attributes
    ----------
    roots : list of Path
        The mirror folders that have findings, in the order of the findings.
    total : int
        Bytes :meth:`findings` hashes (0 unless *sized*).
    """

    def __init__(self, targets: Iterable, signed_sums: Optional[dict] = None, sized: bool = False):
        groups = _groups(targets)
        self._mirrors = [_inspect(root, groups[root], (signed_sums or {}).get(root), sized)
                         for root in sorted(groups, key=str)]
        self.roots = [m.root for m in self._mirrors if m.has_findings()]
        self.total = sum(m.total for m in self._mirrors)

    def findings(self, progress: Optional[Callable[[int, int], None]] = None) -> Iterator[Finding]:
        """Each finding in (mirror, path) order, a file hashed as its turn comes; ``progress(done, total)``."""
        done = [0]

        def advance(n):
            done[0] += n
            if progress is not None:
                progress(done[0], self.total)

        for mirror in self._mirrors:
            # The listed paths and the rest never share a path (see _inspect): merged by path alone.
            yield from heapq.merge(mirror.others, _listed(mirror, advance), key=lambda f: f.rel)


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


@dataclass
class _Mirror:
    """One mirror as its indexes and folders describe it, before any file is hashed."""

    root: Path
    only: Optional[set]  # the paths to check; None: the whole mirror
    expected: dict  # path -> Expected, for every path an index lists
    others: list  # findings on paths not listed (or already reported), in path order
    reported: set  # paths an index finding already covers: not checked again
    sums_ok: bool = False
    feed_ok: bool = False
    composer_ok: bool = False
    total: int = 0  # bytes _listed hashes (when sized)

    def has_findings(self) -> bool:
        listed = self.expected if self.only is None else self.only & self.expected.keys()
        return bool(self.others) or any(rel not in self.reported for rel in listed)


def _inspect(root: Path, only, signed_sums: Optional[bytes] = None, sized: bool = False) -> _Mirror:
    """What the indexes expect, and the findings on every path they do not list; no file is hashed.

    Each finding goes with a rank (which step found it), so that findings on one path keep the order
    they were found in. The listed paths, which :func:`_listed` checks, never get one of these: a path
    already reported is skipped there, and every other step here skips listed paths.
    """
    findings = []
    wants = (lambda rel: True) if only is None else (lambda rel: rel in only)
    if only is None:
        for own in (FILES, INFO, COMPOSER, BOOKKEEPING):
            if kind(root, own) == "link":
                findings.append(Finding(root, own, Verdict.BAD, LINK))
    # info/json first: decoding it is the run's largest transient, best had before the rest is held.
    records, feed_ok = [], kind(root, "info/json") == "file"
    if kind(root, "info/json") in ("link", "other") and wants("info/json"):
        findings.append(Finding(root, "info/json", Verdict.BAD, LINK if kind(root, "info/json") == "link"
                                else "not a plain file"))
    if feed_ok:
        records = read_feed(root / "info" / "json")
        if records is None:
            findings.append(Finding(root, "info/json", Verdict.BAD, "not a readable feed"))
            records, feed_ok = [], False
    raw = signed_sums if signed_sums is not None else _read_index(root, SUMS, findings, only)
    sums, sums_ok = {}, raw is not None
    if raw is not None:
        text = raw.decode("utf-8", errors="replace")
        del raw  # not held while the text is parsed: a large mirror's list is tens of MiB
        sums, bad_lines = parse_sums(text)
        del text
        if bad_lines:
            shown = ", ".join(map(str, bad_lines[:5])) + (" ..." if len(bad_lines) > 5 else "")
            findings.append(Finding(root, SUMS, Verdict.BAD, f"line {shown}: not '<sha256>  <path>', "
                                                             "or a second, different sum for a path"))
    elif only is None and kind(root, SUMS) == "missing":
        findings.append(Finding(root, SUMS, Verdict.MISSING, "the mirror's checksum list is gone"))
    expected = {rel: Expected(sha) for rel, sha in sums.items()}
    del sums
    for r in records:
        rel = f"{FILES}/{r.file_name}"
        entry = expected.get(rel)
        if entry is None:
            entry = expected[rel] = Expected()
        if entry.record is None:
            entry.record = r
        if r.md5 and r.md5 not in entry.md5s:
            entry.md5s += (r.md5,)
    del records
    mirror = _Mirror(root, only, expected, [], set(), sums_ok=sums_ok, feed_ok=feed_ok)
    mirror.composer_ok = _composer_expectations(root, expected, findings, wants)
    mirror.reported = {f.rel for f in findings}
    found = [(0, f) for f in findings]
    if only is None:
        for rel in INFO_FILES:  # a mirror is not usable without its index, listed and checked
            if rel in expected or rel in mirror.reported:
                continue
            what = kind(root, rel)
            if what == "missing":
                found.append((1, Finding(root, rel, Verdict.MISSING, "the mirror's index file is gone")))
            elif what != "file":
                found.append((1, Finding(root, rel, Verdict.BAD, LINK if what == "link" else "not a plain file")))
            elif sums_ok:
                found.append((1, Finding(root, rel, Verdict.BAD, f"not listed in {SUMS}: its content is unchecked")))
    for top in (FILES, COMPOSER):
        if kind(root, top) == "link":
            continue
        for rel, entry in walk_entries(root, top, ordered=False):  # in path order once merged, not here
            if not wants(rel):
                continue
            if rel in expected:
                if sized and rel not in mirror.reported and entry.is_file(follow_symlinks=False) and _safe(rel):
                    mirror.total += entry.stat(follow_symlinks=False).st_size
                continue
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                found.append((2, Finding(root, rel, Verdict.BAD, LINK)))
            elif rel.endswith(SIDE_SUFFIXES):
                found.append((2, Finding(root, rel, Verdict.PARTIAL, "an unfinished download", size=st.st_size)))
            else:
                found.append((2, Finding(root, rel, Verdict.EXTRA, "not listed in the mirror's indexes",
                                         size=st.st_size if stat.S_ISREG(st.st_mode) else None)))
    if sized:  # listed files the walk of file/ and composer/ does not reach
        for rel in expected if only is None else only & expected.keys():
            if (not rel.startswith((FILES + "/", COMPOSER + "/")) and rel not in mirror.reported and _safe(rel)
                    and kind(root, rel) == "file"):
                mirror.total += os.lstat(root / rel).st_size
    for rel in sorted(only - expected.keys() if only else ()):  # never a set of every listed path
        what = kind(root, rel)
        if what == "missing":
            found.append((3, Finding(root, rel, Verdict.MISSING, "not on disk and not listed in the mirror")))
        elif what == "link" and not rel.startswith((FILES + "/", COMPOSER + "/")):
            found.append((3, Finding(root, rel, Verdict.BAD, LINK)))
        elif not rel.startswith((FILES + "/", COMPOSER + "/")) and rel not in (SUMS, SIG, *INFO_FILES):
            found.append((3, Finding(root, rel, Verdict.EXTRA, "not listed in the mirror's indexes")))
    found.sort(key=lambda ranked: (ranked[1].rel, ranked[0]))  # stable: one step's findings on a path keep order
    mirror.others = [f for _, f in found]
    return mirror


def _safe(rel: str) -> bool:
    try:
        check_name(rel)
    except UnsafeNameError:
        return False
    return True


def _listed(mirror: _Mirror, advance: Callable[[int], None]) -> Iterator[Finding]:
    """The finding on each path an index lists, in path order; each file hashed when its turn comes."""
    root, expected = mirror.root, mirror.expected
    for rel in sorted(expected if mirror.only is None else mirror.only & expected.keys()):
        if rel in mirror.reported:
            continue
        want = expected[rel]
        try:
            check_name(rel)
        except UnsafeNameError as exc:
            yield Finding(root, rel, Verdict.BAD, f"an index lists an unsafe path ({exc})")
            continue
        finding = Finding(root, rel, record=want.record)
        what = kind(root, rel)
        if what == "missing":
            finding.status, finding.problem = Verdict.MISSING, "listed but not on disk"
            yield finding
            continue
        if what != "file":
            finding.status = Verdict.BAD
            finding.problem = LINK if what == "link" else "not a plain file (or a link on the way to it)"
            yield finding
            continue
        unlisted = ""
        if rel.startswith(FILES + "/"):
            if mirror.sums_ok and want.sha256 is None:
                unlisted = f"in info/json but not in {SUMS}"
            elif mirror.feed_ok and want.record is None:
                unlisted = f"in {SUMS} but not in info/json"
        elif rel.startswith(DIST + "/"):
            if mirror.sums_ok and want.sha256 is None:
                unlisted = f"named by {', '.join(sorted(set(want.sha1s.values())))} but not in {SUMS}"
            elif mirror.composer_ok and not want.sha1s:
                unlisted = f"in {SUMS} but named by no composer/p2 file"
        finding.size = os.lstat(f"{root}/{rel}").st_size
        _check(finding, want, unlisted, advance)
        yield finding


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
            want = expected.get(rel)
            if want is None:
                want = expected[rel] = Expected()
            if want.sha1s is None:
                want.sha1s = {}
            want.sha1s[shasum.lower() if isinstance(shasum, str) and shasum else ""] = p2
    for problem in problems:
        rel = problem.split(":", 1)[0]
        if wants(rel):
            findings.append(Finding(root, rel, Verdict.BAD, problem.split(": ", 1)[-1]))
    return True


def _check(finding: Finding, want: Expected, unlisted: str, advance: Callable[[int], None]) -> None:
    """Hash *finding*'s file and give it its verdict: *want*'s digests, then *unlisted* (why it is UNLISTED)."""
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
    for shasum, p2 in sorted((want.sha1s or {}).items()):
        if not shasum:
            problems.append(f"{p2} gives no SHA-1 for it")
        elif shasum != sha1.hexdigest():
            problems.append(f"SHA-1 differs from {p2}")
    if problems:
        finding.status, finding.problem = Verdict.BAD, "; ".join(problems)
    elif unlisted:
        finding.status, finding.problem = Verdict.UNLISTED, unlisted
    elif want.sha256 is None and not want.md5s and not want.sha1s:
        finding.status, finding.problem = Verdict.UNVERIFIED, "no sha256 and no md5 to check it against"
