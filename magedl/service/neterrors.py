"""A failed request as a typed error: what requests and urllib3 raise, told apart and worded for people.

Rule: the message names the host and the cause, never a credential. Which failures are transient
(retried) and which final: see docs/design.md, "Notes: the downloads service".
"""

import ipaddress
import logging
import socket
from typing import Optional
from urllib.parse import urlsplit

import requests
import urllib3

from magedl.errors import ConfigError, MagedlError, NetworkError, TransientError
from magedl.secrecy import VERBOSE, redact

log = logging.getLogger(__name__)


def _causes(exc):
    """*exc* and every exception behind it (requests and urllib3 wrap them several deep)."""
    seen = []
    while exc is not None and exc not in seen and len(seen) < 10:
        seen.append(exc)
        inner = getattr(exc, "reason", None)
        if not isinstance(inner, BaseException):
            inner = next((a for a in getattr(exc, "args", ()) if isinstance(a, BaseException)), None)
        exc = inner or exc.__cause__ or exc.__context__
    return seen


PROXY_407 = ("the proxy refused the request (HTTP 407: it wants credentials, or other ones): put them in "
             "HTTPS_PROXY / HTTP_PROXY as http://USER:PASSWORD@proxy:port")
_NOT_TLS = ("wrong_version_number", "wrong version number", "record layer failure", "packet length too long",
            "unknown protocol", "http_request", "record_layer_failure")
_VERIFY_REASONS = ("self-signed certificate", "unable to get local issuer certificate", "certificate has expired",
                   "hostname mismatch", "ip address mismatch", "doesn't match")


# host:port of every server that answered in this process: a refused connection there is a restart worth
# waiting for; one to a literal address that never answered is a typo worth saying at once.
_answered = set()


def answered(url: str) -> None:
    """Note that the server of *url* answered (any status), so a later refusal from it is retried."""
    try:
        parts = urlsplit(url)
        _answered.add(f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname or "")
    except ValueError:
        pass


def _literal_or_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def transient_from(exc: BaseException, what: str, url: Optional[str] = None) -> MagedlError:
    """Map a requests (or lower) exception to a typed error: transient (retried) or final.

    Final: TLS failures (an unknown CA, a server that does not speak TLS), a
    host name that does not resolve, a proxy asking for credentials, invalid
    URLs. The message names the host and the cause, never a credential; the
    raw cause is logged at ``-v``.
    """
    url = url or getattr(getattr(exc, "request", None), "url", None) or ""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        host, port = "", None
    where = f"{host}:{port}" if port else host or "the server"
    causes = _causes(exc)
    text = " ".join(str(c) for c in causes).lower()
    if causes and len(causes) > 1:
        log.log(VERBOSE, "%s: %s", what, redact(causes[-1]))
    if isinstance(exc, requests.exceptions.SSLError):
        if any(marker in text for marker in _NOT_TLS):
            return NetworkError(f"{what}: {where} does not speak TLS (it answered like a plain HTTP server): use "
                                "http:// if that is what it is; a CA bundle or --insecure cannot help")
        why = next((r for r in _VERIFY_REASONS if r in text), "certificate verify failed")
        return NetworkError(
            f"{what}: TLS verification of {where} failed ({why}); if the host uses a private CA, give its "
            "certificate with --ca-bundle PEM (or REQUESTS_CA_BUNDLE / SSL_CERT_FILE)")
    if any(isinstance(c, socket.gaierror) or type(c).__name__ == "NameResolutionError" for c in causes):
        return NetworkError(f"{what}: could not resolve host {host or 'of the URL'}; check the host name in the "
                            "base URL (and DNS or the proxy settings, when it is right)")
    if isinstance(exc, requests.exceptions.ProxyError):
        if "407" in text:
            return NetworkError(f"{what}: {PROXY_407}")
        return TransientError(f"{what}: cannot get through the proxy to {where}")
    if "handshake operation timed out" in text:
        # A plain HTTP server waiting for a request head never answers a TLS hello; retrying cannot help.
        return NetworkError(f"{what}: {where} did not answer the TLS handshake (timed out): it may not speak TLS; "
                            "use http:// if it is a plain HTTP server")
    if isinstance(exc, (requests.exceptions.Timeout, urllib3.exceptions.TimeoutError, socket.timeout)):
        return TransientError(f"{what}: timed out")
    if isinstance(exc, requests.exceptions.ConnectionError):
        refused = "connection refused" in text or any(isinstance(c, ConnectionRefusedError) for c in causes)
        if refused and _literal_or_loopback(host) and where not in _answered:
            # Nothing listens there, and nothing did in this run: a mistyped port, not a busy server.
            return NetworkError(f"{what}: connection refused by {where}: nothing listens there; check the port "
                                "in the URL (a server that has not answered once in this run is not waited for)")
        return TransientError(f"{what}: {'connection refused by' if refused else 'connection failed or was cut:'} "
                              f"{where}")
    if isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError,
                        urllib3.exceptions.HTTPError)):
        return TransientError(f"{what}: the connection was cut mid-body")
    if isinstance(exc, requests.exceptions.TooManyRedirects):
        return NetworkError(f"{what}: too many redirects from {where} (a redirect loop?); check the base URL "
                            "or the server's configuration")
    if isinstance(exc, requests.exceptions.RequestException):
        # Invalid URL, bad header: retrying cannot help.
        return NetworkError(f"{what}: {type(exc).__name__}")
    if isinstance(exc, OSError) and "ca certificate bundle" in text:
        return ConfigError(f"{what}: the CA bundle cannot be used (no such file); check --ca-bundle")
    if isinstance(exc, OSError):
        return TransientError(f"{what}: the connection was cut mid-body")
    return NetworkError(f"{what}: {type(exc).__name__}")
