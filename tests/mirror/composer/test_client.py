"""The real Composer against a Composer mirror made by magedl, with no other network (issue 11).

The connected side mirrors from the emulated repo.magento.com in the
``providers`` layout (what the real service serves, Marketplace keys in
COMPOSER_AUTH) and packagist (p2, minified); then both are stopped, and the
mirror is served by ``magedl serve`` (which re-bases the dist URLs on the
address it is reached at) or by a plain static web server (the URLs written
with ``--composer-url``). Debian's ``composer`` then runs ``create-project`` +
``install`` (and, for a mirror made from a ``composer.lock``, ``update --lock``
+ ``install``) with packagist.org disabled and no keys. Composer checks every
archive's SHA-1 against the mirror's p2 files; the test also checks that the
archives it downloaded are the upstream bytes, and that magento2-base's empty
folder survived. Skipped, with the reason, where php or composer is missing.
"""

import hashlib
import json
import os
import shutil

import pytest
from clirun import run
from composerkit import COMPOSER, MISSING, PHP, composer

from magedl.emulator.composer_graph import EMPTY_DIR, build_graph

GRAPH = build_graph()
PROJECT = "magento/project-community-edition"
pytestmark = pytest.mark.skipif(not (COMPOSER and PHP), reason=MISSING)


def mirror_with(capsys, repos, mdir, *argv):
    """A function making the mirror in *mdir* for a ``--composer-url`` (or the default), then stopping upstream."""

    def make(url):
        extra = ("--composer-url", url) if url else ()
        code, _, err = run(capsys, "-q", "mirror", str(mdir), "--composer-repo", repos.magento_url,
                           "--composer-repo", repos.packagist_url, *extra, *argv)
        assert code == 0, err
        repos.stop()  # the far side has no network but the mirror

    return make


def downloaded(env):
    """sha1 of every archive Composer fetched (its download cache)."""
    cache = os.path.join(env["COMPOSER_CACHE_DIR"], "files")
    return {hashlib.sha1(open(os.path.join(folder, n), "rb").read()).hexdigest()
            for folder, _, names in os.walk(cache) for n in names}


def upstream_sha1s(names_versions):
    return {hashlib.sha1(GRAPH.release(n, v).archive).hexdigest() for n, v in names_versions
            if GRAPH.release(n, v).archive is not None}


@pytest.mark.parametrize("how", ["static", "magedl serve"])
def test_create_project_and_install_from_the_mirror(repos, composer_env, far_side, capsys, tmp_path, how):
    assert repos.magento_app.layout == "providers"
    mdir = tmp_path / "mirror"
    url = far_side(how, mdir, mirror_with(capsys, repos, mdir, "--composer-require", f"{PROJECT}:2.4.7"))
    project = tmp_path / "project"
    composer(composer_env, tmp_path, "create-project", "--repository", json.dumps({"type": "composer", "url": url}),
             "--no-install", PROJECT, str(project), "2.4.7")
    # The project names repo.magento.com: point it at the mirror, as the README says.
    composer(composer_env, project, "config", "repositories.0", "composer", url)
    composer(composer_env, project, "install")
    lock = json.loads((project / "composer.lock").read_text())
    installed = [(p["name"], p["version"]) for p in lock["packages"]]
    assert ("magento/magento2-base", "2.4.7") in installed and ("psr/log", "3.0.0") in installed
    assert all(p["dist"]["url"].startswith(url) for p in lock["packages"] if "dist" in p)
    assert (project / "vendor" / "magento" / "magento2-base" / EMPTY_DIR).is_dir()  # the empty folder kept
    assert downloaded(composer_env) == upstream_sha1s(installed + [(PROJECT, "2.4.7")])


def lock_upstream(repos, env, tmp_path, require):
    """A composer.lock for *require*, made by Composer on the connected side (with the Marketplace keys)."""
    connected = tmp_path / "connected"
    connected.mkdir()
    (connected / "composer.json").write_text(json.dumps({"name": "acme/shop", "require": require, "repositories": [
        {"type": "composer", "url": repos.magento_url}, {"type": "composer", "url": repos.packagist_url}]}))
    composer(dict(env, COMPOSER_AUTH=os.environ["COMPOSER_AUTH"]), connected, "update", "--no-install")
    return connected / "composer.lock"


def install_locked(env, tmp_path, url, require, lock):
    """The project of *lock* installed on the far side from the mirror at *url*; its folder.

    The lock names upstream URLs: Composer re-reads them from the mirror without changing a version.
    """
    far = tmp_path / "far"
    far.mkdir()
    (far / "composer.json").write_text(json.dumps({"name": "acme/shop", "require": require,
                                                   "repositories": [{"type": "composer", "url": url}]}))
    shutil.copy(lock, far / "composer.lock")
    composer(env, far, "update", "--lock", "--no-install")
    composer(env, far, "install")
    return far


def versions_in(lock):
    return [(p["name"], p["version"]) for p in json.loads(lock.read_text())["packages"]]


@pytest.mark.parametrize("how", ["static", "magedl serve"])
def test_install_from_a_mirror_of_a_lock_made_upstream(repos, composer_env, far_side, capsys, tmp_path, how):
    require = {"psr/log": "^1", "symfony/polyfill-mbstring": "1.28.0", "magento/magento2-base": "2.4.7-p1"}
    lock = lock_upstream(repos, composer_env, tmp_path, require)
    mdir = tmp_path / "mirror"
    url = far_side(how, mdir, mirror_with(capsys, repos, mdir, "--composer-lock", str(lock)))
    held = sorted(p.relative_to(mdir / "composer" / "dist").as_posix() for p in (mdir / "composer").rglob("*.zip"))
    assert held == ["magento/magento2-base/2.4.7.0-patch1.zip", "psr/log/1.1.4.0.zip",
                    "symfony/polyfill-mbstring/1.28.0.0.zip"]  # exactly what the lock lists
    far = install_locked(composer_env, tmp_path, url, require, lock)
    before = versions_in(lock)
    assert versions_in(far / "composer.lock") == before
    assert (far / "vendor" / "magento" / "magento2-base" / EMPTY_DIR).is_dir()
    assert downloaded(composer_env) == upstream_sha1s(before)


@pytest.mark.parametrize("how", ["static", "magedl serve"])
def test_install_from_a_mirror_of_a_lock_that_pins_a_branch(repos, composer_env, far_side, capsys, tmp_path, how):
    # As Magento's own lock pins magento2-functional-testing-framework at dev-develop: packagist keeps
    # branches only in p2/NAME~dev.json, and Composer reads that file only where a branch may be used.
    require = {"monolog/monolog": "dev-main", "psr/log": "^3"}
    lock = lock_upstream(repos, composer_env, tmp_path, require)
    locked = versions_in(lock)
    assert sorted(locked) == [("monolog/monolog", "dev-main"), ("psr/log", "3.0.0")]
    mdir = tmp_path / "mirror"
    url = far_side(how, mdir, mirror_with(capsys, repos, mdir, "--composer-lock", str(lock)))
    held = sorted(p.relative_to(mdir / "composer").as_posix() for p in (mdir / "composer").rglob("*.*")
                  if p.suffix in (".zip", ".json") and "monolog" in p.as_posix())
    assert held == ["dist/monolog/monolog/dev-main.zip", "p2/monolog/monolog.json", "p2/monolog/monolog~dev.json"]
    far = install_locked(composer_env, tmp_path, url, require, lock)
    assert sorted(versions_in(far / "composer.lock")) == sorted(locked)
    assert downloaded(composer_env) == upstream_sha1s(locked)
    assert (far / "vendor" / "monolog" / "monolog" / "composer.json").is_file()
