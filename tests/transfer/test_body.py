"""A response body as blocks (``transfer/body.py``): aligned buffers, blocks cut on pages, nothing lost."""

import http.client
import mmap
import random
import socket
import threading
from types import SimpleNamespace

import pytest

from magedl.transfer import body as bodymod
from magedl.transfer.body import body, first_bytes
from magedl.transfer.disk import PAGE
from magedl.transfer.pipeline import Buffers


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
    blocks = list(body(response, Buffers(256 << 10)))
    sock.close()
    assert b"".join(blocks) == data
    assert all(len(b) % PAGE == 0 for b in blocks[:-1])  # so each next block starts on a page
    assert all(isinstance(b.obj, mmap.mmap) for b in blocks)  # aligned buffers, for direct writes


def test_the_first_bytes_are_sniffed_from_the_stream_the_worker_reads_on(data, monkeypatch):
    monkeypatch.setattr(bodymod, "FILL_TIME", -1)
    response, sock = _response(data, [300, 700, 5000])
    blocks = body(response, Buffers(256 << 10))
    head = first_bytes(blocks)
    rest = b"".join(bytes(b) for b in blocks)
    sock.close()
    assert len(head) >= 512 and bytes(head) + rest == data


def test_a_small_body_is_one_plain_block(data):
    response, sock = _response(data[:10_000], [])
    [block] = list(body(response, Buffers(256 << 10)))
    sock.close()
    assert bytes(block) == data[:10_000] and not isinstance(block.obj, mmap.mmap)
