"""The HTTP side: one session, the endpoint URLs, and HTTP failures as typed errors.

:class:`Client` knows the downloads API's paths and how the service fails.
It does not know about files on disk (that is :mod:`magedl.transfer`) or the
terminal (that is :mod:`magedl.cli`).
"""

import logging
import socket
from typing import Callable, Optional, Union
from urllib.parse import quote, urlsplit

import requests
import urllib3

from magedl import __version__
from magedl.config import VERBOSE, Settings, redact, register_secret, shown_url, split_userinfo
from magedl.errors import (
    AuthError,
    ConfigError,
    EntitlementError,
    FeedError,
    MagedlError,
    NetworkError,
    NotFoundError,
    TransientError,
    UsageError,
)
from magedl.safejson import NotJSON, parse_json, read_bounded
from magedl.service import advice, sniff
from magedl.service.retry import RetryPolicy, parse_retry_after

log = logging.getLogger(__name__)

TOKEN_HELP = advice.TOKEN_HELP
# The largest metadata answer (info/json, info/files, info/versions, Composer files) read into memory.
# The real feed is a few MiB; an endless or absurd body fails with FeedError instead of eating the host.
METADATA_LIMIT = 64 * 2**20


def _origin(url):
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


class HostBoundAuth(requests.auth.AuthBase):
    """Basic auth that is attached only to requests for the given origin.

    requests already strips Authorization when a redirect changes host; this
    also keeps the credentials off any other URL the session is asked for.
    """

    def __init__(self, credentials, base_url):
        self._basic = requests.auth.HTTPBasicAuth(credentials.mageid, credentials.token)
        self._origin = _origin(base_url)

    def __call__(self, request):
        if _origin(request.url) == self._origin:
            return self._basic(request)
        return request

    def __repr__(self):
        return "HostBoundAuth(***)"


def check_status(response: requests.Response, what: str,
                 explain_401: Optional[Callable[[str], str]] = None) -> requests.Response:
    """Raise the typed error for a failed response; return it otherwise.

    *explain_401*, given the URL that answered, says what was sent and what
    to do (:func:`magedl.service.advice.refused`); without it the message is
    generic.
    """
    status = response.status_code
    if status < 400:
        return response
    reason = response.reason or ""
    url = shown_url(response.url) if response.url else ""
    if status == 401:
        if explain_401 is not None and response.url:
            raise AuthError(f"{what}: {explain_401(response.url)}")
        raise AuthError(f"{what}: the credentials were refused (HTTP 401); {TOKEN_HELP}")
    if status == 403:
        raise EntitlementError(
            f"{what}: no entitlement: this account may not download it (HTTP 403). The MAGEID may lack access "
            "to this file (e.g. Adobe Commerce files on an Open Source account), or access "
            "lapsed over an unpaid invoice; a file being listed does not mean it may be downloaded"
        )
    if status == 404:
        raise NotFoundError(f"{what}: not found on the server (HTTP 404{f' for {url}' if url else ''})")
    if status == 407:
        raise NetworkError(f"{what}: {_PROXY_407}")
    if status in (408, 429) or status >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise TransientError(f"{what}: HTTP {status} {reason}".rstrip(), retry_after)
    raise MagedlError(f"{what}: unexpected answer HTTP {status} {reason}".rstrip())


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


_PROXY_407 = ("the proxy refused the request (HTTP 407: it wants credentials, or other ones): put them in "
              "HTTPS_PROXY / HTTP_PROXY as http://USER:PASSWORD@proxy:port")
_NOT_TLS = ("wrong_version_number", "wrong version number", "record layer failure", "packet length too long",
            "unknown protocol", "http_request", "record_layer_failure")
_VERIFY_REASONS = ("self-signed certificate", "unable to get local issuer certificate", "certificate has expired",
                   "hostname mismatch", "ip address mismatch", "doesn't match")


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
            return NetworkError(f"{what}: {_PROXY_407}")
        return TransientError(f"{what}: cannot get through the proxy to {where}")
    if "handshake operation timed out" in text:
        # A plain HTTP server waiting for a request head never answers a TLS hello; retrying cannot help.
        return NetworkError(f"{what}: {where} did not answer the TLS handshake (timed out): it may not speak TLS; "
                            "use http:// if it is a plain HTTP server")
    if isinstance(exc, (requests.exceptions.Timeout, urllib3.exceptions.TimeoutError, socket.timeout)):
        return TransientError(f"{what}: timed out")
    if isinstance(exc, requests.exceptions.ConnectionError):
        refused = "connection refused" in text or any(isinstance(c, ConnectionRefusedError) for c in causes)
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


def read_capped(response: requests.Response, what: str, limit: int = METADATA_LIMIT) -> bytes:
    """The body of a metadata *response*, refused beyond *limit* bytes.

    For every metadata read (catalogue, text tables, Composer files): an
    endless body, or a Content-Length that is absurd or not a number, fails
    with a :class:`FeedError` naming *what* (the URL) instead of filling
    memory. Read errors are left to the caller (:func:`transient_from`).
    """
    mib = f"{limit / 2**20:g} MiB"
    declared = (response.headers.get("Content-Length") or "").strip()
    if declared:
        values = [v.strip() for v in declared.split(",")]
        if not all(v.isascii() and v.isdigit() and len(v) <= 18 for v in values):
            raise FeedError(f"{what}: the server sent a Content-Length that is not a byte count "
                            f"({len(declared)} characters); this is not catalogue data")
        if max(int(v) for v in values) > limit:
            raise FeedError(f"{what}: the answer would be {int(values[0]) / 2**20:.0f} MiB, more than the {mib} "
                            "allowed for catalogue data; is the base URL right?")
    try:
        return read_bounded(response.iter_content(64 * 1024), limit, what)
    except FeedError:
        raise FeedError(f"{what}: the answer is larger than the {mib} allowed for catalogue data; "
                        "is the base URL right?") from None


class Client:
    """A session with the downloads API (or a mirror of it).

    Parameters
    ----------
    settings : magedl.config.Settings
        Base URL, credentials (and where they came from) and TLS options.
    timeout : tuple of float
        (connect, read) timeouts in seconds.
    retry : RetryPolicy
        How transient failures are retried.
    pool_size : int
        Connections kept per host, for parallel transfers.

    Attributes
    ----------
    metadata_limit : int
        Largest metadata answer read (:data:`METADATA_LIMIT`).
    """

    def __init__(self, settings: Settings, *, timeout=(15.0, 60.0), retry: Optional[RetryPolicy] = None,
                 pool_size: int = 16):
        self.settings = settings
        self.base_url = settings.base_url
        self.credentials = settings.credentials
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.metadata_limit = METADATA_LIMIT
        session = requests.Session()
        session.headers["User-Agent"] = f"magedl/{__version__}"
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        if self.base_url.startswith("file:"):
            from magedl.service.fileadapter import FileAdapter

            session.mount("file://", FileAdapter(self.base_url))
        # requests would re-read the environment (proxies, CA bundle, .netrc) on every
        # request, a millisecond each time; read it once here instead. Credentials come
        # only from magedl.config, never from requests' own .netrc lookup, and the CA
        # bundle from magedl.config.resolve (which honours REQUESTS_CA_BUNDLE and SSL_CERT_FILE).
        session.trust_env = False
        session.proxies = requests.utils.get_environ_proxies(self.base_url)
        for proxy in session.proxies.values():
            split_proxy_secret(proxy)
        if session.proxies:
            log.log(VERBOSE, "through proxy %s", ", ".join(sorted({shown_url(p) for p in session.proxies.values()})))
        if settings.insecure:
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
            log.warning("TLS verification is OFF (--insecure): anyone on the path can read your token")
            session.verify = False
        elif settings.ca_bundle:
            session.verify = settings.ca_bundle
        if self.credentials:
            session.auth = HostBoundAuth(self.credentials, self.base_url)
        self.session = session

    def close(self) -> None:
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- URLs ---------------------------------------------------------------

    def url(self, path: str) -> str:
        """Absolute URL of an API path such as ``info/json``."""
        return self.base_url + path

    def file_url(self, file_name: str) -> str:
        """URL of a file's bytes. ``/`` inside a feed name is kept as a path separator."""
        return self.base_url + "file/" + quote(file_name, safe="/")

    def explain_401(self, url: str) -> str:
        """What was sent to *url*, from where, and the next step (see :func:`advice.refused`)."""
        return advice.refused(self.settings, url)

    # -- requests -----------------------------------------------------------

    def open(self, url: str, what: str, headers=None, method: str = "GET", stream: bool = True,
             allow=()) -> requests.Response:
        """One request, no retry: the response, or a typed error.

        Statuses in *allow* are returned for the caller to judge. The caller
        owns the response and must close it.
        """
        try:
            response = self.session.request(
                method, url, headers=headers, stream=stream, timeout=self.timeout, allow_redirects=True
            )
        except (requests.exceptions.RequestException, OSError) as exc:
            raise transient_from(exc, what, url) from None
        except UnicodeError:
            # requests encodes Basic auth as latin-1; config.check_secret_text refuses such tokens first.
            raise UsageError(f"{what}: the credentials hold a character HTTP cannot send") from None
        if response.status_code in allow:
            return response
        try:
            return check_status(response, what, self.explain_401)
        except MagedlError:
            response.close()
            raise

    def get_text(self, path: str) -> str:
        """GET an ``info/`` endpoint as text (at most :attr:`metadata_limit` bytes), retrying transient failures."""
        url = self.url(path)
        where = shown_url(url)

        def attempt():
            response = self.open(url, path, headers={"Accept-Encoding": "identity"})
            with response:
                try:
                    body = read_capped(response, where, self.metadata_limit)
                except requests.exceptions.RequestException as exc:
                    raise transient_from(exc, path, url) from None
                # No charset in Content-Type means UTF-8 here, not HTTP/1.1's old ISO-8859-1 default.
                charset = "charset=" in response.headers.get("Content-Type", "").lower() and response.encoding
                try:
                    return body.decode(charset or "utf-8", "replace")
                except LookupError:  # a charset Python does not know
                    return body.decode("utf-8", "replace")

        return self.retry.call(attempt, path)

    def feed(self) -> object:
        """The JSON feed (``info/json``) as decoded JSON."""
        text = self.get_text("info/json")
        try:
            return parse_json(text, shown_url(self.url("info/json")))
        except NotJSON:
            raise self._not_json(text) from None

    def catalog(self, warn: Optional[Callable[[str], None]] = None) -> list:
        """Every release the account can see, as :class:`~magedl.service.catalog.Release` records.

        The JSON feed is the primary source; when it is missing or unreadable
        the text table (``info/files``) is used instead. When neither exists
        the error names the URL tried and what is likely wrong with it.
        """
        from magedl.service.catalog import parse_feed
        from magedl.service.textformat import parse_table

        try:
            return parse_feed(self.feed(), warn=warn)
        except (NotFoundError, FeedError) as json_error:
            log.debug("info/json unusable (%s); trying the text table info/files", json_error)
            try:
                return parse_table(self.get_text("info/files"), warn=warn)
            except (NotFoundError, FeedError):
                if isinstance(json_error, NotFoundError):
                    raise self._no_catalogue() from None
                raise json_error from None

    def versions(self) -> dict:
        """Versions per edition from ``info/versions``: ``{"CE": [...], "EE": [...]}``."""
        from magedl.service.textformat import parse_versions

        text = self.get_text("info/versions")
        try:
            return parse_versions(text)
        except FeedError:
            raise self._not_json(text, "a versions list") from None

    def _no_catalogue(self) -> NotFoundError:
        tried = shown_url(self.url("info/json"))
        hint = advice.base_url_hint(self.base_url)
        return NotFoundError(f"no catalogue at {shown_url(self.base_url)}: {tried} is not there (HTTP 404, "
                             f"info/files neither){'; ' + hint if hint else ''}")

    def _not_json(self, text: str, expected: str = "the JSON feed") -> MagedlError:
        head = text[:400].encode("utf-8", "replace")
        snippet = redact(sniff.excerpt(head))
        if sniff.mentions_credentials(snippet):
            refusal = advice.refused(self.settings, self.base_url, "a login page instead of data")
            return AuthError(f"expected {expected} but the service answered {snippet!r}: {refusal}")
        return FeedError(f"expected {expected} from {shown_url(self.base_url)} but the server answered {snippet!r}")


def split_proxy_secret(proxy: Union[str, None]) -> None:
    """Register the password in a proxy URL (``http://user:pass@proxy:3128``) as a secret."""
    if proxy and "@" in proxy:
        try:
            split_userinfo(proxy, "proxy")
        except UsageError:  # a proxy URL requests will reject anyway; its secret is registered
            pass
        register_secret(proxy.partition("://")[2].rpartition("@")[0])
