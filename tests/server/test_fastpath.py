"""The common request answered on the connection loop's thread (magedl/server/fastpath.py).

Each test warms the kept descriptor and reply head first, then changes what they stand for: the
answer must be the folder as it is now, exactly as the full path gives it. On the old server, the
counted tests fail (every request went to a worker and opened its file again).
"""

import json
import os
import socket
import threading
from contextlib import closing

import pytest
import requests

import magedl.server.fastpath as fastpath
from magedl.server import ApiServer, DirStore

NAMES = ["PATCH-A.tar.gz", "PATCH-B.tar.gz", "PATCH-C.tar.gz"]


def feed_of(names):
    return {"ce-patch": {"2.4.6": [{"name": n, "file_name": n, "md5": "0" * 32} for n in names]}}


def big_reply_size():
    """Bytes more than the server's socket and a :func:`small_window` client can hold unread together.

    The send buffer may grow to ``net.ipv4.tcp_wmem``'s maximum; the client's receive buffer is fixed.
    """
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem") as fh:
            most = int(fh.read().split()[2])
    except (OSError, ValueError, IndexError):
        most = 4 << 20
    return max(12 << 20, 2 * most + (4 << 20))


def small_window(port):
    """A client whose receive buffer stays 64 KiB (set before connecting: the kernel then does not grow it)."""
    sock = socket.socket()
    sock.settimeout(10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
    sock.connect(("127.0.0.1", port))
    return sock


@pytest.fixture
def mirror(tmp_path):
    root = tmp_path / "m"
    (root / "info").mkdir(parents=True)
    (root / "file").mkdir()
    (root / "info" / "json").write_text(json.dumps(feed_of(NAMES)))
    for name in NAMES:
        (root / "file" / name).write_bytes(b"\x1f\x8b\x08" + name.encode() * 100)
    return root


@pytest.fixture
def counted(monkeypatch):
    """How many requests the full path answered (on a worker)."""
    calls = []
    real = ApiServer._exchange

    def exchange(self, conn, head, rest):
        calls.append(head.split(b"\r\n", 1)[0])
        return real(self, conn, head, rest)

    monkeypatch.setattr(ApiServer, "_exchange", exchange)
    return calls


class Replies:
    """The replies on one keep-alive connection, in order."""

    def __init__(self, sock):
        self.sock, self.data = sock, b""

    def _more(self):
        chunk = self.sock.recv(1 << 20)
        assert chunk, "the server closed a keep-alive connection"
        self.data += chunk

    def next(self, head_only=False):
        while b"\r\n\r\n" not in self.data:
            self._more()
        head, _, rest = self.data.partition(b"\r\n\r\n")
        length = 0 if head_only else int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                              if line.lower().startswith(b"content-length:")))
        while len(rest) < length:
            self._more()
            head, _, rest = self.data.partition(b"\r\n\r\n")
        self.data = rest[length:]
        return head, rest[:length]


def get(name, method="GET", extra=""):
    return f"{method} /file/{name} HTTP/1.1\r\nHost: m\r\n{extra}\r\n".encode()


def test_repeats_of_an_unchanged_archive_are_answered_by_the_loop_from_one_open(mirror, counted):
    server = ApiServer(DirStore(mirror))
    with server, closing(socket.create_connection(("127.0.0.1", server.port), timeout=10)) as sock:
        replies = Replies(sock)
        for _ in range(20):
            sock.sendall(get(NAMES[0]))
            head, body = replies.next()
            assert head.startswith(b"HTTP/1.1 200 ") and body == (mirror / "file" / NAMES[0]).read_bytes()
        # The first request parsed the feed, on a worker; the loop answered the other 19 from one open file.
        assert len(counted) == 1
        assert server._quick.files.opened == 1


@pytest.mark.parametrize("path", ["file/" + NAMES[1], "info/json"])
def test_the_loop_answers_with_the_full_paths_head(mirror, counted, path):
    with ApiServer(DirStore(mirror)) as server:
        url = server.base_url + path
        with requests.Session() as session:
            full = session.get(url)  # parses the feed: the full path
            quick = session.get(url)
            quick_head = session.head(url)
        assert len(counted) == 1
        for reply in (quick, quick_head):
            assert reply.status_code == 200
            assert reply.headers.keys() == full.headers.keys()
            assert {k: v for k, v in reply.headers.items() if k != "Date"} == \
                   {k: v for k, v in full.headers.items() if k != "Date"}
        assert quick.content == full.content and quick_head.content == b""


def test_a_changed_file_is_served_as_it_is_now(mirror):
    path = mirror / "file" / NAMES[0]
    with ApiServer(DirStore(mirror)) as server, requests.Session() as session:
        url = server.base_url + "file/" + NAMES[0]
        assert session.get(url).content == session.get(url).content == path.read_bytes()
        # Edited in place (same inode, same size), then replaced by a rename, then shrunk.
        with open(path, "r+b") as f:
            f.write(b"EDITED")
        assert session.get(url).content == path.read_bytes()
        (mirror / "file" / "new").write_bytes(b"replaced whole")
        os.replace(mirror / "file" / "new", path)
        assert session.get(url).content == b"replaced whole"
        path.write_bytes(b"short")
        assert session.get(url).content == b"short"


def test_a_file_no_longer_listed_or_given_a_second_name_is_refused(mirror):
    with ApiServer(DirStore(mirror)) as server, requests.Session() as session:
        urls = [server.base_url + "file/" + name for name in NAMES]
        assert [session.get(url).status_code for url in urls * 2] == [200] * 6
        (mirror / "info" / "json.new").write_text(json.dumps(feed_of(NAMES[1:])))
        os.replace(mirror / "info" / "json.new", mirror / "info" / "json")
        assert session.get(urls[0]).status_code == 404  # the index is always true
        os.link(mirror / "file" / NAMES[1], mirror / "elsewhere")
        assert session.get(urls[1]).status_code == 404  # a second name: refused, as when first opened
        (mirror / "file" / NAMES[2]).unlink()
        assert session.get(urls[2]).status_code == 404


def test_conditions_ranges_and_auth_keep_their_answers(mirror):
    with ApiServer(DirStore(mirror), auth={"ops": "pw"}) as server, requests.Session() as session:
        url = server.base_url + "file/" + NAMES[0]
        assert session.get(url).status_code == 401
        first = session.get(url, auth=("ops", "pw"))
        assert first.status_code == 200
        assert session.get(url, auth=("ops", "wrong")).status_code == 401
        assert session.get(url, auth=("ops", "pw"), headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
        part = session.get(url, auth=("ops", "pw"), headers={"Range": "bytes=1-2"})
        assert part.status_code == 206 and part.content == first.content[1:3]


def test_pipelined_requests_are_answered_in_order(mirror):
    server = ApiServer(DirStore(mirror))
    with server, closing(socket.create_connection(("127.0.0.1", server.port), timeout=10)) as sock:
        replies = Replies(sock)
        sock.sendall(get(NAMES[0]))
        replies.next()
        sock.sendall(get(NAMES[0]) + get(NAMES[1], "HEAD") + b"GET /info/help HTTP/1.1\r\nHost: m\r\n\r\n"
                     + get(NAMES[2]))
        assert replies.next()[1] == (mirror / "file" / NAMES[0]).read_bytes()
        head, _ = replies.next(head_only=True)
        assert head.startswith(b"HTTP/1.1 200 ")
        assert replies.next()[0].startswith(b"HTTP/1.1 200 ")  # info/help, from a worker
        assert replies.next()[1] == (mirror / "file" / NAMES[2]).read_bytes()


def test_a_reply_the_socket_does_not_take_at_once_is_finished_by_a_worker(mirror, monkeypatch):
    finished = []
    real = fastpath.QuickPath._finish
    monkeypatch.setattr(fastpath.QuickPath, "_finish", lambda self, *a: finished.append(a[3]) or real(self, *a))
    # Larger than the socket's buffers may hold, so the loop cannot send it whole.
    data = os.urandom(big_reply_size())
    monkeypatch.setattr(fastpath, "QUICK_MAX", len(data) + 1)
    big = "PATCH-BIG.tar.gz"
    (mirror / "file" / big).write_bytes(data)
    (mirror / "info" / "json").write_text(json.dumps(feed_of(NAMES + [big])))
    with ApiServer(DirStore(mirror)) as server:
        slow = small_window(server.port)
        with closing(slow):
            replies = Replies(slow)
            slow.sendall(get(NAMES[0]))
            replies.next()  # the feed is parsed: what follows is the loop's
            slow.sendall(get(big))
            # Not reading: the loop sent what fit and goes on; a worker waits for this client.
            assert requests.get(server.base_url + "file/" + NAMES[1], timeout=10).status_code == 200
            assert replies.next()[1] == data
            assert finished and 0 < finished[0] < len(data)  # what the loop had sent
            slow.sendall(get(NAMES[2]))  # and the connection goes on
            assert replies.next()[1] == (mirror / "file" / NAMES[2]).read_bytes()


def test_the_access_log_has_a_line_per_request_answered_by_the_loop(mirror):
    lines, logged = [], threading.Condition()

    def access(line):
        with logged:
            lines.append(line)
            logged.notify_all()

    server = ApiServer(DirStore(mirror), access_log=access)
    with server, closing(socket.create_connection(("127.0.0.1", server.port), timeout=10)) as sock:
        replies = Replies(sock)
        for _ in range(3):  # the first from a worker (the feed is parsed), the others from the loop
            sock.sendall(get(NAMES[0] + "?x=\x1b[31m"))
            replies.next()
        with logged:
            assert logged.wait_for(lambda: len(lines) == 3, 10)
    assert set(lines) == {f'127.0.0.1 "GET /file/{NAMES[0]}?x=\\x1b[31m" 200 {len(NAMES[0]) * 100 + 3}'}


def test_files_kept_open_are_bounded_and_closed_with_the_server(mirror, monkeypatch):
    monkeypatch.setattr(fastpath, "open_files_budget", lambda: 2)
    monkeypatch.setattr("magedl.server.app.open_files_budget", lambda: 2)
    server = ApiServer(DirStore(mirror))
    with server, requests.Session() as session:
        for name in NAMES * 2:
            assert session.get(server.base_url + "file/" + name).status_code == 200
        kept = [entry.fh for entry in server._quick.files._files.values()]
        assert len(kept) == 2
    assert all(fh.closed for fh in kept)


def test_info_json_kept_open_is_served_as_it_is_now(mirror):
    path = mirror / "info" / "json"
    with ApiServer(DirStore(mirror)) as server, requests.Session() as session:
        url = server.base_url + "info/json"
        assert session.get(url).json() == session.get(url).json() == feed_of(NAMES)
        before = os.stat(path)
        edited = path.read_text().replace(NAMES[0], "RENAMED" + NAMES[0][7:])
        with open(path, "r+") as f:  # same inode, same size, the modification time put back
            f.write(edited)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert session.get(url).json() == session.get(url).json() == json.loads(edited)
        path.write_text('{"ce-patch": ')  # no longer a feed: the empty one, as the full path says
        assert session.get(url).json() == session.get(url).json() == {}


def test_a_bug_in_the_quick_path_ends_one_connection_not_the_server(mirror, monkeypatch, caplog):
    def broken(self, conn, head):
        raise ValueError("a bug")

    with ApiServer(DirStore(mirror)) as server:
        monkeypatch.setattr(fastpath.QuickPath, "answer", broken)
        server._loop._quick = server._quick.answer  # (bound at start: rebind to the broken one)
        with closing(socket.create_connection(("127.0.0.1", server.port), timeout=10)) as sock:
            sock.sendall(get(NAMES[0]))
            assert sock.recv(100) == b""
        monkeypatch.undo()
        server._loop._quick = server._quick.answer
        assert requests.get(server.base_url + "file/" + NAMES[0], timeout=10).status_code == 200
    assert "cannot answer 127.0.0.1 on the loop" in caplog.text


def _open_on(path):
    """Descriptors of this process open on *path*."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == str(path):
                found.append(int(fd))
        except OSError:
            pass
    return found


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_the_rest_of_a_reply_no_worker_takes_closes_its_descriptor(mirror, monkeypatch):
    # The loop gives the rest of a reply the socket did not take to a worker, with a descriptor of its
    # own; when no worker can take it (none can start, or the server stops), that descriptor is closed.
    size = big_reply_size()
    monkeypatch.setattr(fastpath, "QUICK_MAX", size + 1)
    big = mirror / "file" / "PATCH-BIG.tar.gz"
    big.write_bytes(os.urandom(size))
    (mirror / "info" / "json").write_text(json.dumps(feed_of(NAMES + [big.name])))
    server = ApiServer(DirStore(mirror))
    with server, closing(small_window(server.port)) as sock:
        replies = Replies(sock)
        sock.sendall(get(NAMES[0]))
        replies.next()  # the feed is parsed: what follows is the loop's

        refused = threading.Event()

        def refuse(job):
            refused.set()
            raise RuntimeError("can't start new thread")

        monkeypatch.setattr(server._workers, "submit", refuse)
        sock.sendall(get(big.name))
        # Not reading until the loop gave up the rest (read at once, the loop could send it all itself).
        assert refused.wait(10)
        while sock.recv(1 << 20):  # what the loop sent, then the end of the connection
            pass
    assert _open_on(big) == []


def test_a_second_name_is_refused_even_where_the_change_time_does_not_move(mirror, monkeypatch):
    # Before Linux 6.13 (and on some file systems) times are coarse: a link made within the tick of the
    # file's last change leaves its change time, so the fingerprint alone does not show the second name.
    monkeypatch.setattr(fastpath, "fingerprint", lambda st: (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
    with ApiServer(DirStore(mirror)) as server, requests.Session() as session:
        url = server.base_url + "file/" + NAMES[0]
        assert [session.get(url).status_code for _ in range(2)] == [200, 200]
        os.link(mirror / "file" / NAMES[0], mirror / "elsewhere")
        assert session.get(url).status_code == 404


def test_a_head_the_socket_takes_in_part_is_finished_by_a_worker_without_a_byte_twice(mirror, monkeypatch):
    # The loop's send takes only part of the head (a socket nearly full): the worker sends the rest of
    # the head, then the whole body, once.
    class PartSocket:
        def __init__(self, sock):
            self.sock, self.first = sock, True

        def send(self, data, flags=0):
            if self.first:
                self.first = False
                return self.sock.send(data[:10], flags)
            return self.sock.send(data, flags)

        def __getattr__(self, name):
            return getattr(self.sock, name)

    class PartConnection:
        def __init__(self, conn):
            self.sock, self.client = PartSocket(conn.sock), conn.client

    real, finish, left = fastpath.QuickPath.answer, fastpath.QuickPath._finish, []
    monkeypatch.setattr(fastpath.QuickPath, "answer", lambda self, conn, head: real(self, PartConnection(conn), head))
    monkeypatch.setattr(fastpath.QuickPath, "_finish", lambda self, *a: left.append(len(a[1])) or finish(self, *a))
    with ApiServer(DirStore(mirror)) as server:
        server._loop._quick = server._quick.answer  # (bound at start: rebind)
        with closing(socket.create_connection(("127.0.0.1", server.port), timeout=10)) as sock:
            replies = Replies(sock)
            for method in ("GET", "GET", "HEAD", "GET"):  # the first parses the feed, on a worker
                sock.sendall(get(NAMES[0], method))
                head, body = replies.next(head_only=method == "HEAD")
                assert head.startswith(b"HTTP/1.1 200 ")
                assert body == (b"" if method == "HEAD" else (mirror / "file" / NAMES[0]).read_bytes())
            sock.sendall(get(NAMES[1]))
            assert replies.next()[1] == (mirror / "file" / NAMES[1]).read_bytes()
            assert replies.data == b""
    assert len(left) == 4 and all(n > 0 for n in left)  # each quick answer's head: 10 bytes by the loop
