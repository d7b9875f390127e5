"""A hostile network client of ``serve``: idle crowds, slow heads, odd request lines, huge numbers, side files.

Each test fails on the server as it was before these limits (thread per
connection, 60 s per read, BaseHTTPRequestHandler parsing, realpath checks).
"""

import hashlib
import json
import os
import resource
import select
import socket
import subprocess
import sys
import threading
from contextlib import closing, contextmanager

import pytest
import requests

from magedl.server import ApiServer, DirStore, Limits, MemoryStore

NAME = "Magento-CE-2.4.6.tar.gz"
DATA = b"\x1f\x8b\x08" + bytes(range(256)) * 40


def _feed(*names):
    return {"ce-full": {"2.4.6": [{"name": n, "file_name": n, "md5": hashlib.md5(DATA).hexdigest(),
                                   "date": "2024-01-01 00:00:00"} for n in names]}}


@pytest.fixture
def store():
    return MemoryStore(_feed(NAME), {NAME: DATA})


def raw(port, data, timeout=10):
    """Send *data* on a fresh connection; return everything the server answers before closing."""
    with closing(socket.create_connection(("127.0.0.1", port), timeout=timeout)) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks):
                head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
                length = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")]
                if length and len(body) >= length[0]:
                    return b"".join(chunks)


@contextmanager
def idle_clients(port, count):
    """*count* connections that each sent half a request head and then nothing."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(b"GET /info/help HTTP/1.1\r\nHost: x\r\n")
            socks.append(sock)
        yield socks
    finally:
        for sock in socks:
            sock.close()


# -- the connection cap, the head's time and size ---------------------------------


def test_a_valid_client_is_served_while_idle_clients_fill_every_place(store):
    with ApiServer(store, limits=Limits(max_connections=32)) as server:
        with idle_clients(server.port, 300):
            response = requests.get(server.base_url + "file/" + NAME, timeout=(10, 10))
            assert response.status_code == 200 and response.content == DATA
            # And again, on a new connection, with the crowd still there.
            assert requests.get(server.base_url + "info/help", timeout=(10, 10)).status_code == 200


def test_at_the_cap_a_newcomer_is_read_before_later_ones_can_make_it_the_oldest(store):
    # Connections already queued in the kernel when the server looks (as when it falls behind a crowd
    # on a busy machine): the old server accepted them all at once, each at the cap closing the one
    # waiting longest, and so closed a whole request it had accepted but not yet read.
    server = ApiServer(store, limits=Limits(max_connections=4))  # listening, not yet accepting
    socks = []
    try:
        def half_head():
            socks.append(socket.create_connection(("127.0.0.1", server.port), timeout=10))
            socks[-1].sendall(b"GET /info/help HTTP/1.1\r\nHost: x\r\n")

        for _ in range(4):
            half_head()
        valid = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        socks.append(valid)
        valid.sendall(b"GET /info/help HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        for _ in range(10):
            half_head()
        server.start()
        assert valid.recv(100).startswith(b"HTTP/1.1 200 ")
    finally:
        for sock in socks:
            sock.close()
        server.stop()


def test_serve_out_of_file_descriptors_still_answers_a_valid_client(demo_mirror):
    """``magedl serve`` with 100 descriptors and 300 idle clients: the old server spun on EMFILE and served nobody."""
    def few_fds():
        resource.setrlimit(resource.RLIMIT_NOFILE, (100, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    proc = subprocess.Popen([sys.executable, "-m", "magedl", "serve", str(demo_mirror), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=few_fds)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://"), proc.stderr.read()
        port = int(url.rsplit(":", 1)[1].strip("/"))
        with idle_clients(port, 300):
            response = requests.get(url + "info/json", timeout=(10, 10))
            assert response.status_code == 200 and response.json()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert "Traceback" not in err


def test_the_whole_head_must_come_in_time_not_each_read(store):
    # A byte at a time, each well within any per-read timeout: the head's total time runs out first.
    with ApiServer(store, limits=Limits(head_timeout=0.5)) as server:
        with closing(socket.create_connection(("127.0.0.1", server.port), timeout=10)) as sock:
            sock.sendall(b"GET /info/help HTTP/1.1\r\n")
            sock.settimeout(0.05)
            closed = False
            for _ in range(400):  # 20 s of trickle at most; the old server never closed it
                try:
                    closed = sock.recv(1) == b""
                except socket.timeout:
                    sock.sendall(b"X")
                except ConnectionResetError:
                    closed = True
                if closed:
                    break
            assert closed, "a client trickling a request head kept its connection"


def test_a_head_larger_than_the_limit_is_431(store):
    with ApiServer(store) as server:
        answer = raw(server.port, b"GET /info/help HTTP/1.1\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 431 ")


def test_head_limits_are_checked_before_the_head_ends(store):
    # No blank line ever comes: the server answers once the limit is passed, without waiting.
    with ApiServer(store, limits=Limits(max_head=1024)) as server:
        answer = raw(server.port, b"GET /info/help HTTP/1.1\r\n" + b"X-A: b\r\n" * 200)
        assert answer.startswith(b"HTTP/1.1 431 ")


# -- request lines and numbers ---------------------------------------------------


@pytest.mark.parametrize("request_line", [b"GET /info/help\r\n\r\n", b"GET /info/help\r\n"])
def test_http_0_9_is_400(store, request_line):
    with ApiServer(store) as server:
        answer = raw(server.port, request_line)
        assert answer.startswith(b"HTTP/1.1 400 ")
        # The server still answers everyone else.
        assert requests.get(server.base_url + "info/help", timeout=10).status_code == 200


@pytest.mark.parametrize("request_line, status", [
    (b"GET / HTTP/2.0", 505), (b"GET / FTP/1.0", 400), (b"G\x01T / HTTP/1.1", 400), (b"GET", 400),
    (b"GET / HTTP/1.1 extra", 400),
])
def test_odd_request_lines(store, request_line, status):
    with ApiServer(store) as server:
        assert raw(server.port, request_line + b"\r\n\r\n").startswith(b"HTTP/1.1 %d " % status)


def test_a_5000_digit_range_is_416_not_a_server_error(store):
    with ApiServer(store) as server:
        response = requests.get(server.base_url + "file/" + NAME, headers={"Range": "bytes=" + "9" * 5000 + "-"})
        assert response.status_code == 416
        assert response.headers["Content-Range"] == f"bytes */{len(DATA)}"
        response = requests.get(server.base_url + "file/" + NAME, headers={"Range": "bytes=-" + "9" * 5000})
        assert response.status_code == 206 and response.content == DATA


@pytest.mark.parametrize("length", ["9" * 5000, "-1", "12abc", "\u0661\u0662"])
def test_a_bad_content_length_is_400_not_a_server_error(store, length):
    with ApiServer(store) as server:
        answer = raw(server.port, f"GET /info/help HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.1 400 ")


def test_a_request_body_is_skipped_and_keep_alive_goes_on(store):
    with ApiServer(store) as server:
        with closing(socket.create_connection(("127.0.0.1", server.port), timeout=10)) as sock:
            sock.sendall(b"GET /info/help HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nHELLO"
                         b"GET /file/" + NAME.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
        assert answer.count(b"HTTP/1.1 200 ") == 2 and answer.endswith(DATA)


# -- the serve -v log ------------------------------------------------------------------


def test_client_text_in_the_access_log_is_escaped(store):
    lines = []
    with ApiServer(store, auth={"ops": "secret"}, access_log=lines.append) as server:
        raw(server.port, b"GET /info/\x1b[2Jhelp\x07 HTTP/1.1\r\nHost: x\r\n\r\n")        # before auth: a 401
        raw(server.port, b"GET /\x1b]0;owned\x07 HTTP/9.9\r\n\r\n")             # a bad request line
    assert len(lines) == 2  # stop() returned: every answer is logged (a worker's line may come after the loop's)
    assert not any(ch in line for line in lines for ch in "\x1b\x07")
    unauthorized, bad = sorted(lines, key=lambda line: " 505 " in line)
    assert "\\x1b[2J" in unauthorized and " 401 " in unauthorized
    assert "\\x1b]0;owned" in bad and " 505 " in bad


# -- side files and links in a served mirror -----------------------------------------


@pytest.fixture
def mirror(tmp_path):
    root = tmp_path / "m"
    (root / "info").mkdir(parents=True)
    (root / "file" / ".magedl").mkdir(parents=True)
    (root / "file" / NAME).write_bytes(DATA)
    return root


def list_in_feed(root, *names):
    (root / "info" / "json").write_text(json.dumps(_feed(NAME, *names)))


@pytest.mark.parametrize("side", [NAME + ".magedl-part", NAME + ".magedl-part.json", NAME + ".magedl-lock",
                                  ".magedl/state.json", "." + NAME + ".magedl-tmp-0123abcd"])
def test_side_files_are_never_served_even_when_the_feed_lists_them(mirror, side):
    (mirror / "file" / side).write_bytes(DATA)
    list_in_feed(mirror, side)
    with ApiServer(DirStore(mirror)) as server:
        assert requests.get(server.base_url + "file/" + side).status_code == 404
        assert requests.get(server.base_url + "file/" + NAME).content == DATA


def test_a_hard_link_to_a_partial_file_is_not_served(mirror, caplog):
    part = mirror / "file" / (NAME + ".magedl-part")
    part.write_bytes(b"half of an unverified download")
    os.link(part, mirror / "file" / "innocent.zip")
    list_in_feed(mirror, "innocent.zip")
    with ApiServer(DirStore(mirror)) as server:
        assert requests.get(server.base_url + "file/innocent.zip").status_code == 404
        assert requests.get(server.base_url + "file/" + NAME).content == DATA
    assert "innocent.zip: not served" in caplog.text and "hard links" in caplog.text


def test_a_symlink_out_of_the_mirror_is_not_served(mirror, caplog):
    os.symlink("/", mirror / "file" / "root")
    list_in_feed(mirror, "root/etc/passwd")
    with ApiServer(DirStore(mirror)) as server:
        assert requests.get(server.base_url + "file/root/etc/passwd").status_code == 404
    assert "root/etc/passwd: not served" in caplog.text


def test_a_deeply_nested_feed_is_served_as_empty_not_a_server_error(mirror, caplog):
    (mirror / "info" / "json").write_text("[" * 100_000 + "]" * 100_000)
    with ApiServer(DirStore(mirror)) as server:
        response = requests.get(server.base_url + "info/json")
        assert response.status_code == 200 and response.json() == {}
        assert requests.get(server.base_url + "file/" + NAME).status_code == 404
    assert "nested deeper" in caplog.text


def test_stalled_reads_do_not_block_the_server(store):
    # A client that never reads its (large) answer holds one worker, not the server.
    big = b"\x1f\x8b\x08" + os.urandom(16 * 2**20)
    store = MemoryStore(_feed("big.tar.gz"), {"big.tar.gz": big})
    with ApiServer(store) as server:
        with closing(socket.create_connection(("127.0.0.1", server.port), timeout=10)) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(b"GET /file/big.tar.gz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert select.select([sock], [], [], 10)[0]  # the answer has begun, and is not read
            assert requests.get(server.base_url + "info/help", timeout=10).status_code == 200


def test_a_stopped_server_has_finished_and_logged_what_it_was_answering(store):
    # A log line written after the reply went out (as an access log is) is there once stop() returns:
    # tests and a SIGTERM'd serve see every answer logged, and nothing the server started still runs.
    lines, logging_now, release = [], threading.Event(), threading.Event()

    def slow_log(line):
        logging_now.set()
        release.wait(30)
        lines.append(line)

    server = ApiServer(store, access_log=slow_log).start()
    raw(server.port, b"GET /info/help HTTP/1.1\r\nHost: x\r\n\r\n")
    assert logging_now.wait(30)
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    stopper.join(0.5)
    assert stopper.is_alive(), "stop() returned while an answer was still being logged"
    release.set()
    stopper.join(30)
    assert not stopper.is_alive() and len(lines) == 1 and " 200 " in lines[0]
