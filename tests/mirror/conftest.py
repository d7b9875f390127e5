"""Fixtures of the mirror tests: Composer repositories on loopback.

Until the emulator carries the emulated repositories (magedl.composer.emulated),
each test starts its own in a ThreadingHTTPServer.
"""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class Repo:
    """One emulated repository on a loopback address: its app, URL, request log and corrupted paths."""

    def __init__(self, app, host):
        self.app, self.corrupt = app, set()
        repo = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self):
                reply = app.handle(self.command, self.path, dict(self.headers.items()), base_url=repo.url)
                body = reply.body
                if self.path.lstrip("/") in repo.corrupt and body:
                    body = body[:-1] + bytes([body[-1] ^ 0xFF])
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_HEAD = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def gets(self, prefix=""):
        return [p for m, p in self.app.requests if m == "GET" and p.lstrip("/").startswith(prefix)]

    def stop(self):
        """Stop serving (again is fine): the far side of an air gap has no upstream."""
        if self.thread.is_alive():
            self.server.shutdown()
            self.thread.join()
        self.server.server_close()


@pytest.fixture
def repo_server(monkeypatch):
    """Factory: ``repo_server(app, host)`` -> a started :class:`Repo`; all stopped after the test.

    COMPOSER_HOME and COMPOSER_AUTH are cleared, so only the keys a test gives are found.
    """
    monkeypatch.delenv("COMPOSER_HOME", raising=False)
    monkeypatch.delenv("COMPOSER_AUTH", raising=False)
    started = []

    def start(app, host="127.0.0.1"):
        started.append(Repo(app, host))
        return started[-1]

    yield start
    for repo in started:
        repo.stop()
