"""A full disk (issue 9): refused up front with the figures, or, when it fills mid-way, the good data kept.

Two ways of filling a disk:

- simulated, always run: ``os.statvfs`` reports little free space, or
  ``os.pwrite`` fails with ENOSPC after a byte count;
- real, when the tests run as root and may mount: a 1 MiB tmpfs (skipped
  otherwise, with the reason).
"""

import errno
import os
import subprocess

import pytest
from transfer.xferkit import BIG, client_for, gets, kept_bytes, options, range_start, release, sidecar_of

from magedl.emulator.catalogue import demo_catalogue, make_file
from magedl.errors import LocalFileError
from magedl.server import MemoryStore
from magedl.transfer.download import md5_file
from magedl.transfer.fetch import fetch_release
from magedl.transfer.options import Tuning

SAVE_OFTEN = Tuning(save_interval=0, progress_interval=0, chunk=16 << 10, first_chunk=16 << 10)


class _Vfs:
    def __init__(self, free):
        self.f_bavail, self.f_frsize = free // 4096, 4096


def test_not_enough_space_is_refused_before_anything_is_written(emulator, tmp_path, monkeypatch):
    client = client_for(emulator)
    rel = release(client)
    monkeypatch.setattr(os, "statvfs", lambda path: _Vfs(100 << 10))
    with pytest.raises(LocalFileError) as info:
        fetch_release(client, rel, tmp_path, options())
    message = str(info.value)
    assert "not enough free space" in message and "needs 0.5 MiB more, 0.1 MiB is free" in message
    assert info.value.exit_code == 1
    assert list(tmp_path.iterdir()) == []


def test_space_check_counts_what_the_partial_file_already_holds(emulator, tmp_path, monkeypatch):
    client = client_for(emulator)
    rel = release(client)
    size = len(emulator.store.data(BIG))
    failing = _pwrite_failing_after(monkeypatch, 300_000)
    with pytest.raises(LocalFileError):
        fetch_release(client, rel, tmp_path, options(tuning=SAVE_OFTEN))
    failing.undo()
    kept = kept_bytes(tmp_path / BIG)
    assert kept >= 200_000
    # Just enough room for the rest: the resume must not ask for room for the whole file.
    monkeypatch.setattr(os, "statvfs", lambda path: _Vfs(size - kept + 4096))
    emulator.clear_log()
    fetch_release(client, rel, tmp_path, options())
    [get] = gets(emulator)
    assert range_start(get) == kept and md5_file(tmp_path / BIG) == rel.md5


class _Undo:
    def __init__(self, monkeypatch, name, real):
        self.monkeypatch, self.name, self.real = monkeypatch, name, real

    def undo(self):
        self.monkeypatch.setattr(os, self.name, self.real)


def _pwrite_failing_after(monkeypatch, limit):
    real = os.pwrite
    written = [0]

    def pwrite(fd, data, offset):
        if written[0] + len(data) > limit:
            raise OSError(errno.ENOSPC, "No space left on device")
        written[0] += len(data)
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    return _Undo(monkeypatch, "pwrite", real)


@pytest.mark.parametrize("connections", [1, 4])
def test_disk_full_mid_way_keeps_the_good_data_and_says_what_is_missing(emulator, tmp_path, monkeypatch,
                                                                       connections):
    client = client_for(emulator)
    rel = release(client)
    data = emulator.store.data(BIG)
    failing = _pwrite_failing_after(monkeypatch, 250_000)
    tuning = Tuning(save_interval=0, progress_interval=0, chunk=16 << 10, first_chunk=16 << 10, min_split=16 << 10,
                    piece=32 << 10, align=4 << 10)
    with pytest.raises(LocalFileError) as info:
        fetch_release(client, rel, tmp_path, options(connections=connections, tuning=tuning))
    failing.undo()
    message = str(info.value)
    assert "disk is full" in message and "more is needed" in message and "received are kept" in message
    # The sidecar claims only bytes that are really there, and right.
    part = (tmp_path / (BIG + ".magedl-part")).read_bytes()
    segments = sidecar_of(tmp_path / BIG)["segments"]
    assert 0 < sum(done for _, _, done in segments) <= 250_000
    for start, _, done in segments:
        assert part[start:start + done] == data[start:start + done]
    emulator.clear_log()
    result = fetch_release(client, rel, tmp_path, options(connections=connections, tuning=tuning))
    assert md5_file(tmp_path / BIG) == rel.md5 and result.resumed_from > 0
    assert all(r.range for r in gets(emulator))  # continued, not started over


# -- a real small disk ---------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MiB tmpfs, or a skip when this process may not mount one."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the simulated full-disk tests cover the logic")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_real_disk_too_small_is_refused_up_front(make_emulator, tiny_disk):
    store = MemoryStore(*demo_catalogue(big_size=64 << 10))
    store.replace(BIG, make_file(BIG, 2 << 20, seed=3))
    emulator = make_emulator(store=store)
    client = client_for(emulator)
    with pytest.raises(LocalFileError) as info:
        fetch_release(client, release(client), tiny_disk, options())
    assert "not enough free space" in str(info.value) and "2.0 MiB" in str(info.value)
    assert list(tiny_disk.iterdir()) == []


def test_real_disk_filling_mid_way_keeps_the_data_then_resumes(emulator, tiny_disk):
    client = client_for(emulator)
    rel = release(client)
    data = emulator.store.data(BIG)
    filler = tiny_disk / "filler"

    def fill(progress):  # someone else takes nearly all the space once the download is under way
        if progress.event == "data" and progress.done >= 100_000 and not filler.exists():
            st = os.statvfs(tiny_disk)
            with open(filler, "wb") as f:
                f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - 8192))

    with pytest.raises(LocalFileError) as info:
        fetch_release(client, rel, tiny_disk, options(tuning=SAVE_OFTEN), progress=fill)
    assert "disk is full" in str(info.value)
    part = (tiny_disk / (BIG + ".magedl-part")).read_bytes()
    kept = kept_bytes(tiny_disk / BIG)
    assert kept >= 100_000 and part[:kept] == data[:kept]
    filler.unlink()
    emulator.clear_log()
    fetch_release(client, rel, tiny_disk, options())
    [get] = gets(emulator)
    assert range_start(get) == kept and md5_file(tiny_disk / BIG) == rel.md5
