"""The connection loop and request heads, directly: eviction, no spinning, heads in any pieces."""

import errno
import socket
import threading
from contextlib import closing

import pytest

from magedl.server.connections import Limits
from magedl.server.http import BadRequest, HeadReader, parse_head
from magedl.server.loop import ConnectionLoop

HEAD = b"GET /file/a.zip HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\n\r\n"


# -- HeadReader and parse_head -------------------------------------------------------------


def test_a_head_in_any_pieces_ends_at_the_same_place():
    for size in (1, 2, 3, 7, len(HEAD)):
        reader = HeadReader()
        ends = [reader.feed(HEAD[i:i + size]) for i in range(0, len(HEAD), size)]
        assert ends[-1] == len(HEAD) and all(e is None for e in ends[:-1]), size


@pytest.mark.parametrize("data, end", [
    (b"\r\n\r\nGET / HTTP/1.1\r\n\r\nNEXT", 22), (b"GET / HTTP/1.0\n\n", 16), (b"GET / HTTP/1.1\nA: b\r\n\r\n", 23),
])
def test_blank_lines_before_and_bare_newlines(data, end):
    assert HeadReader().feed(data) == end


def test_a_bad_request_line_is_refused_before_the_head_ends():
    reader = HeadReader()
    assert reader.feed(b"GET /info/help") is None
    with pytest.raises(BadRequest) as info:
        reader.feed(b"\r\n")  # HTTP/0.9: no headers will ever come
    assert info.value.status == 400


def test_the_size_limit_counts_the_whole_head():
    reader = HeadReader(limit=100)
    assert reader.feed(b"GET / HTTP/1.1\r\n") is None
    with pytest.raises(BadRequest) as info:
        for _ in range(20):
            reader.feed(b"X-A: bbbbbb\r\n")
    assert info.value.status == 431


def test_parse_head_reads_keep_alive_and_body_length():
    head = parse_head(b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nContent-Length: 007\r\n\r\n")
    assert (head.method, head.target, head.keep_alive, head.body_length) == ("GET", "/x", True, 7)
    assert not parse_head(b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n").keep_alive
    assert not parse_head(b"GET /x HTTP/1.0\r\n\r\n").keep_alive
    assert parse_head(b"GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive
    assert not parse_head(b"GET /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n").keep_alive
    with pytest.raises(BadRequest):
        parse_head(b"GET /x HTTP/1.1\r\n" + b"A: b\r\n" * 101 + b"\r\n")


# -- the loop ---------------------------------------------------------------------------------


class Harness:
    """A ConnectionLoop on a real listener; dispatched heads are collected, connections released."""

    def __init__(self, listener, limits):
        self.heads = []
        self.got = threading.Condition()
        self.loop = ConnectionLoop(listener, limits, self.dispatch, self.reject)
        self.thread = threading.Thread(target=self.loop.run, daemon=True)

    def dispatch(self, conn, head, rest):
        with self.got:
            self.heads.append(head)
            self.got.notify_all()
        self.loop.release(conn)

    def reject(self, conn, error):
        self.loop.release(conn)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.loop.stop()
        self.thread.join(10)


def listener_socket(cls=socket.socket):
    sock = cls(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


def closed(sock):
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:  # closed before its bytes were read
        return True


def test_at_the_cap_the_longest_idle_connection_makes_room():
    with closing(listener_socket()) as listener, Harness(listener, Limits(max_connections=2)) as h:
        port = listener.getsockname()[1]
        first = socket.create_connection(("127.0.0.1", port), timeout=10)
        first.sendall(b"GET / HTTP/1.1\r\n")
        second = socket.create_connection(("127.0.0.1", port), timeout=10)
        second.sendall(b"GET / HTTP/1.1\r\n")
        third = socket.create_connection(("127.0.0.1", port), timeout=10)
        third.sendall(HEAD)
        with h.got:
            assert h.got.wait_for(lambda: h.heads, 10)
        assert h.heads == [HEAD]
        assert closed(first)  # the oldest idle one was closed for the newcomer
        second.sendall(b"Host: x\r\n\r\n")  # the other is still served
        with h.got:
            assert h.got.wait_for(lambda: len(h.heads) == 2, 10)
        for sock in (first, second, third):
            sock.close()


class NoFds(socket.socket):
    """A listener whose accept() always fails as when the process is out of file descriptors."""

    tried = None

    def accept(self):
        self.tried.set()
        raise OSError(errno.EMFILE, "Too many open files")


def test_out_of_file_descriptors_the_loop_stops_accepting_instead_of_spinning():
    listener = listener_socket(NoFds)
    listener.tried = threading.Event()
    h = Harness(listener, Limits())
    calls = []
    after = threading.Event()
    real_select = h.loop._selector.select

    def select(timeout=None):
        if listener.tried.is_set():
            calls.append((timeout, listener in [k.fileobj for k in h.loop._selector.get_map().values()]))
            after.set()
        return real_select(timeout)

    h.loop._selector.select = select
    with closing(listener), h:
        client = socket.create_connection(listener.getsockname(), timeout=10)
        assert after.wait(10)
        # The wait after the failed accept blocks with the listener off: no busy loop on a readable listener.
        assert calls[0] == (None, False)
        client.close()
