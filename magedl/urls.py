"""URLs a person or a repository gives magedl to reach: checked one way, before anything is sent there.

The rule: an http(s) URL with a host (and a port that exists), no whitespace, and never a user or
password in it, since credentials have sources of their own, bound to their host. Messages name
where the URL came from and never show a secret it holds.
"""

from urllib.parse import SplitResult, urlsplit

from magedl.errors import UsageError
from magedl.secrecy import redact
from magedl.text import printable


def check_http_url(url: str, where: str, expected: str, credentials: str, *, query: bool = True) -> SplitResult:
    """*url*, split, once it passes the rule; *query* False also refuses a query or fragment.

    *where* names the option or field it came from; *expected* says what a good one looks like, and
    *credentials* where credentials go instead.

    Raises
    ------
    UsageError
    """
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and not any(c.isspace() for c in url)
        parts.port  # noqa: B018  (raises ValueError for a port out of range)
    except (ValueError, TypeError, AttributeError):
        parts, ok = None, False
    shown = printable(redact(url)) if isinstance(url, str) else ""
    if not ok:
        raise UsageError(f"{where} {shown!r}: expected {expected}")
    if "@" in parts.netloc:
        raise UsageError(f"{where}: no user or password in the URL; {credentials}")
    if not query and (parts.query or parts.fragment):
        raise UsageError(f"{where} {shown!r}: no query or fragment")
    return parts


def folder_url(parts: SplitResult) -> str:
    """The URL of a folder: scheme, host and path, ending with ``/``."""
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return f"{parts.scheme}://{parts.netloc}{path}"
