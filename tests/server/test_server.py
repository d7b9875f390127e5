"""The API-shaped HTTP server: endpoints, auth, HEAD, Range, stores, the hooks' contract.

Requests are observed through the emulator's request log (a :class:`RecordingServer`
is an ApiServer with a recording hook plugged in).
"""

import base64
import hashlib
import http.client
import io
import json
import os
import socket
import threading

import pytest
import requests

from magedl.emulator import Emulator, Faults, RecordingServer
from magedl.emulator.recorder import Recorder
from magedl.server import ApiServer, DirStore, MemoryStore, feed_file_names, http_date
from magedl.service.catalog import parse_feed

PREFIX = "/products/downloads/"
USER, PASSWORD = "MAG000000001", "0123456789abcdef0123456789abcdef01234567"
AUTH = (USER, PASSWORD)

A = "Magento-CE-2.4.6.tar.gz"
B = "Magento-CE-2.4.7.zip"
SLASHED = "patches/MDVA-1_CE_2.4.6_v1.sh"
DATA = {
    A: bytes(range(256)) * 40,             # 10240 bytes, every offset distinct mod 256
    B: b"PK\x03\x04" + b"z" * 996,
    SLASHED: b"#!/bin/bash\necho patched\n",
}


def _feed():
    def entry(name, **more):
        return {"name": name, "file_name": name, "date": "2024-01-01 00:00:00",
                "md5": hashlib.md5(DATA[name]).hexdigest(), **more}

    return {
        "ce-full": {"2.4.6": [entry(A)], "2.4.7": [entry(B)]},
        "ce-patch": {"2.4.6": [entry(SLASHED, ce_versions=["2.4.6"])]},
        "other": [],
    }


@pytest.fixture
def store():
    return MemoryStore(_feed(), DATA)


@pytest.fixture
def server(store):
    with RecordingServer(store, prefix=PREFIX, auth={USER: PASSWORD}) as srv:
        yield srv


@pytest.fixture
def session():
    with requests.Session() as s:
        s.auth = AUTH
        # The client always asks for identity; do the same.
        s.headers["Accept-Encoding"] = "identity"
        yield s


def raw_get(server, path, headers=None, method="GET"):
    """Send a request with a path exactly as given (no URL normalisation)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    conn.putrequest(method, path, skip_accept_encoding=True)
    conn.putheader("Authorization", "Basic " + token)
    for key, value in (headers or {}).items():
        conn.putheader(key, value)
    conn.endheaders()
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp, body


# -- endpoints ---------------------------------------------------------------


def test_base_url_ends_with_slash_and_names_the_port(server):
    assert server.base_url == f"http://127.0.0.1:{server.port}{PREFIX}"
    assert server.port > 0


def test_info_json_is_the_feed(server, session):
    r = session.get(server.base_url + "info/json")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    assert r.json() == _feed()
    assert int(r.headers["Content-Length"]) == len(r.content)


@pytest.mark.parametrize("path, expect, absent", [
    ("info/files", [A, B, SLASHED, "File Name"], []),
    ("info/filter/version/2.4.6", [A, SLASHED], [B]),
    ("info/filter/version/2.4.*", [A, B, SLASHED], []),
    ("info/filter/type/ce-full", [A, B], [SLASHED]),
    ("info/filter/type/ce-patch", [SLASHED], [A, B]),
    ("info/versions", ["CE Versions", "2.4.7", "2.4.6"], ["EE Versions"]),
    ("info/help", ["info/json", "file/"], []),
])
def test_text_endpoints(server, session, path, expect, absent):
    r = session.get(server.base_url + path)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    for text in expect:
        assert text in r.text
    for text in absent:
        assert text not in r.text


@pytest.mark.parametrize("path", ["info/filter/version/9.*", "info/filter/type/ee-full"])
def test_empty_filter_is_no_results_with_200(server, session, path):
    r = session.get(server.base_url + path)
    assert (r.status_code, r.text) == (200, "No results found.\n")


def test_filter_glob_is_url_decoded(server, session):
    r = session.get(server.base_url + "info/filter/version/2.4.%2A")
    assert B in r.text and A in r.text


@pytest.mark.parametrize("path", [
    PREFIX + "info/nope", PREFIX + "nope", PREFIX, "/other/info/json",
    PREFIX + "info/filter/type/", PREFIX + "file/",
])
def test_unknown_paths_are_404(server, path):
    resp, body = raw_get(server, path)
    assert resp.status == 404
    assert int(resp.getheader("Content-Length")) == len(body)


def test_post_is_405(server, session):
    r = session.post(server.base_url + "info/json", data=b"x")
    assert r.status_code == 405
    assert "GET" in r.headers["Allow"]


# -- auth --------------------------------------------------------------------


@pytest.mark.parametrize("auth", [None, (USER, "wrong"), ("MAG999999999", PASSWORD),
                                  (USER, PASSWORD + "0"), ("", "")])
def test_bad_or_missing_credentials_are_401(server, auth):
    r = requests.get(server.base_url + "info/json", auth=auth)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith('Basic realm="')
    assert server.log[-1].had_authorization is (auth is not None)


@pytest.mark.parametrize("header", ["Bearer abc", "Basic !!!notbase64", "Basic " +
                                    base64.b64encode(b"no-colon").decode()])
def test_malformed_authorization_is_401(server, header):
    r = requests.get(server.base_url + "info/help", headers={"Authorization": header})
    assert r.status_code == 401


def test_good_credentials_pass_everywhere(server, session):
    for path in ("info/help", "info/json", "file/" + A):
        assert session.get(server.base_url + path).status_code == 200
    assert all(rec.had_authorization for rec in server.log)


def test_open_server_needs_no_credentials(store):
    with ApiServer(store) as srv:
        assert srv.base_url.endswith(":%d/" % srv.port)
        r = requests.get(srv.base_url + "file/" + B)
        assert r.content == DATA[B]


# -- files ---------------------------------------------------------------------


def test_file_get_sends_body_and_validators(server, session, store):
    r = session.get(server.base_url + "file/" + A)
    assert r.status_code == 200
    assert r.content == DATA[A]
    info = store.stat(A)
    assert r.headers["Content-Length"] == str(len(DATA[A]))
    assert r.headers["ETag"] == info.etag
    assert r.headers["Last-Modified"] == http_date(info.last_modified)
    assert r.headers["Accept-Ranges"] == "bytes"
    assert server.bytes_sent(A) == len(DATA[A])


def test_file_name_with_slash_and_encoded_slash(server, session):
    assert session.get(server.base_url + "file/" + SLASHED).content == DATA[SLASHED]
    encoded = server.base_url + "file/" + SLASHED.replace("/", "%2F")
    assert session.get(encoded).content == DATA[SLASHED]


def test_head_sends_headers_without_body(server, session):
    r = session.head(server.base_url + "file/" + A)
    assert r.status_code == 200
    assert r.headers["Content-Length"] == str(len(DATA[A]))
    assert r.content == b""
    assert server.log[-1].method == "HEAD" and server.log[-1].bytes_sent == 0
    # The connection is still usable: HEAD did not leave a body behind.
    assert session.get(server.base_url + "file/" + B).content == DATA[B]


def test_file_not_in_store_is_404(server, session):
    assert session.get(server.base_url + "file/Magento-CE-9.9.9.zip").status_code == 404


@pytest.mark.parametrize("path", [
    PREFIX + "file/../info/json",
    PREFIX + "file/%2e%2e/%2e%2e/etc/passwd",
    PREFIX + "file/patches/../" + A,
    PREFIX + "file/./" + A,
    PREFIX + "file//" + A,
    PREFIX + "file/..%2F..%2Fsecret",
])
def test_path_traversal_is_refused(server, path):
    resp, body = raw_get(server, path)
    assert resp.status == 404
    assert body == b"Not Found\n"


@pytest.mark.parametrize("range_header, status, start, end", [
    ("bytes=0-9", 206, 0, 9),
    ("bytes=100-", 206, 100, 10239),
    ("bytes=-5", 206, 10235, 10239),
    ("bytes=10000-99999", 206, 10000, 10239),   # end clamped to the size
    ("bytes=-99999", 206, 0, 10239),            # suffix longer than the file
    ("bytes=10239-10239", 206, 10239, 10239),
])
def test_single_ranges(server, session, range_header, status, start, end):
    r = session.get(server.base_url + "file/" + A, headers={"Range": range_header})
    assert r.status_code == status
    assert r.headers["Content-Range"] == f"bytes {start}-{end}/10240"
    assert r.content == DATA[A][start:end + 1]
    assert r.headers["Content-Length"] == str(end - start + 1)
    assert server.log[-1].range == range_header


def test_head_with_range_is_206_without_body(server, session):
    r = session.head(server.base_url + "file/" + A, headers={"Range": "bytes=10-19"})
    assert r.status_code == 206
    assert r.headers["Content-Length"] == "10"
    assert r.content == b""


@pytest.mark.parametrize("range_header", ["bytes=10240-", "bytes=99999-100000", "bytes=-0"])
def test_unsatisfiable_range_is_416(server, session, range_header):
    r = session.get(server.base_url + "file/" + A, headers={"Range": range_header})
    assert r.status_code == 416
    assert r.headers["Content-Range"] == "bytes */10240"


@pytest.mark.parametrize("range_header", [
    "bytes=0-1,5-6",      # multi-range: we answer the whole file
    "bytes=9-3",          # invalid: ignored
    "items=0-5",
    "bytes=abc",
    "bytes=-",
])
def test_multi_or_invalid_range_gets_full_200(server, session, range_header):
    r = session.get(server.base_url + "file/" + A, headers={"Range": range_header})
    assert r.status_code == 200
    assert r.content == DATA[A]


def test_if_range_with_matching_etag_gives_206(server, session, store):
    etag = store.stat(A).etag
    r = session.get(server.base_url + "file/" + A,
                    headers={"Range": "bytes=5-", "If-Range": etag})
    assert r.status_code == 206 and r.content == DATA[A][5:]
    assert server.log[-1].if_range == etag


@pytest.mark.parametrize("if_range", ['"not-the-tag"', "W/{etag}",
                                      "Mon, 01 Jan 2001 00:00:00 GMT", "garbage"])
def test_if_range_mismatch_gives_full_200(server, session, store, if_range):
    if_range = if_range.format(etag=store.stat(A).etag)
    r = session.get(server.base_url + "file/" + A,
                    headers={"Range": "bytes=5-", "If-Range": if_range})
    assert r.status_code == 200
    assert r.content == DATA[A]


def test_if_range_with_matching_date_gives_206(server, session, store):
    date = http_date(store.stat(A).last_modified)
    r = session.get(server.base_url + "file/" + A,
                    headers={"Range": "bytes=-3", "If-Range": date})
    assert r.status_code == 206 and r.content == DATA[A][-3:]


def test_replace_changes_validators_and_md5(server, session, store):
    before = store.stat(A)
    new = b"\x1f\x8b\x08" + b"n" * 500
    store.replace(A, new)
    after = store.stat(A)
    assert after.etag != before.etag
    assert after.last_modified >= before.last_modified + 1
    assert after.size == len(new)
    releases = {r.file_name: r for r in parse_feed(session.get(
        server.base_url + "info/json").json())}
    assert releases[A].md5 == hashlib.md5(new).hexdigest()
    # A resume keyed on the old tag must restart from scratch.
    r = session.get(server.base_url + "file/" + A,
                    headers={"Range": "bytes=100-", "If-Range": before.etag})
    assert r.status_code == 200 and r.content == new


def test_replace_without_md5_update_leaves_the_feed(store):
    old_md5 = hashlib.md5(DATA[A]).hexdigest()
    store.replace(A, b"different", update_md5=False)
    assert {r.file_name: r.md5 for r in parse_feed(store.feed())}[A] == old_md5


def test_feed_file_names_walks_every_shape():
    feed = _feed()
    feed["weird"] = {"x": [{"file_name": "w.zip"}], "y": "junk"}
    feed["listy"] = [{"file_name": "l.zip"}, 3]
    assert feed_file_names(feed) == {A, B, SLASHED, "w.zip", "l.zip"}


# -- keep-alive, disconnects, log ---------------------------------------------


def test_keep_alive_across_errors(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    for path, status in [("info/json", 401), ("nope", 401)]:
        conn.request("GET", PREFIX + path)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == status
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    for path, status in [("nope", 404), ("file/" + B, 200), ("info/help", 200)]:
        conn.request("GET", PREFIX + path, headers={"Authorization": "Basic " + token})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == status
    conn.close()
    ports = {rec.client[1] for rec in server.log}
    assert len(ports) == 1, "every request should have used one connection"


def test_wait_for_and_clear_log(server, session):
    assert server.wait_for(lambda s: len(s.log) >= 1, timeout=0.05) is False
    session.get(server.base_url + "file/" + B)
    assert server.wait_for(lambda s: s.bytes_sent(B) == len(DATA[B]), timeout=5)
    assert server.bytes_sent() == len(DATA[B])
    assert server.requests_for(B)[0].status == 200
    server.clear_log()
    assert server.log == [] and server.bytes_sent(B) == 0


def test_log_redacts_authorization(server, session):
    session.get(server.base_url + "info/help")
    rec = server.log[-1]
    assert rec.headers["Authorization"] == "<redacted>"
    assert PASSWORD not in repr(rec)


def test_client_disconnect_mid_body_is_logged_quietly(capfd):
    big = b"\x1f\x8b\x08" + os.urandom(8 * 2**20)
    name = "big.tar.gz"
    store = MemoryStore({"ce-full": {"1": [{"file_name": name}]}}, {name: big})
    # Throttle so the body is certainly still going when the client leaves.
    with Emulator(store, prefix="/", require_auth=False, faults=Faults(rate=4 * 2**20)) as srv:
        sock = socket.create_connection(("127.0.0.1", srv.port))
        sock.sendall(f"GET /file/{name} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        sock.recv(1024)
        assert srv.wait_for(lambda s: s.bytes_sent(name) >= 256 * 1024)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        sock.close()  # linger 0: a reset, as when the client is killed
        assert srv.wait_for(lambda s: s.requests_for(name))
        rec = srv.requests_for(name)[0]
        assert rec.aborted and rec.status == 200
        assert 256 * 1024 <= rec.bytes_sent < len(big)
        assert srv.bytes_sent(name) == rec.bytes_sent
    out, err = capfd.readouterr()
    assert out == "" and err == ""


class _Short:
    """A stream that ends after *limit* bytes: the hooks' way to cut a body."""

    def __init__(self, stream, limit):
        self.stream, self.left = stream, limit

    def seek(self, pos):
        self.stream.seek(pos)

    def read(self, n):
        data = self.stream.read(min(n, self.left))
        self.left -= len(data)
        return data

    def close(self):
        self.stream.close()


def test_a_stream_that_ends_early_cuts_the_connection():
    name = "x.zip"
    store = MemoryStore({"other": [{"file_name": name}]}, {name: b"PK\x03\x04" + b"a" * 5000})

    class Cut(Recorder):
        def finish(self, req, reply):
            if reply.stream is not None:
                reply.stream = _Short(reply.stream, 1000)
            return super().finish(req, reply)

    with RecordingServer(store, hooks=Cut()) as srv:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        conn.request("GET", "/file/" + name)
        resp = conn.getresponse()
        assert resp.getheader("Content-Length") == "5004"
        with pytest.raises(http.client.IncompleteRead) as info:
            resp.read()
        assert len(info.value.partial) == 1000
        assert srv.wait_for(lambda s: s.requests_for(name))
        assert srv.log[-1].bytes_sent == 1000 and srv.log[-1].aborted


def test_stop_closes_idle_keep_alive_connections(store):
    srv = ApiServer(store).start()
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    conn.request("GET", "/info/help")
    conn.getresponse().read()
    srv.stop()
    srv.stop()  # idempotent
    sock = conn.sock
    assert sock.recv(1) == b""  # the server hung up rather than waiting
    conn.close()


def test_parallel_downloads(server):
    results = []

    def fetch():
        with requests.Session() as s:
            results.append(s.get(server.base_url + "file/" + A, auth=AUTH).content)

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [DATA[A]] * 8
    assert server.bytes_sent(A) == 8 * len(DATA[A])


# -- DirStore --------------------------------------------------------------------


@pytest.fixture
def mirror(tmp_path):
    root = tmp_path / "m"
    (root / "info").mkdir(parents=True)
    (root / "info" / "json").write_text(json.dumps(_feed()))
    for name, data in DATA.items():
        (root / "file" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "file" / name).write_bytes(data)
    (root / "secret").write_text("outside file/")
    (root / "file" / "stray.part").write_bytes(b"partial")
    return root


@pytest.fixture
def dir_server(mirror):
    with ApiServer(DirStore(mirror), prefix=PREFIX) as srv:
        yield srv


def test_dirstore_serves_feed_tables_and_files(dir_server, session):
    base = dir_server.base_url
    assert session.get(base + "info/json").json() == _feed()
    assert A in session.get(base + "info/files").text
    assert session.get(base + "file/" + SLASHED).content == DATA[SLASHED]
    r = session.get(base + "file/" + A, headers={"Range": "bytes=-10"})
    assert r.status_code == 206 and r.content == DATA[A][-10:]
    assert r.headers["ETag"].startswith('"') and r.headers["Last-Modified"]


def test_dirstore_serves_only_catalogued_files(dir_server, session, mirror):
    assert session.get(dir_server.base_url + "file/stray.part").status_code == 404
    os.remove(mirror / "file" / B)
    assert session.get(dir_server.base_url + "file/" + B).status_code == 404
    resp, _ = raw_get(dir_server, PREFIX + "file/../secret")
    assert resp.status == 404


def test_dirstore_refuses_symlinks_out_of_the_mirror(tmp_path, mirror, session):
    outside = tmp_path / "outside.zip"
    outside.write_bytes(b"secret")
    os.remove(mirror / "file" / B)
    os.symlink(outside, mirror / "file" / B)
    with ApiServer(DirStore(mirror)) as srv:
        assert session.get(srv.base_url + "file/" + B).status_code == 404


def test_dirstore_rereads_on_each_request(dir_server, session, mirror):
    first = session.head(dir_server.base_url + "file/" + A).headers["ETag"]
    (mirror / "file" / A).write_bytes(b"rewritten")
    r = session.get(dir_server.base_url + "file/" + A)
    assert r.content == b"rewritten"
    assert r.headers["ETag"] != first
    feed = _feed()
    del feed["ce-full"]["2.4.7"]
    (mirror / "info" / "json").write_text(json.dumps(feed))
    assert session.get(dir_server.base_url + "info/json").json() == feed
    assert session.get(dir_server.base_url + "file/" + B).status_code == 404


def test_dirstore_without_feed_is_empty(tmp_path, session):
    with ApiServer(DirStore(tmp_path)) as srv:
        assert session.get(srv.base_url + "info/json").json() == {}
        assert session.get(srv.base_url + "info/files").text == "No results found.\n"


def test_dirstore_sends_large_files_with_sendfile_never_through_memory(tmp_path, session, monkeypatch):
    name = "big.tar.gz"
    root = tmp_path / "m"
    (root / "info").mkdir(parents=True)
    (root / "info" / "json").write_text(json.dumps({"other": [{"file_name": name}]}))
    (root / "file").mkdir()
    data = os.urandom(3 * 2**20 + 7)
    (root / "file" / name).write_bytes(data)
    calls, reads = [], []
    real_sendfile, real_read = os.sendfile, io.BufferedReader.read
    monkeypatch.setattr(os, "sendfile", lambda *a: calls.append(a[2:]) or real_sendfile(*a))
    store = DirStore(root)
    real_get = store.get

    def spying_get(file_name):
        info, fh = real_get(file_name)
        return info, Spy(fh.detach())

    class Spy(io.BufferedReader):  # not a plain file: the server copies it in chunks
        def read(self, n=-1):
            reads.append(n)
            return real_read(self, n)

    with ApiServer(store) as srv:
        r = session.get(srv.base_url + "file/" + name)
        assert r.content == data
        assert calls and calls[0] == (0, len(data))
        r = session.get(srv.base_url + "file/" + name, headers={"Range": "bytes=100-"})
        assert r.content == data[100:] and calls[-1] == (100, len(data) - 100)
        store.get = spying_get
        assert session.get(srv.base_url + "file/" + name).content == data
    assert reads and all(0 < n <= 64 * 1024 for n in reads)


def test_range_with_non_ascii_digits_is_ignored_not_a_server_error(demo_mirror):
    with ApiServer(DirStore(demo_mirror)) as server:
        name = next(iter(sorted(p.name for p in (demo_mirror / "file").iterdir() if p.is_file())))
        response = requests.get(server.base_url + "file/" + name, headers={"Range": "bytes=\u00b2-"})
        assert response.status_code == 200
        assert response.content == (demo_mirror / "file" / name).read_bytes()


def test_a_fifo_planted_in_a_mirror_is_refused_not_a_hang(demo_mirror):
    feed = json.loads((demo_mirror / "info" / "json").read_text())
    name = next(r.file_name for r in parse_feed(feed) if "/" not in r.file_name)
    (demo_mirror / "file" / name).unlink()
    os.mkfifo(demo_mirror / "file" / name)
    with ApiServer(DirStore(demo_mirror)) as server:
        response = requests.get(server.base_url + "file/" + name, timeout=5)
        assert response.status_code == 404
