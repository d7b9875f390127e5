"""Storing Marketplace keys in an auth.json, and the COMPOSER_AUTH value for CI.

Rule: only the host's ``http-basic`` entry changes; every other byte of the file stays as it was, and
the file is written atomically with mode 0600 (one others can read, a symlink, or one inside a web root
is refused). The keys come from :func:`magedl.composer.keys.read_keys`, never from the command line.
See docs/design.md, "Notes: Marketplace keys".
"""

from __future__ import annotations

import json
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from magedl.composer.home import global_auth_path
from magedl.composer.hosts import Target, match_entry, parse_target
from magedl.composer.jsonfile import EditError, json_type_name, parse_json_text, set_entry
from magedl.errors import ConfigError, LocalFileError, UsageError
from magedl.fsutil import SECRET_MODE, create_new, fsync_dir, make_dirs, open_nofollow, temp_name
from magedl.secrecy import SECRET_FILE_LIMIT, register_secret

log = logging.getLogger(__name__)

__all__ = ["StoreResult", "composer_auth_json", "store_keys", "web_root_reason"]

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


def _entry_key(host: str) -> tuple[str, Target]:
    """The ``http-basic`` entry name for *host* (a URL gives Composer's origin), and its target."""
    if not isinstance(host, str) or not host.strip():
        raise UsageError("no repository host given")
    if "://" in host:
        target = parse_target(host)
        return target.origin, target
    if any(c.isspace() or c in "/@?#" for c in host):
        raise UsageError(f"{host!r} is not a host name (give 'repo.magento.com' or a URL)")
    return host, parse_target(host)  # also rejects a bad port


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

    Raises
    ------
    UsageError
        A key is empty or holds whitespace; the host is not a host.
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


# --------------------------------------------------------------------------- new content


def _new_text(old: str | None, path: Path, key: str, entry: dict[str, str]
              ) -> tuple[str, bool]:
    """(new file text, whether it had to be re-serialised)."""
    if old is None or not old.strip():
        return _pretty({"http-basic": {key: entry}}), False
    data = parse_json_text(old, str(path))
    if data == []:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} holds a JSON {json_type_name(data)}, not an object; fix it by "
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
        text = set_entry(old, "http-basic", key, entry)
        if json.loads(text) == expected:
            return text, False
        log.warning("editing %s in place gave unexpected content; rewriting it whole", path)
    except (EditError, ValueError, RecursionError) as exc:
        log.warning("cannot edit %s in place (%s); rewriting it whole", path, exc)
    return _pretty(expected), True


def _pretty(data: Any) -> str:
    # Composer's own layout (JsonFile: 4 spaces, unescaped slashes and unicode).
    return json.dumps(data, indent=4, ensure_ascii=False) + "\n"


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
    try:  # non-blocking: a FIFO swapped in after the lstat must not hang
        fd = open_nofollow(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        # Check the file we opened, not the name, so a swap after lstat changes nothing.
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{path} is not a regular file; move it away and store the keys again")
        if os.name != "nt" and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"{path} has mode {_mode_text(st.st_mode)}: other users can read or change it, "
                f"and it would hold your private key; run 'chmod 600 {path}' and try again")
        raw = handle.read(SECRET_FILE_LIMIT + 1)
    if len(raw) > SECRET_FILE_LIMIT:
        raise ConfigError(f"{path} is larger than {SECRET_FILE_LIMIT >> 20} MiB: not an auth.json; move it away")
    try:
        return raw.decode("utf-8"), stat.S_IMODE(st.st_mode)
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text; fix or move it away, then store the keys "
                          "again") from None


def _write_atomic(path: Path, data: bytes, mode: int, create: bool) -> None:
    """Replace (or create) *path* with *data* via a same-folder temp file."""
    folder = path.parent
    tmp = temp_name(path)
    reserved = False
    try:
        fd = create_new(tmp, SECRET_MODE)
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
                fd = create_new(path, SECRET_MODE)
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
        The auth.json; see :func:`~magedl.composer.home.global_auth_path` and
        :func:`~magedl.composer.home.project_auth_path`.
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
        The file is a symlink, others can read it, it lies in a web root
        outside a Composer project (no composer.json beside it), or it is not
        a JSON object.
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
    if reason and not (path.parent / "composer.json").is_file():
        # A Composer project's root is where Composer and Magento's docs put auth.json (Magento's sample
        # nginx and .htaccess deny it); elsewhere in a web root Composer would not even read the file.
        raise ConfigError(
            f"refusing to write {path}: {reason}, and a web server could serve the file; "
            f"keep the keys in the global auth.json ({_global_hint()}) or in the COMPOSER_AUTH "
            "environment variable instead")
    if not path.parent.is_dir():
        if not create_parent:
            raise LocalFileError(f"cannot write {path}: the folder {path.parent} does not exist")
        try:
            make_dirs(path.parent, 0o700)
        except OSError as exc:
            raise LocalFileError(f"cannot create {path.parent}: {exc.strerror}") from None

    old, mode = _read_existing(path)
    entry = {"username": username, "password": password}
    text, rewritten = _new_text(old, path, key, entry)
    other_forms = _other_forms(text, key, target)
    if old is not None and _same_entry(old, key, entry):
        log.debug("%s already holds these keys for %s", path, key)
        return StoreResult(path, key, False, False, False, other_forms)
    _write_atomic(path, text.encode("utf-8"), SECRET_MODE if mode is None else mode,
                  old is None)
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


def _other_forms(text: str, key: str, target: Target) -> tuple[str, ...]:
    basic = json.loads(text).get("http-basic", {})
    return tuple(k for k in basic if k != key and match_entry(k, target) is not None)


def _global_hint() -> str:
    try:
        return str(global_auth_path())
    except ConfigError:
        return "$COMPOSER_HOME/auth.json"
