"""Metadata reads are bounded: hostile answers from a server on 127.0.0.1 give a FeedError naming the URL.

The server here answers ``info/json`` (and the other metadata paths) with
whatever a test puts in ``answers``: an endless body, an absurd
Content-Length, JSON nested 200,000 deep, a 5,000-digit number.
"""

import http.server
import threading

import pytest
from clirun import run

from magedl.config import Settings
from magedl.errors import FeedError
from magedl.service.api import METADATA_LIMIT, Client
from magedl.service.retry import RetryPolicy


class Hostile(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (http.server's naming)
        answer = self.server.answers.get(self.path.lstrip("/"))
        if answer is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        try:
            answer(self)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading: what the test wants

    def log_message(self, *args):
        pass


@pytest.fixture
def hostile():
    """``(base URL, answers)``: set ``answers["info/json"] = fn(handler)``."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    server.daemon_threads = True
    server.answers = {}
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/", server.answers
    server.shutdown()
    server.server_close()


def body(data, headers=None, status=200):
    def answer(handler):
        handler.send_response(status)
        for key, value in (headers or {"Content-Length": str(len(data))}).items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)
    return answer


def endless(handler):
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Connection", "close")
    handler.end_headers()
    chunk = b"[" * 65536
    while True:
        handler.wfile.write(chunk)


@pytest.fixture
def client(hostile, sleeps):
    base, _ = hostile
    with Client(Settings(base, None), retry=RetryPolicy(attempts=2, backoff=0)) as c:
        yield c


def test_endless_body_stops_at_the_documented_limit(client, hostile):
    base, answers = hostile
    answers["info/json"] = endless
    assert client.metadata_limit == METADATA_LIMIT == 64 * 2**20
    with pytest.raises(FeedError) as info:
        client.feed()
    assert f"{base}info/json: the answer is larger than the 64 MiB allowed for catalogue data" in str(info.value)


@pytest.mark.parametrize("path", ["info/files", "info/versions"])
def test_every_metadata_read_is_capped(client, hostile, path):
    base, answers = hostile
    answers[path] = endless
    client.metadata_limit = 2**20
    with pytest.raises(FeedError, match=f"{base}{path}: the answer is larger than the 1 MiB"):
        client.get_text(path)


def test_content_length_over_the_limit_is_refused_before_reading(client, hostile):
    base, answers = hostile
    answers["info/json"] = body(b"{}", {"Content-Length": str(10 * 2**30)})
    with pytest.raises(FeedError) as info:
        client.feed()
    assert f"{base}info/json: the answer would be 10240 MiB, more than the 64 MiB allowed" in str(info.value)


@pytest.mark.parametrize("digits", [30, 1000, 5000])
def test_content_length_with_thousands_of_digits(client, hostile, digits):
    base, answers = hostile
    answers["info/json"] = body(b"{}", {"Content-Length": "9" * digits, "Connection": "close"})
    with pytest.raises(FeedError) as info:
        client.feed()
    assert f"{base}info/json: " in str(info.value) and "9999999999" not in str(info.value)


def test_json_nested_200000_deep(client, hostile):
    base, answers = hostile
    answers["info/json"] = body(b"[" * 200_000 + b"]" * 200_000)
    with pytest.raises(FeedError) as info:
        client.feed()
    assert str(info.value) == f"{base}info/json: the JSON is nested deeper than 64 levels; this is not metadata"


def test_5000_digit_number(client, hostile):
    base, answers = hostile
    answers["info/json"] = body(b'{"ce-full": {"2.4.6": [{"file_name": "a.zip", "size": ' + b"7" * 5000 + b"}]}}")
    with pytest.raises(FeedError) as info:
        client.feed()
    assert str(info.value) == f"{base}info/json: the JSON holds a number of 5000 digits; this is not metadata"


def test_ordinary_feed_still_reads(client, hostile):
    _, answers = hostile
    answers["info/json"] = body(b'{"ce-full": {"2.4.6": [{"file_name": "a.zip", "size": 123456789}]}}')
    [release] = client.catalog()
    assert release.file_name == "a.zip" and release.extra["size"] == 123456789


@pytest.mark.parametrize("answer, words", [
    (endless, "larger than the 64 MiB"),
    (body(b"[" * 200_000), "nested deeper than 64 levels"),
    (body(b"{}", {"Content-Length": "1" * 5000, "Connection": "close"}), "Content-Length"),
])
def test_the_command_line_says_it_in_one_line(hostile, capsys, answer, words):
    base, answers = hostile
    answers["info/json"] = answer
    code, out, err = run(capsys, "--base-url", base, "list")
    assert code == 1 and out == "" and "Traceback" not in err and "internal error" not in err
    [line] = [x for x in err.splitlines() if x.startswith("magedl: error:")]
    assert words in line and f"{base}info/json" in line
