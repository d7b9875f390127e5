"""Where settings and credentials come from, and how secrets are kept out of output.

Credentials are looked up field by field, first found wins:

1. command-line options (``--mageid``, ``--token-file``, ``--token``, userinfo
   in ``--base-url``);
2. the environment (``MAGEDL_MAGEID``, ``MAGEDL_TOKEN``, userinfo in
   ``MAGEDL_BASE_URL``);
3. the user's config file (``$XDG_CONFIG_HOME/magedl/config``, INI section
   ``[magedl]`` with ``mageid``, ``token``, ``base_url``);
4. ``~/.netrc`` (or ``$NETRC``) for the API host.

Every token that passes through here is registered with :func:`redact`, so
anything we print, log or raise can be scrubbed of it.
"""

import configparser
import logging
import netrc
import os
import re
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from magedl.errors import ConfigError, UsageError

DEFAULT_BASE_URL = "https://www.magentocommerce.com/products/downloads/"

_secrets = set()
_secrets_lock = threading.Lock()
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def register_secret(value):
    """Remember a secret so :func:`redact` removes it from any text."""
    if value and len(value) >= 4:
        with _secrets_lock:
            _secrets.add(value)


def redact(text):
    """Return *text* with every registered secret and URL userinfo masked."""
    text = _USERINFO.sub("***@", str(text))
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


class RedactingFilter(logging.Filter):
    """Logging filter that scrubs secrets from every record it passes."""

    def filter(self, record):
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: let the handler report it, unredacted args dropped
            message = f"{record.msg} (unformattable log arguments)"
        record.msg = redact(message)
        record.args = ()
        return True


@dataclass(frozen=True)
class Credentials:
    """A MAGEID and downloads access token. ``repr`` never shows the token."""

    mageid: str
    token: str

    def __repr__(self):
        return f"Credentials(mageid={self.mageid!r}, token='***')"

    __str__ = __repr__


@dataclass(frozen=True)
class Settings:
    """What a command needs to reach the service."""

    base_url: str
    credentials: "Credentials | None"
    ca_bundle: "str | None" = None
    insecure: bool = False


def split_userinfo(url):
    """Split ``https://ID:TOKEN@host/path`` into (clean URL, id, token).

    The token is registered as a secret before anything else can see it.
    """
    parts = urlsplit(url)
    # Anything that looks like userinfo is a secret before we can even tell the URL is bad.
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    for piece in (userinfo, userinfo.partition(":")[2], unquote(userinfo.partition(":")[2])):
        register_secret(piece)
    if "@" in url and not userinfo:
        register_secret(url.rpartition("@")[0].rpartition(":")[2])
    if parts.scheme not in ("http", "https", "file"):
        raise UsageError("base URL must start with https://, http:// or file://")
    if parts.scheme != "file" and not parts.hostname:
        raise UsageError("base URL has no host name")
    try:
        port = parts.port
    except ValueError:
        raise UsageError("base URL has an invalid port") from None
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    register_secret(password)
    netloc = parts.hostname or ""
    if ":" in netloc:  # IPv6 literal
        netloc = f"[{netloc}]"
    if port:
        netloc += f":{port}"
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urlunsplit((parts.scheme, netloc, path, "", "")), user, password


def config_path(env=None):
    """Path of the user's config file (it may not exist)."""
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "magedl" / "config"


def read_config(path):
    """Read the ``[magedl]`` section of the config file, or ``{}`` if absent.

    A file that others can read is refused: it holds the token.
    """
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"config file {path} is readable by other users; it holds your token: "
            f"run 'chmod 600 {path}'"
        )
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as exc:
        # The parser's message may quote a line of the file, which may hold the token.
        raise ConfigError(f"config file {path} is not valid INI ({type(exc).__name__})") from None
    section = dict(parser["magedl"]) if parser.has_section("magedl") else {}
    register_secret(section.get("token"))
    return section


def read_token_file(path):
    """Read a token from a file (``-`` for standard input), stripped."""
    try:
        if str(path) == "-":
            import sys

            token = sys.stdin.readline()
        else:
            token = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError(f"cannot read token file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"token file {path} is not text") from None
    token = token.strip()
    if not token:
        raise UsageError(f"token file {path} is empty")
    if any(c.isspace() for c in token):
        raise UsageError(f"token file {path} holds more than one word; it should hold only the token")
    register_secret(token)
    return token


def netrc_credentials(host, env=None):
    """(login, password) for *host* from ``$NETRC`` or ``~/.netrc``, or (None, None)."""
    env = os.environ if env is None else env
    path = env.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    if not host or not os.path.exists(path):
        return None, None
    try:
        entry = netrc.netrc(path).authenticators(host)
    except (netrc.NetrcParseError, OSError) as exc:
        # NetrcParseError's message can quote the offending line: keep it out.
        raise ConfigError(f"cannot parse {path} ({type(exc).__name__})") from None
    if not entry:
        return None, None
    register_secret(entry[2])
    return entry[0] or None, entry[2] or None


def resolve(
    *,
    base_url=None,
    mageid=None,
    token=None,
    token_file=None,
    ca_bundle=None,
    insecure=False,
    env=None,
    config_file=None,
    use_netrc=True,
):
    """Work out the base URL and credentials from every source, in order.

    Parameters
    ----------
    base_url, mageid, token, token_file : str, optional
        Values given on the command line (highest precedence).
    env : mapping, optional
        The environment; ``os.environ`` by default.
    config_file : path, optional
        Config file to read; :func:`config_path` by default.

    Returns
    -------
    Settings
    """
    env = os.environ if env is None else env
    register_secret(token)
    register_secret(env.get("MAGEDL_TOKEN"))
    config = read_config(config_file or config_path(env))

    # Each source contributes (base_url, mageid, token, userinfo). Credentials found
    # in a URL's userinfo were given for that URL's host, so they count only
    # when the chosen base URL is on the same host.
    sources = []
    if token_file:
        token = read_token_file(token_file)
    cli = split_userinfo(base_url) if base_url else (None, None, None)
    sources.append((cli[0], mageid, token, cli[1:]))
    env_url = split_userinfo(env["MAGEDL_BASE_URL"]) if env.get("MAGEDL_BASE_URL") else (None, None, None)
    sources.append((env_url[0], env.get("MAGEDL_MAGEID"), env.get("MAGEDL_TOKEN"), env_url[1:]))
    cfg = split_userinfo(config["base_url"]) if config.get("base_url") else (None, None, None)
    sources.append((cfg[0], config.get("mageid"), config.get("token"), cfg[1:]))

    url = next((s[0] for s in sources if s[0]), None) or DEFAULT_BASE_URL
    host = urlsplit(url).netloc
    candidates = []
    for src_url, src_id, src_token, (url_id, url_token) in sources:
        same_host = src_url is not None and urlsplit(src_url).netloc == host
        candidates.append((src_id or (url_id if same_host else None), src_token or (url_token if same_host else None)))
    the_id = next((c[0] for c in candidates if c[0]), None)
    the_token = next((c[1] for c in candidates if c[1]), None)

    if (the_id is None or the_token is None) and use_netrc:
        login, password = netrc_credentials(urlsplit(url).hostname, env)
        the_id = the_id or login
        the_token = the_token or password

    creds = Credentials(the_id.strip(), the_token.strip()) if the_id and the_token else None
    if creds is None and (the_id or the_token) and not url.startswith("file:"):
        missing = "downloads token" if the_id else "MAGEID"
        raise UsageError(
            f"no {missing} given: set it with --token-file/--mageid, "
            "MAGEDL_TOKEN/MAGEDL_MAGEID, the config file or ~/.netrc"
        )
    ca_bundle = ca_bundle or env.get("MAGEDL_CA_BUNDLE") or config.get("ca_bundle")
    return Settings(url, creds, ca_bundle=ca_bundle, insecure=insecure)
