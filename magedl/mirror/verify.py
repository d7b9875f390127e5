"""Offline check of a mirror: every file re-hashed against SHA256SUMS and info/json.

Nothing here touches the network or trusts the bookkeeping in ``.magedl/``:
the far side of an air gap has only the files themselves.

Statuses: ``ok``; ``missing`` (listed, not on disk); ``bad`` (digest differs,
or an index file is damaged); ``unlisted`` (in one index but not the other);
``extra`` (under ``file/`` but listed nowhere); ``partial`` (an unfinished
download's side file: reported, not a failure); ``unverified`` (nothing to
check it against: the feed has no md5 and SHA256SUMS is gone, itself a
failure).
"""

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from magedl.errors import MagedlError, NotFoundError, UnsafeNameError
from magedl.mirror.index import FILES, INFO_FILES, SUMS, read_sums
from magedl.paths import check_name
from magedl.service.catalog import parse_feed

PROBLEMS = ("missing", "bad", "unlisted", "extra")
BLOCK = 1 << 20
_SIDE = (".magedl-part", ".magedl-part.json", ".magedl-part.json.tmp", ".magedl-lock")


@dataclass
class Finding:
    """The verdict on one path of a mirror."""

    root: Path
    rel: str
    status: str = "ok"
    problem: str = ""
    size: "int | None" = None
    md5: str = ""
    sha256: str = ""
    record: object = None

    @property
    def path(self):
        return self.root / self.rel

    @property
    def failed(self):
        return self.status in PROBLEMS

    def to_dict(self):
        if self.record is not None:
            out = self.record.to_dict()
        else:
            name = self.rel[len(FILES) + 1:] if self.rel.startswith(FILES + "/") else None
            out = {"name": name, "file_name": name, "version": None, "type": None, "md5": None}
        out.update(path=str(self.path), status=self.status, size=self.size, actual_md5=self.md5 or None,
                   sha256=self.sha256 or None)
        if self.problem:
            out["problem"] = self.problem
        return out


def _mirror_root(path):
    for folder in [path, *path.parents]:
        if (folder / SUMS).is_file() or (folder / "info" / "json").is_file():
            return folder
    return None


def verify(targets, progress=None):
    """Check mirrors (folders) or single files inside mirrors.

    Parameters
    ----------
    targets : list of path
    progress : callable, optional
        Called as ``progress(done_bytes, total_bytes)`` while hashing.

    Returns
    -------
    list of Finding
        One per path checked; any with ``failed`` means the mirror is not intact.

    Raises
    ------
    NotFoundError
        A target that does not exist or is not inside a mirror.
    """
    groups = {}
    for target in targets:
        path = Path(os.path.abspath(target))
        if path.is_dir() and ((path / SUMS).exists() or (path / "info" / "json").exists()):
            groups[path] = None
            continue
        if path.is_dir():
            raise NotFoundError(f"{target}: not a mirror (no {SUMS} or info/json in it)")
        if not path.exists() and not path.is_symlink():
            raise NotFoundError(f"{target}: no such file or folder")
        root = _mirror_root(path.parent)
        if root is None:
            what = "no such file or folder" if not path.exists() else f"not inside a mirror (no {SUMS} above it)"
            raise NotFoundError(f"{target}: {what}")
        if groups.get(root, set()) is not None:
            groups.setdefault(root, set()).add(path.relative_to(root).as_posix())
    findings, todo = [], []
    for root, only in groups.items():
        found, checks = _inspect(root, only)
        findings += found + [check[0] for check in checks]
        todo += checks
    total = sum(f.size or 0 for f, *_ in todo)
    done = [0]

    def advance(n):
        done[0] += n
        if progress is not None:
            progress(done[0], total)

    for finding, sha, md5s, unlisted in todo:
        _check(finding, sha, md5s, unlisted, advance)
    findings.sort(key=lambda f: (str(f.root), f.rel))
    return findings


def _inspect(root, only):
    """Findings decided without reading files, and the checks that need hashing."""
    findings = []
    wants = (lambda rel: True) if only is None else (lambda rel: rel in only)
    sums, sums_ok = {}, (root / SUMS).is_file()
    if sums_ok:
        sums, bad_lines = read_sums(root / SUMS)
        if bad_lines:
            shown = ", ".join(map(str, bad_lines[:5])) + (" ..." if len(bad_lines) > 5 else "")
            findings.append(Finding(root, SUMS, "bad", f"line {shown}: not '<sha256>  <path>', "
                                                       "or a second, different sum for a path"))
    elif only is None:
        findings.append(Finding(root, SUMS, "missing", "the mirror's checksum list is gone"))
    records, feed_ok = {}, (root / "info" / "json").is_file()
    if feed_ok:
        try:
            with open(root / "info" / "json", "rb") as f:
                releases = parse_feed(json.load(f))
        except (ValueError, MagedlError) as exc:
            findings.append(Finding(root, "info/json", "bad", f"not a readable feed ({type(exc).__name__})"))
            releases, feed_ok = [], False
        for r in releases:
            records.setdefault(r.file_name, []).append(r)
    expected = {}
    for rel, sha in sums.items():
        expected[rel] = [sha, set(), None]
    for name, recs in records.items():
        entry = expected.setdefault(f"{FILES}/{name}", [None, set(), None])
        entry[1] |= {r.md5 for r in recs if r.md5}
        entry[2] = recs[0]
    checks = []
    for rel in sorted(expected):
        sha, md5s, record = expected[rel]
        if not wants(rel):
            continue
        finding = Finding(root, rel, record=record)
        try:
            check_name(rel)
        except UnsafeNameError as exc:
            findings.append(Finding(root, rel, "bad", f"an index lists an unsafe path ({exc})"))
            continue
        path = root / rel
        real = os.path.realpath(path)
        if not real.startswith(os.path.realpath(root) + os.sep):
            findings.append(Finding(root, rel, "bad", "leads out of the mirror (symlink)", record=record))
            continue
        if not path.is_file():
            finding.status, finding.problem = "missing", "listed but not on disk"
            findings.append(finding)
            continue
        unlisted = ""
        if rel.startswith(FILES + "/"):
            if sums_ok and sha is None:
                unlisted = f"in info/json but not in {SUMS}"
            elif feed_ok and record is None:
                unlisted = f"in {SUMS} but not in info/json"
        finding.size = path.stat().st_size
        checks.append((finding, sha, md5s, unlisted))
    if only is None:
        for rel in INFO_FILES:  # a mirror is not usable without its index, listed and checked
            if rel in expected:
                continue
            if not (root / rel).is_file():
                findings.append(Finding(root, rel, "missing", "the mirror's index file is gone"))
            elif sums_ok:
                findings.append(Finding(root, rel, "bad", f"not listed in {SUMS}: its content is unchecked"))
    files = root / FILES
    for folder, _, names in os.walk(files):
        for n in names:
            rel = (Path(folder) / n).relative_to(root).as_posix()
            if rel in expected or not wants(rel):
                continue
            side = rel.endswith(_SIDE)
            findings.append(Finding(root, rel, "partial" if side else "extra",
                                    "an unfinished download" if side else "not listed in the mirror's indexes",
                                    size=(Path(folder) / n).stat().st_size))
    for rel in sorted((only or set()) - set(expected)):
        if not (root / rel).exists():
            findings.append(Finding(root, rel, "missing", "not on disk and not listed in the mirror"))
        elif not rel.startswith(FILES + "/"):
            findings.append(Finding(root, rel, "extra", "not listed in the mirror's indexes"))
    return findings, checks


def _check(finding, sha, md5s, unlisted, advance):
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    try:
        with open(finding.path, "rb") as f:
            for block in iter(lambda: f.read(BLOCK), b""):
                md5.update(block)
                sha256.update(block)
                advance(len(block))
    except OSError as exc:
        finding.status, finding.problem = "bad", f"unreadable: {exc.strerror}"
        return
    finding.md5, finding.sha256 = md5.hexdigest(), sha256.hexdigest()
    problems = []
    if sha is not None and finding.sha256 != sha:
        problems.append(f"sha256 differs from {SUMS}")
    if len(md5s) > 1:
        problems.append("info/json gives it conflicting md5s")
    elif md5s and finding.md5 not in md5s:
        problems.append("md5 differs from info/json")
    if problems:
        finding.status, finding.problem = "bad", "; ".join(problems)
    elif unlisted:
        finding.status, finding.problem = "unlisted", unlisted
    elif sha is None and not md5s:
        finding.status, finding.problem = "unverified", "no sha256 and no md5 to check it against"
