"""Connections opened ahead of need, and how far away the server is.

Connections to the service are opened in the background while the feed is fetched, so the downloads
that follow find them in the pool. Why: see docs/design.md, "Notes: the downloads service".
"""

import logging
import threading
import time
from typing import Callable, List, Optional

import requests

log = logging.getLogger(__name__)


class Adapter(requests.adapters.HTTPAdapter):
    """requests' adapter, able to open pooled connections without sending a request."""

    def warm_up(self, request: requests.PreparedRequest, settings: dict, count: int, far: float,
                seen: Callable[[float], None]) -> threading.Thread:
        """Open up to *count* connections for *request*'s host in a daemon thread (returned, started).

        *settings* holds ``verify``, ``proxies``, ``cert`` and ``timeout``
        (connect seconds). The first new connection is timed and the time
        passed to *seen*; only when it took *far* seconds or more are the
        others opened (in parallel): a near server costs little to connect
        to, so the downloads may as well do it themselves. Every connection
        goes back to the pool. Best effort: failures are left to the real
        requests to meet and report.
        """
        thread = threading.Thread(target=self._warm, args=(request, settings, count, far, seen), daemon=True,
                                  name="magedl-warm")
        thread.start()
        return thread

    def _warm(self, request, settings, count, far, seen):
        try:
            pool = self.get_connection_with_tls_context(request, settings["verify"], proxies=settings["proxies"],
                                                        cert=settings["cert"])
            # urllib3's pool internals (stable for years); without them there is no warm-up.
            conns = [pool._get_conn()]
        except Exception as exc:  # noqa: BLE001 - best effort, see above
            log.debug("no warm-up: %s", type(exc).__name__)
            return
        try:
            if getattr(conns[0], "sock", None) is not None:
                return  # a connection is already open: some request got there first
            took = _connect(conns[0], settings["timeout"])
            if took is None:
                return
            seen(took)
            if took < far:
                return
            conns += [pool._get_conn() for _ in range(count - 1)]
            helpers = [threading.Thread(target=_connect, args=(c, settings["timeout"]), daemon=True)
                       for c in conns[1:] if getattr(c, "sock", None) is None]
            for t in helpers:
                t.start()
            for t in helpers:
                t.join()
        finally:
            for conn in conns:
                pool._put_conn(conn)


def _connect(conn, timeout: float) -> Optional[float]:
    """Connect *conn*; seconds it took, or ``None`` (and *conn* closed) if it failed."""
    try:
        conn.timeout = timeout
        started = time.monotonic()
        conn.connect()
        return time.monotonic() - started
    except Exception as exc:  # noqa: BLE001 - best effort: the real request meets it again
        log.debug("warm-up connection failed: %s", type(exc).__name__)
        conn.close()
        return None


__all__: List[str] = ["Adapter"]
