"""The HTTP side: one session, the endpoint URLs, and HTTP failures as typed errors.

:class:`Client` knows the downloads API's paths and how the service fails.
It does not know about files on disk (that is :mod:`magedl.transfer`) or the
terminal (that is :mod:`magedl.cli`).
"""

import logging
import threading
import time
from typing import Callable, Optional, Union
from urllib.parse import quote, urlsplit

import requests
import urllib3

from magedl import __version__
from magedl.config import Settings, shown_url, split_userinfo
from magedl.errors import (
    AuthError,
    EntitlementError,
    FeedError,
    MagedlError,
    NetworkError,
    NotFoundError,
    TransientError,
    UsageError,
)
from magedl.safejson import NotJSON, parse_json, read_bounded
from magedl.secrecy import SECURITY, VERBOSE, redact, register_secret
from magedl.service import advice, sniff
from magedl.service.neterrors import PROXY_407, answered, transient_from
from magedl.service.retry import RetryPolicy, parse_retry_after
from magedl.service.warm import Adapter

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
                 explain_401: Optional[Callable[[str, bool], str]] = None) -> requests.Response:
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
            raise AuthError(f"{what}: {explain_401(response.url, advice.plays_service(response.headers))}")
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
        raise NetworkError(f"{what}: {PROXY_407}")
    if status in (408, 429) or status >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise TransientError(f"{what}: HTTP {status} {reason}".rstrip(), retry_after)
    raise MagedlError(f"{what}: unexpected answer HTTP {status} {reason}".rstrip())


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
        self.pool_size = pool_size
        self.rtt: Optional[float] = None  # the quickest answer or connection seen so far, in seconds
        session = requests.Session()
        session.headers["User-Agent"] = f"magedl/{__version__}"
        adapter = Adapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
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
        # The proxy settings are read once too, and decided per host (NO_PROXY), since one
        # client also reaches Composer repositories and redirect targets beside the base URL.
        self._env_proxies = requests.utils.getproxies()
        self._proxies_by_host: dict = {}
        for name, proxy in self._env_proxies.items():
            if name != "no":
                split_proxy_secret(proxy)
        chosen = self.proxies_for(self.base_url)
        if chosen:
            log.log(VERBOSE, "through proxy %s", ", ".join(sorted({shown_url(p) for p in chosen.values()})))
        if settings.insecure:
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
            log.warning("TLS verification is OFF (--insecure): anyone on the path can read your token",
                        extra=SECURITY)
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

    def explain_401(self, url: str, service: bool = False) -> str:
        """What was sent to *url*, from where, and the next step (see :func:`advice.refused`)."""
        return advice.refused(self.settings, url, service=service)

    # -- requests -----------------------------------------------------------

    def open(self, url: str, what: str, headers=None, method: str = "GET", stream: bool = True,
             allow=()) -> requests.Response:
        """One request, no retry: the response, or a typed error.

        Statuses in *allow* are returned for the caller to judge. The caller
        owns the response and must close it.
        """
        try:
            request = self._prepare(method, url, headers)
            if request is None:
                response = self.session.request(
                    method, url, headers=headers, stream=stream, timeout=self.timeout, allow_redirects=True,
                    proxies=self.proxies_for(url),
                )
            else:
                asked = time.monotonic()
                response = self.session.send(request, stream=stream, timeout=self.timeout, allow_redirects=True,
                                             proxies=self.proxies_for(url))
                self._seen(time.monotonic() - asked)
        except (requests.exceptions.RequestException, OSError) as exc:
            raise transient_from(exc, what, url) from None
        except UnicodeError:
            # requests encodes Basic auth as latin-1; secrecy.check_secret_text refuses such tokens first.
            raise UsageError(f"{what}: the credentials hold a character HTTP cannot send") from None
        answered(url)
        if response.status_code in allow:
            return response
        try:
            return check_status(response, what, self.explain_401)
        except MagedlError:
            response.close()
            raise

    def proxies_for(self, url: str) -> dict:
        """The proxies (``{"http": ..., "https": ...}``) a request to *url* goes through; ``{}`` under NO_PROXY."""
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        found = self._proxies_by_host.get(key)
        if found is None:
            env = self._env_proxies
            if not parts.hostname or requests.utils.should_bypass_proxies(url, no_proxy=env.get("no")):
                found = {}
            else:
                found = {k: v for k, v in env.items() if k != "no"}
            self._proxies_by_host[key] = found
        return found

    def warm_up(self, connections: int, far: float = 0.010) -> Optional[threading.Thread]:
        """Open up to *connections* connections to the base URL's host in the background.

        Call it just before fetching the feed: the first connection shows
        how far the server is (:attr:`rtt`); when it took *far* seconds or
        more, the others are opened too, while the feed comes, and the
        downloads find them in the pool. Best effort: nothing is raised.
        Returns the (daemon) thread doing it, or ``None`` when there is
        nothing to warm (a ``file://`` base URL).
        """
        url = self.base_url
        adapter = self.session.get_adapter(url) if url.startswith(("http:", "https:")) else None
        request = self._prepare("GET", url, None) if isinstance(adapter, Adapter) else None
        if request is None:
            return None
        session = self.session
        settings = {"verify": session.verify, "proxies": self.proxies_for(url), "cert": session.cert,
                    "timeout": self.timeout[0]}
        return adapter.warm_up(request, settings, min(connections, self.pool_size), far, self._seen)

    def _seen(self, seconds: float) -> None:
        if self.rtt is None or seconds < self.rtt:
            self.rtt = seconds

    def _prepare(self, method, url, headers):
        """The request ``session.request`` would send, built without its merging; ``None`` to let it build it.

        ``Session.request`` merges cookies, hooks, parameters and settings
        through several general layers, which costs more than a small file's
        whole transfer. This session has no per-request parameters, no
        environment to read (``trust_env`` is off) and, until a server sets
        one, no cookie: the request is the same when built directly. Once the
        jar holds a cookie, or hooks were added, ``session.request`` builds it.
        """
        session = self.session
        if session.cookies or session.params or any(session.hooks.values()):
            return None
        merged = requests.structures.CaseInsensitiveDict(session.headers)
        if headers:
            merged.update(headers)
        request = requests.PreparedRequest()
        request.prepare_method(method)
        request.prepare_url(url, None)
        request.prepare_headers({k: v for k, v in merged.items() if v is not None})
        request.prepare_cookies(requests.cookies.RequestsCookieJar())  # a redirect's cookies land here
        request.prepare_body(None, None)
        request.prepare_auth(session.auth, url)
        request.prepare_hooks(session.hooks)
        return request

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

    def feed(self, object_pairs_hook=None) -> object:
        """The JSON feed (``info/json``) as decoded JSON (*object_pairs_hook*: as ``json.loads`` takes it)."""
        text = self.get_text("info/json")
        try:
            return parse_json(text, shown_url(self.url("info/json")), object_pairs_hook=object_pairs_hook)
        except NotJSON:
            raise self._not_json(text) from None

    def catalog(self, warn: Optional[Callable[[str], None]] = None) -> list:
        """Every release the account can see, as :class:`~magedl.service.catalog.Release` records.

        The JSON feed is the primary source; when it is missing or unreadable
        the text table (``info/files``) is used instead. When neither exists
        the error names the URL tried and what is likely wrong with it.
        """
        from magedl.service.catalog import parse_feed
        from magedl.service.feedjson import feed_decoder
        from magedl.service.textformat import parse_table

        try:
            # Plain entries decoded compact, and the feed is ours: not held twice.
            return parse_feed(self.feed(feed_decoder()), warn=warn, consume=True)
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
