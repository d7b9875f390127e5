"""repo.magento.com and packagist, played over a fixture :class:`~magedl.emulator.composer_graph.Graph`.

Rule: these are pure request handlers, ``handle(method, path, headers) -> Reply``, with no sockets,
so any HTTP server can carry them. What each answers: see docs/design.md, "Notes: the emulator".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from magedl.composer.metadata import minify_versions
from magedl.emulator.composer_graph import MAGENTO, PACKAGIST, Graph
from magedl.emulator.composer_http import JSON_TYPE, MODIFIED, App, Reply, json_reply, text_reply

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


#: What packagist's advisory API knows of the fixture graph: one advisory on a Magento package (the real
#: CVE-2024-34102, fixed in 2.4.7-p1, 2.4.6-p6, 2.4.5-p8 and 2.4.4-p9) and one made up for a third-party one.
ADVISORIES = (
    {"advisoryId": "PKSA-emu1-magento-0001", "packageName": "magento/product-community-edition",
     "remoteId": "GHSA-emu1-mage-0001", "title": "Adobe Commerce and Magento Open Source XML External Entity "
     "(XXE) vulnerability (CosmicSting)", "link": "https://helpx.adobe.com/security/products/magento/apsb24-40.html",
     "cve": "CVE-2024-34102", "affectedVersions": ">=2.4.7,<2.4.7-p1|>=2.4.6,<2.4.6-p6|>=2.4.5,<2.4.5-p8|<2.4.4-p9",
     "source": "GitHub", "reportedAt": "2024-06-13 15:15:00", "composerRepository": "https://packagist.org",
     "severity": "critical", "sources": [{"name": "GitHub", "remoteId": "GHSA-emu1-mage-0001"}]},
    {"advisoryId": "PKSA-emu2-monolog-0002", "packageName": "monolog/monolog", "remoteId": "monolog/monolog/"
     "emulated-1.yaml", "title": "Log record injection (an emulated advisory: none is known for the real 2.9.1)",
     "link": "https://github.com/Seldaek/monolog/releases/tag/2.9.2", "cve": None,
     "affectedVersions": ">=2.0.0,<2.9.2|>=1.0.0,<1.27.1", "source": "FriendsOfPHP/security-advisories",
     "reportedAt": "2024-03-01 10:00:00", "composerRepository": "https://packagist.org", "severity": "medium",
     "sources": [{"name": "FriendsOfPHP/security-advisories", "remoteId": "monolog/monolog/emulated-1.yaml"}]},
)


def _epoch(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp()


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


class MagentoRepoApp(App):
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
        # Composer 1 provider files give every version a repository-wide unique id, and Composer 2
        # still indexes them by it (ComposerRepository::loadAsyncPackages reads $version['uid']).
        self._uids = {(r.name, r.version): uid for uid, r in enumerate(
            (r for n in graph.names(MAGENTO) for r in graph.package(n).releases), start=1)}
        self._files: dict = {}  # (name, base) -> listed bytes of a package file: the graph does not change

    def _authorise(self, headers: dict) -> Entitlement | Reply:
        value = headers.get("authorization")
        if not value:
            return json_reply(401, {"warning": NO_KEYS_WARNING},
                         {"WWW-Authenticate": 'Basic realm="repo.magento.com"'})
        invalid = json_reply(401, {"warning": INVALID_KEYS_WARNING},
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

    def republish(self) -> None:
        """The graph's entries were changed (a re-published archive): list them anew, as the real service would."""
        self._files.clear()

    def _served(self, key: str, listed: bytes) -> bytes:
        """The bytes served for a file listed as *listed*: they differ when tampered with."""
        return listed + b"\n" if self._is_tampered(key) else listed

    def _package_file(self, name: str, base: str) -> bytes:
        """The listed bytes of one package's provider file (its versions, each with a ``uid``)."""
        key = (name, base)
        if key not in self._files:
            self._files[key] = json.dumps({"packages": {name: {
                r.version: {**self.graph.entry(r, base), "uid": self._uids[r.name, r.version]}
                for r in self.graph.package(name).releases}}}).encode()
        return self._files[key]

    def _providers(self, names: list[str], editions: tuple, base: str) -> dict[str, bytes]:
        """Provider file name -> listed bytes, for the editions the key sees."""
        out = {}
        for edition in editions:
            listing = {n: {"sha256": hashlib.sha256(self._package_file(n, base)).hexdigest()} for n in names
                       if self.graph.package(n).edition == edition}
            out[_PROVIDER_FILES[edition]] = json.dumps({"providers": listing}).encode()
        return out

    def _route(self, route: str, headers: dict, base: str, query: dict) -> Reply:
        who = self._authorise(headers)
        if isinstance(who, Reply):
            return who
        editions = _EDITIONS[who.kind]
        if route == "/packages.json":
            return json_reply(200, self._root(self._names(editions), editions, base))
        match = re.fullmatch(r"/p/(provider-[a-z-]+)\$([0-9a-f]{64})\.json", route)
        if match and self.layout == "providers":
            listed = self._providers(self._names(editions), editions, base).get(match[1], b"")
            if listed and hashlib.sha256(listed).hexdigest() == match[2]:
                return Reply(200, {"Content-Type": JSON_TYPE}, self._served(match[1], listed))
            return text_reply(404, "Not Found\n")
        match = re.fullmatch(r"/p/([^/$]+/[^/$]+)\$([0-9a-f]{64})\.json", route)
        if match and self.layout == "providers" and self._serves(match[1], editions):
            listed = self._package_file(match[1], base)
            if hashlib.sha256(listed).hexdigest() == match[2]:
                return Reply(200, {"Content-Type": JSON_TYPE}, self._served(match[1], listed),
                             modified=self.modified(match[1]))
        match = re.fullmatch(r"/p2/([^/]+/[^/~]+)\.json", route)
        if match and self.layout == "metadata-url" and self._serves(match[1], editions):
            releases = self.graph.package(match[1]).releases
            return json_reply(200, {"packages": {match[1]: [self.graph.entry(r, base) for r in releases]}},
                         modified=self.modified(match[1]))
        if route.startswith("/archives/"):
            return self._archive_reply(route, who, editions)
        return text_reply(404, "Not Found\n")

    def _names(self, editions: tuple) -> list[str]:
        """The packages a key of *editions* sees: read from the graph as it is now (a test may change it)."""
        return [n for n in self.graph.names(MAGENTO) if self.graph.package(n).edition in editions]

    def _serves(self, name: str, editions: tuple) -> bool:
        """Whether *name* is among :meth:`_names`, looked up alone: a package's request never costs a
        walk of the whole graph (the bench's cold run of 5,000 packages spent most of its emulator's time so)."""
        package = self.graph.packages.get(name)
        return package is not None and MAGENTO in package.repos and package.edition in editions

    def _root(self, names: list[str], editions: tuple, base: str) -> dict:
        if self.layout == "inline":
            return {"packages": {n: {r.version: self.graph.entry(r, base)
                                     for r in self.graph.package(n).releases} for n in names}}
        if self.layout == "metadata-url":
            return {"packages": [], "metadata-url": "/p2/%package%.json",
                    "available-packages": names}
        includes = {f"p/{group}$%hash%.json": {"sha256": hashlib.sha256(listed).hexdigest()}
                    for group, listed in self._providers(names, editions, base).items()}
        return {"packages": [], "providers-url": "/p/%package%$%hash%.json",
                "provider-includes": includes}

    def _archive_reply(self, route: str, who: Entitlement, editions: tuple) -> Reply:
        found = self._archive(route)
        if found is None:
            return text_reply(404, "Not Found\n")
        name = "/".join(route.strip("/").split("/")[1:3]).lower()
        if self.graph.package(name).edition not in editions or who.kind == LAPSED:
            return text_reply(403, "Forbidden\n")
        return found


def _listed(names: list[str], query: dict) -> list[str]:
    """Packagist's list API: the names matching ``filter`` (``*`` a wildcard) or of one ``vendor``."""
    vendor = query.get("vendor", [""])[-1].lower()
    pattern = query.get("filter", [""])[-1].lower()
    if vendor:
        names = [n for n in names if n.split("/", 1)[0] == vendor]
    if pattern:
        regex = re.compile(".*".join(re.escape(part) for part in pattern.split("*")))
        names = [n for n in names if regex.fullmatch(n)]
    return names


class PackagistApp(App):
    """packagist.org's Composer 2 layout over the graph's packagist packages.

    Parameters
    ----------
    graph : Graph
    minified : bool
        Serve ``p2`` files minified (``"minified": "composer/2.0"``), as Packagist does.
    base_url : str, optional
        Default base for dist URLs.

    Notes
    -----
    ``/metadata/changes.json?since=T`` answers as Packagist's: 400 with the
    current ``timestamp`` without a usable ``since``, a ``resync`` action when
    ``since`` is older than the feed keeps (:meth:`resync`), else an
    ``update`` action per package :meth:`touch` ed since ``T``.  Timestamps
    count in 1/10000 s, as Packagist's do, from :data:`MODIFIED`.

    ``/api/security-advisories/`` answers ``?packages[]=NAME...`` and
    ``?updatedSince=UNIX_TIME`` (both: both filters) with :attr:`advisories`
    (:data:`ADVISORIES`, plus what :meth:`add_advisory` adds), as packagist's
    does; its ``packages.json`` names that API, and each ``p2`` file carries
    its package's advisories in the partial form (id and affected versions).

    ``/packages/list.json?filter=PATTERN`` (or ``?vendor=VENDOR``) answers
    ``{"packageNames": [...]}`` as Packagist's list API; ``packages.json``
    names it as ``list``. With :attr:`lists_all` off, ``packages.json`` has no
    ``available-packages``, as the real packagist (too large to list).
    """

    lists_all = True

    repo = PACKAGIST

    def __init__(self, graph: Graph, minified: bool = True, *, base_url: str | None = None):
        super().__init__(graph, base_url)
        self.minified = minified
        self._clock = self._oldest = int(MODIFIED * 10000)
        self._changes: list[tuple[int, str]] = []
        self.advisories = [(_epoch(a["reportedAt"]), a) for a in ADVISORIES]  # (updated at, advisory)

    def add_advisory(self, advisory: dict) -> None:
        """Publish *advisory* (a full one) now: ``updatedSince`` answers list it from this moment."""
        with self._lock:
            self.advisories.append((time.time(), dict(advisory)))

    def touch(self, *names: str) -> None:
        """Record that the metadata of *names* changed now: a later Last-Modified, listed in the changes feed."""
        with self._lock:
            for name in names:
                self._clock += 10000  # one second later each
                self._changes.append((self._clock, name.lower()))
                self._modified[name.lower()] = self._clock / 10000

    def resync(self) -> None:
        """Forget the changes feed so far: a client that asks for changes since before now must resync."""
        with self._lock:
            self._clock += 10000
            self._oldest = self._clock + 1  # what the feed answers as "now" from here on

    def _route(self, route: str, headers: dict, base: str, query: dict) -> Reply:
        if route in ("/packages.json", "/packages/list.json"):  # the whole list only where it is answered
            names = self.graph.names(PACKAGIST)
        if route == "/packages.json":
            root = {"packages": [], "metadata-url": "/p2/%package%.json",
                    "metadata-changes-url": f"{base}/metadata/changes.json", "list": f"{base}/packages/list.json",
                    "security-advisories": {"metadata": True, "api-url": f"{base}/api/security-advisories/"}}
            if self.lists_all:
                root["available-packages"] = names
            return json_reply(200, root, modified=self.modified())
        if route == "/packages/list.json":
            return json_reply(200, {"packageNames": _listed(names, query)})
        if route.rstrip("/") == "/api/security-advisories":
            return self._advisory_reply(query)
        if route == "/metadata/changes.json":
            return self._changes_reply(query.get("since", [""])[-1])
        match = re.fullmatch(r"/p2/([^/]+/[^/~]+)(~dev)?\.json", route)
        package = self.graph.packages.get(match[1]) if match else None  # one lookup, never a walk of the graph
        if package is not None and PACKAGIST in package.repos:
            entries = [self.graph.entry(r, base) for r in self.graph.package(match[1]).releases
                       if r.is_dev == bool(match[2])]
            modified = self.modified(match[1])
            partial = {"security-advisories": [{k: a[k] for k in ("advisoryId", "affectedVersions")}
                                               for _, a in self.advisories if a["packageName"] == match[1]]}
            if not self.minified:
                return json_reply(200, {"packages": {match[1]: entries}, **partial}, modified=modified)
            return json_reply(200, {"packages": {match[1]: minify_versions(entries)},
                               "minified": "composer/2.0", **partial}, modified=modified)
        found = self._archive(route) if route.startswith("/dists/") else None
        return found if found is not None else text_reply(404, "Not Found\n")

    def _advisory_reply(self, query: dict) -> Reply:
        names = {n.lower() for n in query.get("packages[]", []) + query.get("packages", [])}
        since = query.get("updatedSince", [""])[-1]
        if not names and not since.isdigit():
            return json_reply(400, {"status": "error", "message": "Missing array of package names as the "
                                    "\"packages\" parameter, or an \"updatedSince\" timestamp"})
        with self._lock:
            found = [a for updated, a in self.advisories if (not names or a["packageName"] in names)
                     and (not since.isdigit() or updated >= int(since))]
        listed: dict = {}
        for advisory in found:
            listed.setdefault(advisory["packageName"], []).append(advisory)
        return json_reply(200, {"advisories": listed or []})  # PHP writes an empty map as []

    def _changes_reply(self, since: str) -> Reply:
        with self._lock:
            now, oldest, changes = self._clock + 1, self._oldest, list(self._changes)
        if not (since.isascii() and since.isdigit()):
            return json_reply(400, {"error": 'Invalid or missing "since" query parameter, make sure you store the '
                                        "timestamp at the initial point you started mirroring",
                               "timestamp": now})
        if int(since) < oldest:
            return json_reply(200, {"actions": [{"type": "resync", "time": now // 10000, "package": "*"}],
                               "timestamp": now})
        actions = [{"type": "update", "package": name, "time": stamp // 10000}
                   for stamp, name in changes if stamp >= int(since)]
        return json_reply(200, {"actions": actions, "timestamp": now})
