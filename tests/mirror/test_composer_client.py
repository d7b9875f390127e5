"""The real Composer against a Composer mirror made by magedl, with no other network (issue 11).

The connected side mirrors from the emulated repo.magento.com and packagist;
then both are stopped, the mirror is served by a plain static web server, and
Debian's ``composer`` runs ``create-project`` + ``install`` (and, for a mirror
made from a ``composer.lock``, ``update --lock`` + ``install``) with
packagist.org disabled. Composer checks every archive's SHA-1 against the
mirror's p2 files; the test also checks that the archives it downloaded are
the upstream bytes. Skipped, with the reason, where php or composer is missing.
"""

import functools
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from magedl.composer.emulated import COMMERCE, Entitlement, MagentoRepoApp, PackagistApp
from magedl.composer.fixtures import build_graph

COMPOSER, PHP = shutil.which("composer"), shutil.which("php")
GRAPH = build_graph()
pytestmark = pytest.mark.skipif(not (COMPOSER and PHP), reason="needs php and composer (Debian: php-cli composer)")


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def upstream(repo_server, monkeypatch):
    """The connected side: repo.magento.com (p2 layout, which Composer itself reads) and packagist."""
    magento = repo_server(MagentoRepoApp(GRAPH, keys={"pub-ee": Entitlement("priv-ee", COMMERCE)},
                                         layout="metadata-url"), "127.0.0.1")
    packagist = repo_server(PackagistApp(GRAPH), "127.0.0.2")
    host = magento.url.split("//", 1)[1].rstrip("/")
    monkeypatch.setenv("COMPOSER_AUTH", json.dumps({"http-basic": {host: {"username": "pub-ee",
                                                                          "password": "priv-ee"}}}))
    return magento, packagist


@pytest.fixture
def composer_env(tmp_path):
    """Composer with its own home and cache, no keys, packagist.org off and plain http allowed."""
    home = tmp_path / "composer-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSER")}
    env.update(COMPOSER_HOME=str(home), COMPOSER_CACHE_DIR=str(home / "cache"), COMPOSER_NO_INTERACTION="1",
               COMPOSER_NO_AUDIT="1", COMPOSER_ALLOW_SUPERUSER="1")
    for setting in (("secure-http", "false"), ("repo.packagist", "false")):
        subprocess.run([COMPOSER, "config", "-g", *setting], env=env, check=True, capture_output=True)
    return env


def composer(env, cwd, *argv):
    # The host's PHP may lack ext-intl: platform requirements are not what is tested here.
    platform = () if argv[0] == "config" else ("--ignore-platform-reqs",)
    result = subprocess.run([COMPOSER, *argv, *platform], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def mirror(upstream, mdir, port, *argv):
    magento, packagist = upstream
    result = subprocess.run([sys.executable, "-m", "magedl", "-q", "mirror", str(mdir), "--composer-repo", magento.url,
                             "--composer-repo", packagist.url, "--composer-url", f"http://127.0.0.1:{port}/composer/",
                             *argv], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    magento.stop()  # the far side has no network but the mirror
    packagist.stop()


@pytest.fixture
def served():
    servers = []

    def serve(mdir, port):
        server = ThreadingHTTPServer(("127.0.0.1", port), functools.partial(Quiet, directory=str(mdir)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{port}/composer/"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def downloaded(env):
    """sha1 of every archive Composer fetched (its download cache)."""
    cache = os.path.join(env["COMPOSER_CACHE_DIR"], "files")
    return {hashlib.sha1(open(os.path.join(folder, n), "rb").read()).hexdigest()
            for folder, _, names in os.walk(cache) for n in names}


def upstream_sha1s(names_versions):
    return {hashlib.sha1(GRAPH.release(n, v).archive).hexdigest() for n, v in names_versions
            if GRAPH.release(n, v).archive is not None}


def test_create_project_and_install_from_a_static_copy_of_the_mirror(upstream, composer_env, served, tmp_path):
    mdir, port = tmp_path / "mirror", free_port()
    mirror(upstream, mdir, port, "--composer-require", "magento/project-community-edition:2.4.7")
    url = served(mdir, port)
    project = tmp_path / "project"
    composer(composer_env, tmp_path, "create-project", "--repository", json.dumps({"type": "composer", "url": url}),
             "--no-install", "magento/project-community-edition", str(project), "2.4.7")
    # The project names repo.magento.com: point it at the mirror, as the README says.
    composer(composer_env, project, "config", "repositories.0", "composer", url)
    composer(composer_env, project, "install")
    lock = json.loads((project / "composer.lock").read_text())
    installed = [(p["name"], p["version"]) for p in lock["packages"]]
    assert ("magento/magento2-base", "2.4.7") in installed and ("psr/log", "3.0.0") in installed
    assert (project / "vendor" / "magento" / "magento2-base" / "pub" / "media").is_dir()  # the empty folder kept
    assert downloaded(composer_env) == upstream_sha1s(installed + [("magento/project-community-edition", "2.4.7")])


def test_install_from_a_lock_made_upstream(upstream, composer_env, served, tmp_path):
    magento, packagist = upstream
    require = {"psr/log": "^1", "symfony/polyfill-mbstring": "1.28.0", "magento/module-store": "101.2.7"}
    connected = tmp_path / "connected"
    connected.mkdir()
    (connected / "composer.json").write_text(json.dumps({"name": "acme/shop", "require": require, "repositories": [
        {"type": "composer", "url": magento.url}, {"type": "composer", "url": packagist.url}]}))
    env = dict(composer_env, COMPOSER_AUTH=os.environ["COMPOSER_AUTH"])
    composer(env, connected, "update", "--no-install")
    mdir, port = tmp_path / "mirror", free_port()
    mirror(upstream, mdir, port, "--composer-lock", str(connected / "composer.lock"))
    url = served(mdir, port)
    far = tmp_path / "far"
    far.mkdir()
    (far / "composer.json").write_text(json.dumps({"name": "acme/shop", "require": require,
                                                   "repositories": [{"type": "composer", "url": url}]}))
    shutil.copy(connected / "composer.lock", far / "composer.lock")
    # The lock names upstream URLs: Composer re-reads them from the mirror without changing a version.
    composer(composer_env, far, "update", "--lock", "--no-install")
    composer(composer_env, far, "install")
    before = [(p["name"], p["version"]) for p in json.loads((connected / "composer.lock").read_text())["packages"]]
    after = [(p["name"], p["version"]) for p in json.loads((far / "composer.lock").read_text())["packages"]]
    assert after == before
    assert downloaded(composer_env) == upstream_sha1s(before)
