"""Helpers shared by the credential tests (import as ``from composer.authkit import ...``).

Every key made here is fresh and random: values that reach find_keys or store_keys are
registered as secrets for the whole test run, so they must not collide with other tests' text.
"""

import json
import os
import secrets
import stat

from magedl.composer.auth import find_keys

HOST = "repo.magento.com"
#: An auth.json with other hosts, other credential kinds and mixed layouts around the entry.
OTHERS = (
    '{\n'
    '    "github-oauth": {"github.com": "ghp_16C7e42F292c6912E7710c838347Ae178B4a"},\n'
    '    "http-basic": {\n'
    '        "other.example":   {"username":"u","password":"p\\/q \\u00e9"},\n'
    '        "repo.magento.com": {\n'
    '            "username": "OLDPUBLIC",\n'
    '            "password": "OLDPRIVATE"\n'
    '        }\n'
    '    },\n'
    '    "bearer": {"x.example": "tok"}\n'
    '}\n'
)


def pair():
    """A fresh (public, private) pair of Marketplace-shaped keys."""
    return secrets.token_hex(16), secrets.token_hex(16)


def auth_data(host=HOST, keys=None):
    """auth.json data holding *keys* for *host*."""
    user, password = keys
    return {"http-basic": {host: {"username": user, "password": password}}}


def write(path, data):
    """Write text, or data as JSON, creating the folder; auth.json files private, as a careful user keeps them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    if path.name == "auth.json":
        path.chmod(0o600)
    return path


class World:
    """A Composer home, a project with composer.json, and an environment naming them."""

    def __init__(self, root):
        self.home = root / "home"
        self.chome = self.home / ".composer"
        self.project = root / "project"
        write(self.project / "composer.json", {"name": "acme/shop"})
        self.env = {"HOME": str(self.home), "COMPOSER_HOME": str(self.chome)}

    @property
    def global_auth(self):
        return self.chome / "auth.json"

    @property
    def project_auth(self):
        return self.project / "auth.json"

    def find(self, url="https://repo.magento.com/", **kwargs):
        return find_keys(url, project_dir=self.project, env=self.env, **kwargs)


def entry_json(keys, lead="", unit="    ", nl="\n"):
    """An http-basic entry as Composer's layout writes it, starting at indent *lead*."""
    return (f'{{{nl}{lead}{unit}"username": "{keys[0]}",{nl}{lead}{unit}"password": "{keys[1]}"'
            f"{nl}{lead}}}")


def mode_of(path):
    """The permission bits of *path*."""
    return stat.S_IMODE(os.stat(path).st_mode)


def make(path, text, mode=0o600):
    """Write *text* (str or bytes) to *path* with *mode*."""
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    os.chmod(path, mode)
    return path


def no_leftovers(folder):
    """True when no temporary file is left in *folder*."""
    return [p.name for p in folder.iterdir() if p.name.startswith(".") and "tmp" in p.name] == []
