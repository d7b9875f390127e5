"""repo.magento.com and packagist, played over a fixture :class:`~magedl.composer.fixtures.Graph`.

Pure request handlers: ``handle(method, path, headers) -> Reply``, no
sockets, so any HTTP server (the project's emulator, a test's
``ThreadingHTTPServer``) can carry them.  What they answer follows
``COMPOSER.md``:

:class:`MagentoRepoApp`
    Basic auth on every path with Marketplace keys, each key an
    :class:`Entitlement`; 401 with a JSON ``warning`` for missing or invalid
    keys; a personalised ``packages.json`` in the ``providers`` (as seen in
    2024), ``inline`` (older) or ``metadata-url`` layout; provider and package
    files named by their sha256; archives under ``/archives/`` with SHA-1
    shasums, 403 for an archive the key is not entitled to.
:class:`PackagistApp`
    The Composer 2 (p2) layout without auth: ``available-packages``,
    minified ``p2`` files, ``~dev`` files for branches, GitHub-like zipballs
    under ``/dists/``.

Both answer HEAD and single byte ranges, and can be told to ``throttle`` the
next requests (429/503 with ``Retry-After: 1``).  Dist URLs are absolute,
built from the ``base_url`` given to ``handle`` or the constructor, else from
the request's Host header.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import threading
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from magedl.composer.fixtures import MAGENTO, PACKAGIST, Graph, Release
from magedl.composer.metadata import minify_versions

log = logging.getLogger(__name__)

__all__ = ["COMMERCE", "DISABLED", "INVALID_KEYS_WARNING", "LAPSED", "NO_KEYS_WARNING",
           "OPEN_SOURCE", "Entitlement", "MagentoRepoApp", "PackagistApp", "Reply"]

OPEN_SOURCE = "open-source"
COMMERCE = "commerce"
DISABLED = "disabled"
LAPSED = "lapsed"
# Provider groups (fixture editions) each kind of key sees.  A lapsed licence
# still lists Open Source metadata but may fetch no archive.
_EDITIONS = {OPEN_SOURCE: ("ce",), COMMERCE: ("ce", "ee"), LAPSED: ("ce",), DISABLED: ()}
_PROVIDER_FILES = {"ce": "provider-ce", "ee": "provider-ee"}
NO_KEYS_WARNING = ("You haven't provided your Magento authentication keys. For instructions, "
                   "visit https://experienceleague.adobe.com/docs/commerce-operations/"
                   "installation-guide/prerequisites/authentication-keys.html")
INVALID_KEYS_WARNING = ("Your Magento authentication keys are invalid. Please double-check "
                        "your keys in your Marketplace account")
JSON_TYPE = "application/json"
ZIP_TYPE = "application/zip"


@dataclass
class Reply:
    """One answer: status, headers and the body (empty for HEAD)."""

    status: int
    headers: dict = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True)
class Entitlement:
    """What one public key may do on repo.magento.com.

    Attributes
    ----------
    private_key : str
        The password that must come with the public key.
    kind : str
        ``OPEN_SOURCE`` (CE packages), ``COMMERCE`` (CE and EE), ``DISABLED``
        (the pair is refused as invalid) or ``LAPSED`` (CE metadata, archives 403).
    """

    private_key: str
    kind: str = OPEN_SOURCE

    def __post_init__(self):
        if self.kind not in _EDITIONS:
            raise ValueError(f"unknown entitlement kind {self.kind!r}")


def _json(status: int, document, headers: dict | None = None) -> Reply:
    return Reply(status, {"Content-Type": JSON_TYPE, **(headers or {})},
                 json.dumps(document).encode())


def _text(status: int, text: str) -> Reply:
    return Reply(status, {"Content-Type": "text/plain; charset=utf-8"}, text.encode())


_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def _finish(method: str, headers: dict, reply: Reply) -> Reply:
    """Apply a single byte range to a 200, set Content-Length, drop the body for HEAD."""
    size = len(reply.body)
    match = _RANGE.fullmatch(headers.get("range", "").strip())
    if reply.status == 200 and match and match.group(1) + match.group(2):
        first, last = match.groups()
        if not first:  # a suffix range: the last N bytes
            start, end = max(size - int(last), 0), size - 1
        else:
            start, end = int(first), min(int(last) if last else size - 1, size - 1)
        if start >= size or start > end:
            reply = Reply(416, {"Content-Range": f"bytes */{size}"})
        else:
            reply = Reply(206, {**reply.headers, "Content-Range": f"bytes {start}-{end}/{size}"},
                          reply.body[start:end + 1])
    if reply.status in (200, 206):
        reply.headers["Accept-Ranges"] = "bytes"
    reply.headers["Content-Length"] = str(len(reply.body))
    if method == "HEAD":
        reply.body = b""
    return reply


class _App:
    """What both repositories share: logging, throttling, HEAD and ranges."""

    repo = ""

    def __init__(self, graph: Graph, base_url: str | None):
        self.graph = graph
        self.base_url = base_url
        self.requests: list[tuple[str, str]] = []  # (method, path), for tests to inspect
        self._lock = threading.Lock()  # servers call handle() from many threads
        self._throttle_left = 0
        self._throttle_status = 429

    def throttle(self, count: int, status: int = 429) -> None:
        """Answer the next *count* requests with *status* (429 or 503) and ``Retry-After: 1``."""
        with self._lock:
            self._throttle_left, self._throttle_status = count, status

    def handle(self, method: str, path: str, headers: dict | None = None,
               base_url: str | None = None) -> Reply:
        """Answer one request.

        Parameters
        ----------
        method : str
        path : str
            The request target; a query is ignored, ``%24`` decodes to ``$``.
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
            reply = _json(status, {"message": "Too Many Requests"}, {"Retry-After": "1"})
        elif method not in ("GET", "HEAD"):
            reply = _text(405, "Method Not Allowed\n")
            reply.headers["Allow"] = "GET, HEAD"
        else:
            base = base_url or self.base_url or f"http://{headers.get('host', 'localhost')}"
            reply = self._route(unquote(urlsplit(path).path), headers, base.rstrip("/"))
        return _finish(method, headers, reply)

    def _route(self, route: str, headers: dict, base: str) -> Reply:
        raise NotImplementedError

    def _archive(self, route: str) -> tuple[str, Release] | None:
        """Find the release whose archive lives at *route* on this repository."""
        parts = route.strip("/").split("/")
        if len(parts) != 4:
            return None
        name = f"{parts[1]}/{parts[2]}".lower()
        if name not in self.graph.packages or self.repo not in self.graph.package(name).repos:
            return None
        for release in self.graph.package(name).releases:
            if release.dist_path == route.lstrip("/"):
                return name, release
        return None


class MagentoRepoApp(_App):
    """repo.magento.com: personalised metadata and archives behind Marketplace keys.

    Parameters
    ----------
    graph : Graph
    layout : str
        ``"providers"`` (default, as seen in 2024), ``"inline"`` or ``"metadata-url"``.
    keys : dict
        Public key -> :class:`Entitlement`; may be changed while serving.
    base_url : str, optional
        Default base for dist URLs.
    """

    repo = MAGENTO

    def __init__(self, graph: Graph, *, layout: str = "providers",
                 keys: dict[str, Entitlement] | None = None, base_url: str | None = None):
        if layout not in ("providers", "inline", "metadata-url"):
            raise ValueError(f"unknown layout {layout!r}")
        super().__init__(graph, base_url)
        self.layout = layout
        self.keys = dict(keys or {})
        self._tampered: set[str] = set()

    def tamper(self, target: str) -> None:
        """Serve *target*'s file altered while its listing keeps the old sha256.

        *target* is a provider file (``"provider-ce"``) or a package name.
        """
        with self._lock:
            self._tampered.add(target.lower())

    def _authorise(self, headers: dict) -> Entitlement | Reply:
        value = headers.get("authorization")
        if not value:
            return _json(401, {"warning": NO_KEYS_WARNING},
                         {"WWW-Authenticate": 'Basic realm="repo.magento.com"'})
        invalid = _json(401, {"warning": INVALID_KEYS_WARNING},
                        {"WWW-Authenticate": 'Basic realm="repo.magento.com"'})
        scheme, _, token = value.partition(" ")
        try:
            public, sep, private = base64.b64decode(token.strip(), validate=True).decode(
                "utf-8").partition(":")
        except ValueError:  # bad base64 or UTF-8
            return invalid
        entitlement = self.keys.get(public)
        if (scheme.lower() != "basic" or not sep or entitlement is None
                or entitlement.kind == DISABLED
                or not hmac.compare_digest(private.encode(), entitlement.private_key.encode())):
            return invalid
        return entitlement

    def _body(self, key: str, document) -> tuple[bytes, bytes]:
        """Return (listed bytes, served bytes) of one file; they differ when tampered."""
        body = json.dumps(document).encode()
        with self._lock:
            tampered = key in self._tampered
        return body, body + b"\n" if tampered else body

    def _package_files(self, names: list[str], base: str) -> dict[str, tuple[bytes, bytes]]:
        return {name: self._body(name, {"packages": {name: {
            r.version: self.graph.entry(r, base) for r in self.graph.package(name).releases}}})
            for name in names}

    def _providers(self, names: list[str], editions: tuple, base: str) -> dict:
        """Provider file name -> (listed, served) bytes, for the editions the key sees."""
        files = self._package_files(names, base)
        out = {}
        for edition in editions:
            group = _PROVIDER_FILES[edition]
            listing = {n: {"sha256": hashlib.sha256(files[n][0]).hexdigest()} for n in names
                       if self.graph.package(n).edition == edition}
            out[group] = self._body(group, {"providers": listing})
        return out

    def _route(self, route: str, headers: dict, base: str) -> Reply:
        who = self._authorise(headers)
        if isinstance(who, Reply):
            return who
        editions = _EDITIONS[who.kind]
        names = [n for n in self.graph.names(MAGENTO) if self.graph.package(n).edition in editions]
        if route == "/packages.json":
            return _json(200, self._root(names, editions, base))
        match = re.fullmatch(r"/p/(provider-[a-z-]+)\$([0-9a-f]{64})\.json", route)
        if match and self.layout == "providers":
            listed, served = self._providers(names, editions, base).get(match[1], (b"", b""))
            if listed and hashlib.sha256(listed).hexdigest() == match[2]:
                return Reply(200, {"Content-Type": JSON_TYPE}, served)
            return _text(404, "Not Found\n")
        match = re.fullmatch(r"/p/([^/$]+/[^/$]+)\$([0-9a-f]{64})\.json", route)
        if match and self.layout == "providers" and match[1] in names:
            listed, served = self._package_files([match[1]], base)[match[1]]
            if hashlib.sha256(listed).hexdigest() == match[2]:
                return Reply(200, {"Content-Type": JSON_TYPE}, served)
        match = re.fullmatch(r"/p2/([^/]+/[^/~]+)\.json", route)
        if match and self.layout == "metadata-url" and match[1] in names:
            releases = self.graph.package(match[1]).releases
            return _json(200, {"packages": {match[1]: [self.graph.entry(r, base)
                                                       for r in releases]}})
        if route.startswith("/archives/"):
            return self._archive_reply(route, who, editions)
        return _text(404, "Not Found\n")

    def _root(self, names: list[str], editions: tuple, base: str) -> dict:
        if self.layout == "inline":
            return {"packages": {n: {r.version: self.graph.entry(r, base)
                                     for r in self.graph.package(n).releases} for n in names}}
        if self.layout == "metadata-url":
            return {"packages": [], "metadata-url": "/p2/%package%.json",
                    "available-packages": names}
        includes = {f"p/{group}$%hash%.json": {"sha256": hashlib.sha256(listed).hexdigest()}
                    for group, (listed, _) in self._providers(names, editions, base).items()}
        return {"packages": [], "providers-url": "/p/%package%$%hash%.json",
                "provider-includes": includes}

    def _archive_reply(self, route: str, who: Entitlement, editions: tuple) -> Reply:
        found = self._archive(route)
        if found is None:
            return _text(404, "Not Found\n")
        name, release = found
        if self.graph.package(name).edition not in editions or who.kind == LAPSED:
            return _text(403, "Forbidden\n")
        return Reply(200, {"Content-Type": ZIP_TYPE}, release.archive)


class PackagistApp(_App):
    """packagist.org's Composer 2 layout over the graph's packagist packages.

    Parameters
    ----------
    graph : Graph
    minified : bool
        Serve ``p2`` files minified (``"minified": "composer/2.0"``), as Packagist does.
    base_url : str, optional
        Default base for dist URLs.
    """

    repo = PACKAGIST

    def __init__(self, graph: Graph, minified: bool = True, *, base_url: str | None = None):
        super().__init__(graph, base_url)
        self.minified = minified

    def _route(self, route: str, headers: dict, base: str) -> Reply:
        names = self.graph.names(PACKAGIST)
        if route == "/packages.json":
            return _json(200, {"packages": [], "metadata-url": "/p2/%package%.json",
                               "available-packages": names})
        match = re.fullmatch(r"/p2/([^/]+/[^/~]+)(~dev)?\.json", route)
        if match and match[1] in names:
            entries = [self.graph.entry(r, base) for r in self.graph.package(match[1]).releases
                       if r.is_dev == bool(match[2])]
            if not self.minified:
                return _json(200, {"packages": {match[1]: entries}})
            return _json(200, {"packages": {match[1]: minify_versions(entries)},
                               "minified": "composer/2.0"})
        found = self._archive(route) if route.startswith("/dists/") else None
        if found is not None:
            return Reply(200, {"Content-Type": ZIP_TYPE}, found[1].archive)
        return _text(404, "Not Found\n")
