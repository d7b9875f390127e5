"""The places Composer reads HTTP Basic credentials from, and what each one holds for a host.

Rule: an oddity is a :class:`Finding`, not an error, except where Composer itself stops (unreadable
files, malformed JSON); every password met is registered as a secret, whichever host it is for.
Which entry wins is :mod:`magedl.composer.auth`'s business.
"""

from __future__ import annotations

import errno
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from magedl.composer.hosts import LENIENT, URL_NAME, Target, match_entry
from magedl.composer.jsonfile import json_type_name, parse_json_text, strict_loads
from magedl.errors import ConfigError
from magedl.fsutil import read_regular
from magedl.secrecy import SECRET_FILE_LIMIT, register_secret

log = logging.getLogger(__name__)

__all__ = [
    "NOTE",
    "WARNING",
    "Entry",
    "Finding",
    "Source",
    "SourceStatus",
    "host_entries",
    "read_composer_auth",
    "read_json_file",
]

#: Finding levels.
WARNING = "warning"
NOTE = "note"


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


@dataclass(frozen=True)
class Finding:
    """Something worth telling the user about the credentials.

    Attributes
    ----------
    level : str
        :data:`WARNING` (an entry was skipped or looks wrong) or :data:`NOTE`.
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
class SourceStatus:
    """One place that was consulted, and whether it exists."""

    source: Source
    path: Path | None
    present: bool


@dataclass(frozen=True)
class Entry:
    """A well-formed ``http-basic`` entry for the repository's host.

    Attributes
    ----------
    source, path
        Where it is (``path`` is None for ``COMPOSER_AUTH``).
    key : str
        The entry name as written.
    kind : str
        How the name matched (see :func:`magedl.composer.hosts.match_entry`).
    username, password : str
        Public and private key; not shown by ``repr``.
    """

    source: Source
    path: Path | None
    key: str
    kind: str
    username: str = field(repr=False)
    password: str = field(repr=False)

    def describe(self) -> str:
        """Where the entry is, for messages: the source's label and its file."""
        if self.path is None:
            return self.source.label
        return f"{self.source.label} ({self.path})"


def read_json_file(path: Path) -> tuple[bool, Any]:
    """Read a JSON file Composer reads credentials from.

    Returns
    -------
    (bool, object)
        ``(False, None)`` when the file does not exist, else ``(True, data)``.

    Raises
    ------
    ConfigError
        It exists but is a folder, unreadable, not UTF-8 or not strict JSON
        (Composer stops on these too).
    """
    try:
        raw = read_regular(path, SECRET_FILE_LIMIT)
    except FileNotFoundError:
        return False, None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a folder, not a file: Composer cannot read it either; "
                          "move it away") from None
    except OSError as exc:
        fix = "fix its permissions or remove it" if exc.errno in (errno.EACCES, errno.EPERM) else (
            "Composer's files are small plain files: remove it or put the real file there")
        raise ConfigError(f"cannot read {path}: {exc.strerror}; {fix}") from None
    log.debug("reading credentials from %s", path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text; Composer cannot read it either: "
                          "fix or remove it") from None
    return True, parse_json_text(text, str(path))


def read_composer_auth(env: Mapping[str, str]) -> tuple[bool, Any]:
    """Read the ``COMPOSER_AUTH`` environment variable.

    Returns
    -------
    (bool, object)
        ``(False, None)`` when it is unset or empty, else ``(True, data)``.

    Raises
    ------
    ConfigError
        It is not JSON, or is ``null`` (Composer's own message, with the
        position of the fault but none of the text).
    """
    raw = env.get("COMPOSER_AUTH")
    if raw is None or raw == "":
        return False, None
    malformed = "COMPOSER_AUTH environment variable is malformed, should be a valid JSON object"
    try:
        data = strict_loads(raw)
    except ValueError as exc:
        where = (f" ({exc.msg} at line {exc.lineno} column {exc.colno})"
                 if isinstance(exc, json.JSONDecodeError) else "")
        raise ConfigError(f"{malformed}{where}: fix or unset it") from None
    except RecursionError:
        raise ConfigError(f"{malformed} (it is nested too deeply): fix or unset it") from None
    if data is None:  # Composer's json_decode gives null for the literal too and refuses it
        raise ConfigError(f"{malformed} (it is null): fix or unset it")
    log.debug("reading credentials from COMPOSER_AUTH")
    return True, data


def host_entries(data: Any, source: Source, path: Path | None, target: Target,
                 findings: list[Finding]) -> list[Entry]:
    """The well-formed entries of one source that name *target*'s host, in the file's order.

    Parameters
    ----------
    data : object
        The source's parsed JSON.
    source : Source
        Which place it is (config.json and composer.json nest ``http-basic``
        under ``config``).
    path : Path or None
        Its file, for messages; None for ``COMPOSER_AUTH``.
    target : Target
        The repository looked up.
    findings : list of Finding
        Appended to: skipped entries (warnings) and names Composer would not
        use (notes).
    """
    where = str(path) if path is not None else "COMPOSER_AUTH"
    found = []
    for key, value in _http_basic(data, source, path, findings).items():
        if isinstance(value, dict) and isinstance(value.get("password"), str):
            # Every password is a secret, whichever host it is for.
            register_secret(value["password"])
        kind = match_entry(key, target)
        if kind is None:
            continue
        problem = _entry_problem(value)
        if problem:
            findings.append(Finding(WARNING, f"{where}: http-basic entry '{key}' {problem}; "
                                    "skipped", source, path))
            continue
        username, password = value["username"], value["password"]
        register_secret(username)
        if kind == URL_NAME:
            findings.append(Finding(NOTE, f"{where}: http-basic entry '{key}' is a URL; Composer "
                                    f"matches entries by host: rename it to '{target.origin}'",
                                    source, path))
        elif kind == LENIENT:
            findings.append(Finding(NOTE, f"{where}: Composer looks up '{target.origin}' exactly "
                                    f"and does not use the entry '{key}': rename it",
                                    source, path))
        found.append(Entry(source, path, key, kind, username, password))
    return found


def _http_basic(data: Any, source: Source, path: Path | None,
                findings: list[Finding]) -> dict[str, Any]:
    """The ``http-basic`` object of one source's data; problems go to *findings*."""
    where = str(path) if path is not None else "COMPOSER_AUTH"
    nested = source in (Source.GLOBAL_CONFIG, Source.PROJECT_CONFIG)
    if data == []:  # PHP writes an empty object as [] and reads [] as one
        return {}
    if not isinstance(data, dict):
        findings.append(Finding(WARNING, f"{where} holds a JSON {json_type_name(data)}, not an "
                                "object; Composer ignores it", source, path))
        return {}
    if nested:
        data = data.get("config", {})
        if data == []:
            return {}
        if not isinstance(data, dict):
            findings.append(Finding(WARNING, f"{where}: 'config' is a {json_type_name(data)}, not "
                                    "an object; its credentials are ignored", source, path))
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
        findings.append(Finding(WARNING, f"{where}: 'http-basic' is a {json_type_name(basic)}, not "
                                "an object; its entries are skipped", source, path))
        return {}
    return basic


def _entry_problem(value: Any) -> str | None:
    if not isinstance(value, dict):
        return f"is a {json_type_name(value)}, not an object with username and password"
    for name in ("username", "password"):
        if name not in value:
            return f"has no {name}"
        if not isinstance(value[name], str):
            return f"has a {name} that is a {json_type_name(value[name])}, not a string"
    return None
