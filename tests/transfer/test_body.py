"""A response body as blocks (``transfer/body.py``): reused aligned buffers, blocks cut on pages, nothing lost."""

import http.client
import mmap
import random
import socket
import threading
from types import SimpleNamespace

import pytest

from magedl.transfer import body as bodymod
from magedl.transfer.body import _Pool, body, first_bytes
from magedl.transfer.disk import PAGE


def test_a_buffer_is_taken_again_only_once_nobody_holds_it():
    pool = _Pool(2 * PAGE)
    first = pool.take()
    assert isinstance(first, mmap.mmap) and len(first) == 2 * PAGE
    first_id = id(first)
    held = memoryview(first)[:10]  # a consumer (the hasher's queue) still holds a block of it
    del first
    second = pool.take()
    assert id(second) != first_id
    held.release()
    del held
    assert id(pool.take()) == first_id  # nobody holds it any more: taken again, not a new map


def test_a_buffer_is_reused_by_whether_views_of_it_exist_not_by_reference_counts():
    """A view kept anywhere (a queue, a pwrite in progress) keeps the buffer; references to the map alone do not."""
    pool = _Pool(PAGE)
    buf = pool.take()
    extra_refs = [buf, buf, buf]  # what a reference count would see; a view count does not
    assert pool.take() is buf
    view = memoryview(buf)[PAGE // 2:]
    assert pool.take() is not buf
    view.release()
    assert pool.take() is buf and extra_refs


def test_past_its_limit_the_pool_still_gives_buffers_but_keeps_none():
    pool = _Pool(PAGE)
    held = [memoryview(pool.take()) for _ in range(_Pool.KEEP + 3)]  # every block still queued somewhere
    assert len({id(v.obj) for v in held}) == _Pool.KEEP + 3
    assert len(pool._buffers) == _Pool.KEEP


def _response(data, pieces):
    """An http.client response over a socket pair, its body sent in *pieces* by another thread."""
    ours, theirs = socket.socketpair()
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(data)}\r\n\r\n".encode()

    def send():
        theirs.sendall(head)
        at = 0
        for size in pieces:
            theirs.sendall(data[at:at + size])
            at += size
        theirs.sendall(data[at:])
        theirs.close()

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    hc = http.client.HTTPResponse(ours)
    hc.begin()
    raw = SimpleNamespace(_fp=hc, release_conn=lambda: None)
    return SimpleNamespace(raw=raw, headers={}), ours


@pytest.fixture
def data():
    return random.Random(7).randbytes(3 * 2**20 + 1234)


def test_blocks_cut_short_end_on_a_page_and_carry_the_rest(data, monkeypatch):
    monkeypatch.setattr(bodymod, "FILL_TIME", -1)  # every block is cut after its first read
    pieces = [5000, 3000, 70_000, 1] * 40
    response, sock = _response(data, pieces)
    blocks = list(body(response, 256 << 10))
    sock.close()
    assert b"".join(blocks) == data
    assert all(len(b) % PAGE == 0 for b in blocks[:-1])  # so each next block starts on a page
    assert all(isinstance(b.obj, mmap.mmap) for b in blocks)  # aligned buffers, for direct writes


def test_the_first_bytes_are_sniffed_from_the_stream_the_worker_reads_on(data, monkeypatch):
    monkeypatch.setattr(bodymod, "FILL_TIME", -1)
    response, sock = _response(data, [300, 700, 5000])
    blocks = body(response, 256 << 10)
    head = first_bytes(blocks)
    rest = b"".join(bytes(b) for b in blocks)
    sock.close()
    assert len(head) >= 512 and bytes(head) + rest == data


def test_a_small_body_is_one_plain_block(data):
    response, sock = _response(data[:10_000], [])
    [block] = list(body(response, 256 << 10))
    sock.close()
    assert bytes(block) == data[:10_000] and not isinstance(block.obj, mmap.mmap)
