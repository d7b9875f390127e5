"""Side files are never written through a planted symlink (issue 13, item 3).

Anyone who can write into the output folder can plant ``NAME.magedl-part``
(with a forged sidecar that makes it look resumable), ``NAME.magedl-part.json``,
``NAME.magedl-lock`` or ``NAME.magedl-part.json.tmp`` (where older versions
staged the sidecar) as a symlink to a file of the victim's. A run must refuse
with a clear LocalFileError or step around it, and the link's target must be
left exactly as it was (nor created, for a dangling link).
"""

import hashlib
import json
import os
import stat

import pytest

from magedl.config import Credentials, Settings
from magedl.errors import LocalFileError
from magedl.service.api import Client
from magedl.service.retry import RetryPolicy
from magedl.transfer.fetch import fetch_release
from magedl.transfer.options import TransferOptions, Tuning

BIG = "Magento-CE-2.4.7.tar.gz"
PRECIOUS = b"the victim's own data\n"


def client_for(server):
    return Client(Settings(server.base_url, Credentials(server.mageid, server.token)),
                  retry=RetryPolicy(attempts=2, backoff=0.01), timeout=(5.0, 5.0))


def forged_sidecar(url, md5, size, new_format):
    """A sidecar that makes a planted partial file look resumable from byte 0."""
    doc = {"url": url, "md5": md5, "size": size, "etag": None, "last_modified": None,
           "segments": [[0, size, 0]]}
    if new_format:
        doc.update(format=1, tool="magedl", splittable=False)
    else:
        doc["max_workers"] = 1  # what earlier versions wrote, and trusted
    return json.dumps(doc)


@pytest.fixture
def victim(tmp_path):
    """A file outside the download folder that the links point at, and a path that must not appear."""
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "victim"
    target.write_bytes(PRECIOUS)
    return target, outside / "never-created"


@pytest.mark.parametrize("dangling", [False, True])
@pytest.mark.parametrize("new_format", [False, True])
def test_planted_partial_file_link_with_forged_sidecar(emulator, tmp_path, victim, new_format, dangling):
    client = client_for(emulator)
    rel = next(r for r in client.catalog() if r.file_name == BIG)
    size = len(emulator.store.data(BIG))
    out = tmp_path / "out"
    out.mkdir()
    target, missing = victim
    (out / (BIG + ".magedl-part")).symlink_to(missing if dangling else target)
    (out / (BIG + ".magedl-part.json")).write_text(
        forged_sidecar(client.file_url(BIG), rel.md5, size, new_format))
    with pytest.raises(LocalFileError) as info:
        fetch_release(client, rel, out, TransferOptions(connections=1))
    assert "symbolic link" in str(info.value) and str(out) in str(info.value)
    assert target.read_bytes() == PRECIOUS and not missing.exists()
    assert not (out / BIG).exists()


@pytest.mark.parametrize("suffix", [".magedl-part.json", ".magedl-lock"])
@pytest.mark.parametrize("dangling", [False, True])
def test_planted_sidecar_or_lock_link_is_refused(emulator, tmp_path, victim, suffix, dangling):
    client = client_for(emulator)
    rel = next(r for r in client.catalog() if r.file_name == BIG)
    target, missing = victim
    (tmp_path / (BIG + suffix)).symlink_to(missing if dangling else target)
    with pytest.raises(LocalFileError) as info:
        fetch_release(client, rel, tmp_path, TransferOptions(connections=1))
    assert "symbolic link" in str(info.value)
    assert target.read_bytes() == PRECIOUS and not missing.exists()
    assert [r for r in emulator.log if r.file_name == BIG] == []  # refused before any request


@pytest.mark.parametrize("dangling", [False, True])
def test_a_link_at_the_old_sidecar_staging_name_is_never_written(emulator, tmp_path, victim, dangling):
    """Earlier versions wrote the sidecar to NAME.magedl-part.json.tmp, following a link there."""
    client = client_for(emulator)
    rel = next(r for r in client.catalog() if r.file_name == BIG)
    target, missing = victim
    out = tmp_path / "out"
    out.mkdir()
    (out / (BIG + ".magedl-part.json.tmp")).symlink_to(missing if dangling else target)
    # Progress saved at every chunk, so the sidecar is written many times during the run.
    fetch_release(client, rel, out, TransferOptions(connections=1, tuning=Tuning(save_interval=0)))
    assert hashlib.md5((out / BIG).read_bytes()).hexdigest() == rel.md5
    assert target.read_bytes() == PRECIOUS and not missing.exists()


def test_files_and_folders_get_0644_and_0755_whatever_the_umask(emulator, tmp_path):
    client = client_for(emulator)
    rel = next(r for r in client.catalog() if r.file_name == BIG)
    out = tmp_path / "new" / "folder"
    modes = {}

    def look(progress):
        for path in out.iterdir():
            modes[path.name] = stat.S_IMODE(path.lstat().st_mode)

    old = os.umask(0)
    try:
        every_chunk = Tuning(save_interval=0, progress_interval=0, block=16 << 10)
        fetch_release(client, rel, out, TransferOptions(connections=1, tuning=every_chunk), progress=look)
    finally:
        os.umask(old)
    assert {BIG + ".magedl-part", BIG + ".magedl-part.json", BIG + ".magedl-lock", BIG} <= set(modes), modes
    assert set(modes.values()) == {0o644}
    assert stat.S_IMODE(out.stat().st_mode) == stat.S_IMODE(out.parent.stat().st_mode) == 0o755


@pytest.mark.parametrize("folder_locked", [False, True])
def test_a_folder_locked_by_the_caller_gets_no_lock_file_per_file(emulator, tmp_path, lock_files_taken, folder_locked):
    """A mirror's staging folder is under the mirror's own lock: a lock file made and deleted per archive
    would only cost time (on ext4 without a journal, each deleted inode is scanned past by the next files
    made nearby for minutes; docs/scale.md). Any other folder keeps its per-file lock."""
    client = client_for(emulator)
    rel = next(r for r in client.catalog() if r.file_name == BIG)
    result = fetch_release(client, rel, tmp_path, TransferOptions(connections=1, folder_locked=folder_locked))
    assert hashlib.md5(result.path.read_bytes()).hexdigest() == rel.md5
    assert [os.path.basename(p) for p in lock_files_taken] == ([] if folder_locked else [BIG + ".magedl-lock"])
    assert not (tmp_path / (BIG + ".magedl-lock")).exists()
