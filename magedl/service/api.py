"""The HTTP side: one session, the endpoint URLs, and HTTP failures as typed errors.

:class:`Client` knows the downloads API's paths and how the service fails.
It does not know about files on disk (that is :mod:`magedl.transfer`) or the
terminal (that is :mod:`magedl.cli`).
"""

import json
import logging
import os
import socket
from urllib.parse import quote, urlsplit

import requests
import urllib3

from magedl import __version__
from magedl.config import redact
from magedl.errors import (
    AuthError,
    EntitlementError,
    FeedError,
    MagedlError,
    NetworkError,
    NotFoundError,
    TransientError,
)
from magedl.service import sniff
from magedl.service.retry import RetryPolicy, parse_retry_after

log = logging.getLogger("magedl")

TOKEN_HELP = (
    "make a new one on the magento.com account page under "
    "Account Settings > Downloads Access Token (a new token disables the old one)"
)


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


def check_status(response, what):
    """Raise the typed error for a failed response; return it otherwise."""
    status = response.status_code
    if status < 400:
        return response
    reason = response.reason or ""
    if status == 401:
        raise AuthError(f"{what}: the MAGEID or downloads access token was refused (HTTP 401); {TOKEN_HELP}")
    if status == 403:
        raise EntitlementError(
            f"{what}: no entitlement: this account may not download it (HTTP 403). The MAGEID may lack access "
            "to this file (e.g. Adobe Commerce files on an Open Source account), or access "
            "lapsed over an unpaid invoice; a file being listed does not mean it may be downloaded"
        )
    if status == 404:
        raise NotFoundError(f"{what}: not found on the server (HTTP 404)")
    if status in (408, 429) or status >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise TransientError(f"{what}: HTTP {status} {reason}".rstrip(), retry_after)
    raise MagedlError(f"{what}: unexpected answer HTTP {status} {reason}".rstrip())


def transient_from(exc, what):
    """Map a requests exception to a typed error (transient or final)."""
    if isinstance(exc, requests.exceptions.SSLError):
        return NetworkError(
            f"{what}: TLS verification failed ({type(exc).__name__}); "
            "give the CA bundle with --ca-bundle if this host uses a private CA"
        )
    if isinstance(exc, (requests.exceptions.Timeout, urllib3.exceptions.TimeoutError, socket.timeout)):
        return TransientError(f"{what}: timed out")
    if isinstance(exc, requests.exceptions.ConnectionError):
        return TransientError(f"{what}: connection failed or was cut")
    if isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError,
                        urllib3.exceptions.HTTPError)):
        return TransientError(f"{what}: the connection was cut mid-body")
    if isinstance(exc, requests.exceptions.RequestException):
        # Invalid URL, too many redirects, bad header: retrying cannot help.
        return NetworkError(f"{what}: {type(exc).__name__}")
    if isinstance(exc, OSError):
        return TransientError(f"{what}: the connection was cut mid-body")
    return NetworkError(f"{what}: {type(exc).__name__}")


class Client:
    """A session with the downloads API (or a mirror of it).

    Parameters
    ----------
    settings : magedl.config.Settings
        Base URL, credentials and TLS options.
    timeout : tuple of float
        (connect, read) timeouts in seconds.
    retry : RetryPolicy
        How transient failures are retried.
    pool_size : int
        Connections kept per host, for parallel transfers.
    """

    def __init__(self, settings, *, timeout=(15.0, 60.0), retry=None, pool_size=16):
        self.base_url = settings.base_url
        self.credentials = settings.credentials
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        session = requests.Session()
        session.headers["User-Agent"] = f"magedl/{__version__}"
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        if self.base_url.startswith("file:"):
            from magedl.service.fileadapter import FileAdapter

            session.mount("file://", FileAdapter())
        # requests would re-read the environment (proxies, CA bundle, .netrc) on every
        # request, a millisecond each time; read it once here instead. Credentials come
        # only from magedl.config, never from requests' own .netrc lookup.
        session.trust_env = False
        session.proxies = requests.utils.get_environ_proxies(self.base_url)
        env_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if env_bundle:
            session.verify = env_bundle
        if settings.insecure:
            import urllib3

            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
            log.warning("TLS verification is OFF (--insecure): anyone on the path can read your token")
            session.verify = False
        elif settings.ca_bundle:
            session.verify = settings.ca_bundle
        if self.credentials:
            session.auth = HostBoundAuth(self.credentials, self.base_url)
        self.session = session

    def close(self):
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- URLs ---------------------------------------------------------------

    def url(self, path):
        """Absolute URL of an API path such as ``info/json``."""
        return self.base_url + path

    def file_url(self, file_name):
        """URL of a file's bytes. ``/`` inside a feed name is kept as a path separator."""
        return self.base_url + "file/" + quote(file_name, safe="/")

    # -- requests -----------------------------------------------------------

    def open(self, url, what, headers=None, method="GET", stream=True, allow=()):
        """One request, no retry: the response, or a typed error.

        Statuses in *allow* are returned for the caller to judge. The caller
        owns the response and must close it.
        """
        try:
            response = self.session.request(
                method, url, headers=headers, stream=stream, timeout=self.timeout, allow_redirects=True
            )
        except requests.exceptions.RequestException as exc:
            raise transient_from(exc, what) from None
        if response.status_code in allow:
            return response
        try:
            return check_status(response, what)
        except MagedlError:
            response.close()
            raise

    def get_text(self, path):
        """GET an ``info/`` endpoint as text, retrying transient failures."""
        what = path

        def attempt():
            response = self.open(self.url(path), what, headers={"Accept-Encoding": "identity"}, stream=False)
            try:
                # No charset in Content-Type means UTF-8 here, not HTTP/1.1's old ISO-8859-1 default.
                charset = "charset=" in response.headers.get("Content-Type", "").lower() and response.encoding
                return response.content.decode(charset or "utf-8", "replace")
            except requests.exceptions.RequestException as exc:
                raise transient_from(exc, what) from None

        return self.retry.call(attempt, what)

    def feed(self):
        """The JSON feed (``info/json``) as decoded JSON."""
        text = self.get_text("info/json")
        try:
            return json.loads(text.lstrip("\ufeff"))
        except ValueError:
            raise _not_json(text) from None

    def catalog(self, warn=None):
        """Every release the account can see, as :class:`~magedl.catalog.Release` records.

        The JSON feed is the primary source; when it is missing or unreadable
        the text table (``info/files``) is used instead.
        """
        from magedl.service.catalog import parse_feed
        from magedl.service.textformat import parse_table

        try:
            return parse_feed(self.feed(), warn=warn)
        except (NotFoundError, FeedError) as json_error:
            log.info("info/json unusable (%s); trying the text table info/files", json_error)
            try:
                return parse_table(self.get_text("info/files"), warn=warn)
            except (NotFoundError, FeedError):
                raise json_error from None

    def versions(self):
        """Versions per edition from ``info/versions``: ``{"CE": [...], "EE": [...]}``."""
        from magedl.service.textformat import parse_versions

        text = self.get_text("info/versions")
        try:
            return parse_versions(text)
        except FeedError:
            raise _not_json(text, "a versions list") from None


def _not_json(text, expected="the JSON feed"):
    head = text[:400].encode("utf-8", "replace")
    snippet = redact(sniff.excerpt(head))
    if sniff.mentions_credentials(snippet):
        return AuthError(
            f"expected {expected} but the service answered {snippet!r}: the MAGEID or "
            f"downloads access token was probably refused; {TOKEN_HELP}"
        )
    return FeedError(f"expected {expected} but the service answered {snippet!r}")
