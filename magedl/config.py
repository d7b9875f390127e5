"""Where settings and credentials come from, and where each value came from.

Rule: credentials are looked up field by field, first found wins (options, environment, config file,
netrc; the README's "Credentials" has the table), and :class:`Sources` records where each value came
from, never the value of a secret, so an error such as HTTP 401 can say what was sent and from where.
"""

import configparser
import difflib
import ipaddress
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Tuple
from urllib.parse import unquote, urlsplit, urlunsplit

from magedl.errors import ConfigError, UsageError
from magedl.secrecy import (
    VERBOSE,
    check_secret_text,
    mageid_may_be_secret,
    mageid_problem,
    mageid_shown,
    netrc_lookup,
    read_secret_file,
    read_token_file,
    register_secret,
)
from magedl.text import printable

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://www.magentocommerce.com/products/downloads/"
SERVICE_HOST = "www.magentocommerce.com"
CONFIG_KEYS = ("mageid", "token", "base_url", "ca_bundle")

@dataclass(frozen=True)
class Credentials:
    """A MAGEID and downloads access token. ``repr`` never shows the token."""

    mageid: str
    token: str

    def __repr__(self) -> str:
        return f"Credentials(mageid={mageid_shown(self.mageid)}, token='***')"

    __str__ = __repr__


@dataclass(frozen=True)
class Sources:
    """Where each setting came from, for messages. Never holds a secret.

    Attributes
    ----------
    base_url, mageid, token, ca_bundle : str
        A label such as ``"--mageid"``, ``"MAGEDL_TOKEN"``, ``"the config file
        PATH"``, ``"/home/u/.netrc (machine HOST)"``; empty when not set.
    config_file : str
        The config file looked at, and what was found there.
    netrc : str
        What the netrc lookup found, or why it was not made.
    notes : tuple of str
        Problems noticed on the way (a ``[default]`` section, a MAGEID of the
        wrong shape, half-set credentials...), each a sentence.
    token_length : int
        Characters in the token sent (a truncated paste shows here).
    """

    base_url: str = "the default"
    mageid: str = ""
    token: str = ""
    ca_bundle: str = ""
    config_file: str = ""
    netrc: str = ""
    notes: Tuple[str, ...] = ()
    token_length: int = 0


@dataclass(frozen=True)
class Settings:
    """What a command needs to reach the service."""

    base_url: str
    credentials: Optional[Credentials]
    ca_bundle: Optional[str] = None
    insecure: bool = False
    sources: Sources = field(default_factory=Sources, compare=False)


# -- sizes ----------------------------------------------------------------------------

_SIZE = re.compile(r"\s*([0-9]{1,15}(?:\.[0-9]{1,9})?)\s*([kmgt]?)(?:i?b)?(/s)?\s*", re.I)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str, *, rate: bool = False) -> int:
    """``"2M"``, ``"512k"``, ``"1.5GiB"``, ``"100000"`` -> bytes. Units are binary, as in curl and wget.

    Parameters
    ----------
    text : str
    rate : bool
        Accept a ``/s`` suffix (``--limit-rate 20M/s``).

    Raises
    ------
    ValueError
        With a one-line message naming *text*, for anything else.
    """
    match = _SIZE.fullmatch(str(text))
    if not match or (match.group(3) and not rate):
        example = "500k, 20M or 1G" if rate else "512k, 2M or 1G"
        shown = printable(text)
        shown = shown if len(shown) <= 40 else shown[:40] + "..."
        raise ValueError(f"not a {'rate' if rate else 'size'}: '{shown}' (try {example})")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


# -- base URLs --------------------------------------------------------------------------


def shown_url(url: str) -> str:
    """*url* fit for a message: anything between the scheme and the last ``@`` masked, control characters escaped."""
    at = url.rfind("@")
    if at >= 0:
        start = url.find("://") + 3 if "://" in url[:at] else 0
        url = url[:start] + "***@" + url[at + 1:]
    return printable(url)


def split_userinfo(url: str, where: str = "base URL") -> Tuple[str, Optional[str], Optional[str]]:
    """Split ``https://ID:TOKEN@host/path`` into (clean URL, id, token).

    Adobe's form, ending in ``info/help``, gives the URL before ``info/``.
    The token is registered as a secret before anything else can see it;
    *where* (``"--base-url"``, ``"MAGEDL_BASE_URL"``...) names the URL's
    source in errors.

    Raises
    ------
    UsageError
        A scheme other than http, https or file; no host; a bad port; a
        broken IPv6 address; a space or line break inside. The message never
        shows the userinfo.
    """
    netloc = url.partition("://")[2].split("/", 1)[0] if "://" in url else ""
    userinfo = netloc.rpartition("@")[0]
    for piece in (userinfo, userinfo.partition(":")[2], unquote(userinfo.partition(":")[2])):
        register_secret(piece)
    if "@" in url and not userinfo:
        register_secret(url.rpartition("@")[0].rpartition(":")[2])
    shown = f"{where} {shown_url(url)!r}"
    if any(c.isspace() for c in url.strip()):  # two URLs pasted together, or a file of several lines
        raise UsageError(f"{shown} holds a space or a line break: give one URL")
    try:
        parts = urlsplit(url.strip())
        host, port = parts.hostname, parts.port
        if "[" in parts.netloc:  # Python before 3.11 does not check what the brackets hold
            ipaddress.IPv6Address(host or "")
    except ValueError as exc:
        if "[" in url or "]" in url or "IPv6" in str(exc):
            raise UsageError(f"{shown}: broken IPv6 address; write it in brackets, as http://[::1]:8080/") from None
        raise UsageError(f"{shown}: invalid port (a number from 1 to 65535 after the host's ':')") from None
    if parts.scheme not in ("http", "https", "file"):
        raise UsageError(f"{shown}: must start with https://, http:// or file://")
    if parts.scheme != "file" and not host:
        raise UsageError(f"{shown}: no host name")
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    register_secret(password)
    netloc = host or ""
    if ":" in netloc:  # IPv6 literal
        netloc = f"[{netloc}]"
    if port:
        netloc += f":{port}"
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    if path.endswith("/info/help/"):  # the curl URL Adobe documents, pasted whole: the API is what precedes it
        path = path[:-len("info/help/")]
    return urlunsplit((parts.scheme, netloc, path, "", "")), user, password


def is_service(url: str) -> bool:
    """True when *url* is on the real downloads service's host."""
    try:
        return urlsplit(url).hostname == SERVICE_HOST
    except ValueError:
        return False


# -- config file ------------------------------------------------------------------------


def config_path(env: Optional[Mapping[str, str]] = None) -> Path:
    """Path of the user's config file (it may not exist)."""
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "magedl" / "config"


@dataclass(frozen=True)
class ConfigFile:
    """The ``[magedl]`` section of a config file, and what looked wrong in it."""

    path: Path
    exists: bool
    values: Mapping[str, str]
    notes: Tuple[str, ...] = ()


def load_config(path) -> ConfigFile:
    """Read a config file: its ``[magedl]`` values and notes on likely mistakes.

    Notes (each logged as a warning by :func:`resolve`): settings under
    another section (``[default]``) that are therefore ignored, values in
    quotes (the quotes are dropped, as git does), unknown keys.

    Raises
    ------
    ConfigError
        Open to other users, unreadable, not UTF-8, or not INI: the message
        names the file and line, never a Python exception name or the line's
        text (it may hold the token).
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return ConfigFile(path, False, {})
    text = read_secret_file(path, "config file", error=ConfigError)
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        raise ConfigError(f"config file {printable(path)}, {_ini_problem(exc)}") from None
    lines = text.splitlines()
    notes = []
    if parser.has_section("magedl"):
        values = dict(parser["magedl"])
    else:
        values = {}
        for name in ["DEFAULT", *parser.sections()]:
            if any(key in CONFIG_KEYS for key in parser[name]):
                notes.append(f"config file {printable(path)} has no [magedl] section, so the settings under "
                             f"[{printable(name)[:40]}] are ignored: rename that section to [magedl]")
    for key, value in list(values.items()):
        line = next((n for n, t in enumerate(lines, 1) if re.match(rf"\s*{re.escape(key)}\s*[=:]", t, re.I)), 0)
        if key == "token":
            register_secret(value)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            values[key] = value[1:-1]
            if key == "token":
                register_secret(values[key])  # the token as it will be sent, without the quotes
            notes.append(f"config file {printable(path)}, line {line}: the {key} is in quotes; magedl ignores "
                         "the quotes, remove them")
        if key not in CONFIG_KEYS:
            close = difflib.get_close_matches(key, CONFIG_KEYS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(CONFIG_KEYS)})"
            notes.append(f"config file {printable(path)}, line {line}: unknown setting '{printable(key)[:40]}' "
                         f"in [magedl] is ignored{hint}")
    return ConfigFile(path, True, values, tuple(notes))


def _ini_problem(exc: configparser.Error) -> str:
    """Where and what, for a configparser error; never the text of the line."""
    if isinstance(exc, configparser.MissingSectionHeaderError):
        return f"line {exc.lineno}: a setting comes before any section; start the file with a [magedl] line"
    if isinstance(exc, configparser.DuplicateOptionError):
        key = exc.option if exc.option in CONFIG_KEYS else "a setting"
        return f"line {exc.lineno}: {key} is set twice in [{printable(exc.section)[:40]}]; keep one"
    if isinstance(exc, configparser.DuplicateSectionError):
        return f"line {exc.lineno}: section [{printable(exc.section)[:40]}] appears twice; merge them"
    if isinstance(exc, configparser.ParsingError) and exc.errors:
        return f"line {exc.errors[0][0]}: not a 'name = value' line or a [section] header"
    return "cannot be read as an INI file; see 'magedl --help' for its format"


def read_config(path) -> dict:
    """Read the ``[magedl]`` section of the config file, or ``{}`` if absent (see :func:`load_config`)."""
    return dict(load_config(path).values)


# -- resolve ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layer:
    """One source's base URL, MAGEID and token, with the labels messages use."""

    url: Optional[str]
    url_label: str
    mageid: Optional[str]
    mageid_label: str
    token: Optional[str]
    token_label: str


def _pick(layers, host):
    """First (value, label) per field; a URL's userinfo counts only when that URL is on *host*."""
    found = {"mageid": (None, ""), "token": (None, "")}
    for layer in layers:
        clean, user, password = split_userinfo(layer.url, layer.url_label) if layer.url else (None, None, None)
        same_host = clean is not None and urlsplit(clean).netloc == host
        for name, value, label, from_url in (("mageid", layer.mageid, layer.mageid_label, user),
                                             ("token", layer.token, layer.token_label, password)):
            if found[name][0]:
                continue
            if value:
                found[name] = (value, label)
            elif from_url and same_host:
                found[name] = (from_url, f"the {'user name' if name == 'mageid' else 'password'} in {layer.url_label}")
    return found["mageid"], found["token"]


def resolve(*, base_url: Optional[str] = None, mageid: Optional[str] = None, token: Optional[str] = None,
            token_file: Optional[str] = None, ca_bundle: Optional[str] = None, insecure: bool = False,
            env: Optional[Mapping[str, str]] = None, config_file=None, use_netrc: bool = True) -> Settings:
    """Work out the base URL, credentials and CA bundle from every source, in order.

    Parameters
    ----------
    base_url, mageid, token, token_file, ca_bundle : str, optional
        Values given on the command line (highest precedence).
    env : mapping, optional
        The environment; ``os.environ`` by default.
    config_file : path, optional
        Config file to read; :func:`config_path` by default.

    Returns
    -------
    Settings
        With :class:`Sources` saying where each value came from.

    Raises
    ------
    UsageError
        Half-set credentials for the real service (it always asks), a token
        that HTTP cannot carry, a bad base URL, ``--ca-bundle`` naming nothing.
    ConfigError
        An unsafe or malformed config or netrc file; a CA bundle from the
        environment or config file that does not exist.
    """
    env = os.environ if env is None else env
    register_secret(token)
    register_secret(env.get("MAGEDL_TOKEN"))
    cfg = load_config(config_file or config_path(env))
    notes = list(cfg.notes)
    for note in cfg.notes:
        log.warning("%s", note)
    cfg_label = f"the config file {printable(cfg.path)}"
    token_label = "--token"
    if token_file:
        token = read_token_file(token_file)
        token_label = "--token-file -" if str(token_file) == "-" else f"--token-file {printable(token_file)}"
    layers = [
        _Layer(base_url, "--base-url", mageid, "--mageid", token, token_label),
        _Layer(env.get("MAGEDL_BASE_URL"), "MAGEDL_BASE_URL", env.get("MAGEDL_MAGEID"), "MAGEDL_MAGEID",
               env.get("MAGEDL_TOKEN"), "MAGEDL_TOKEN"),
        _Layer(cfg.values.get("base_url"), cfg_label, cfg.values.get("mageid"), cfg_label,
               cfg.values.get("token"), cfg_label),
    ]
    chosen = next((layer for layer in layers if layer.url), None)
    url = split_userinfo(chosen.url, chosen.url_label)[0] if chosen else DEFAULT_BASE_URL
    host = urlsplit(url).netloc
    (the_id, id_label), (the_token, token_from) = _pick(layers, host)

    netrc_found = "not consulted"
    if (not the_id or not the_token) and use_netrc and not url.startswith("file:"):
        login, password, netrc_found = netrc_lookup(urlsplit(url).hostname, env)
        if login and not the_id:
            the_id, id_label = login, netrc_found
        if password and not the_token:
            the_token, token_from = password, netrc_found
    the_id = the_id.strip() if the_id else None
    the_token = the_token.strip() if the_token else None
    register_secret(the_token)  # as it will be sent: stripped, unquoted
    if the_id and mageid_may_be_secret(the_id):
        register_secret(the_id)  # a token in the MAGEID's place must not reach a log either

    creds = None
    if the_id and the_token:
        check_secret_text(the_token, token_from)
        if ":" in the_id or not all(" " < c <= "~" for c in the_id):
            raise UsageError(f"the MAGEID {mageid_shown(the_id)} from {id_label} cannot be sent: it holds a ':', "
                             "a space or a non-ASCII character")
        creds = Credentials(the_id, the_token)
        problem = mageid_problem(the_id, the_token) if is_service(url) else ""
        if problem:
            notes.append(f"the MAGEID {mageid_shown(the_id)} (from {id_label}) {problem}")
            log.warning("%s", notes[-1])
    elif the_id or the_token:
        notes.append(_half_set(the_id, id_label, token_from, cfg_label))
        if is_service(url):
            raise UsageError(notes[-1])
        log.log(VERBOSE, "%s; no credentials are sent to %s", notes[-1], host or url)
    bundle, bundle_label = _ca_bundle(ca_bundle, env, cfg, cfg_label, insecure)
    sources = Sources(base_url=chosen.url_label if chosen else "the default", mageid=id_label if creds else "",
                      token=token_from if creds else "", ca_bundle=bundle_label,
                      config_file=f"{printable(cfg.path)}{'' if cfg.exists else ' (absent)'}",
                      netrc=netrc_found, notes=tuple(notes), token_length=len(the_token) if creds else 0)
    return Settings(url, creds, ca_bundle=bundle, insecure=insecure, sources=sources)


def _half_set(the_id, id_label, token_from, cfg_label) -> str:
    """The message for a MAGEID without a token, or a token without a MAGEID: the flags that pair."""
    if the_id:
        return (f"a MAGEID was found ({id_label}) but no downloads token: give the token with --token-file PATH "
                f"or MAGEDL_TOKEN (or 'token =' in {cfg_label}, or ~/.netrc)")
    return (f"a downloads token was found ({token_from}) but no MAGEID: give it with --mageid MAG... "
            f"or MAGEDL_MAGEID (or 'mageid =' in {cfg_label}, or ~/.netrc)")


def _ca_bundle(option, env, cfg, cfg_label, insecure) -> Tuple[Optional[str], str]:
    """The CA bundle (file or folder) and where it came from; checked to exist unless TLS is off."""
    for value, label in ((option, "--ca-bundle"), (env.get("MAGEDL_CA_BUNDLE"), "MAGEDL_CA_BUNDLE"),
                         (cfg.values.get("ca_bundle"), f"ca_bundle in {cfg_label}"),
                         (env.get("REQUESTS_CA_BUNDLE"), "REQUESTS_CA_BUNDLE"),
                         (env.get("CURL_CA_BUNDLE"), "CURL_CA_BUNDLE"),
                         (env.get("SSL_CERT_FILE"), "SSL_CERT_FILE"), (env.get("SSL_CERT_DIR"), "SSL_CERT_DIR")):
        if value:
            if not insecure and not os.path.exists(value):
                kind = UsageError if label == "--ca-bundle" else ConfigError
                raise kind(f"CA bundle {printable(value)} (from {label}): no such file or folder; give the PEM "
                           "file of the CA certificates that signed the server's certificate")
            return value, label
    return None, ""
