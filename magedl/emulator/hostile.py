"""A hostile Composer repository on loopback: every document is the adversary's choice.

Rule: every request is logged with whether it carried credentials, so a test can prove keys never
went where a name chose. The attacks it plays: docs/security.md, "The hostile Composer repository".
"""

from __future__ import annotations

import json
import threading
from typing import Callable, Dict, List, Optional, Tuple, Union
from urllib.parse import urlsplit

from magedl.emulator.recorder import Recorder, RecordingServer
from magedl.server import MemoryStore, Reply, Request

__all__ = ["ATTACKS", "HostileRepo", "minified_bomb", "p2_root", "self_including"]

Document = Union[bytes, Callable[[str], Optional[bytes]]]


class _Answer(Recorder):
    def __init__(self, documents: Dict[str, Document]):
        super().__init__()
        self.documents = documents
        self.seen: List[Tuple[str, bool]] = []
        self.lock = threading.Lock()

    def before(self, req: Request) -> Reply:
        parts = urlsplit(req.path)
        with self.lock:
            self.seen.append((req.path, "Authorization" in req.headers))
        document = self.documents.get(parts.path)
        body = document(parts.query) if callable(document) else document
        if body is None:
            return Reply.text(404, "not found")
        return Reply(200, [("Content-Type", "application/json")], body)


class HostileRepo:
    """A Composer repository answering *documents* (``{"/packages.json": b"...", ...}``) on *host*.

    Attributes
    ----------
    url : str
        The repository's URL (ends with ``/``), for ``--composer-repo``.
    requests : list of (str, bool)
        Every request target asked (query included) and whether it carried an Authorization header.
    """

    def __init__(self, documents: Dict[str, Document], host: str = "127.0.0.1"):
        self.documents = dict(documents)
        self._hooks = _Answer(self.documents)
        self.server = RecordingServer(MemoryStore({}, {}), hooks=self._hooks, host=host)

    @property
    def url(self) -> str:
        return self.server.base_url

    @property
    def host(self) -> str:
        """``host:port``, as Composer's auth.json names the repository."""
        return urlsplit(self.url).netloc

    @property
    def requests(self) -> List[Tuple[str, bool]]:
        with self._hooks.lock:
            return list(self._hooks.seen)

    def start(self) -> "HostileRepo":
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return f"<HostileRepo {self.url}>"


def dump(doc) -> bytes:
    return json.dumps(doc).encode()


def p2_root(names=None, **extra) -> bytes:
    """A Composer 2 ``packages.json``: ``metadata-url`` ``/p2/%package%.json`` (and ``available-packages``)."""
    doc = {"packages": [], "metadata-url": "/p2/%package%.json", **extra}
    if names is not None:
        doc["available-packages"] = list(names)
    return dump(doc)


def p2_file(name: str, versions: list, minified: bool = False) -> bytes:
    """A p2 file of *name* holding *versions* (each a dict; ``name`` filled in)."""
    doc = {"packages": {name: [dict(v, name=name) if i == 0 or not minified else v
                               for i, v in enumerate(versions)]}}
    if minified:
        doc["minified"] = "composer/2.0"
    return dump(doc)


def minified_bomb(name: str, keys: int = 4000, entries: int = 8000) -> bytes:
    """A small minified p2 file that expands to *keys* x *entries* values: a wide first entry, then ``{}``s."""
    first = {"name": name, "version": "1.0.0", **{f"k{i}": i for i in range(keys)}}
    return dump({"minified": "composer/2.0", "packages": {name: [first] + [{}] * entries}})


def self_including(fan_out: int = 2, path: str = "/packages.json") -> Callable[[str], bytes]:
    """A Satis ``packages.json`` that includes itself *fan_out* times under different query strings, no sha1."""

    def answer(query: str) -> bytes:
        includes = {f"{path}?{query}&{i}": {} for i in range(fan_out)}
        return dump({"packages": {"evil/pkg": {"1.0.0": {"name": "evil/pkg", "version": "1.0.0"}}},
                     "includes": includes})

    return answer


def _meta(name: str, **extra) -> dict:
    return {"version": "1.0.0", "type": "metapackage", **extra}


#: ``{attack: documents}`` of a whole hostile repository; ask each for ``evil/root``.
ATTACKS: Dict[str, Callable[[], Dict[str, Document]]] = {
    # A name that would put a path and a query (with the keys) where it chooses.
    "names": lambda: {"/packages.json": p2_root(), "/p2/evil/root.json": p2_file("evil/root", [_meta(
        "evil/root", require={"../../admin/delete?all=1&x": "*"})])},
    # 90 KB that expands to 32 million values.
    "minified-bomb": lambda: {"/packages.json": p2_root(), "/p2/evil/root.json": minified_bomb("evil/root")},
    # A Satis packages.json that includes itself twice, under a new query string each time.
    "self-include": lambda: {"/packages.json": self_including(2)},
    # A constraint of 120,000 blanks.
    "long-constraint": lambda: {"/packages.json": p2_root(), "/p2/evil/root.json": p2_file("evil/root", [_meta(
        "evil/root", require={"evil/dep": "1.0 " + " " * 120000 + "x"})])},
    # A valid name too long for a file name.
    "long-name": lambda: {"/packages.json": p2_root(), "/p2/evil/root.json": p2_file("evil/root", [_meta(
        "evil/root", require={"evil/" + "a" * 295: "*"})]), f"/p2/evil/{'a' * 295}.json": p2_file(
        "evil/" + "a" * 295, [_meta("evil/long")])},
}
