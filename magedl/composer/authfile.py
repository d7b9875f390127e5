"""Storing Marketplace keys in an auth.json, and the COMPOSER_AUTH value for CI.

:func:`store_keys` edits the JSON *text*: it replaces only the host's entry
under ``http-basic`` (or inserts it, or inserts ``http-basic``), so comments
can't be lost (JSON has none) but formatting, key order, other hosts,
``github-oauth`` tokens and the rest stay byte for byte. The edited text is
parsed again and compared with the intended data; only if that check fails
(a defect in the editor, which should not happen) is the file re-serialised
with Composer's 4-space indent, losing its original formatting.

Writes are atomic (a 0600 temp file in the same folder, fsync, rename, fsync
of the folder). A new auth.json is created with mode 0600; an existing one
others can read, a symlinked one, or one inside a web root is refused.

Keys are read from a stream or a hidden prompt (:func:`read_keys`), never from
the command line, which would put them in the process list and shell history.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import re
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..config import register_secret
from ..errors import ConfigError, LocalFileError, UsageError
from ..fsutil import fsync_dir
from .auth import (
    _match,
    _parse_target,
    _Target,
    global_auth_path,
    parse_json_text,
    project_auth_path,
)

log = logging.getLogger(__name__)

__all__ = [
    "StoreResult",
    "composer_auth_json",
    "global_auth_path",
    "project_auth_path",
    "read_keys",
    "store_keys",
    "web_root_reason",
]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# Enough for two keys and generous whitespace; more means the wrong thing was piped in.
_MAX_INPUT = 4096
_INDENT = "    "  # Composer's JsonFile indent
# How far up from the target folder a Magento root (holding pub/index.php) is looked for.
_WEB_ROOT_LEVELS = 3


@dataclass(frozen=True)
class StoreResult:
    """What :func:`store_keys` did.

    Attributes
    ----------
    path : Path
        The auth.json written (or left alone).
    key : str
        The ``http-basic`` entry name used.
    created : bool
        The file did not exist before.
    changed : bool
        The file's content changed (False when it already held these keys).
    rewritten : bool
        The text could not be edited in place and was re-serialised.
    other_forms : tuple of str
        Other entry names in the file for the same host (other case or an
        explicit default port); they were left alone and Composer ignores them
        for this URL.
    """

    path: Path
    key: str
    created: bool
    changed: bool
    rewritten: bool
    other_forms: tuple[str, ...] = ()


# --------------------------------------------------------------------------- validation


def _check_value(name: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise UsageError(f"the {name} is empty")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        raise UsageError(f"the {name} holds spaces, line breaks or control characters; "
                         "give the key alone")


def _entry_key(host: str) -> tuple[str, _Target]:
    """The ``http-basic`` entry name for *host* (a URL gives Composer's origin), and its target."""
    if not isinstance(host, str) or not host.strip():
        raise UsageError("no repository host given")
    if "://" in host:
        target = _parse_target(host)
        return target.origin, target
    if any(c.isspace() or c in "/@?#" for c in host):
        raise UsageError(f"{host!r} is not a host name (give 'repo.magento.com' or a URL)")
    return host, _parse_target(host)  # also rejects a bad port


def composer_auth_json(host: str, username: str, password: str) -> str:
    """The ``COMPOSER_AUTH`` value holding these keys, one line, for CI variables.

    Parameters
    ----------
    host : str
        ``repo.magento.com``, or a repository URL (its Composer origin is used).
    username, password : str
        Public and private key.

    Returns
    -------
    str
        ``{"http-basic":{"repo.magento.com":{"username":"...","password":"..."}}}``
    """
    register_secret(password)
    register_secret(username)
    _check_value("public key", username)
    _check_value("private key", password)
    key, _ = _entry_key(host)
    data = {"http-basic": {key: {"username": username, "password": password}}}
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def web_root_reason(folder: os.PathLike[str] | str) -> str | None:
    """Why *folder* looks like part of a web root, or None.

    It does when it or one of its three nearest ancestors holds
    ``pub/index.php`` (a Magento root; its whole tree may be served when the
    document root is not set to ``pub/``), or when it or one of them is a
    ``pub`` folder holding ``index.php``.
    """
    here = Path(os.path.abspath(folder))
    for candidate in [here, *here.parents][: _WEB_ROOT_LEVELS + 1]:
        if (candidate / "pub" / "index.php").is_file():
            return f"{candidate} holds pub/index.php (a Magento root)"
        if candidate.name == "pub" and (candidate / "index.php").is_file():
            return f"{candidate} is the pub/ folder of a Magento root"
    return None


# --------------------------------------------------------------------------- reading keys


def read_keys(stream: IO[Any] | None, prompt: bool, *,
              getpass_fn: Callable[[str], str] = getpass.getpass) -> tuple[str, str]:
    """Read a public and a private key, never from the command line.

    Parameters
    ----------
    stream : text or binary file, optional
        Read when *prompt* is false: the two keys on two lines, or on one line
        separated by whitespace (``PUBLIC PRIVATE``). At most 4096 characters.
    prompt : bool
        Ask on the terminal with hidden input instead (two prompts).
    getpass_fn : callable, optional
        The prompt function; :func:`getpass.getpass` by default.

    Returns
    -------
    (str, str)
        ``(public key, private key)``, both registered as secrets.

    Raises
    ------
    UsageError
        Nothing, or not exactly two words, was given.
    """
    if prompt:
        try:
            public = getpass_fn("Marketplace public key: ").strip()
            register_secret(public)
            private = getpass_fn("Marketplace private key (hidden): ").strip()
            register_secret(private)
        except EOFError:
            raise UsageError("no keys entered (end of input at the prompt)") from None
        if not public or not private:
            raise UsageError(f"no {'public' if not public else 'private'} key entered")
        for name, value in (("public key", public), ("private key", private)):
            if any(c.isspace() for c in value):
                raise UsageError(f"the {name} entered holds spaces; paste one key per prompt")
        return public, private
    if stream is None:
        raise UsageError("no input to read the keys from; pipe them in or use the prompt")
    name = getattr(stream, "name", None)
    where = "standard input" if name in (None, "<stdin>", 0) else str(name)
    data = stream.read(_MAX_INPUT + 1)
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"the keys on {where} are not UTF-8 text") from None
    words = data.lstrip("\ufeff").split()
    for word in words:
        register_secret(word)
    if len(data) > _MAX_INPUT:
        raise UsageError(f"more than {_MAX_INPUT} characters on {where}; give only the public "
                         "and the private key")
    if len(words) != 2:
        raise UsageError(f"expected two keys on {where} (public then private, on two lines or "
                         f"separated by a space), got {len(words)} word(s)")
    return words[0], words[1]


# --------------------------------------------------------------------------- JSON text editing


class _EditError(Exception):
    """The text editor cannot handle this input; the caller re-serialises."""


@dataclass
class _Node:
    start: int
    end: int  # exclusive
    kind: str  # "object", "array" or "scalar"
    members: list[tuple[str, int, _Node]]  # (decoded key, key start, value) for objects


class _SpanParser:
    """A JSON parser that records where every value lies in the text."""

    _WS = " \t\n\r"
    _SCALAR = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null")
    _STRING = re.compile(r'"(?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"')

    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    def parse(self) -> _Node:
        self._ws()
        node = self._value()
        self._ws()
        if self.pos != len(self.text):
            raise _EditError("trailing data")
        return node

    def _ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in self._WS:
            self.pos += 1

    def _string(self) -> str:
        match = self._STRING.match(self.text, self.pos)
        if not match:
            raise _EditError("bad string")
        self.pos = match.end()
        return json.loads(match.group())

    def _value(self) -> _Node:
        start = self.pos
        char = self.text[self.pos: self.pos + 1]
        if char == "{":
            self.pos += 1
            members: list[tuple[str, int, _Node]] = []
            self._ws()
            if self.text[self.pos: self.pos + 1] == "}":
                self.pos += 1
                return _Node(start, self.pos, "object", members)
            while True:
                self._ws()
                key_start = self.pos
                key = self._string()
                self._ws()
                self._expect(":")
                self._ws()
                members.append((key, key_start, self._value()))
                self._ws()
                if self._take("}"):
                    return _Node(start, self.pos, "object", members)
                self._expect(",")
        if char == "[":
            self.pos += 1
            self._ws()
            if not self._take("]"):
                while True:
                    self._ws()
                    self._value()
                    self._ws()
                    if self._take("]"):
                        break
                    self._expect(",")
            return _Node(start, self.pos, "array", [])
        if char == '"':
            self._string()
            return _Node(start, self.pos, "scalar", [])
        match = self._SCALAR.match(self.text, self.pos)
        if not match:
            raise _EditError("bad value")
        self.pos = match.end()
        return _Node(start, self.pos, "scalar", [])

    def _take(self, char: str) -> bool:
        if self.text[self.pos: self.pos + 1] == char:
            self.pos += 1
            return True
        return False

    def _expect(self, char: str) -> None:
        if not self._take(char):
            raise _EditError(f"expected {char!r}")


def _render(value: Any, lead: str, unit: str, nl: str, multiline: bool) -> str:
    """JSON text for *value* whose first line sits at indent *lead*."""
    if isinstance(value, dict) and value:
        if not multiline:
            items = (f"{_dump(k)}: {_render(v, lead, unit, nl, False)}" for k, v in value.items())
            return "{" + ", ".join(items) + "}"
        inner = lead + unit
        items = (f"{inner}{_dump(k)}: {_render(v, inner, unit, nl, True)}"
                 for k, v in value.items())
        return "{" + nl + ("," + nl).join(items) + nl + lead + "}"
    return _dump(value)


def _dump(value: Any) -> str:
    # Composer writes unescaped slashes and unicode; so does json.dumps with ensure_ascii off.
    return json.dumps(value, ensure_ascii=False)


def _line_lead(text: str, offset: int) -> tuple[str, bool]:
    """(leading whitespace of the line holding *offset*, whether only whitespace precedes it)."""
    line_start = text.rfind("\n", 0, offset) + 1
    before = text[line_start:offset]
    lead = before[: len(before) - len(before.lstrip(" \t"))]
    return lead, before.strip(" \t") == ""


def _edit_text(text: str, key: str, entry: dict[str, str]) -> str:
    """*text* with ``http-basic`` -> *key* set to *entry*, everything else untouched.

    Raises
    ------
    _EditError
        The text has a shape the editor does not handle.
    """
    root = _SpanParser(text).parse()
    nl = "\r\n" if "\r\n" in text else "\n"
    found = re.search(r'^([ \t]+)"', text, re.MULTILINE)  # Composer's detectIndenting
    unit = found.group(1) if found else _INDENT
    multiline = "\n" in text[root.start: root.end]

    if root.kind == "array":  # an empty top level written by PHP as []
        return text[: root.start] + _render({"http-basic": {key: entry}}, "", unit, nl, True) \
            + text[root.end:]
    if root.kind != "object":
        raise _EditError("top level is not an object")

    basic = _last_member(root, "http-basic")
    if basic is None:
        return _insert_member(text, root, "http-basic", {key: entry}, unit, nl, multiline)
    if basic.kind == "array":  # PHP's empty object
        lead, _ = _line_lead(text, basic.start)
        return text[: basic.start] + _render({key: entry}, lead, unit, nl, multiline) \
            + text[basic.end:]
    if basic.kind != "object":
        raise _EditError("http-basic is not an object")
    multiline = "\n" in text[basic.start: basic.end] or (multiline and not basic.members)
    current = _last_member(basic, key)
    if current is None:
        return _insert_member(text, basic, key, entry, unit, nl, multiline)
    key_start = next(k for name, k, value in basic.members if value is current)
    lead, own_line = _line_lead(text, key_start)
    return text[: current.start] + _render(entry, lead, unit, nl, multiline and own_line) \
        + text[current.end:]


def _last_member(node: _Node, name: str) -> _Node | None:
    # With duplicate names, JSON parsers (PHP's and Python's) keep the last one.
    value = None
    for key, _, member in node.members:
        if key == name:
            value = member
    return value


def _insert_member(text: str, obj: _Node, key: str, value: Any, unit: str, nl: str,
                   multiline: bool) -> str:
    if obj.members:
        _, last_key_start, last = obj.members[-1]
        lead, own_line = _line_lead(text, last_key_start)
        if multiline and own_line:
            addition = f",{nl}{lead}{_dump(key)}: {_render(value, lead, unit, nl, True)}"
        else:
            addition = f", {_dump(key)}: {_render(value, lead, unit, nl, False)}"
        return text[: last.end] + addition + text[last.end:]
    lead, _ = _line_lead(text, obj.start)
    if multiline:
        inner = lead + unit
        body = f"{nl}{inner}{_dump(key)}: {_render(value, inner, unit, nl, True)}{nl}{lead}"
    else:
        body = f"{_dump(key)}: {_render(value, lead, unit, nl, False)}"
    return text[: obj.start] + "{" + body + "}" + text[obj.end:]


def _new_text(old: str | None, path: Path, key: str, entry: dict[str, str]
              ) -> tuple[str, bool]:
    """(new file text, whether it had to be re-serialised)."""
    if old is None or not old.strip():
        return _render({"http-basic": {key: entry}}, "", _INDENT, "\n", True) + "\n", False
    data = parse_json_text(old, str(path))
    if data == []:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} holds a JSON {type(data).__name__}, not an object; fix it by "
                          "hand or move it away, then store the keys again")
    basic = data.get("http-basic", {})
    if basic == []:
        basic = {}
    if not isinstance(basic, dict):
        raise ConfigError(f"{path}: 'http-basic' is not an object; fix it by hand, then store "
                          "the keys again")
    expected = dict(data)
    expected["http-basic"] = {**basic, key: entry}
    try:
        text = _edit_text(old, key, entry)
        if json.loads(text) == expected:
            return text, False
        log.warning("editing %s in place gave unexpected content; rewriting it whole", path)
    except (_EditError, ValueError) as exc:
        log.warning("cannot edit %s in place (%s); rewriting it whole", path, exc)
    return json.dumps(expected, indent=4, ensure_ascii=False) + "\n", True


# --------------------------------------------------------------------------- writing


def _mode_text(mode: int) -> str:
    return format(stat.S_IMODE(mode), "04o")


def _read_existing(path: Path) -> tuple[str | None, int | None]:
    """(text, mode) of the existing auth.json, or (None, None); refuses unsafe files."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        raise LocalFileError(f"cannot inspect {path}: {exc.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise ConfigError(f"{path} is a symbolic link; magedl does not write keys through links: "
                          f"store them in {os.path.realpath(path)} directly, or remove the link")
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{path} is not a regular file; move it away and store the keys again")
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _CLOEXEC)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        # Check the file we opened, not the name, so a swap after lstat changes nothing.
        st = os.fstat(handle.fileno())
        if os.name != "nt" and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"{path} has mode {_mode_text(st.st_mode)}: other users can read or change it, "
                f"and it would hold your private key; run 'chmod 600 {path}' and try again")
        raw = handle.read()
    try:
        return raw.decode("utf-8"), stat.S_IMODE(st.st_mode)
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text; fix or move it away, then store the keys "
                          "again") from None


def _write_atomic(path: Path, data: bytes, mode: int, create: bool) -> None:
    """Replace (or create) *path* with *data* via a same-folder temp file."""
    folder = path.parent
    tmp = folder / f".{path.name}.{secrets.token_hex(8)}.tmp"
    reserved = False
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600)
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, mode)  # exact bits: neither a loose umask nor a tight one applies
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if create:
            # Claim the name first: if something created the file meanwhile, do not replace it.
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC,
                             0o600)
            except FileExistsError:
                raise ConfigError(f"{path} appeared while the keys were being written; "
                                  "check it and store the keys again") from None
            os.close(fd)
            reserved = True
        os.replace(tmp, path)
    except OSError as exc:
        for leftover in (tmp, path) if reserved else (tmp,):
            try:
                os.unlink(leftover)
            except OSError:
                pass
        raise LocalFileError(f"cannot write {path}: {exc.strerror}; check the folder's "
                             "permissions and free space") from None
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(folder)


def store_keys(path: os.PathLike[str] | str, host: str, username: str, password: str, *,
               create_parent: bool = False) -> StoreResult:
    """Store a key pair under ``http-basic`` -> *host* in the auth.json at *path*.

    Everything else in the file is kept byte for byte (see the module notes
    for the one fallback). Writing the same keys again changes nothing.

    Parameters
    ----------
    path : path
        The auth.json; see :func:`global_auth_path` and :func:`project_auth_path`.
    host : str
        The entry name (``repo.magento.com``) or a repository URL, whose
        Composer origin is used (``http://127.0.0.1:8080/`` -> ``127.0.0.1:8080``).
    username, password : str
        The public and the private key.
    create_parent : bool
        Create a missing folder (mode 0700), e.g. ``$COMPOSER_HOME``.

    Returns
    -------
    StoreResult

    Raises
    ------
    ConfigError
        The file is a symlink, others can read it, it lies in a web root, or it
        is not a JSON object.
    UsageError
        A key is empty or holds whitespace; the host is not a host.
    LocalFileError
        The file cannot be written.
    """
    register_secret(password)
    register_secret(username)
    _check_value("public key", username)
    _check_value("private key", password)
    key, target = _entry_key(host)
    path = Path(os.path.abspath(path))
    reason = web_root_reason(path.parent)
    if reason:
        raise ConfigError(
            f"refusing to write {path}: {reason}, and a web server could serve the file; "
            f"keep the keys in the global auth.json ({_global_hint()}) or in the COMPOSER_AUTH "
            "environment variable instead")
    if not path.parent.is_dir():
        if not create_parent:
            raise LocalFileError(f"cannot write {path}: the folder {path.parent} does not exist")
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise LocalFileError(f"cannot create {path.parent}: {exc.strerror}") from None

    old, mode = _read_existing(path)
    entry = {"username": username, "password": password}
    text, rewritten = _new_text(old, path, key, entry)
    other_forms = _other_forms(text, key, target)
    if old is not None and _same_entry(old, key, entry):
        log.debug("%s already holds these keys for %s", path, key)
        return StoreResult(path, key, False, False, False, other_forms)
    _write_atomic(path, text.encode("utf-8"), 0o600 if mode is None else mode, old is None)
    log.info("stored keys for %s in %s", key, path)
    for form in other_forms:
        log.warning("%s also holds an entry '%s' for the same host; Composer does not use it "
                    "for '%s'", path, form, key)
    return StoreResult(path, key, old is None, True, rewritten, other_forms)


def _same_entry(old: str, key: str, entry: dict[str, str]) -> bool:
    try:
        data = json.loads(old)
    except ValueError:
        return False
    basic = data.get("http-basic") if isinstance(data, dict) else None
    return isinstance(basic, dict) and basic.get(key) == entry


def _other_forms(text: str, key: str, target: _Target) -> tuple[str, ...]:
    basic = json.loads(text).get("http-basic", {})
    return tuple(k for k in basic if k != key and _match(k, target) is not None)


def _global_hint() -> str:
    try:
        return str(global_auth_path())
    except ConfigError:
        return "$COMPOSER_HOME/auth.json"
