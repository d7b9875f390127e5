"""Strict HTTP/1.1 heads: every ambiguity a front proxy could read differently is a 400 that ends the connection.

Each case was accepted by the lenient parser this replaced (``http.client.parse_headers``):
conflicting ``Content-Length`` (first wins, the rest of the body read as a second request),
two ``Host`` headers, ``Host :``, a line without a colon, a NUL in a value (RFC 9112
sections 3.2, 5 and 6.3).
"""

import hashlib
import socket
from contextlib import closing

import pytest

from magedl.server import ApiServer, MemoryStore
from magedl.server.http import BadRequest, parse_head

NAME = "Magento-CE-2.4.6.zip"
DATA = b"PK\x03\x04" + b"x" * 1000
SMUGGLED = b"GET /file/" + NAME.encode() + b" HTTP/1.1\r\nHost: evil.example\r\n\r\n"

MALFORMED = {
    "conflicting Content-Length": b"Host: x\r\nContent-Length: 0\r\nContent-Length: %d\r\n" % len(SMUGGLED),
    "a Content-Length list that disagrees": b"Host: x\r\nContent-Length: 0, %d\r\n" % len(SMUGGLED),
    "two Host headers": b"Host: mirror.internal\r\nHost: evil.example\r\n",
    "Host with a space before the colon": b"Host : evil.example\r\n",
    "a header line without a colon": b"Host: x\r\nX-Forwarded-Proto https\r\n",
    "a NUL in a header value": b"Host: x\r\nX-Note: a\x00b\r\n",
    "a NUL in a header name": b"Host: x\r\nX-\x00Note: a\r\n",
    "a bare CR in a header value": b"Host: x\r\nX-Note: a\rb\r\n",
    "a folded header line": b"Host: x\r\nX-Note: a\r\n b\r\n",
    "no Host in HTTP/1.1": b"Accept: */*\r\n",
    "Content-Length beside Transfer-Encoding": b"Host: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n",
    "two Authorization headers": b"Host: x\r\nAuthorization: Basic YTpi\r\nAuthorization: Basic Yzpk\r\n",
}


@pytest.fixture
def server():
    feed = {"ce-full": {"2.4.6": [{"file_name": NAME, "md5": hashlib.md5(DATA).hexdigest()}]}}
    with ApiServer(MemoryStore(feed, {NAME: DATA})) as srv:
        yield srv


def exchange(port, data):
    """Send *data*, then read until the server closes: everything it answered (the test's timeout guards a hang)."""
    with closing(socket.create_connection(("127.0.0.1", port), timeout=10)) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_each_ambiguous_head_is_400_and_the_connection_ends(server, case):
    answer = exchange(server.port, b"GET /info/help HTTP/1.1\r\n" + MALFORMED[case] + b"\r\n" + SMUGGLED)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert answer.count(b"\r\nServer: ") == 1  # one answer: nothing after the head was read as a request
    assert b"\r\nConnection: close\r\n" in answer.partition(b"\r\n\r\n")[0] + b"\r\n"


def test_a_well_formed_head_with_the_same_fields_is_served(server):
    # The same shapes, each once: a body of the length given, then the next request on the same connection.
    answer = exchange(server.port, b"GET /info/help HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\nX-Note:\t a\tb \r\n"
                                   b"\r\nHELLO" + SMUGGLED.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
    assert answer.count(b"HTTP/1.1 200 ") == 2 and answer.endswith(DATA)


def test_http_1_0_needs_no_host():
    assert parse_head(b"GET /x HTTP/1.0\r\n\r\n").headers.get("Host") is None


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_parse_head_says_what_is_wrong(case):
    with pytest.raises(BadRequest) as info:
        parse_head(b"GET / HTTP/1.1\r\n" + MALFORMED[case] + b"\r\n")
    assert info.value.status == 400 and str(info.value)


def test_headers_keep_order_and_compare_names_in_any_case():
    head = parse_head(b"GET / HTTP/1.1\r\nHost: x\r\nrange: bytes=0-1\r\nX-A: 1\r\nx-a: 2\r\n\r\n")
    assert head.headers.get("RANGE") == "bytes=0-1" and head.headers.get_all("X-A") == ["1", "2"]
    del head.headers["Range"]
    assert "Range" not in head.headers and head.headers.items() == [("Host", "x"), ("X-A", "1"), ("x-a", "2")]
