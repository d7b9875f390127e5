"""repo.magento.com and packagist on loopback, beside the downloads API, in the same process.

Rule: each repository owns the root of its own address (their metadata uses root-relative URLs such as
``/p2/%package%.json``), so each is a :class:`~magedl.emulator.recorder.RecordingServer` on its own
port. :data:`DEMO_KEYS` holds one fake key pair per kind of entitlement.
"""

from __future__ import annotations

import hashlib
import io
from typing import Dict, Optional, Tuple

from magedl.emulator.composer_apps import (
    COMMERCE,
    DISABLED,
    LAPSED,
    OPEN_SOURCE,
    Entitlement,
    MagentoRepoApp,
    PackagistApp,
)
from magedl.emulator.composer_graph import Graph, build_graph
from magedl.emulator.recorder import Recorder, RecordingServer
from magedl.server import MemoryStore, Reply, Request

__all__ = ["ComposerRepos", "DEMO_KEYS", "LAYOUTS"]

LAYOUTS = ("providers", "inline", "metadata-url")


def _fake_key(label: str) -> str:
    # 32 lower-case hex characters, like a real Marketplace key; obviously derived, never a real one.
    return hashlib.sha256(f"magedl demo marketplace {label}".encode()).hexdigest()[:32]


#: ``{kind: (public key, private key)}`` accepted by the emulated repo.magento.com.
DEMO_KEYS: Dict[str, Tuple[str, str]] = {
    kind: (_fake_key(kind + " public"), _fake_key(kind + " private"))
    for kind in (OPEN_SOURCE, COMMERCE, DISABLED, LAPSED)
}


class _AppHooks(Recorder):
    """Answer every GET and HEAD with a :mod:`magedl.emulator.composer_apps` app, and log it."""

    def __init__(self, app):
        super().__init__()
        self.app = app
        self.base_url: Optional[str] = None  # set once the server has its port

    def before(self, req: Request) -> Reply:
        answer = self.app.handle(req.method, req.path, dict(req.headers.items()), base_url=self.base_url)
        headers = [(k, v) for k, v in answer.headers.items() if k.lower() != "content-length"]
        if req.method == "HEAD":  # the app sends no body but the length it would have
            length = int(answer.headers.get("Content-Length", 0))
            return Reply(answer.status, headers, stream=io.BytesIO(b""), length=length)
        return Reply(answer.status, headers, answer.body)


def _carry(app, host: str, access_log, port: int = 0) -> RecordingServer:
    hooks = _AppHooks(app)
    server = RecordingServer(MemoryStore({}, {}), hooks=hooks, host=host, port=port, access_log=access_log)
    hooks.base_url = server.base_url.rstrip("/")
    return server


class ComposerRepos:
    """The emulated repo.magento.com and packagist, each on a free port of *host*.

    Parameters
    ----------
    host : str
        Loopback address to bind.
    packagist_host : str, optional
        Another address for packagist (``127.0.0.2``), so credentials bound to one
        host are seen not to travel to the other; *host* by default.
    graph : Graph, optional
        The packages; :func:`~magedl.emulator.composer_graph.build_graph` by default.
    layout : str
        repo.magento.com's ``packages.json`` layout: one of :data:`LAYOUTS`.
    minified : bool
        Packagist's p2 files minified, as the real one serves them.
    keys : dict, optional
        ``{kind: (public, private)}``; :data:`DEMO_KEYS` by default.
    access_log : callable, optional
        One line per request, as for :class:`magedl.server.ApiServer`.
    ports : (int, int)
        repo.magento.com's and packagist's ports; 0 picks a free one (the default).

    Attributes
    ----------
    magento_url, packagist_url : str
        The repositories' URLs (ending with ``/``), for ``--composer-repo`` or Composer's config.
    keys : dict
        ``{kind: (public, private)}`` per entitlement (``open-source``, ``commerce``, ``disabled``, ``lapsed``).
    magento_app, packagist_app
        The handlers: ``throttle(n)``, ``tamper(target)``, ``keys`` (changeable while serving),
        ``requests`` (every request's method and path); packagist's ``touch(name)`` and ``resync()``
        drive its changes feed.
    magento, packagist : RecordingServer
        The servers, with their request logs.
    """

    def __init__(self, host: str = "127.0.0.1", graph: Optional[Graph] = None, layout: str = "providers",
                 minified: bool = True, keys: Optional[Dict[str, Tuple[str, str]]] = None, access_log=None,
                 packagist_host: Optional[str] = None, ports: Tuple[int, int] = (0, 0)):
        self.graph = graph if graph is not None else build_graph()
        self.keys = dict(keys if keys is not None else DEMO_KEYS)
        entitlements = {public: Entitlement(private, kind) for kind, (public, private) in self.keys.items()}
        self.magento_app = MagentoRepoApp(self.graph, layout=layout, keys=entitlements)
        self.packagist_app = PackagistApp(self.graph, minified=minified)
        self.magento = _carry(self.magento_app, host, access_log, ports[0])
        try:
            self.packagist = _carry(self.packagist_app, packagist_host or host, access_log, ports[1])
        except OSError:
            self.magento.stop()
            raise

    @property
    def magento_url(self) -> str:
        return self.magento.base_url

    @property
    def packagist_url(self) -> str:
        return self.packagist.base_url

    def start(self) -> "ComposerRepos":
        self.magento.start()
        self.packagist.start()
        return self

    def stop(self) -> None:
        self.magento.stop()
        self.packagist.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        # Never a private key: a repr ends up in test reports and logs.
        return f"<ComposerRepos magento={self.magento_url} packagist={self.packagist_url}>"
