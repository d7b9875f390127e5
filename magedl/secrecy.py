"""What counts as a secret, and how it stays one: the registry, redaction, files that hold secrets, netrc.

Rule: every token, key or password magedl handles is registered (:func:`register_secret`) so anything
printed, logged or raised can be scrubbed of it (:func:`redact`), and every file that holds a secret
is read with :func:`read_secret_file`, which refuses one other users may access, as ssh does.
"""

import logging
import netrc
import os
import re
import stat
import sys
import threading
from typing import Mapping, Optional, Tuple, Type

from magedl.errors import ConfigError, MagedlError, UsageError
from magedl.text import printable

log = logging.getLogger(__name__)

# Detail for ``-v``: between DEBUG (``-vv``, library traces) and INFO (shown by default).
VERBOSE = 15
logging.addLevelName(VERBOSE, "VERBOSE")

# ``extra=`` of a warning that ``-q`` must not silence: a protection is off or something is exposed
# (TLS verification off, a server open to the network, a signature not checked). Quiet means no progress
# and no chatter, never an unsaid risk.
SECURITY = {"security": True}

# A secret file is a few lines; anything bigger is the wrong file.
SECRET_FILE_LIMIT = 1 << 20

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_secrets = set()
_secrets_lock = threading.Lock()
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def register_secret(value: Optional[str]) -> None:
    """Remember a secret so :func:`redact` removes it from any text (values under 4 characters are ignored)."""
    if value and len(value) >= 4:
        with _secrets_lock:
            _secrets.add(value)


def registered_secrets() -> frozenset:
    """Every secret registered so far (for tests that search output for them)."""
    with _secrets_lock:
        return frozenset(_secrets)


def redact(text) -> str:
    """Return *text* with every registered secret and URL userinfo masked."""
    text = _USERINFO.sub("***@", str(text))
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


class RedactingFilter(logging.Filter):
    """Logging filter that scrubs secrets from every record it passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: let the handler report it, unredacted args dropped
            message = f"{record.msg} (unformattable log arguments)"
        record.msg = redact(message)
        record.args = ()
        return True


# -- a MAGEID in the token's place ---------------------------------------------------

# What the account page shows: MAG and nine digits.
MAGEID_SHAPE = re.compile(r"MAG[0-9]{9}")
# A downloads access token is 40 hex digits; a MAGEID of this shape, or any long one, may be a
# token put in the wrong variable, and is then masked like one (mageid_shown).
_TOKEN_LIKE = re.compile(r"[0-9a-fA-F]{20,}")
_LONG_MAGEID = 20


def mageid_may_be_secret(mageid: str) -> bool:
    """Whether a MAGEID is shaped like a token (or is long): then it is never shown, as a secret."""
    return len(mageid) > _LONG_MAGEID or bool(_TOKEN_LIKE.fullmatch(mageid))


def mageid_shown(mageid: str) -> str:
    """A MAGEID for messages: quoted, or masked when it may be a token (:func:`mageid_may_be_secret`)."""
    if mageid_may_be_secret(mageid):
        return f"*** ({len(mageid)} characters, not shown: it may be a token)"
    return repr(printable(mageid))


def mageid_problem(mageid: str, token: str) -> str:
    """What is wrong with a MAGEID for the real service, to follow "the MAGEID X (from Y)"; "" when it looks right."""
    if MAGEID_SHAPE.fullmatch(mageid):
        return ""
    if mageid_may_be_secret(mageid) and MAGEID_SHAPE.fullmatch(token):
        return ("looks like a downloads token and the token looks like a MAGEID: the two look swapped; exchange "
                "them (the MAGEID is MAG followed by 9 digits, the token 40 letters a-f and digits)")
    if mageid_may_be_secret(mageid):
        return ("looks like a downloads token, not a MAGEID (MAG followed by 9 digits): was the token put in its "
                "place? Give the MAGEID there, and the token with --token-file or MAGEDL_TOKEN")
    return "does not look like one: a MAGEID is MAG followed by 9 digits, as on your magento.com account page"


# -- secret files -------------------------------------------------------------------


def check_private(path, mode: int, what: str) -> None:
    """Refuse a regular file that its group or other users may read, write or run.

    The one rule for every file that holds a secret, as ssh applies it to
    keys. Pipes and devices (``--token-file <(pass show ...)``) are not
    checked: their modes say nothing about who saw the secret.

    Raises
    ------
    ConfigError
        Naming the file, its mode and the ``chmod 600`` that fixes it.
    """
    if os.name == "nt" or not stat.S_ISREG(mode) or not mode & 0o077:
        return
    shown = printable(path)
    raise ConfigError(f"{what} {shown} is open to other users (mode {stat.S_IMODE(mode):04o}) and holds a secret; "
                      f"magedl refuses it, as ssh does: run 'chmod 600 {shown}'")


def read_secret_file(path, what: str, *, error: Type[MagedlError] = UsageError,
                     limit: int = SECRET_FILE_LIMIT) -> str:
    """The text of a file holding a secret (token file, auth file, config file, netrc).

    Parameters
    ----------
    path : path-like
    what : str
        Names the file in messages: ``"token file"``, ``"auth file"``...
    error : MagedlError subclass
        Raised when the file cannot be read or is not UTF-8 text (a file
        named on the command line: :class:`UsageError`, the default).
    limit : int
        Largest size accepted.

    Raises
    ------
    ConfigError
        The file is open to other users (:func:`check_private`).
    MagedlError
        *error*, when missing, a folder, too big or not text. No message
        ever quotes the file's content.
    """
    shown = printable(path)
    try:
        fd = os.open(path, os.O_RDONLY | _CLOEXEC)
    except OSError as exc:
        raise error(f"cannot read {what} {shown}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise error(f"{what} {shown} is a folder; give the file itself")
        check_private(path, info.st_mode, what)
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise error(f"cannot read {what} {shown}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise error(f"{what} {shown} is larger than {limit // 1024} KiB; is it the right file?")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise error(f"{what} {shown} is not text (not UTF-8 at line {line})") from None


def check_secret_text(value: str, where: str) -> None:
    """Refuse a token or password that HTTP Basic auth cannot carry as typed.

    A non-ASCII or control character (a typographic quote, a non-breaking
    space from a web page) gets a message with its position, never the
    character or the rest of the value.
    """
    for i, c in enumerate(value):
        if not " " <= c <= "~":
            kind = "a non-ASCII character" if ord(c) > 127 else "a control character"
            raise UsageError(f"the token from {where} holds {kind} (character {i + 1} of {len(value)}); a downloads "
                             "token is plain letters and digits: copy it again, as plain text")


def read_token_file(path) -> str:
    """Read a token from a file (``-`` for standard input), stripped and checked."""
    if str(path) == "-":
        token, where = sys.stdin.readline(), "standard input"
    else:
        token, where = read_secret_file(path, "token file"), f"token file {printable(path)}"
    token = token.strip()
    register_secret(token)
    if not token:
        raise UsageError(f"{where} is empty")
    if any(c in " \t\n\r\v\f" for c in token):
        raise UsageError(f"{where} holds more than one word; it should hold only the token")
    check_secret_text(token, where)
    return token


# -- netrc ---------------------------------------------------------------------------------


def netrc_path(env: Optional[Mapping[str, str]] = None) -> str:
    """``$NETRC`` or ``~/.netrc`` (it may not exist)."""
    env = os.environ if env is None else env
    return env.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")


def netrc_lookup(host: Optional[str], env: Optional[Mapping[str, str]] = None
                 ) -> Tuple[Optional[str], Optional[str], str]:
    """(login, password, what was found) for *host*: a ``machine`` entry only, never ``default``."""
    path = netrc_path(env)
    if not host:
        return None, None, "not consulted (no host)"
    if not os.path.exists(path):
        return None, None, f"{printable(path)} (absent)"
    read_secret_file(path, "netrc file", error=ConfigError)  # the one rule for secret files
    try:
        parsed = netrc.netrc(path)
    except (netrc.NetrcParseError, OSError, UnicodeDecodeError) as exc:
        # NetrcParseError's message quotes the offending token, which may be the password.
        line = getattr(exc, "lineno", None)
        raise ConfigError(f"netrc file {printable(path)}{f', line {line}' if line else ''}: cannot be parsed; "
                          "entries read 'machine HOST login MAGEID password TOKEN'") from None
    for entry in parsed.hosts.values():
        register_secret(entry[2])
    entry = parsed.hosts.get(host)
    if not entry:
        if "default" in parsed.hosts:
            log.log(VERBOSE, "%s: its 'default' entry is never used; only a 'machine %s' entry is",
                    printable(path), host)
        return None, None, f"{printable(path)} (no 'machine {host}' entry)"
    log.log(VERBOSE, "credentials for %s: %s, 'machine %s' entry", host, printable(path), host)
    return entry[0] or None, entry[2] or None, f"{printable(path)} (machine {host})"


def netrc_credentials(host: Optional[str], env: Optional[Mapping[str, str]] = None
                      ) -> Tuple[Optional[str], Optional[str]]:
    """(login, password) of the ``machine HOST`` entry in ``$NETRC`` or ``~/.netrc``, or (None, None).

    A ``default`` entry is never used: its password would go to any host.
    """
    login, password, _ = netrc_lookup(host, env)
    return login, password
