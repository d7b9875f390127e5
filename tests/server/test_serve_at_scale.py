"""``serve`` at any size: the feed is parsed once per version, files go out with sendfile, connections stay open.

The mechanisms only (the request rates are measured by ``scripts/bench.py``): each test
fails on the server that re-read and re-parsed ``info/json``, walked the whole feed for
every file request, started a thread per request and copied files through Python.
"""

import json
import os
import socket
import threading
from contextlib import closing

import pytest
import requests

import magedl.server.snapshot as snapshot
import magedl.server.stores as stores
from magedl.server import ApiServer, DirStore

NAMES = [f"PATCH-{i:04d}.tar.gz" for i in range(300)]


def feed_of(names, md5="0" * 32):
    return {"ce-patch": {"2.4.6": [{"name": n, "file_name": n, "md5": md5} for n in names]}}


@pytest.fixture
def mirror(tmp_path):
    root = tmp_path / "m"
    (root / "info").mkdir(parents=True)
    (root / "file").mkdir()
    (root / "info" / "json").write_text(json.dumps(feed_of(NAMES)))
    for name in NAMES[:3]:
        (root / "file" / name).write_bytes(b"\x1f\x8b\x08" + name.encode() * 100)
    return root


@pytest.fixture
def counted(monkeypatch):
    """How often the feed's file is parsed and walked for names."""
    counts = {"parse_json": 0, "feed_file_names": 0}

    def counting(module, name):
        real = getattr(module, name)

        def wrapper(data, *args, **kwargs):
            counts[name] += bool(data)  # the empty feed a store starts with costs nothing
            return real(data, *args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    counting(stores, "parse_json")
    counting(snapshot, "feed_file_names")
    return counts


def test_an_unchanged_feed_is_parsed_once_whatever_is_asked(mirror, counted):
    with ApiServer(DirStore(mirror)) as server, requests.Session() as session:
        for _ in range(3):
            for path in ("info/json", "file/" + NAMES[0], "file/" + NAMES[1], "info/files", "info/versions",
                         "info/filter/version/2.4.6", "file/not-listed.zip"):
                assert session.get(server.base_url + path).status_code in (200, 404)
    assert counted == {"parse_json": 1, "feed_file_names": 1}


def test_a_feed_edited_in_place_is_served_fresh(mirror, counted):
    path = mirror / "info" / "json"
    with ApiServer(DirStore(mirror)) as server, requests.Session() as session:
        assert session.get(server.base_url + "file/" + NAMES[0]).status_code == 200
        before = os.stat(path)
        # Same size, same inode, and the modification time put back: only the change time tells.
        text = path.read_text()
        edited = text.replace(NAMES[0], "RENAMED" + NAMES[0][7:])
        assert len(edited) == len(text)
        with open(path, "r+") as f:
            f.write(edited)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert session.get(server.base_url + "file/" + NAMES[0]).status_code == 404
        assert session.get(server.base_url + "info/json").json() == json.loads(edited)
        # A run of 'mirror' renames a new file into place: a new inode.
        path.with_name("json.new").write_text(json.dumps(feed_of(NAMES[:1])))
        os.replace(path.with_name("json.new"), path)
        assert session.get(server.base_url + "file/" + NAMES[0]).status_code == 200
        assert session.get(server.base_url + "file/" + NAMES[1]).status_code == 404
    assert counted["parse_json"] == 3


def test_info_json_is_the_file_itself_sent_with_sendfile(mirror, monkeypatch):
    calls = []
    real = os.sendfile
    monkeypatch.setattr(os, "sendfile", lambda *a: calls.append(a) or real(*a))
    body = (mirror / "info" / "json").read_bytes()
    with ApiServer(DirStore(mirror)) as server:
        r = requests.get(server.base_url + "info/json")
        assert r.content == body and r.headers["Content-Type"] == "application/json" and r.headers["ETag"]
        assert [a[2:] for a in calls] == [(0, len(body))]
        r = requests.get(server.base_url + "info/json", headers={"Range": "bytes=10-19"})
        assert r.status_code == 206 and r.content == body[10:20]


def test_a_feed_that_does_not_parse_is_the_empty_feed(mirror):
    (mirror / "info" / "json").write_text('{"ce-patch": ')
    with ApiServer(DirStore(mirror)) as server:
        assert requests.get(server.base_url + "info/json").json() == {}
        assert requests.get(server.base_url + "file/" + NAMES[0]).status_code == 404


class Replies:
    """The replies on one keep-alive connection, in order; bytes past one reply (pipelining) wait for the next."""

    def __init__(self, sock):
        self.sock, self.data = sock, b""

    def _more(self, what):
        chunk = self.sock.recv(65536)
        assert chunk, f"the server closed a keep-alive connection {what}"
        self.data += chunk

    def next(self):
        """One reply: (head, body)."""
        while b"\r\n\r\n" not in self.data:
            self._more("before a reply's head")
        head, _, rest = self.data.partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")))
        while len(rest) < length:
            self._more("mid-body")
            head, _, rest = self.data.partition(b"\r\n\r\n")
        self.data = rest[length:]
        return head, rest[:length]


def test_keep_alive_carries_many_requests_on_few_threads(mirror):
    with ApiServer(DirStore(mirror)) as server:
        before = threading.active_count()
        with closing(socket.create_connection(("127.0.0.1", server.port), timeout=10)) as sock:
            replies = Replies(sock)
            for i in range(60):
                name = NAMES[i % 3]
                sock.sendall(f"GET /file/{name} HTTP/1.1\r\nHost: mirror\r\n\r\n".encode())
                head, body = replies.next()
                assert head.startswith(b"HTTP/1.1 200 ") and b"Connection: close" not in head
                assert body == (mirror / "file" / name).read_bytes()
            # Two at once (pipelined): both answered, in order, on the same connection.
            sock.sendall(b"GET /info/help HTTP/1.1\r\nHost: m\r\n\r\nGET /file/" + NAMES[0].encode() +
                         b" HTTP/1.1\r\nHost: m\r\n\r\n")
            assert replies.next()[0].startswith(b"HTTP/1.1 200 ")
            assert replies.next()[1] == (mirror / "file" / NAMES[0]).read_bytes()
        # One connection answered one request at a time: a thread or two, kept, not one per request.
        assert server._workers.threads <= 2
        assert threading.active_count() <= before + 2
