"""The emulator's demo catalogue: a small, realistic feed and deterministic files for it."""

from __future__ import annotations

import hashlib
import random
from typing import Dict, Tuple

__all__ = ["DEMO_MAGEID", "DEMO_TOKEN", "demo_catalogue", "make_file"]

DEMO_MAGEID = "MAG000123456"
# A fixed, obviously fake token: 40 lower-case hex digits like the real ones.
DEMO_TOKEN = hashlib.sha1(b"magedl demo downloads token").hexdigest()


_MAGIC = (
    (".tar.gz", b"\x1f\x8b\x08"),
    (".tgz", b"\x1f\x8b\x08"),
    (".gz", b"\x1f\x8b\x08"),
    (".zip", b"PK\x03\x04"),
    (".tar.bz2", b"BZh9"),
    (".bz2", b"BZh9"),
)


def make_file(name: str, size: int, seed: int = 0) -> bytes:
    """Deterministic content of ``size`` bytes that looks like ``name``.

    Archives start with their format's magic number (gzip, zip, bzip2) and
    continue with pseudo-random bytes; ``.sh`` patches are bash text.

    Parameters
    ----------
    name : str
        File name; its suffix picks the format, and it seeds the bytes so
        two files never share content.
    size : int
    seed : int

    Returns
    -------
    bytes
    """
    # String seeds are hashed with SHA-512 by random, so this is stable
    # across runs and independent of PYTHONHASHSEED.
    rng = random.Random(f"{seed}:{name}")
    lower = name.lower()
    if lower.endswith(".sh") or lower.endswith(".patch"):
        return _patch_text(name, size, rng)
    magic = next((m for suffix, m in _MAGIC if lower.endswith(suffix)), b"")
    magic = magic[:size]
    return magic + rng.randbytes(size - len(magic))


def _patch_text(name, size, rng):
    lines = [b"#!/bin/bash\n", f"# {name}: demo patch for magedl tests\n".encode()]
    words = [b"diff", b"--git", b"a/app/code", b"b/app/code", b"@@", b"-1,7",
             b"+1,8", b"Magento", b"Framework", b"return", b"$this;"]
    out = b"".join(lines)
    while len(out) < size:
        out += b" ".join(rng.choice(words) for _ in range(rng.randint(3, 9))) + b"\n"
    return out[:size]


def _entry(name, file_name, date, **more):
    return {"name": name, "file_name": file_name, "md5": None, "date": date, **more}


def demo_catalogue(seed: int = 0, big_size: int = 8 * 2**20
                   ) -> Tuple[dict, Dict[str, bytes]]:
    """A small, realistic, deterministic catalogue and its files.

    It holds every oddity ``API.md`` lists: ``-pN`` versions up to ``-p10``,
    ``.tar.gz``/``.zip``/``.tar.bz2`` variants, a sample-data archive, an
    EE name with a timestamp suffix, patches with ``ce_versions`` /
    ``ee_versions``, a list-shaped ``other`` category with Magento 1, a
    file name containing ``/``, an empty md5, one file under two versions,
    unknown fields and an unknown category.

    Parameters
    ----------
    seed : int
        Changes every file's bytes (and so the md5s).
    big_size : int
        Size of ``Magento-CE-2.4.7.tar.gz``, the one large file for
        progress and resume demos; the rest are tens of KiB.

    Returns
    -------
    feed : dict
        The ``info/json`` feed; md5s match the content (except the one
        entry whose md5 is deliberately empty).
    files : dict of str to bytes
    """
    d = "2024-04-09 10:04:33"
    notes = "https://experienceleague.adobe.com/docs/commerce-operations/release/notes/overview.html"
    feed = {
        "ce-full": {
            "2.4.7": [
                _entry("Magento Open Source 2.4.7", "Magento-CE-2.4.7.tar.gz", d,
                       release_notes=notes),
                _entry("Magento Open Source 2.4.7", "Magento-CE-2.4.7.zip", d),
                _entry("Magento Open Source 2.4.7", "Magento-CE-2.4.7.tar.bz2", d),
                _entry("Magento Open Source 2.4.7 with Sample Data",
                       "Magento-CE-2.4.7_sample_data.tar.gz", d),
            ],
            "2.4.6-p10": [
                _entry("Magento Open Source 2.4.6-p10", "Magento-CE-2.4.6-p10.tar.gz",
                       "2025-02-11 09:00:00"),
                _entry("Magento Open Source 2.4.6-p10", "Magento-CE-2.4.6-p10.zip",
                       "2025-02-11 09:00:00"),
            ],
            "2.4.6-p2": [
                _entry("Magento Open Source 2.4.6-p2", "Magento-CE-2.4.6-p2.tar.gz",
                       "2023-08-08 12:00:00"),
            ],
            "2.4.6-p1": [
                _entry("Magento Open Source 2.4.6-p1", "Magento-CE-2.4.6-p1.zip",
                       "2023-06-13 12:00:00"),
            ],
            "2.4.6": [
                _entry("Magento Open Source 2.4.6", "Magento-CE-2.4.6.tar.gz",
                       "2023-03-14 12:00:00"),
            ],
        },
        "ee-full": {
            "2.4.7": [
                _entry("Adobe Commerce 2.4.7", "Magento-EE-2.4.7-2024-04-09-10-04-33.zip", d),
                _entry("Adobe Commerce 2.4.7", "Magento-EE-2.4.7.tar.gz", d),
            ],
            "2.4.6-p2": [
                _entry("Adobe Commerce 2.4.6-p2", "Magento-EE-2.4.6-p2.tar.bz2",
                       "2023-08-08 12:00:00"),
            ],
            "2.4.6": [
                _entry("Adobe Commerce 2.4.6", "Magento-EE-2.4.6.tar.gz",
                       "2023-03-14 12:00:00", support_ends="2026-03-14"),
            ],
        },
        "ce-patch": {
            # The same file under two versions, with a "/" in its name.
            "2.4.6": [
                _entry("Security patch APSB24-40", "patches/MDVA-43395_CE_2.4.6_v1.sh",
                       "2024-06-11 12:00:00", ce_versions=["2.4.6", "2.4.6-p1"]),
            ],
            "2.4.6-p1": [
                _entry("Security patch APSB24-40", "patches/MDVA-43395_CE_2.4.6_v1.sh",
                       "2024-06-11 12:00:00", ce_versions=["2.4.6", "2.4.6-p1"]),
            ],
            "1.9.2.1": [
                # Published without a checksum.
                _entry("SUPEE-6788", "PATCH_SUPEE-6788_CE_1.9.2.1_v1.sh",
                       "2015-10-27 00:00:00", ce_versions=["1.9.2.1"]),
            ],
        },
        "ee-patch": {
            "2.4.6": [
                _entry("Security patch APSB24-40 (Commerce)",
                       "MDVA-43395_EE_2.4.6_v1.sh", "2024-06-11 12:00:00",
                       ee_versions=["2.4.6", "2.4.6-p1", "2.4.6-p2"]),
            ],
            "1.14.4.5": [
                _entry("SUPEE-11314", "PATCH_SUPEE-11314_EE_1.14.4.5_v1.sh",
                       "2020-04-28 00:00:00", ee_versions=["1.14.4.5"]),
            ],
        },
        "other": [
            _entry("Magento Open Source 1.9.4.5", "magento-1.9.4.5.tar.gz",
                   "2020-04-28 00:00:00", version="1.9.4.5"),
            _entry("Magento Open Source 1.9 sample data",
                   "magento-sample-data-1.9.2.4.zip", "2016-10-11 00:00:00",
                   version="1.9.2.4"),
        ],
        "b2b-extension": {
            "1.4.2": [
                _entry("Adobe Commerce B2B 1.4.2", "Magento-B2B-1.4.2.zip", d,
                       release_notes=notes),
            ],
        },
    }
    empty_md5 = "PATCH_SUPEE-6788_CE_1.9.2.1_v1.sh"
    files = {}
    for name in sorted(_names(feed)):
        if name == "Magento-CE-2.4.7.tar.gz":
            size = big_size
        else:
            # Varied sizes so length mix-ups show: 16..64 KiB.
            size = random.Random(f"{seed}:size:{name}").randint(16 * 1024, 64 * 1024)
        files[name] = make_file(name, size, seed)
    for entry in _all_entries(feed):
        name = entry["file_name"]
        entry["md5"] = "" if name == empty_md5 else hashlib.md5(files[name]).hexdigest()
    return feed, files


def _all_entries(feed):
    for value in feed.values():
        groups = value.values() if isinstance(value, dict) else [value]
        for entries in groups:
            yield from entries


def _names(feed):
    return {entry["file_name"] for entry in _all_entries(feed)}
