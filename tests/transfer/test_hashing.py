"""The in-order hasher: right digests whatever order the bytes land in."""

import hashlib
import os
import random

import pytest

from magedl.transfer import hashing
from magedl.transfer.hashing import InlineHasher, PrefixHasher, file_digests

SIZE = 3 * 2**20 + 12345


@pytest.fixture
def data():
    return random.Random(1).randbytes(SIZE)


@pytest.fixture
def fd(tmp_path):
    fd = os.open(tmp_path / "part", os.O_RDWR | os.O_CREAT)
    os.ftruncate(fd, SIZE)
    yield fd
    os.close(fd)


def expected(data):
    return {"md5": hashlib.md5(data).hexdigest(), "sha256": hashlib.sha256(data).hexdigest()}


def blocks(data, size=64 * 1024):
    return [(i, data[i:i + size]) for i in range(0, len(data), size)]


@pytest.mark.parametrize("cls", [PrefixHasher, InlineHasher])
def test_in_order_stream_is_hashed_from_memory(cls, data, fd, monkeypatch):
    reads = []
    real_pread = os.pread
    monkeypatch.setattr(hashing.os, "pread", lambda *a: reads.append(a) or real_pread(*a))
    hasher = cls(fd, ("md5", "sha256"))
    for at, block in blocks(data):
        hasher.offer(block, at)
        os.pwrite(fd, block, at)
        hasher.advance(at + len(block))
    assert hasher.finish(SIZE) == expected(data)
    assert reads == []  # every block was handed over in memory: nothing read back


@pytest.mark.parametrize("cls", [PrefixHasher, InlineHasher])
def test_out_of_order_segments_are_read_back_in_order(cls, data, fd):
    hasher = cls(fd, ("md5", "sha256"))
    parts = blocks(data, 256 * 1024)
    order = parts[1::2] + parts[0::2]  # every second piece first, then the gaps
    written = set()
    for at, block in order:
        os.pwrite(fd, block, at)
        written.add(at)
        prefix = 0
        while prefix < SIZE and prefix in written:
            prefix += 256 * 1024
        hasher.offer(block, at)
        hasher.advance(min(prefix, SIZE))
    assert hasher.finish(SIZE) == expected(data)


def test_a_full_hand_over_queue_falls_back_to_reading(data, fd):
    hasher = PrefixHasher(fd, ("md5",), queue_max=100 * 1024, wait=False)
    for at, block in blocks(data, 48 * 1024):
        hasher.offer(block, at)
        os.pwrite(fd, block, at)
        hasher.advance(at + len(block))
    assert hasher.finish(SIZE)["md5"] == hashlib.md5(data).hexdigest()


def test_a_full_hand_over_queue_makes_the_writer_wait_not_the_hasher_read(data, fd, monkeypatch):
    """By default a writer ahead of the hasher waits for room: nothing is read back, memory stays bounded."""
    reads = []
    real_pread = os.pread
    monkeypatch.setattr(hashing.os, "pread", lambda *a: reads.append(a) or real_pread(*a))
    hasher = PrefixHasher(fd, ("md5",), queue_max=100 * 1024)
    for at, block in blocks(data, 48 * 1024):
        hasher.offer(block, at)
        os.pwrite(fd, block, at)
        hasher.advance(at + len(block))
    assert hasher.finish(SIZE)["md5"] == hashlib.md5(data).hexdigest()
    assert reads == []


def test_a_file_shorter_than_claimed_is_an_error_not_a_hang(tmp_path):
    fd = os.open(tmp_path / "short", os.O_RDWR | os.O_CREAT)
    os.write(fd, b"x" * 10)
    try:
        hasher = PrefixHasher(fd)
        with pytest.raises(OSError):
            hasher.finish(100)
    finally:
        os.close(fd)


def test_file_digests(tmp_path, data):
    path = tmp_path / "f"
    path.write_bytes(data)
    assert file_digests(path, ("md5", "sha256")) == expected(data)


def test_blocks_offered_as_they_are_written_are_hashed_from_memory_and_nothing_is_read(data, fd, monkeypatch):
    """The writer offers each block once it is in the file; in order, the hasher never reads the file."""
    reads = []
    real_pread = os.pread
    monkeypatch.setattr(hashing.os, "pread", lambda *a: reads.append(a) or real_pread(*a))
    hasher = PrefixHasher(fd, ("md5",))
    for at, block in blocks(data):
        os.pwrite(fd, block, at)
        hasher.offer(block, at)
        hasher.advance(at + len(block))
    assert hasher.finish(SIZE)["md5"] == hashlib.md5(data).hexdigest()
    assert reads == []


@pytest.mark.parametrize("cls", [PrefixHasher, InlineHasher])
def test_an_offer_out_of_order_is_ignored_until_its_bytes_are_written(cls, data, fd):
    hasher = cls(fd, ("md5",))
    parts = blocks(data)
    hasher.offer(parts[1][1], parts[1][0])  # a later segment's block: not where the stream stands
    for at, block in parts:
        os.pwrite(fd, block, at)
    hasher.advance(SIZE)
    assert hasher.finish(SIZE)["md5"] == hashlib.md5(data).hexdigest()
