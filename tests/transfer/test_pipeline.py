"""network -> writer -> hasher (``transfer/pipeline.py``): counted once written, hashed once written, buffers reused."""

import errno
import hashlib
import mmap
import os
import threading

import pytest

from magedl.transfer.disk import PAGE, aligned
from magedl.transfer.pipeline import Buffers, InlinePipeline, Pipeline


@pytest.fixture
def part(tmp_path):
    fd = os.open(tmp_path / "part", os.O_RDWR | os.O_CREAT, 0o600)
    yield fd
    os.close(fd)


def page_block(buffers, data):
    buf = buffers.take()
    buf[:len(data)] = data
    return memoryview(buf)[:len(data)]


def test_a_buffer_given_back_is_taken_again_and_only_so_many_are_kept():
    buffers = Buffers(2 * PAGE, keep=2)
    first = buffers.take()
    assert isinstance(first, mmap.mmap) and len(first) == 2 * PAGE
    assert buffers.take() is not first  # not given back yet: a new one
    buffers.give(memoryview(first)[:10])  # a block of it, as the last stage gives it back
    assert buffers.take() is first
    for buf in [buffers.take() for _ in range(4)]:
        buffers.give(buf)
    assert len(buffers._free) == 2
    buffers.give(b"not ours")  # a block that came without a buffer: ignored
    buffers.give(aligned(PAGE))  # another size: ignored
    assert len(buffers._free) == 2


@pytest.mark.parametrize("kind", [Pipeline, InlinePipeline])
def test_a_block_is_counted_and_hashed_only_once_it_is_in_the_file(part, kind):
    seen, buffers = [], Buffers(PAGE)
    blocks = [os.urandom(PAGE) for _ in range(20)]

    def written(nbytes, tag):
        at = tag * PAGE
        seen.append((tag, os.pread(part, nbytes, at) == blocks[tag]))
        return at + nbytes

    pipeline = kind(part, ("md5",), written, buffers)
    for i, block in enumerate(blocks):
        pipeline.put(page_block(buffers, block), i * PAGE, i)
    digests = pipeline.finish(20 * PAGE)
    pipeline.close()
    assert seen == [(i, True) for i in range(20)]
    assert digests["md5"] == hashlib.md5(b"".join(blocks)).hexdigest()
    assert not pipeline.alive
    assert buffers._free  # the buffers came back to be used again


def test_out_of_order_blocks_are_written_through_the_page_cache_and_read_back(part):
    buffers, done = Buffers(PAGE), set()
    data = os.urandom(8 * PAGE)

    def written(nbytes, at):
        done.add(at)
        prefix = 0
        while prefix in done:
            prefix += PAGE
        return min(prefix, len(data))

    pipeline = Pipeline(part, ("md5",), written, buffers)
    cached_log = []
    real_write = pipeline.disk.write
    pipeline.disk.write = lambda block, at, cached: cached_log.append((at, cached)) or real_write(block, at, cached)
    for at in [4 * PAGE, 5 * PAGE, 0, PAGE, 2 * PAGE, 3 * PAGE, 6 * PAGE, 7 * PAGE]:
        pipeline.put(page_block(buffers, data[at:at + PAGE]), at, at)
        pipeline.drain()
    assert pipeline.finish(len(data))["md5"] == hashlib.md5(data).hexdigest()
    pipeline.close()
    assert dict(cached_log) == {4 * PAGE: True, 5 * PAGE: True, 0: False, PAGE: False, 2 * PAGE: False,
                            3 * PAGE: False, 6 * PAGE: False, 7 * PAGE: False}


def test_a_disk_error_in_the_writer_is_raised_to_whoever_puts_or_drains_next(part, monkeypatch):
    counted = []
    pipeline = Pipeline(part, ("md5",), lambda n, tag: counted.append(n) or 0, Buffers(PAGE))
    monkeypatch.setattr(os, "pwrite", lambda *a: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    pipeline.put(b"x" * 100, 0)
    with pytest.raises(OSError) as info:
        pipeline.drain()
    assert info.value.errno == errno.ENOSPC and counted == []
    with pytest.raises(OSError):
        pipeline.put(b"y", 100)
    pipeline.close()


def test_closing_drops_what_was_not_written(part):
    counted, in_hand = [], threading.Event()

    def written(nbytes, tag):  # the first block is still being handled when the pipeline is closed
        in_hand.set()
        with pipeline._cond:
            pipeline._cond.wait_for(lambda: pipeline._closed, timeout=5)
        counted.append(tag)
        return 0

    pipeline = Pipeline(part, ("md5",), written, Buffers(PAGE))
    for i in range(5):
        pipeline.put(b"x", i, i)
    assert in_hand.wait(5)
    pipeline.close()
    assert not pipeline.alive and counted == [0]  # the one in hand finished; the four queued were dropped
