"""A tiny HTTP/1.1 file server on loopback for the faults the emulator does not play.

It serves one file at any ``.../file/<name>`` path, honours Range and If-Range
(strong ETag), closes the connection after every answer, and plays one
fault per request from two queues: :attr:`Loopback.faults` (any file request)
and :attr:`Loopback.ranged_faults` (requests with a Range header only).
:attr:`Loopback.always` plays a fault on every request. Every request is
logged with what was actually written to the socket.

Faults
------
cut_headers      close in the middle of the status line and headers
cut_body         send :attr:`Loopback.cut_at` body bytes, then close
cut_last_byte    send all of the body but its last byte, then close
replace          like cut_body, then serve :attr:`Loopback.next_data` from now on
wrong_start      answer a Range with 206 for another start than asked
ignore_range     answer a Range with 200 and the whole file (Accept-Ranges still sent)
long_length      Content-Length 1000 more than the body sent
huge_length      Content-Length of 5,000 digits
short_length     Content-Length 1000 less than the body sent
redirect_loop    302 to itself

Besides the faults, :attr:`Loopback.garble` makes 206 answers disagree with
the 200 answer under the same ETag (a CDN edge holding another copy, a
middlebox): the first ``garble`` bytes of each of the next
:attr:`Loopback.garble_count` ranged bodies (every one when ``None``) are
inverted; :attr:`Loopback.garble_when`, when set, limits it to the ranges
``(start, end)`` it accepts.
"""

import collections
import hashlib
import socket
import socketserver
import threading
from dataclasses import dataclass

from magedl.ranges import UNSATISFIABLE, parse_range

LAST_MODIFIED = "Mon, 01 Jan 2024 00:00:00 GMT"
REPLACED = "Tue, 02 Jan 2024 00:00:00 GMT"  # Last-Modified of the file after a replace


@dataclass
class Record:
    method: str
    path: str
    range: str = None
    if_range: str = None
    authorization: bool = False
    status: int = 0
    sent: int = 0
    fault: str = None

    @property
    def start(self):
        return int(self.range.split("=")[1].split("-")[0]) if self.range else 0


class Loopback:
    """Serve *data* on *host* (plain HTTP, or TLS with an ``ssl.SSLContext``)."""

    def __init__(self, data, host="127.0.0.1", tls=None, validators=True):
        self.data = data
        self.next_data = None
        self.swapped_at = None  # index in the log of the first request answered from next_data
        self.validators = validators
        self.faults = collections.deque()
        self.ranged_faults = collections.deque()
        self.always = None
        self.cut_at = 100_000
        self.garble = 0
        self.garble_count = None
        self.garble_when = None
        #: Send the first 64 KiB of a plain GET, then wait for a ranged request before the rest,
        #: so a segmented client has split the file before the first answer could bring it all.
        self.hold_plain = False
        self.ranged_seen = threading.Event()
        self.log = []
        self.connections = 0
        self.lock = threading.Lock()
        self.tls = tls
        owner = self

        class Handler(socketserver.StreamRequestHandler):
            def setup(self):
                with owner.lock:
                    owner.connections += 1
                if owner.tls is not None:
                    self.request = owner.tls.wrap_socket(self.request, server_side=True)
                super().setup()

            def handle(self):
                owner._handle(self)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request, client_address):
                pass  # a client that hangs up, or fails the TLS handshake, is part of the test

        self.server = Server((host, 0), Handler)
        self.host = host
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self):
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{self.host}:{self.server.server_address[1]}/"

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _pick(self, has_range):
        with self.lock:
            if self.always:
                return self.always
            if has_range and self.ranged_faults:
                return self.ranged_faults.popleft()
            if self.faults:
                return self.faults.popleft()
        return None

    def _handle(self, handler):
        if handler.rfile.peek(1)[:1] == b"\x16":  # a TLS ClientHello: answer as a plain web server does
            handler.wfile.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return self._close(handler)
        head = handler.rfile.readline(65537).decode("latin-1")
        if not head.strip():
            return
        method, path, _ = (head.split(" ", 2) + ["", ""])[:3]
        headers = {}
        while True:
            line = handler.rfile.readline(65537).decode("latin-1")
            if line in ("\r\n", "\n", ""):
                break
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        record = Record(method, path, headers.get("range"), headers.get("if-range"), "authorization" in headers)
        record.fault = fault = self._pick(record.range is not None)
        if record.range:
            self.ranged_seen.set()
        with self.lock:
            self.log.append(record)
            data = self.data  # what this request is answered from, whatever a replace does meanwhile
            modified = LAST_MODIFIED if self.swapped_at is None else REPLACED
        etag = '"' + hashlib.md5(data).hexdigest()[:16] + '"'
        out = handler.wfile
        if fault == "cut_headers":
            out.write(b"HTTP/1.1 200 OK\r\nContent-Le")
            return self._close(handler)
        if fault == "redirect_loop":
            record.status = 302
            out.write(f"HTTP/1.1 302 Found\r\nLocation: {path}\r\nContent-Length: 0\r\n"
                      "Connection: close\r\n\r\n".encode())
            return self._close(handler)
        size = len(data)
        span = None
        if record.range and fault != "ignore_range" and (record.if_range in (None, etag, modified)):
            span = parse_range(record.range, size)
        extra = []
        if self.validators:
            extra += [f"ETag: {etag}", f"Last-Modified: {modified}"]
        if span == UNSATISFIABLE:
            record.status = 416
            out.write(("HTTP/1.1 416 Range Not Satisfiable\r\n" + f"Content-Range: bytes */{size}\r\n"
                       "Content-Length: 0\r\nConnection: close\r\n\r\n").encode())
            return self._close(handler)
        if span:
            start, end = span
            if fault == "wrong_start":
                start = 0 if start else 4096
                end = min(size - 1, start + (span[1] - span[0]))
            body = self._garbled(data[start:end + 1], start, end)
            status = "206 Partial Content"
            extra.append(f"Content-Range: bytes {start}-{end}/{size}")
        else:
            body, status = data, "200 OK"
        record.status = int(status[:3])
        length = len(body) + {"long_length": 1000, "short_length": -1000}.get(fault, 0)
        if fault == "huge_length":
            length = "9" * 5000
        lines = [f"HTTP/1.1 {status}", f"Content-Length: {length}", "Content-Type: application/octet-stream",
                 "Accept-Ranges: bytes", "Connection: close", *extra]
        out.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        if method == "HEAD":
            return self._close(handler)
        if fault in ("cut_body", "replace"):
            body = body[: self.cut_at]
        elif fault == "cut_last_byte":
            body = body[:-1]
        try:
            if self.hold_plain and not record.range:
                out.write(body[:64 << 10])
                out.flush()
                record.sent = len(body[:64 << 10])
                self.ranged_seen.wait(10)
                body = body[64 << 10:]
            out.write(body)
            out.flush()
            record.sent += len(body)
        except OSError:
            pass
        if fault == "replace":
            with self.lock:
                self.data = self.next_data
                self.swapped_at = len(self.log)
        self._close(handler)

    def _garbled(self, body, start, end):
        with self.lock:
            if not self.garble or self.garble_count == 0:
                return body
            if self.garble_when is not None and not self.garble_when(start, end):
                return body
            if self.garble_count is not None:
                self.garble_count -= 1
        n = min(self.garble, len(body))
        return bytes(b ^ 0xFF for b in body[:n]) + body[n:]

    @staticmethod
    def _close(handler):
        try:
            handler.wfile.flush()
            handler.request.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
