"""The in-order hasher: right digests whatever order the bytes are written in, and only bytes the file holds."""

import hashlib
import os
import random

import pytest

from magedl.transfer import hashing
from magedl.transfer.hashing import Hasher, InlineHasher, file_digests

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


@pytest.fixture
def reads(monkeypatch):
    """Every read-back the hasher makes."""
    made, real_pread = [], os.pread
    monkeypatch.setattr(hashing.os, "pread", lambda *a: made.append(a) or real_pread(*a))
    return made


def expected(data):
    return {"md5": hashlib.md5(data).hexdigest(), "sha256": hashlib.sha256(data).hexdigest()}


def blocks(data, size=64 * 1024):
    return [(i, data[i:i + size]) for i in range(0, len(data), size)]


@pytest.mark.parametrize("cls", [Hasher, InlineHasher])
def test_blocks_added_as_they_are_written_in_order_are_hashed_from_memory(cls, data, fd, reads):
    given_back = []
    hasher = cls(fd, ("md5", "sha256"), given_back.append)
    for at, block in blocks(data):
        os.pwrite(fd, block, at)
        assert hasher.expects(at) and hasher.add(block, at)
        hasher.written_up_to(at + len(block))
    assert hasher.finish(SIZE) == expected(data)
    assert reads == []  # every block was handed over in memory: nothing read back
    assert len(given_back) == len(blocks(data))  # and each buffer given back once hashed


@pytest.mark.parametrize("cls", [Hasher, InlineHasher])
def test_out_of_order_blocks_are_refused_and_read_back_in_order(cls, data, fd):
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
        if hasher.expects(at):
            assert hasher.add(block, at)
        else:
            assert not hasher.add(block, at)  # a later piece: not where the stream stands
        hasher.written_up_to(min(prefix, SIZE))
    assert hasher.finish(SIZE) == expected(data)


def test_a_full_queue_makes_the_writer_wait_not_the_hasher_read(data, fd, reads):
    """A writer ahead of the hasher waits for room: nothing is read back, memory stays bounded."""
    hasher = Hasher(fd, ("md5",), queue_max=100 * 1024)
    for at, block in blocks(data, 48 * 1024):
        os.pwrite(fd, block, at)
        assert hasher.add(block, at)
        hasher.written_up_to(at + len(block))
    assert hasher.finish(SIZE)["md5"] == hashlib.md5(data).hexdigest()
    assert reads == []


@pytest.mark.parametrize("cls", [Hasher, InlineHasher])
def test_only_bytes_in_the_file_are_hashed_whatever_a_refused_block_held(cls, data, fd):
    """A block the hasher refused is never hashed: what is read back is what the file holds (issue 17)."""
    hasher = cls(fd, ("md5",))
    other = bytes(b ^ 0xFF for b in data[:4096])
    os.pwrite(fd, data[4096:8192], 4096)
    assert not hasher.add(other, 4096)  # another answer's bytes for a range the stream has not reached
    os.pwrite(fd, data[:4096], 0)
    assert hasher.add(data[:4096], 0)
    hasher.written_up_to(8192)
    os.pwrite(fd, data[8192:], 8192)
    assert hasher.finish(SIZE)["md5"] == hashlib.md5(data).hexdigest()


def test_a_file_shorter_than_claimed_is_an_error_not_a_hang(tmp_path):
    fd = os.open(tmp_path / "short", os.O_RDWR | os.O_CREAT)
    os.write(fd, b"x" * 10)
    try:
        for hasher in (Hasher(fd), InlineHasher(fd)):
            with pytest.raises(OSError):
                hasher.finish(100)
    finally:
        os.close(fd)


def test_file_digests(tmp_path, data):
    path = tmp_path / "f"
    path.write_bytes(data)
    assert file_digests(path, ("md5", "sha256")) == expected(data)
