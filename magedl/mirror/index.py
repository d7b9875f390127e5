"""A mirror's index files: rendering them, writing them so no reader sees half of one, reading them back.

The rule a reader must not break: each index file is replaced atomically, ``SHA256SUMS`` last, so it
never lists an index file older than itself. Where they live: :mod:`magedl.mirror.layout`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from itertools import chain
from json.encoder import encode_basestring as _quote
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Optional, Protocol

from magedl.errors import MagedlError
from magedl.fsutil import atomic_write, atomic_write_parts, open_regular, read_if_regular
from magedl.mirror.layout import FILES, INFO_FILES, SUMS, clear_way
from magedl.mirror.model import Fingerprint
from magedl.service.catalog import Release, parse_feed
from magedl.service.textformat import render_table, render_versions, table_lines

__all__ = ["FILES", "INFO_FILES", "SUMS", "SumsAsFound", "parse_sums", "read_feed", "read_sums", "release_from_dict",
           "records_digest", "release_rels", "render_indexes", "render_sums", "sums_in_file", "sums_parts",
           "write_indexes"]

_SUM_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")
# Index files of a mirror of 100,000 files are tens of MB; far more is not an index.
MAX_INDEX_BYTES = 256 << 20


def render_indexes(records: Iterable[Release]) -> dict:
    """The three ``info/`` files for *records*: ``{relative path: bytes}``."""
    return dict(_render_info(list(records)))


def _render_info(records: list):
    """``(path, bytes)`` of each ``info/`` file, one at a time: the caller writes one before the next is made."""
    yield "info/json", feed_json(records)
    yield "info/files", _table(records)
    yield "info/versions", render_versions(records).encode("utf-8")


def _table(records: list) -> bytearray:
    """``render_table(records)``, encoded a line at a time: neither the rows nor the whole text is held."""
    if not records:
        return bytearray(render_table(records).encode("utf-8"))
    out = bytearray()
    for line in table_lines(records):
        out += line.encode("utf-8")
        out += b"\n"
    return out


_ENTRY = json.JSONEncoder(indent=1, ensure_ascii=False).encode


def feed_json(records: list) -> bytearray:
    """``json.dumps(releases_to_feed(records), indent=1, ensure_ascii=False) + "\n"``, encoded, byte for byte,
    written a record at a time: neither a dict per record nor the feed's whole text is held beside the bytes."""
    listed = {r.type for r in records if r.type == "other" or not r.version}
    groups: dict = {}  # type -> its records (listed), or version -> its records
    for r in records:
        if r.type in listed:
            groups.setdefault(r.type, []).append(r)
        else:
            groups.setdefault(r.type, {}).setdefault(r.version, []).append(r)
    out = bytearray(b"{")
    for i, (category, value) in enumerate(groups.items()):
        out += f'{"," if i else ""}\n {_quote(category)}: '.encode("utf-8")
        if isinstance(value, list):
            _entries(out, value, 1, keep_version=True)
            continue
        out += b"{"
        for j, (version, members) in enumerate(value.items()):
            out += f'{"," if j else ""}\n  {_quote(version)}: '.encode("utf-8")
            _entries(out, members, 2, keep_version=False)
        out += b"\n }"
    out += b"\n}\n" if groups else b"}\n"
    return out  # not copied to bytes: at 100,000 records that copy was the run's peak


def _entries(out: bytearray, records: list, depth: int, keep_version: bool) -> None:
    """One list of feed entries at *depth*, as ``json.dumps(..., indent=1)`` writes it, a batch at a time."""
    pad, inner = "\n" + " " * (depth + 1), "\n" + " " * (depth + 2)
    out += b"["
    parts, sep = [], ""
    for r in records:
        if r.ce_versions or r.ee_versions or r.extra:  # nested values: the encoder's own layout, moved in
            entry = r.to_dict()
            del entry["type"]
            if not keep_version or not r.version:
                del entry["version"]
            parts.append(pad + _ENTRY(entry).replace("\n", pad))
        else:
            fields = [("name", r.name), ("file_name", r.file_name)]
            if keep_version and r.version:
                fields.append(("version", r.version))
            fields.append(("md5", r.md5))
            parts.append(pad + "{" + ",".join(f"{inner}{_quote(k)}: {_quote(v)}" for k, v in fields) + pad + "}")
        if len(parts) == _DIGEST_BATCH:
            out += (sep + ",".join(parts)).encode("utf-8")
            parts, sep = [], ","
    if parts:
        out += (sep + ",".join(parts)).encode("utf-8")
    out += ("\n" + " " * depth + "]").encode() if records else b"]"


def render_sums(sha256s, more: Optional[Mapping[str, str]] = None) -> bytes:
    """``SHA256SUMS`` (its bytes) from ``{relative path: sha256}``, sorted by path (see :func:`sums_parts`)."""
    return b"".join(sums_parts(sha256s, more)())


def sums_parts(sha256s, more: Optional[Mapping[str, str]] = None) -> Callable[[], Iterator[bytes]]:
    """The bytes of ``SHA256SUMS`` from ``{relative path: sha256}``, sorted by path, as a function that gives
    them a chunk at a time, from the start each time it is called (what :func:`~magedl.fsutil.atomic_write_parts`
    takes).

    *sha256s* is a mapping, or a :class:`magedl.mirror.held.Held` (read from the state, its release files'
    lines rendered to a file as it read them: read back a MiB at a time, never held whole). *more* (a
    few index files) adds to or overrides *sha256s* without a merged copy of it. Lines are encoded a
    batch at a time: a joined list of 100,000 lines, its text, or a copy would each cost as much as the
    bytes written again.
    """
    more = more or {}
    if hasattr(sha256s, "release_sums") and not any(rel.startswith(FILES + "/") for rel in more):
        # Held rendered its release files' lines as it read them: no index file sorts among them.
        before = {rel: sha for rel, sha in more.items() if rel < FILES + "/"}
        head = _render(_in_order({rel: e.sha256 for rel, e in sha256s.composer.items()}, before))
        tail = _render(_in_order({}, {rel: sha for rel, sha in more.items() if rel not in before}))
        release = sha256s.release_sums  # read from its start at each call; closed with the Held that made it

        def parts():
            yield head
            if release is not None:
                release.seek(0)
                yield from iter(lambda: release.read(_READ_CHUNK), b"")
            yield tail

        return parts
    data = _render(_in_order(sha256s, more))
    return lambda: iter((data,))


_READ_CHUNK = 1 << 20


def _render(pairs) -> bytearray:
    out, lines = bytearray(), []
    for rel, sha in pairs:
        lines.append(f"{sha}  {rel}\n")
        if len(lines) == _DIGEST_BATCH:
            out += "".join(lines).encode("utf-8")
            lines.clear()
    out += "".join(lines).encode("utf-8")
    return out


def _in_order(sha256s, more: Mapping[str, str]):
    """``(path, sha256)`` of *sha256s* and *more* (which wins), sorted by path."""
    if not hasattr(sha256s, "sums_in_order"):
        for rel in sorted(chain(sha256s, (rel for rel in more if rel not in sha256s))):
            yield rel, more.get(rel) or sha256s[rel]
        return
    extra = sorted(more.items(), reverse=True)  # popped from the end: the smallest path first
    for rel, sha in sha256s.sums_in_order():
        while extra and extra[-1][0] < rel:
            yield extra.pop()
        if extra and extra[-1][0] == rel:
            yield extra.pop()
            continue
        yield rel, sha
    yield from reversed(extra)


class Memo(Protocol):
    """Where a mirror remembers what it last wrote (:class:`magedl.mirror.state.State`)."""

    def remembered(self, key: str) -> Optional[str]: ...

    def remember(self, key: str, value: str) -> None: ...


def _fingerprint(path) -> list:
    return list(Fingerprint.of(path))  # a list: the memo keeps it as JSON


def unchanged_since(root: Path, memo: Optional[Memo], key: str, inputs: str) -> Optional[dict]:
    """``{rel: sha256}`` of the files remembered under *key*, when they were rendered from *inputs* and none
    was touched since (so rendering them again would give the same bytes); None otherwise."""
    try:
        last = json.loads((memo.remembered(key) if memo is not None else None) or "null")
        if not isinstance(last, dict) or last.get("inputs") != inputs:
            return None
        files = last["files"]
        prefix = os.path.join(os.fspath(root), "")  # joined as text: a Path per file costs more than its lstat
        for rel, value in files.items():
            st = os.lstat(prefix + rel)  # compared field by field: no fingerprint built per file
            if len(value) != 5 or (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino) != tuple(value[1:]):
                return None
        return {rel: value[0] for rel, value in files.items()}
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError):
        return None


def remember_rendered(root: Path, memo: Memo, key: str, inputs: str, sums: Mapping[str, str]) -> None:
    """Remember under *key* that the files of *sums* (``{rel: sha256}``) were rendered from *inputs*."""
    memo.remember(key, json.dumps({"inputs": inputs, "files": {
        rel: [sha, *_fingerprint(root / rel)] for rel, sha in sums.items()}}))


_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_DIGEST_BATCH = 2048


def records_digest(records: Iterable[Release]) -> str:
    """sha256 of *records* as the index and the pages are rendered from them (what their memos compare).

    The digest of their JSON list, encoded a batch at a time: the text of
    100,000 records is never held whole.
    """
    digest, batch, sep = hashlib.sha256(b"["), [], b""
    for r in records:
        batch.append(_record_json(r))
        if len(batch) == _DIGEST_BATCH:
            digest.update(sep + ",".join(batch).encode("utf-8"))
            batch, sep = [], b","
    if batch:
        digest.update(sep + ",".join(batch).encode("utf-8"))
    digest.update(b"]")
    return digest.hexdigest()


def _record_json(r: Release) -> str:
    """``r.to_dict()`` as compact JSON; a plain record (five strings, most of a feed) written directly."""
    if r.ce_versions or r.ee_versions or r.extra:
        return _COMPACT(r.to_dict())
    return (f'{{"name":{_quote(r.name)},"file_name":{_quote(r.file_name)},"version":{_quote(r.version)},'
            f'"type":{_quote(r.type)},"md5":{_quote(r.md5)}}}')


def write_indexes(root: os.PathLike | str, records: Iterable[Release], held: Mapping[str, str],
                  extra: Optional[Mapping[str, bytes]] = None, memo: Optional[Memo] = None,
                  digest: str = "", also: Optional[Mapping[str, str]] = None,
                  before_sums: Optional[Callable[[], None]] = None) -> list:
    """Write ``info/json``, ``info/files``, ``info/versions``, the *extra* index files, then ``SHA256SUMS``.

    Parameters
    ----------
    root : path
        The mirror folder (checked by :func:`magedl.mirror.layout.check_layout`).
    records : iterable of Release
        Every record of every release file held and verified, in feed order.
    held : mapping, or Held
        Path relative to *root* -> sha256 of each archive held and verified (or a
        :class:`magedl.mirror.held.Held`, read in path order).
    extra : mapping, optional
        Further index files (the Composer metadata): relative path -> bytes.
    memo : Memo, optional
        Remembers from what the ``info/`` files were rendered: when it is
        the same and they were not touched since, they are not rendered again
        (an up-to-date re-run of a large mirror costs a digest, not three renders).
    digest : str, optional
        :func:`records_digest` of *records*, when the caller has it already.
    also : mapping, optional
        Further files ``SHA256SUMS`` lists (the pages, the p2 files left as they were): path -> sha256.
    before_sums : callable, optional
        Called before ``SHA256SUMS`` is replaced, not when it stays as it is
        (:meth:`magedl.mirror.delta.KeptSums.keep`).

    Returns
    -------
    list of str
        The index files whose content changed (paths relative to *root*).
    """
    root = Path(root)
    records = list(records)
    changed = []
    sums = dict(also or {})  # the index files' own (and *also*): SHA256SUMS lists them beside *held*, not copied
    inputs = digest or records_digest(records)
    unchanged = unchanged_since(root, memo, "info", inputs)
    if unchanged is not None and set(unchanged) != set(INFO_FILES):
        unchanged = None
    sums.update(unchanged or {})
    # One file made, written and dropped before the next (the info/ files of 100,000 records are tens of MB).
    for rel, data in chain(_render_info(records) if unchanged is None else (), (extra or {}).items()):
        clear_way(root, rel)
        if atomic_write(root / rel, data):
            changed.append(rel)
        sums[rel] = hashlib.sha256(data).hexdigest()
        del data
    if unchanged is None and memo is not None:
        # Remembered only once they are on disk: a kill before this renders them again next time.
        remember_rendered(root, memo, "info", inputs, {rel: sums[rel] for rel in INFO_FILES})
    if atomic_write_parts(root / SUMS, sums_parts(held, sums), before_replace=before_sums):
        changed.append(SUMS)
    return changed


def parse_sums(text: str) -> tuple[dict, list]:
    """Parse ``SHA256SUMS`` text.

    Returns
    -------
    sums : dict
        relative path -> sha256 (lower-case).
    bad_lines : list of int
        Numbers of lines that are not ``<64 hex>  <path>``, or that list a
        path a second time with another sum.
    """
    sums, bad = {}, []
    for number, line in enumerate(text.split("\n"), 1):
        parsed = _sum_line(line)
        if parsed is None:
            if line.strip():
                bad.append(number)
            continue
        rel, sha = parsed
        if sums.get(rel, sha) != sha:  # listed twice, differently: sha256sum -c fails one of them
            bad.append(number)
            continue
        sums[rel] = sha
    return sums, bad


def _sum_line(line: str) -> Optional[tuple]:
    """``(path, sha256)`` of one line of ``SHA256SUMS`` (without its newline), or None when it is none."""
    match = _SUM_LINE.match(line.rstrip("\r"))
    return (match.group(2), match.group(1).lower()) if match else None


def sums_in_file(path: os.PathLike | str) -> Iterator[tuple]:
    """``(path, sha256)`` of each line of the ``SHA256SUMS`` at *path* that is one, read a line at a time.

    What :func:`read_sums` lists (but a path listed twice, which this does not look for), without
    its whole text or a dict of it; nothing when it is missing, a link, no regular file or too big
    to be an index.
    """
    opened = open_regular(path)
    if opened is None:
        return
    fd, st = opened
    with os.fdopen(fd, "rb") as lines:
        if st.st_size > MAX_INDEX_BYTES:
            return
        for line in lines:
            parsed = _sum_line(line.rstrip(b"\n").decode("utf-8", errors="replace"))
            if parsed is not None:
                yield parsed


def read_sums(path: os.PathLike | str) -> tuple[dict, list]:
    """Read a ``SHA256SUMS`` file (see :func:`parse_sums`).

    Raises
    ------
    OSError
        It is missing, a link, not a regular file, or too big to be an index.
    """
    raw = read_if_regular(path, MAX_INDEX_BYTES)
    if raw is None:
        raise FileNotFoundError(f"{path}: not a readable regular file")
    return parse_sums(raw.decode("utf-8", errors="replace"))


def read_feed(path: os.PathLike | str) -> Optional[list]:
    """The records of a mirror's ``info/json``; None when it is missing, a link or not a feed."""
    raw = read_if_regular(path, MAX_INDEX_BYTES)
    if raw is None:
        return None
    try:
        return parse_feed(json.loads(raw))
    except (ValueError, RecursionError, MagedlError):
        return None


class SumsAsFound:
    """``SHA256SUMS`` as a run found it: kept open, not read, until the run asks what changed.

    Index writes replace the file by rename (never in place), so the open
    descriptor still reads the bytes as found; while the path still names
    that very file, nothing changed and nothing is read (the bytes of a large
    mirror's ``SHA256SUMS`` are not held through the run).
    """

    def __init__(self, root: Path):
        self.path, self.file, self.found = root / SUMS, None, None
        opened = open_regular(self.path)
        if opened is None:
            return  # missing, a link (which the index write replaces) or no regular file: read as empty
        fd, st = opened
        self.file = os.fdopen(fd, "rb")
        if st.st_size > MAX_INDEX_BYTES:
            self.close()  # not an index (read_if_regular reads it as none): as if missing
        else:
            self.found = Fingerprint.from_stat(st)

    def raw(self) -> bytes:
        """The bytes as found (empty when there was no regular file)."""
        if self.file is None:
            return b""
        self.file.seek(0)
        return self.file.read(MAX_INDEX_BYTES + 1)

    def same_file(self) -> bool:
        """Whether the path still names the file as found, unchanged (or still no regular file)."""
        try:
            now = os.lstat(self.path)
        except OSError:
            return self.found is None
        if self.found is None:
            return not stat.S_ISREG(now.st_mode)
        return self.found.same_as(now)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def release_from_dict(d: Mapping) -> Release:
    """Rebuild a :class:`Release` from :meth:`Release.to_dict` output."""
    core = ("name", "file_name", "version", "type", "md5", "ce_versions", "ee_versions")
    return Release(
        name=d.get("name") or d["file_name"],
        file_name=d["file_name"],
        version=d.get("version") or "",
        type=d.get("type") or "other",
        md5=d.get("md5") or "",
        ce_versions=tuple(d.get("ce_versions") or ()),
        ee_versions=tuple(d.get("ee_versions") or ()),
        extra={k: v for k, v in d.items() if k not in core},
    )


def release_rels(sums: Mapping[str, str]) -> dict:
    """The release archives a ``SHA256SUMS`` lists: file name -> sha256."""
    prefix = FILES + "/"
    return {rel[len(prefix):]: sha for rel, sha in sums.items() if rel.startswith(prefix)}

