"""A mirror's index files, and writing files so no reader ever sees half of one.

::

    DIR/info/json        the feed, reduced to the files the mirror holds (upstream shape)
    DIR/info/files       the same as the service's text table
    DIR/info/versions    the same as the service's versions text
    DIR/SHA256SUMS       ``sha256sum -c`` format, paths relative to DIR: every archive
                         and the three info files above
    DIR/file/<file_name> the archives
    DIR/.magedl/         bookkeeping (state.json, lock); not part of what is served

Each index file is written to a temporary file in the same folder and renamed
over the old one, so a web server or ``verify`` sees the old or the new
version, never a mix.
"""

import hashlib
import json
import re
from pathlib import Path

from magedl.fsutil import atomic_write
from magedl.service.catalog import Release, releases_to_feed
from magedl.service.textformat import render_table, render_versions

SUMS = "SHA256SUMS"
INFO_FILES = ("info/json", "info/files", "info/versions")
FILES = "file"
_SUM_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")


def render_indexes(records):
    """The three ``info/`` files for *records*: ``{relative path: bytes}``."""
    feed = releases_to_feed(records)
    return {
        "info/json": (json.dumps(feed, indent=1, ensure_ascii=False) + "\n").encode("utf-8"),
        "info/files": render_table(records).encode("utf-8"),
        "info/versions": render_versions(records).encode("utf-8"),
    }


def render_sums(sha256s):
    """``SHA256SUMS`` text from ``{relative path: sha256}``, sorted by path."""
    return "".join(f"{sha}  {rel}\n" for rel, sha in sorted(sha256s.items())).encode("utf-8")


def write_indexes(root, records, sha256s):
    """Write ``info/json``, ``info/files``, ``info/versions``, then ``SHA256SUMS``.

    Parameters
    ----------
    root : path
        The mirror folder.
    records : list of Release
        Every record of every file held and verified, in feed order.
    sha256s : dict
        file_name -> sha256 of each file held and verified.

    Returns
    -------
    list of str
        The index files whose content changed (paths relative to *root*).
    """
    root = Path(root)
    changed = []
    sums = {f"{FILES}/{name}": sha for name, sha in sha256s.items()}
    for rel, data in render_indexes(records).items():
        if atomic_write(root / rel, data):
            changed.append(rel)
        sums[rel] = hashlib.sha256(data).hexdigest()
    # Last, so that it never lists an info file older than itself.
    if atomic_write(root / SUMS, render_sums(sums)):
        changed.append(SUMS)
    return changed


def read_sums(path):
    """Read a ``SHA256SUMS`` file.

    Returns
    -------
    sums : dict
        relative path -> sha256 (lower-case).
    bad_lines : list of int
        Numbers of lines that are not ``<64 hex>  <path>``, or that list a
        path a second time with another sum.
    """
    sums, bad = {}, []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                continue
            match = _SUM_LINE.match(line)
            if not match:
                bad.append(number)
                continue
            rel, sha = match.group(2), match.group(1).lower()
            if sums.get(rel, sha) != sha:  # listed twice, differently: sha256sum -c fails one of them
                bad.append(number)
                continue
            sums[rel] = sha
    return sums, bad


def release_from_dict(d):
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
