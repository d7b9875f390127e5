r"""Where Composer keeps its files: ``$COMPOSER_HOME``, composer.json and the auth.json files.

Each path is computed as Composer does (``Composer\Factory``), from the environment and whether
folders exist; the files themselves may be missing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from magedl.errors import ConfigError

__all__ = ["composer_file", "composer_home", "global_auth_path", "project_auth_path"]

# Composer treats the system as an XDG one when this folder exists (Factory::useXdg).
_ETC_XDG = "/etc/xdg"


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

    Returns
    -------
    Path
        The folder (it may not exist).

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
    """``$COMPOSER_HOME/auth.json`` (it may not exist); arguments as for :func:`composer_home`."""
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

    Returns
    -------
    Path
        An absolute path (the file may not exist).
    """
    env = os.environ if env is None else env
    name = (env.get("COMPOSER") or "").strip() or "composer.json"
    folder = os.path.abspath(project_dir if project_dir is not None else os.getcwd())
    return Path(folder) / name


def project_auth_path(project_dir: os.PathLike[str] | str | None = None,
                      env: Mapping[str, str] | None = None) -> Path:
    """The project auth.json Composer reads: next to composer.json after resolving links.

    When composer.json does not exist the answer is ``project_dir/auth.json``,
    where it would be once the project exists. Arguments as for :func:`composer_file`.
    """
    cfile = composer_file(project_dir, env)
    if cfile.is_file():
        return Path(os.path.realpath(cfile)).parent / "auth.json"
    return cfile.parent / "auth.json"
