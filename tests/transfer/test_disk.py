"""How bytes reach the disk (``transfer/disk.py``), and a full disk (issue 9).

Direct writes: whole pages from aligned buffers bypass the page cache, the
rest goes through it, and a filesystem that refuses or a disk that is slow
turns them off (the writer thread itself: test_pipeline.py).

A full disk: refused up front with the figures, or, when it fills mid-way, the good data kept.

Two ways of filling a disk:

- simulated, always run: ``os.statvfs`` reports little free space, or
  ``os.pwrite`` fails with ENOSPC after a byte count;
- real, when the tests run as root and may mount: a 1 MiB tmpfs (skipped
  otherwise, with the reason).
"""

import errno
import hashlib
import os
import subprocess

import pytest
from transfer.xferkit import BIG, client_for, gets, kept_bytes, options, range_start, release, sidecar_of

from magedl.emulator.catalogue import demo_catalogue, make_file
from magedl.errors import LocalFileError
from magedl.server import MemoryStore
from magedl.transfer import disk as diskmod
from magedl.transfer import hashing
from magedl.transfer.disk import PAGE, Disk, aligned
from magedl.transfer.fetch import fetch_release
from magedl.transfer.one_file import md5_file
from magedl.transfer.options import Tuning
from magedl.transfer.pipeline import Buffers, Pipeline

SAVE_OFTEN = Tuning(save_interval=0, progress_interval=0, block=16 << 10)


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
    tuning = Tuning(save_interval=0, progress_interval=0, block=16 << 10, min_split=16 << 10,
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


# -- direct writes and the writer thread ---------------------------------------


def _spy_pwrite(monkeypatch, fail_on=None):
    """Record ``(fd, offset, length)`` of every ``os.pwrite``; *fail_on(fd)* may return an errno to raise."""
    real = os.pwrite
    calls = []

    def pwrite(fd, data, offset):
        code = fail_on(fd) if fail_on else None
        if code:
            raise OSError(code, os.strerror(code))
        calls.append((fd, offset, len(data)))
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    return calls


def _page_block(data):
    buf = aligned(len(data))
    buf[:] = data
    return memoryview(buf)


@pytest.fixture
def part(tmp_path):
    fd = os.open(tmp_path / "part", os.O_RDWR | os.O_CREAT, 0o600)
    yield fd
    os.close(fd)


def _direct_disk(fd):
    disk = Disk(fd, direct=True)
    if not disk.direct:
        pytest.skip("this filesystem takes no O_DIRECT writes; the page-cache path is what runs here")
    return disk


def test_whole_pages_go_direct_and_the_rest_through_the_page_cache(part, monkeypatch):
    disk = _direct_disk(part)
    calls = _spy_pwrite(monkeypatch)
    first, second, third = os.urandom(3 * PAGE), os.urandom(1000), os.urandom(PAGE + 5)
    disk.write(_page_block(first), 0)  # whole pages, at a page, from an aligned buffer: direct
    disk.write(second, 3 * PAGE)  # bytes: the page cache
    disk.write(_page_block(third), 4 * PAGE)  # not a whole number of pages: the page cache
    disk.close()
    assert [fd != part for fd, _, _ in calls] == [True, False, False]
    assert os.pread(part, 10 * PAGE, 0) == first + second + b"\0" * (PAGE - 1000) + third


def test_a_filesystem_that_refuses_a_direct_write_gets_it_through_the_page_cache(part, monkeypatch):
    disk = _direct_disk(part)
    direct_fd = disk._direct
    calls = _spy_pwrite(monkeypatch, fail_on=lambda fd: errno.EINVAL if fd == direct_fd else None)
    data = os.urandom(2 * PAGE)
    disk.write(_page_block(data), 0)
    assert not disk.direct and [fd for fd, _, _ in calls] == [part]
    assert os.pread(part, 2 * PAGE, 0) == data


def test_other_errors_of_a_direct_write_are_the_disks_own(part, monkeypatch):
    disk = _direct_disk(part)
    direct_fd = disk._direct
    _spy_pwrite(monkeypatch, fail_on=lambda fd: errno.ENOSPC if fd == direct_fd else None)
    with pytest.raises(OSError) as info:
        disk.write(_page_block(bytes(PAGE)), 0)
    assert info.value.errno == errno.ENOSPC
    disk.close()


def test_a_disk_slower_than_the_page_cache_turns_direct_writes_off(part, monkeypatch):
    disk = _direct_disk(part)
    monkeypatch.setattr(diskmod, "SLOW_WINDOW", 4 * PAGE)
    clock = iter(range(0, 10**6, 10))  # every write seems to take 10 s
    monkeypatch.setattr(diskmod.time, "monotonic", lambda: next(clock))
    for i in range(8):
        assert disk.direct
        disk.write(_page_block(bytes(PAGE)), i * PAGE)
    assert not disk.direct  # two windows in a row far below SLOW_DISK
    disk.write(_page_block(b"x" * PAGE), 8 * PAGE)
    assert os.pread(part, PAGE, 8 * PAGE) == b"x" * PAGE


def test_one_slow_window_is_not_enough_to_turn_direct_writes_off(part, monkeypatch):
    disk = _direct_disk(part)
    monkeypatch.setattr(diskmod, "SLOW_WINDOW", 4 * PAGE)
    ticks = iter([0, 10, 20, 30, 40, 50, 60, 70] + [80] * 100)  # the first window is slow, the rest instant
    monkeypatch.setattr(diskmod.time, "monotonic", lambda: next(ticks))
    for i in range(12):
        disk.write(_page_block(bytes(PAGE)), i * PAGE)
    assert disk.direct
    disk.close()


def test_a_short_direct_write_is_finished(part, monkeypatch):
    disk = _direct_disk(part)
    direct_fd, real = disk._direct, os.pwrite
    # The disk takes one page of each direct write (as a nearly full one may), the rest follows.
    monkeypatch.setattr(os, "pwrite", lambda fd, data, at: real(fd, data[:PAGE] if fd == direct_fd else data, at))
    data = os.urandom(3 * PAGE)
    disk.write(_page_block(data), 0)
    assert os.pread(part, 3 * PAGE, 0) == data
    disk.close()


def test_a_large_download_is_written_direct(make_emulator, tmp_path, monkeypatch):
    if not _takes_direct(tmp_path):
        pytest.skip("this filesystem takes no O_DIRECT writes")
    direct = []
    real = Disk._write_direct
    monkeypatch.setattr(Disk, "_write_direct", lambda self, view, at: direct.append(len(view)) or real(self, view, at))
    emulator = make_emulator(store=MemoryStore(*demo_catalogue(big_size=8 << 20)))
    client = client_for(emulator)
    rel = release(client)
    fetch_release(client, rel, tmp_path, options(tuning=Tuning()))  # the defaults: 1 MiB blocks
    assert md5_file(tmp_path / BIG) == rel.md5
    assert sum(direct) >= len(emulator.store.data(BIG)) * 0.9  # all but the first block and the tail


def test_bytes_read_back_are_never_written_direct(tmp_path, monkeypatch):
    """A split file's pieces land out of order and are read back: those go through the page cache.

    The writer thread and the hasher thread of a real pipeline, fed in a fixed order (a fetch over
    several connections gives an order that depends on the scheduler, and may give no in-order
    block from a pooled buffer at all): one in order, one ahead of the stream, then the gap.
    """
    if not _takes_direct(tmp_path):
        pytest.skip("this filesystem takes no O_DIRECT writes")
    direct, reads = [], []
    real_write, real_pread = Disk._write_direct, os.pread
    monkeypatch.setattr(Disk, "_write_direct",
                        lambda self, view, at: direct.append((at, at + len(view))) or real_write(self, view, at))
    monkeypatch.setattr(hashing.os, "pread", lambda fd, n, at: reads.append((at, at + n)) or real_pread(fd, n, at))
    size = 1 << 20
    data, buffers, landed = os.urandom(3 * size), Buffers(size), set()

    def written(nbytes, at):  # the end of the written prefix, as the segment bookkeeping reports it
        landed.add(at)
        prefix = 0
        while prefix in landed:
            prefix += size
        return prefix

    fd = os.open(tmp_path / "part", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        pipeline = Pipeline(fd, ("md5",), written, buffers)
        for at in (0, 2 * size, size):
            block = buffers.take()
            block[:] = data[at:at + size]
            pipeline.put(memoryview(block), at, at)
        digests = pipeline.finish(3 * size)
        pipeline.close()
    finally:
        os.close(fd)
    assert (tmp_path / "part").read_bytes() == data
    assert digests["md5"] == hashlib.md5(data).hexdigest()
    assert direct == [(0, size), (size, 2 * size)]  # the blocks that continued the stream
    assert reads and min(r[0] for r in reads) == 2 * size  # the one ahead of it was read back
    assert not [(r, d) for r in reads for d in direct if r[0] < d[1] and d[0] < r[1]]


def _takes_direct(folder):
    path = folder / ".probe"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        disk = Disk(fd, direct=True)
        ok = disk.direct
        disk.close()
        return ok
    finally:
        os.close(fd)
        path.unlink()
