"""Finding Marketplace keys the way Composer finds them.

Composer keeps HTTP Basic credentials under ``http-basic`` -> host ->
``{"username": ..., "password": ...}``; for ``repo.magento.com`` the username
is the Marketplace public key and the password the private key. This module
reads every place Composer reads, in Composer's order, and reports which entry
wins, which other entries exist and whether they agree, without ever putting a
key in a message, a repr or a log record.

Load order (``Composer\\Factory``), each later source replacing a host's entry:

1. ``$COMPOSER_HOME/config.json`` (``config.http-basic``);
2. ``$COMPOSER_HOME/auth.json``;
3. the ``COMPOSER_AUTH`` environment variable;
4. the project's ``composer.json`` (``config.http-basic``);
5. the project's ``auth.json``, next to ``composer.json``;
6. ``COMPOSER_AUTH`` again, since Composer 2.7.8. Before that version a project
   auth.json (or composer.json) entry beat ``COMPOSER_AUTH``; when the two
   answers differ the result carries a note.

Host matching: Composer looks the entry up by the exact string it derives
from the URL: the host as written, plus ``:port`` whenever the URL spells a
port, even the default one. We match more leniently (host compared without
case, a port equal to the scheme's default treated as absent) so that an
entry Composer would miss is still found and reported, but an entry Composer
itself would use always wins over one it would miss.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..config import register_secret
from ..errors import ConfigError, UsageError

log = logging.getLogger(__name__)

MARKETPLACE_HOST = "repo.magento.com"
MARKETPLACE_URL = "https://repo.magento.com/"
#: Length of a Marketplace public or private key.
KEY_LENGTH = 32
#: Finding levels.
WARNING = "warning"
NOTE = "note"

# Composer treats the system as an XDG one when this folder exists (Factory::useXdg).
_ETC_XDG = "/etc/xdg"
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Public keys shorter than this are not shortened further: four characters would be most of it.
_MASK_MIN = 9
_MAGEID = re.compile(r"MAG\d{9}", re.IGNORECASE)
_HEX40 = re.compile(r"[0-9a-f]{40}")


class Source(str, Enum):
    """Where a credential entry was found (the value is a stable id for JSON output)."""

    GLOBAL_CONFIG = "global-config"
    GLOBAL_AUTH = "global-auth"
    COMPOSER_AUTH = "COMPOSER_AUTH"
    PROJECT_CONFIG = "project-config"
    PROJECT_AUTH = "project-auth"

    @property
    def label(self) -> str:
        """A short human name, e.g. ``the global auth.json``."""
        return _LABELS[self]


_LABELS = {
    Source.GLOBAL_CONFIG: "the global config.json",
    Source.GLOBAL_AUTH: "the global auth.json",
    Source.COMPOSER_AUTH: "the COMPOSER_AUTH environment variable",
    Source.PROJECT_CONFIG: "the project composer.json",
    Source.PROJECT_AUTH: "the project auth.json",
}

# Lowest to highest precedence, as Composer merges them.
_ORDER_NEW = (Source.GLOBAL_CONFIG, Source.GLOBAL_AUTH, Source.PROJECT_CONFIG,
              Source.PROJECT_AUTH, Source.COMPOSER_AUTH)
_ORDER_OLD = (Source.GLOBAL_CONFIG, Source.GLOBAL_AUTH, Source.COMPOSER_AUTH,
              Source.PROJECT_CONFIG, Source.PROJECT_AUTH)


@dataclass(frozen=True)
class Finding:
    """Something worth telling the user about the credentials.

    Attributes
    ----------
    level : str
        ``"warning"`` (an entry was skipped or looks wrong) or ``"note"``.
    message : str
        One line; never holds a key.
    source : Source or None
        Where the problem is, when it belongs to one source.
    path : Path or None
        The file, when the source is a file.
    """

    level: str
    message: str
    source: Source | None = None
    path: Path | None = None


@dataclass(frozen=True)
class Candidate:
    """An entry for the host that did not win, compared with the winner.

    Attributes
    ----------
    source, path
        Where it is (``path`` is None for ``COMPOSER_AUTH``).
    key : str
        The entry's name as written (``repo.magento.com``, ``REPO.magento.com:443``...).
    public_masked : str
        Its public key shortened by :func:`mask_public`.
    agrees : bool
        Same public and private key as the winner.
    same_public : bool
        Same public key as the winner (the private key may still differ).
    composer_match : bool
        Composer's own exact lookup would find this entry.
    """

    source: Source
    path: Path | None
    key: str
    public_masked: str
    agrees: bool
    same_public: bool
    composer_match: bool


@dataclass(frozen=True)
class SourceStatus:
    """One place that was consulted, and whether it exists."""

    source: Source
    path: Path | None
    present: bool


@dataclass(frozen=True)
class KeyLookup:
    """The outcome of :func:`find_keys`.

    Attributes
    ----------
    url : str
        The repository URL looked up (without any userinfo).
    host_key : str
        The host in canonical form: lower case, ``:port`` only when not the default.
    composer_origin : str
        The exact key Composer looks up for ``url``.
    credentials : tuple of (str, str) or None
        ``(public key, private key)`` of the winning entry. Not shown by ``repr``.
    source, path, entry_key
        Where the winner is, and its entry name as written; None when nothing was found.
    others : tuple of Candidate
        Every other entry for this host, in precedence order, highest first.
    findings : tuple of Finding
        Warnings and notes, in the order they were found.
    searched : tuple of SourceStatus
        Every place consulted, in Composer's load order.
    composer_home : Path
        ``$COMPOSER_HOME`` as Composer computes it.
    """

    url: str
    host_key: str
    composer_origin: str
    credentials: tuple[str, str] | None = field(repr=False)
    source: Source | None
    path: Path | None
    entry_key: str | None
    others: tuple[Candidate, ...]
    findings: tuple[Finding, ...]
    searched: tuple[SourceStatus, ...]
    composer_home: Path

    @property
    def found(self) -> bool:
        """True when some source holds keys for the host."""
        return self.credentials is not None

    @property
    def public_masked(self) -> str | None:
        """The winning public key shortened by :func:`mask_public`, or None."""
        return mask_public(self.credentials[0]) if self.credentials else None

    @property
    def warnings(self) -> tuple[Finding, ...]:
        """Only the warning-level findings."""
        return tuple(f for f in self.findings if f.level == WARNING)


def mask_public(key: str) -> str:
    """Show a public key by its first four characters only: ``'abcd…'``.

    Keys too short to be real Marketplace keys are shown as ``'…'`` alone,
    since four characters would be most of them.
    """
    if not key or len(key) < _MASK_MIN:
        return "…"
    return key[:4] + "…"


# --------------------------------------------------------------------------- COMPOSER_HOME


def composer_home(env: Mapping[str, str] | None = None,
                  platform: str | None = None) -> Path:
    """``$COMPOSER_HOME`` as Composer computes it (``Factory::getHomeDir``).

    ``COMPOSER_HOME`` if set; on Windows ``%APPDATA%/Composer``; elsewhere
    (macOS included) the first existing folder of ``$XDG_CONFIG_HOME/composer``
    (only when the system "uses XDG": some ``XDG_*`` variable is set or
    ``/etc/xdg`` exists; ``XDG_CONFIG_HOME`` defaults to ``~/.config``) and
    ``~/.composer``; when neither exists, the first of them.

    Parameters
    ----------
    env : mapping, optional
        The environment; ``os.environ`` by default.
    platform : str, optional
        ``sys.platform`` by default; only ``win32`` is treated differently.

    Raises
    ------
    ConfigError
        The variables Composer needs (``APPDATA`` or ``HOME``) are unset.
    """
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    home = env.get("COMPOSER_HOME")
    if home:
        return Path(home)
    if platform == "win32":
        appdata = env.get("APPDATA")
        if not appdata:
            raise ConfigError("cannot locate Composer's home: neither APPDATA nor COMPOSER_HOME "
                              "is set; set COMPOSER_HOME")
        return Path(appdata.replace("\\", "/").rstrip("/") + "/Composer")
    user = env.get("HOME")
    if not user:
        raise ConfigError("cannot locate Composer's home: neither HOME nor COMPOSER_HOME is set; "
                          "set COMPOSER_HOME")
    user = user.replace("\\", "/").rstrip("/")
    dirs = []
    if _uses_xdg(env):
        xdg = env.get("XDG_CONFIG_HOME") or user + "/.config"
        dirs.append(Path(xdg) / "composer")
    dirs.append(Path(user) / ".composer")
    for candidate in dirs:
        if candidate.is_dir():
            return candidate
    return dirs[0]


def _uses_xdg(env: Mapping[str, str]) -> bool:
    return any(name.startswith("XDG_") for name in env) or os.path.isdir(_ETC_XDG)


def global_auth_path(env: Mapping[str, str] | None = None,
                     platform: str | None = None) -> Path:
    """``$COMPOSER_HOME/auth.json`` (it may not exist)."""
    return composer_home(env, platform) / "auth.json"


def composer_file(project_dir: os.PathLike[str] | str | None = None,
                  env: Mapping[str, str] | None = None) -> Path:
    """The project's composer.json: ``$COMPOSER`` (a file name) or ``composer.json`` in the folder.

    Parameters
    ----------
    project_dir : path, optional
        The project folder; the current directory by default.
    env : mapping, optional
        The environment; ``os.environ`` by default.
    """
    env = os.environ if env is None else env
    name = (env.get("COMPOSER") or "").strip() or "composer.json"
    folder = os.path.abspath(project_dir if project_dir is not None else os.getcwd())
    return Path(folder) / name


def project_auth_path(project_dir: os.PathLike[str] | str | None = None,
                      env: Mapping[str, str] | None = None) -> Path:
    """The project auth.json Composer reads: next to composer.json after resolving links.

    When composer.json does not exist the answer is ``project_dir/auth.json``,
    where it would be once the project exists.
    """
    cfile = composer_file(project_dir, env)
    if cfile.is_file():
        return Path(os.path.realpath(cfile)).parent / "auth.json"
    return cfile.parent / "auth.json"


# --------------------------------------------------------------------------- hosts


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str  # lower case, IPv6 without brackets
    port: int  # effective port
    origin: str  # what Composer looks up
    url: str


def _parse_target(url: str) -> _Target:
    text = url.strip()
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if parts.scheme.lower() not in _DEFAULT_PORTS:
        raise UsageError(f"repository URL {url!r} must start with https:// or http://")
    netloc = parts.netloc
    if "@" in netloc:
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
    return _Target(scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme], origin, clean)


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
    return _parse_target(url).origin


def host_key(url: str) -> str:
    """The canonical host of *url*: lower case, ``:port`` only when not the scheme's default.

    ``https://REPO.magento.com:443/`` -> ``repo.magento.com``; a bare host is
    taken as an https URL.
    """
    target = _parse_target(url)
    host = f"[{target.host}]" if ":" in target.host else target.host
    if target.port != _DEFAULT_PORTS[target.scheme]:
        host += f":{target.port}"
    return host


def _match(key: str, target: _Target) -> str | None:
    """How an ``http-basic`` entry name relates to *target*.

    Returns ``"exact"`` (Composer finds it), ``"lenient"`` (same host and port in
    another spelling), ``"url"`` (a whole URL used as the name) or None.
    """
    if key == target.origin:
        return "exact"
    kind = "lenient"
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
        kind = "url"
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


# --------------------------------------------------------------------------- key shapes


def key_shape_problems(public: str, private: str) -> tuple[str, ...]:
    """Reasons a pair does not look like Marketplace keys (empty when it does).

    Marketplace keys are 32 letters and digits each. A swapped pair cannot be
    detected; stray whitespace, quotes, a wrong length, a MAGEID or a downloads
    access token in place of a key can. Messages never quote the keys.
    """
    problems: list[str] = []
    for name, value in (("public key", public), ("private key", private)):
        problems.extend(_one_key_problems(name, value))
    if public and public == private:
        problems.append("the public and the private key are the same: one of them was probably "
                        "pasted twice")
    if public and _MAGEID.fullmatch(public.strip()):
        problems.append("the public key looks like a MAGEID; Composer needs the Marketplace "
                        "public key (Marketplace > My Profile > Access Keys)")
    if private and _HEX40.fullmatch(private.strip()):
        problems.append("the private key looks like a downloads access token (40 characters); "
                        "Composer needs the Marketplace private key")
    return tuple(problems)


def _one_key_problems(name: str, value: str) -> list[str]:
    if not value:
        return [f"the {name} is empty"]
    problems = []
    core = value
    if value != value.strip():
        problems.append(f"the {name} has spaces or a line break at its start or end")
        core = core.strip()
    if len(core) >= 2 and core[0] == core[-1] and core[0] in "'\"":
        problems.append(f"the {name} is wrapped in quotes; store it without them")
        core = core[1:-1]
    if any(c.isspace() for c in core):
        problems.append(f"the {name} holds spaces or line breaks inside it")
    elif not (core.isascii() and core.isalnum()):
        problems.append(f"the {name} holds characters other than letters and digits")
    if len(core) != KEY_LENGTH:
        problems.append(f"the {name} is {len(core)} characters long, not {KEY_LENGTH}")
    elif core != value:
        problems.append(f"the {name} would be a valid {KEY_LENGTH}-character key without the "
                        "extra characters around it")
    return problems


# --------------------------------------------------------------------------- reading sources


@dataclass(frozen=True)
class _Entry:
    source: Source
    path: Path | None
    key: str
    kind: str
    username: str = field(repr=False)
    password: str = field(repr=False)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"


def _reject_constant(name: str) -> None:
    # Python accepts NaN and Infinity; Composer's JSON parser does not.
    raise ValueError(f"{name} is not valid JSON")


def parse_json_text(text: str, where: str) -> Any:
    """Parse JSON as strictly as Composer does, or raise ConfigError naming *where*.

    The error tells the position of the fault, never the text around it (which
    may hold a key).
    """
    if text.startswith("\ufeff"):
        raise ConfigError(f"{where} starts with a byte-order mark, which Composer rejects: "
                          "save it as UTF-8 without BOM")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where} is not valid JSON ({exc.msg} at line {exc.lineno} column "
                          f"{exc.colno}); Composer refuses it too: fix or remove it") from None
    except ValueError:
        raise ConfigError(f"{where} is not valid JSON (NaN or Infinity); Composer refuses it "
                          "too: fix or remove it") from None


def _read_json_file(path: Path) -> tuple[bool, Any]:
    """(present, data) of a JSON file; ConfigError when it exists but cannot be used."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return False, None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a folder, not a file: Composer cannot read it either; "
                          "move it away") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}; fix its permissions or "
                          "remove it") from None
    log.debug("reading credentials from %s", path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text; Composer cannot read it either: "
                          "fix or remove it") from None
    return True, parse_json_text(text, str(path))


def _http_basic(data: Any, source: Source, path: Path | None,
                findings: list[Finding]) -> dict[str, Any]:
    """The ``http-basic`` object of one source's data; problems go to *findings*."""
    where = str(path) if path is not None else "COMPOSER_AUTH"
    nested = source in (Source.GLOBAL_CONFIG, Source.PROJECT_CONFIG)
    if data == []:  # PHP writes an empty object as [] and reads [] as one
        return {}
    if not isinstance(data, dict):
        findings.append(Finding(WARNING, f"{where} holds a JSON {_type_name(data)}, not an object; "
                                "Composer ignores it", source, path))
        return {}
    if nested:
        data = data.get("config", {})
        if data == []:
            return {}
        if not isinstance(data, dict):
            findings.append(Finding(WARNING, f"{where}: 'config' is a {_type_name(data)}, not an "
                                    "object; its credentials are ignored", source, path))
            return {}
    elif "http-basic" not in data and isinstance(data.get("config"), dict) \
            and "http-basic" in data["config"]:
        findings.append(Finding(WARNING, f"{where} holds config.http-basic, which Composer ignores "
                                "here: in an auth.json 'http-basic' belongs at the top level",
                                source, path))
    basic = data.get("http-basic", {})
    if basic == []:
        return {}
    if not isinstance(basic, dict):
        findings.append(Finding(WARNING, f"{where}: 'http-basic' is a {_type_name(basic)}, not an "
                                "object; its entries are skipped", source, path))
        return {}
    return basic


def _entries(data: Any, source: Source, path: Path | None, target: _Target,
             findings: list[Finding]) -> list[_Entry]:
    where = str(path) if path is not None else "COMPOSER_AUTH"
    found = []
    for key, value in _http_basic(data, source, path, findings).items():
        if isinstance(value, dict) and isinstance(value.get("password"), str):
            # Every password is a secret, whichever host it is for.
            register_secret(value["password"])
        kind = _match(key, target)
        if kind is None:
            continue
        problem = _entry_problem(value)
        if problem:
            findings.append(Finding(WARNING, f"{where}: http-basic entry '{key}' {problem}; "
                                    "skipped", source, path))
            continue
        username, password = value["username"], value["password"]
        register_secret(username)
        if kind == "url":
            findings.append(Finding(NOTE, f"{where}: http-basic entry '{key}' is a URL; Composer "
                                    f"matches entries by host: rename it to '{target.origin}'",
                                    source, path))
        elif kind == "lenient":
            findings.append(Finding(NOTE, f"{where}: Composer looks up '{target.origin}' exactly "
                                    f"and does not use the entry '{key}': rename it",
                                    source, path))
        found.append(_Entry(source, path, key, kind, username, password))
    return found


def _entry_problem(value: Any) -> str | None:
    if not isinstance(value, dict):
        return f"is a {_type_name(value)}, not an object with username and password"
    for name in ("username", "password"):
        if name not in value:
            return f"has no {name}"
        if not isinstance(value[name], str):
            return f"has a {name} that is a {_type_name(value[name])}, not a string"
    return None


def _composer_auth(env: Mapping[str, str]) -> tuple[bool, Any]:
    raw = env.get("COMPOSER_AUTH")
    if raw is None or raw == "":
        return False, None
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except ValueError as exc:
        where = (f" ({exc.msg} at line {exc.lineno} column {exc.colno})"
                 if isinstance(exc, json.JSONDecodeError) else "")
        raise ConfigError("COMPOSER_AUTH environment variable is malformed, should be a valid "
                          f"JSON object{where}: fix or unset it") from None
    if data is None:  # Composer's json_decode gives null for the literal too and refuses it
        raise ConfigError("COMPOSER_AUTH environment variable is malformed, should be a valid "
                          "JSON object (it is null): fix or unset it")
    log.debug("reading credentials from COMPOSER_AUTH")
    return True, data


def _pick(entries: list[_Entry]) -> _Entry | None:
    """One source's entry: the exact match if any, else the first other spelling."""
    for entry in entries:
        if entry.kind == "exact":
            return entry
    return entries[0] if entries else None


def _winner(by_source: dict[Source, list[_Entry]], order: tuple[Source, ...]) -> _Entry | None:
    picks = [_pick(by_source.get(s, [])) for s in reversed(order)]
    picks = [p for p in picks if p is not None]
    for pick in picks:  # whatever Composer itself would use wins
        if pick.kind == "exact":
            return pick
    return picks[0] if picks else None


def find_keys(url: str = MARKETPLACE_URL, *,
              project_dir: os.PathLike[str] | str | None = None,
              env: Mapping[str, str] | None = None,
              platform: str | None = None,
              check_shape: bool | None = None) -> KeyLookup:
    """Find the credentials Composer would send to *url*, and everything else held for its host.

    Parameters
    ----------
    url : str
        The repository URL (a bare host is taken as https).
    project_dir : path, optional
        The project folder holding composer.json; the current directory by default.
    env : mapping, optional
        The environment; ``os.environ`` by default.
    platform : str, optional
        ``sys.platform`` by default (for :func:`composer_home`).
    check_shape : bool, optional
        Check that the winning pair looks like Marketplace keys; by default only
        for ``repo.magento.com``.

    Returns
    -------
    KeyLookup

    Raises
    ------
    ConfigError
        ``COMPOSER_AUTH`` is malformed, or a file Composer reads is not valid JSON
        or cannot be read (Composer stops on these too). Wrong-typed entries are
        findings, not errors.
    UsageError
        *url* is not an http(s) URL.
    """
    env = os.environ if env is None else env
    target = _parse_target(url)
    findings: list[Finding] = []
    if "@" in urlsplit(url if "://" in url else "https://" + url).netloc:
        findings.append(Finding(NOTE, "the repository URL holds credentials; they were left out "
                                "of this lookup"))
    home = composer_home(env, platform)
    by_source: dict[Source, list[_Entry]] = {}
    searched: list[SourceStatus] = []

    def add(source: Source, path: Path | None, present: bool, data: Any) -> None:
        searched.append(SourceStatus(source, path, present))
        if present:
            by_source[source] = _entries(data, source, path, target, findings)

    for source, path in ((Source.GLOBAL_CONFIG, home / "config.json"),
                         (Source.GLOBAL_AUTH, home / "auth.json")):
        add(source, path, *_read_json_file(path))
    add(Source.COMPOSER_AUTH, None, *_composer_auth(env))

    cfile = composer_file(project_dir, env)
    auth_path = project_auth_path(project_dir, env)
    if cfile.is_file():
        add(Source.PROJECT_CONFIG, cfile, *_read_json_file(cfile))
        if _same_file(auth_path, home / "auth.json"):
            # `composer global` runs in COMPOSER_HOME: one file, already read.
            searched.append(SourceStatus(Source.PROJECT_AUTH, auth_path, False))
        else:
            add(Source.PROJECT_AUTH, auth_path, *_read_json_file(auth_path))
    else:
        searched.append(SourceStatus(Source.PROJECT_CONFIG, cfile, False))
        searched.append(SourceStatus(Source.PROJECT_AUTH, auth_path, False))
        if auth_path.is_file():
            findings.append(Finding(NOTE, f"{auth_path} is not read: Composer reads a project "
                                    f"auth.json only next to a composer.json (none at {cfile})",
                                    Source.PROJECT_AUTH, auth_path))

    winner = _winner(by_source, _ORDER_NEW)
    others: list[Candidate] = []
    if winner is not None:
        creds = (winner.username, winner.password)
        for source in reversed(_ORDER_NEW):
            for entry in by_source.get(source, []):
                if entry is winner:
                    continue
                others.append(Candidate(
                    entry.source, entry.path, entry.key, mask_public(entry.username),
                    agrees=(entry.username, entry.password) == creds,
                    same_public=entry.username == winner.username,
                    composer_match=entry.kind == "exact"))
        old = _winner(by_source, _ORDER_OLD)
        if old is not None and (old.username, old.password) != creds:
            findings.append(Finding(
                NOTE, f"{_describe(winner)} and {_describe(old)} hold different keys for "
                f"{target.origin}: Composer 2.7.8 and later use {winner.source.label}, older "
                f"versions use {old.source.label}; keep only one of them"))
        if check_shape is None:
            check_shape = target.host == MARKETPLACE_HOST
        if check_shape:
            for problem in key_shape_problems(*creds):
                findings.append(Finding(WARNING, f"{_describe(winner)}: {problem}",
                                        winner.source, winner.path))
        log.debug("keys for %s from %s (public key %s)", target.origin, _describe(winner),
                  mask_public(winner.username))
    else:
        creds = None
        log.debug("no keys for %s in any Composer source", target.origin)

    return KeyLookup(
        url=target.url, host_key=host_key(target.url), composer_origin=target.origin,
        credentials=creds,
        source=winner.source if winner else None,
        path=winner.path if winner else None,
        entry_key=winner.key if winner else None,
        others=tuple(others), findings=tuple(findings), searched=tuple(searched),
        composer_home=home,
    )


def _describe(entry: _Entry) -> str:
    if entry.path is None:
        return entry.source.label
    return f"{entry.source.label} ({entry.path})"


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
