"""How Composer matches a repository URL to an ``http-basic`` entry.

Rule: :func:`match_entry` says which kind of match it made, so an entry Composer itself would use
wins over one in a spelling Composer would miss. See docs/design.md, "Notes: Marketplace keys".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from magedl.errors import UsageError
from magedl.secrecy import register_secret

__all__ = [
    "EXACT",
    "LENIENT",
    "MARKETPLACE_HOST",
    "MARKETPLACE_URL",
    "URL_NAME",
    "Target",
    "composer_origin",
    "host_key",
    "match_entry",
    "parse_target",
]

MARKETPLACE_HOST = "repo.magento.com"
MARKETPLACE_URL = "https://repo.magento.com/"
#: Kinds of match returned by :func:`match_entry`.
EXACT = "exact"
LENIENT = "lenient"
URL_NAME = "url"

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Target:
    """A repository URL as the credential lookup sees it.

    Attributes
    ----------
    scheme : str
        ``http`` or ``https``, lower case.
    host : str
        Lower case; an IPv6 address without brackets.
    port : int
        The effective port (the scheme's default when the URL gives none).
    origin : str
        The exact ``http-basic`` entry name Composer looks up.
    url : str
        The URL without any userinfo, with at least ``/`` as path.
    had_userinfo : bool
        The URL held ``user:password@``; it was left out of every field.
    """

    scheme: str
    host: str
    port: int
    origin: str
    url: str
    had_userinfo: bool = False


def parse_target(url: str) -> Target:
    """Parse a repository URL (a bare host is taken as https).

    Userinfo in the URL is registered as a secret and dropped.

    Raises
    ------
    UsageError
        Not an http(s) URL, or no host, or a bad port.
    """
    text = url.strip()
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if parts.scheme.lower() not in _DEFAULT_PORTS:
        raise UsageError(f"repository URL {url!r} must start with https:// or http://")
    netloc = parts.netloc
    had_userinfo = "@" in netloc
    if had_userinfo:
        # Userinfo is a credential; keep it out of everything we return.
        userinfo, _, netloc = netloc.rpartition("@")
        register_secret(userinfo)
        register_secret(userinfo.partition(":")[2])
    if not parts.hostname:
        raise UsageError(f"repository URL {_strip_userinfo(url)!r} has no host name")
    try:
        port = parts.port
    except ValueError:
        raise UsageError(f"repository URL {_strip_userinfo(url)!r} has an invalid port") from None
    scheme = parts.scheme.lower()
    raw_host = netloc
    tail = netloc.rpartition(":")[2]
    if ":" in netloc and "]" not in tail:
        raw_host = netloc[: netloc.rfind(":")]
    origin = raw_host + (f":{port}" if port is not None else "")
    clean = f"{scheme}://{netloc}{parts.path or '/'}"
    return Target(scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme], origin, clean,
                  had_userinfo)


def _strip_userinfo(url: str) -> str:
    return re.sub(r"(?<=://)[^/@\s]*@", "", url)


def composer_origin(url: str) -> str:
    """The exact ``http-basic`` key Composer looks up for *url* (``Url::getOrigin``).

    The host as written plus ``:port`` whenever the URL spells a port:
    ``https://repo.magento.com/`` -> ``repo.magento.com``,
    ``http://127.0.0.1:8080/`` -> ``127.0.0.1:8080``,
    ``https://repo.magento.com:443/`` -> ``repo.magento.com:443``. A bare host
    is taken as an https URL.

    Raises
    ------
    UsageError
        Not an http(s) URL, or no host, or a bad port.
    """
    return parse_target(url).origin


def host_key(url: str) -> str:
    """The canonical host of *url*: lower case, ``:port`` only when not the scheme's default.

    ``https://REPO.magento.com:443/`` -> ``repo.magento.com``; a bare host is
    taken as an https URL.

    Raises
    ------
    UsageError
        As :func:`parse_target`.
    """
    target = parse_target(url)
    host = f"[{target.host}]" if ":" in target.host else target.host
    if target.port != _DEFAULT_PORTS[target.scheme]:
        host += f":{target.port}"
    return host


def match_entry(key: str, target: Target) -> str | None:
    """How an ``http-basic`` entry name relates to *target*.

    Parameters
    ----------
    key : str
        The entry name as written in the file.
    target : Target
        The repository looked up.

    Returns
    -------
    str or None
        :data:`EXACT` (Composer finds it), :data:`LENIENT` (same host and port in
        another spelling), :data:`URL_NAME` (a whole URL used as the name, for
        the same host and port) or None (another host or port, or not a host).
    """
    if key == target.origin:
        return EXACT
    kind = LENIENT
    text = key.strip()
    if "://" in text:
        try:
            parts = urlsplit(text)
            host, port = parts.hostname, parts.port
        except ValueError:
            return None
        if not host:
            return None
        default = _DEFAULT_PORTS.get(parts.scheme.lower(), target.port)
        kind = URL_NAME
    else:
        text = text.rstrip("/")
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            port_text = rest[1:] if rest.startswith(":") else ""
            if rest and not rest.startswith(":"):
                return None
        elif text.count(":") == 1:
            host, _, port_text = text.partition(":")
        else:
            host, port_text = text, ""
        if port_text and not (port_text.isascii() and port_text.isdigit()):
            return None
        port = int(port_text) if port_text else None
        default = _DEFAULT_PORTS[target.scheme]
    if host.lower() != target.host:
        return None
    return kind if (port or default) == target.port else None
