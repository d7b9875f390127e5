"""A small, realistic Composer dependency graph with real zip archives.

Rule: everything is deterministic for a seed (references, file contents, zip timestamps), and the
archives are shaped like their real counterparts. What the graph holds: see docs/design.md, "Notes:
the emulator".
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import logging
import random
import re
import zipfile
from dataclasses import dataclass

log = logging.getLogger(__name__)

__all__ = ["EMPTY_DIR", "MAGENTO", "PACKAGIST", "Graph", "Package", "Release", "build_graph"]

MAGENTO = "magento"
PACKAGIST = "packagist"
#: The empty directory entry of magento/magento2-base archives.
EMPTY_DIR = "pub/media/"
_ZIP_TIME = (2024, 4, 9, 12, 0, 0)
_PHP = "~8.1.0||~8.2.0||~8.3.0"
_MAGENTO_REPO = {"type": "composer", "url": "https://repo.magento.com/"}


@dataclass(frozen=True)
class Release:
    """One version of one package.

    Attributes
    ----------
    name, version, version_normalized : str
    entry : dict
        The Composer version entry; ``dist.url`` is None until a server fills
        it in with :meth:`Graph.entry`.  No dist for a metapackage.
    archive : bytes or None
        The zip, None for a metapackage.
    dist_path : str or None
        Where a server publishes the archive, relative to its root:
        ``archives/<vendor>/<name>/<vendor>-<name>-<normalized>.zip`` on
        repo.magento.com, ``dists/<vendor>/<name>/<reference>.zip`` on packagist.
    """

    name: str
    version: str
    version_normalized: str
    entry: dict
    archive: bytes | None
    dist_path: str | None

    @property
    def is_dev(self) -> bool:
        """True for a branch version (Packagist puts these in the ``~dev`` file)."""
        return self.version.startswith("dev-") or self.version.endswith("-dev")


@dataclass(frozen=True)
class Package:
    """A package with its releases, newest first.

    Attributes
    ----------
    repos : tuple of str
        ``MAGENTO``, ``PACKAGIST`` or both (listed on both, as the real
        ``magento/product-community-edition``; the canonical repository wins).
    edition : str or None
        ``"ce"`` or ``"ee"``: the repo.magento.com provider group, which
        decides the keys that may see it.  None for packagist-only packages.
    """

    name: str
    repos: tuple
    edition: str | None
    releases: tuple


@dataclass(frozen=True)
class Graph:
    """The packages by name, in a stable order."""

    packages: dict
    seed: int

    def names(self, repo: str | None = None) -> list[str]:
        """Return package names, optionally only those one repository serves."""
        return [n for n, p in self.packages.items() if repo is None or repo in p.repos]

    def package(self, name: str) -> Package:
        """Return one package; KeyError when unknown."""
        return self.packages[name.lower()]

    def release(self, name: str, version: str) -> Release:
        """Return one release; KeyError when unknown."""
        for release in self.package(name).releases:
            if release.version == version:
                return release
        raise KeyError(f"{name} {version}")

    def entry(self, release: Release, base_url: str) -> dict:
        """Return a copy of the release's entry with an absolute ``dist.url``."""
        entry = copy.deepcopy(release.entry)
        if release.dist_path is not None:
            entry["dist"]["url"] = f"{base_url.rstrip('/')}/{release.dist_path}"
        return entry


def _magento(version: str, p: int) -> str:
    return f"{version}-p{p}" if p else version


def _module(version: str, deps: dict) -> list:
    """A Magento module's two releases (-p1 first), each pinned to the framework's 103.0.* line."""
    require = {"php": _PHP, "magento/framework": "103.0.*", **deps}
    return [(_magento(version, 1), require), (version, require)]


# name -> (type, repos, edition, [(version, require), ...]) newest first.
def _specs() -> dict:
    magento, module = _magento, _module

    def product_require(p):
        return {
            "php": _PHP, "ext-intl": "*",
            "magento/framework": magento("103.0.7", p),
            "magento/module-catalog": magento("104.0.7", p),
            "magento/module-customer": magento("103.0.7", p),
            "magento/module-eav": magento("102.1.7", p),
            "magento/module-store": magento("101.2.7", p),
            "magento/magento2-base": magento("2.4.7", p),
            "monolog/monolog": "^2.7", "psr/log": "^1 || ^2 || ^3",
            "symfony/console": "^5.4 || ^6.4", "laminas/laminas-code": "^4.5",
        }

    both, mag, pk = (MAGENTO, PACKAGIST), (MAGENTO,), (PACKAGIST,)
    sf_old = {"php": ">=7.2.5", "symfony/polyfill-mbstring": "~1.0"}
    sf_new = {"php": ">=8.1", "symfony/polyfill-mbstring": "~1.0"}
    console_new = {**sf_new, "symfony/service-contracts": "^2.5|^3",
                   "symfony/string": "^5.4|^6.0|^7.0"}
    return {
        "magento/project-community-edition": ("project", mag, "ce", [
            (v, {"magento/product-community-edition": v}) for v in ("2.4.7-p1", "2.4.7")]),
        "magento/product-community-edition": ("metapackage", both, "ce", [
            (magento("2.4.7", p), product_require(p)) for p in (1, 0)]),
        "magento/framework": ("magento2-library", mag, "ce", [
            (magento("103.0.7", p), {
                "php": _PHP, "ext-intl": "*", "monolog/monolog": "^2.7",
                "psr/log": "^1 || ^2 || ^3", "symfony/console": "^5.4 || ^6.4",
                "laminas/laminas-code": "^4.5"}) for p in (1, 0)]),
        "magento/module-store": ("magento2-module", mag, "ce", module("101.2.7", {})),
        "magento/module-eav": ("magento2-module", mag, "ce", module(
            "102.1.7", {"magento/module-store": "101.2.*"})),
        "magento/module-customer": ("magento2-module", mag, "ce", module(
            "103.0.7", {"magento/module-eav": "102.1.*", "magento/module-store": "101.2.*"})),
        "magento/module-catalog": ("magento2-module", mag, "ce", module("104.0.7", {
            "magento/module-customer": "103.0.*", "magento/module-eav": "102.1.*",
            "magento/module-store": "101.2.*"})),
        "magento/magento2-base": ("magento2-component", mag, "ce", [
            (magento("2.4.7", p), {"php": _PHP}) for p in (1, 0)]),
        "magento/product-enterprise-edition": ("metapackage", mag, "ee", [
            (magento("2.4.7", p), {"magento/product-community-edition": magento("2.4.7", p),
                                   "magento/module-staging": magento("101.1.7", p)})
            for p in (1, 0)]),
        "magento/module-staging": ("magento2-module", mag, "ee", module(
            "101.1.7", {"magento/module-catalog": "104.0.*"})),
        "monolog/monolog": ("library", pk, None, [
            ("dev-main", {"php": ">=8.1", "psr/log": "^2.0 || ^3.0"}),
            ("3.5.0", {"php": ">=8.1", "psr/log": "^2.0 || ^3.0"}),
            ("2.9.2", {"php": ">=7.2", "psr/log": "^1.0.1 || ^2.0 || ^3.0"}),
            ("2.9.1", {"php": ">=7.2", "psr/log": "^1.0.1 || ^2.0 || ^3.0"})]),
        "psr/log": ("library", pk, None, [
            ("3.0.0", {"php": ">=8.0.0"}), ("2.0.0", {"php": ">=8.0.0"}),
            ("1.1.4", {"php": ">=5.3.0"})]),
        "symfony/console": ("library", pk, None, [
            ("6.4.4", console_new), ("6.4.0-BETA1", console_new),
            ("5.4.36", {**sf_old, "symfony/service-contracts": "^1.1|^2|^3",
                        "symfony/string": "^5.1|^6.0"})]),
        "symfony/polyfill-mbstring": ("library", pk, None, [
            ("1.29.0", {"php": ">=7.1"}), ("1.28.0", {"php": ">=7.1"})]),
        "symfony/service-contracts": ("library", pk, None, [
            ("3.4.1", {"php": ">=8.1", "psr/container": "^1.1|^2.0"}),
            ("2.5.2", {"php": ">=7.2.5", "psr/container": "^1.1"})]),
        "psr/container": ("library", pk, None, [
            ("2.0.2", {"php": ">=7.4.0"}), ("1.1.2", {"php": ">=7.4.0"})]),
        "symfony/string": ("library", pk, None, [("6.4.4", sf_new), ("5.4.36", sf_old)]),
        "laminas/laminas-code": ("library", pk, None, [
            ("4.14.0", {"php": _PHP}), ("4.13.0", {"php": _PHP})]),
    }


_PLAIN = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-(p|beta|BETA)(\d+))?$")


def _normalize(version: str) -> str:
    """Composer's normalized form, for the few version shapes this graph uses."""
    if version.startswith("dev-"):
        return version
    match = _PLAIN.match(version)
    if match is None:
        raise ValueError(f"fixture version {version!r} has an unsupported shape")
    major, minor, patch, kind, number = match.groups()
    base = f"{major}.{minor}.{patch}.0"
    if kind is None:
        return base
    return f"{base}-{'patch' if kind == 'p' else 'beta'}{number}"


def _zip(files: list[tuple[str, bytes | None]]) -> bytes:
    """Build a zip deterministically; a None body is a directory entry."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, body in files:
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.create_system = 3  # unix, whatever this host is, so bytes match everywhere
            if body is None:
                info.external_attr = (0o40755 << 16) | 0x10
                archive.writestr(info, b"")
            else:
                info.external_attr = 0o100644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, body)
    return out.getvalue()


def _files(name: str, ptype: str, composer_json: dict, rng: random.Random) -> list:
    """The files of one archive, composer.json first."""
    studly = "".join(part.title() for part in re.split(r"[-/]", name))
    words = " ".join(rng.choice(["cart", "order", "price", "stock", "cache", "index", "quote"])
                     for _ in range(12))
    files = [("composer.json", (json.dumps(composer_json, indent=4) + "\n").encode()),
             ("README.md", f"# {name}\n\n{words}\n".encode())]
    if ptype == "magento2-module":
        files.append(("registration.php", (
            "<?php\n\\Magento\\Framework\\Component\\ComponentRegistrar::register(\n"
            f"    \\Magento\\Framework\\Component\\ComponentRegistrar::MODULE, '{studly}', __DIR__"
            "\n);\n").encode()))
    elif ptype == "magento2-component":
        files += [("index.php", b"<?php\nrequire __DIR__ . '/app/bootstrap.php';\n"),
                  (EMPTY_DIR, None),
                  ("pub/index.php", b"<?php\nrequire __DIR__ . '/../app/bootstrap.php';\n")]
    elif ptype != "project":
        files.append((f"src/{studly}.php", f"<?php\n// {words}\nclass {studly} {{}}\n".encode()))
    return files


def _grow(specs: dict, extra: int, rng: random.Random) -> None:
    """Add *extra* packages to *specs*, all in the 2.4.7 project's closure, as a real release's are.

    About 45% are Magento modules (two releases each, pinned by the product
    metapackage, depending on earlier modules with ``100.1.*`` ranges), the
    rest packagist libraries (two or three releases, required by the modules
    and by each other with ``^`` ranges).
    """
    modules = max(1, extra * 45 // 100)
    libs = [f"synth{k % 40:02d}/lib-{k:03d}" for k in range(extra - modules)]
    names = [f"magento/module-synth-{k:03d}" for k in range(modules)]
    for k, name in enumerate(libs):
        require = {"php": ">=7.4"}
        if k and rng.random() < 0.4:
            require[libs[rng.randrange(k)]] = "^1.0 || ^2.0"
        versions = [("2.0.0", require), ("1.1.0", require), ("1.0.0", require)]
        specs[name] = ("library", (PACKAGIST,), None, versions[:2 + k % 2])
    deps: list[dict] = [{} for _ in names]
    for k, lib in enumerate(libs):
        deps[k % modules][lib] = "^1.0 || ^2.0"
    for k, name in enumerate(names):
        if k:
            deps[k][names[rng.randrange(k)]] = "100.1.*"
        specs[name] = ("magento2-module", (MAGENTO,), "ce", _module("100.1.7", deps[k]))
    for version, require in specs["magento/product-community-edition"][3]:
        require.update({n: "100.1.7-p1" if version.endswith("-p1") else "100.1.7" for n in names})


def build_graph(seed: int = 0, size: int | None = None) -> Graph:
    """Build the graph; the same seed (and size) gives the same metadata and the same zip bytes.

    Parameters
    ----------
    seed : int
        Seeds references and file contents.
    size : int, optional
        Grow the graph to this many packages with synthetic Magento modules and
        packagist libraries, all in the project's closure (for benchmarks: a
        real 2.4 closure holds about 480 packages). The small graph by default.

    Returns
    -------
    Graph
    """
    rng = random.Random(seed)
    specs = _specs()
    if size is not None and size > len(specs):
        _grow(specs, size - len(specs), random.Random(f"grow {seed}"))
    packages = {}
    for name, (ptype, repos, edition, versions) in specs.items():
        vendor, short = name.split("/")
        releases = []
        for index, (version, require) in enumerate(versions):
            normalized = _normalize(version)
            composer_json = {"name": name, "description": f"{name} (magedl test fixture)",
                             "type": ptype, "license": ["OSL-3.0", "AFL-3.0"] if
                             vendor == "magento" else ["MIT"], "require": dict(require)}
            if ptype == "project":
                composer_json["repositories"] = [dict(_MAGENTO_REPO)]
            if version == "dev-main":
                composer_json["extra"] = {"branch-alias": {"dev-main": "3.x-dev"}}
            entry = {**composer_json, "version": version, "version_normalized": normalized,
                     "time": f"2024-{4 - min(index, 3):02d}-{9 + index:02d}T12:00:00+00:00"}
            archive = dist_path = None
            reference = f"{rng.getrandbits(160):040x}"
            if vendor == "magento" and ptype != "metapackage":
                # repo.magento.com: files at the root, version in composer.json, SHA-1, no ref.
                archive = _zip(_files(name, ptype, {**composer_json, "version": version}, rng))
                dist_path = f"archives/{name}/{vendor}-{short}-{normalized}.zip"
                entry["dist"] = {"type": "zip", "url": None, "reference": None,
                                 "shasum": hashlib.sha1(archive).hexdigest()}
            elif ptype != "metapackage":
                # A GitHub zipball: one top folder, no shasum, the commit as reference.
                top = f"{vendor}-{short}-{reference[:7]}/"
                files = [(top + path, body) for path, body in
                         _files(name, ptype, composer_json, rng)]
                archive = _zip(files)
                dist_path = f"dists/{name}/{reference}.zip"
                entry["dist"] = {"type": "zip", "url": None, "reference": reference,
                                 "shasum": ""}
                entry["source"] = {"type": "git", "url": f"https://github.com/{name}.git",
                                   "reference": reference}
            releases.append(Release(name, version, normalized, entry, archive, dist_path))
        packages[name] = Package(name, repos, edition, tuple(releases))
    return Graph(packages, seed)
