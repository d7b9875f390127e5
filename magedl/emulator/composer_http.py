"""What both emulated Composer repositories share (:mod:`magedl.emulator.composer_apps`).

Replies as plain values, validators and 304s, single byte ranges, HEAD, a request log, throttling and
tampering for tests.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import threading
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from magedl.emulator.composer_graph import Graph
from magedl.ranges import UNSATISFIABLE, parse_range

log = logging.getLogger(__name__)

__all__ = ["JSON_TYPE", "MODIFIED", "ZIP_TYPE", "App", "Reply", "json_reply", "text_reply"]

JSON_TYPE = "application/json"
ZIP_TYPE = "application/zip"
#: When every file was last modified, unless touched since (the fixture archives' date).
MODIFIED = 1712664000.0  # 2024-04-09 12:00:00 UTC


@dataclass
class Reply:
    """One answer: status, headers and the body (empty for HEAD)."""

    status: int
    headers: dict = field(default_factory=dict)
    body: bytes = b""
    modified: float | None = None  # Last-Modified, as epoch seconds; the app's default when None


def json_reply(status: int, document, headers: dict | None = None, modified: float | None = None) -> Reply:
    """A JSON reply (last modified at *modified*, epoch seconds, when given)."""
    return Reply(status, {"Content-Type": JSON_TYPE, **(headers or {})},
                 json.dumps(document).encode(), modified)


def text_reply(status: int, text: str) -> Reply:
    """A short plain-text reply (errors)."""
    return Reply(status, {"Content-Type": "text/plain; charset=utf-8"}, text.encode())


def _not_modified(headers: dict, etag: str, modified: float) -> bool:
    """Whether a conditional GET or HEAD may be answered 304 (RFC 9110 13.2.2: If-None-Match first)."""
    if "if-none-match" in headers:
        tags = [t.strip() for t in headers["if-none-match"].split(",")]
        return "*" in tags or etag in tags or f"W/{etag}" in tags
    try:
        since = email.utils.parsedate_to_datetime(headers.get("if-modified-since", "")).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return False
    return int(modified) <= since


def _finish(method: str, headers: dict, reply: Reply, modified: float) -> Reply:
    """Validators and conditionals on a 200, then a single byte range, Content-Length, no body for HEAD."""
    size = len(reply.body)
    if reply.status == 200:
        etag = f'"{hashlib.sha256(reply.body).hexdigest()[:32]}"'
        validators = {"ETag": etag, "Last-Modified": email.utils.formatdate(modified, usegmt=True)}
        reply.headers.update(validators)
        if _not_modified(headers, etag, modified):
            reply = Reply(304, validators)
    span = parse_range(headers.get("range"), size) if reply.status == 200 else None
    if span == UNSATISFIABLE:
        reply = Reply(416, {"Content-Range": f"bytes */{size}"})
    elif span is not None:
        start, end = span
        reply = Reply(206, {**reply.headers, "Content-Range": f"bytes {start}-{end}/{size}"},
                      reply.body[start:end + 1])
    if reply.status in (200, 206):
        reply.headers["Accept-Ranges"] = "bytes"
    reply.headers["Content-Length"] = str(len(reply.body))
    if method == "HEAD":
        reply.body = b""
    return reply


class App:
    """A repository over a graph: subclasses answer :meth:`_route`; this class logs, throttles and finishes."""

    repo = ""

    def __init__(self, graph: Graph, base_url: str | None):
        self.graph = graph
        self.base_url = base_url
        self.requests: list[tuple[str, str]] = []  # (method, path), for tests to inspect
        self._lock = threading.Lock()  # servers call handle() from many threads
        self._throttle_left = 0
        self._throttle_status = 429
        self._tampered: set[str] = set()
        self._modified: dict[str, float] = {}  # package name -> when it was last touched

    def throttle(self, count: int, status: int = 429) -> None:
        """Answer the next *count* requests with *status* (429 or 503) and ``Retry-After: 1``."""
        with self._lock:
            self._throttle_left, self._throttle_status = count, status

    def tamper(self, target: str) -> None:
        """Serve *target* altered while its listing keeps the old sha256 or SHA-1.

        *target* is an archive's ``dist_path`` (its last byte flipped) or, on
        repo.magento.com, a provider file (``"provider-ce"``) or a package
        name (its package file gets a trailing newline).
        """
        with self._lock:
            self._tampered.add(target.lower())

    def untamper(self) -> None:
        """Serve every file as it is again."""
        with self._lock:
            self._tampered.clear()

    def _is_tampered(self, target: str) -> bool:
        with self._lock:
            return target.lower() in self._tampered

    def modified(self, name: str | None = None) -> float:
        """When package *name*'s metadata last changed (any package's when None)."""
        with self._lock:
            if name is None:
                return max(self._modified.values(), default=MODIFIED)
            return self._modified.get(name.lower(), MODIFIED)

    def handle(self, method: str, path: str, headers: dict | None = None,
               base_url: str | None = None) -> Reply:
        """Answer one request.

        Parameters
        ----------
        method : str
        path : str
            The request target; ``%24`` decodes to ``$``.
        headers : dict, optional
            Request headers, any case.
        base_url : str, optional
            Scheme, host and path prefix for absolute dist URLs.
        """
        headers = {k.lower(): v for k, v in (headers or {}).items()}
        method = method.upper()
        with self._lock:
            self.requests.append((method, path))
            throttled = self._throttle_left > 0
            self._throttle_left -= throttled
            status = self._throttle_status
        if throttled:
            reply = json_reply(status, {"message": "Too Many Requests"}, {"Retry-After": "1"})
        elif method not in ("GET", "HEAD"):
            reply = text_reply(405, "Method Not Allowed\n")
            reply.headers["Allow"] = "GET, HEAD"
        else:
            base = base_url or self.base_url or f"http://{headers.get('host', 'localhost')}"
            target = urlsplit(path)
            reply = self._route(unquote(target.path), headers, base.rstrip("/"), parse_qs(target.query))
        return _finish(method, headers, reply, MODIFIED if reply.modified is None else reply.modified)

    def _route(self, route: str, headers: dict, base: str, query: dict) -> Reply:
        raise NotImplementedError

    def _archive(self, route: str) -> Reply | None:
        """The archive at *route* on this repository (altered if tampered with), or None."""
        parts = route.strip("/").split("/")
        if len(parts) != 4:
            return None
        name = f"{parts[1]}/{parts[2]}".lower()
        if name not in self.graph.packages or self.repo not in self.graph.package(name).repos:
            return None
        for release in self.graph.package(name).releases:
            if release.dist_path == route.lstrip("/"):
                body = release.archive
                if self._is_tampered(release.dist_path):
                    body = body[:-1] + bytes([body[-1] ^ 0xFF])
                return Reply(200, {"Content-Type": ZIP_TYPE}, body)
        return None
