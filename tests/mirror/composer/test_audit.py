"""The real ``composer audit`` behind the air gap, against the advisories a magedl mirror carries (issue 21).

The connected side mirrors from the emulated repo.magento.com and packagist
(whose advisory API knows CVE-2024-34102 on magento/product-community-edition
2.4.7 and an advisory on monolog/monolog 2.9.1); then both are stopped, and
the mirror is served by ``magedl serve`` or by a plain static web server.
Debian's Composer installs a project from it (packagist.org disabled, no
other network) and ``composer audit --locked`` must report exactly the
advisories that affect the locked versions, with their CVE and title, and
exit non-zero as Composer does; a project whose versions are clean exits 0.
Skipped, with the reason, where php or composer is missing.
"""

import functools
import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from clirun import run

COMPOSER, PHP = shutil.which("composer"), shutil.which("php")
pytestmark = pytest.mark.skipif(not (COMPOSER and PHP), reason="needs php and composer (Debian: php-cli composer)")
PRODUCT = "magento/product-community-edition"


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


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
    return subprocess.run([COMPOSER, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def served(tmp_path):
    """``served(how, mdir, make)``: *make(url or None)* fills *mdir*; the URL Composer reaches it at.

    A static server's URL is known first and written into the p2 files; ``magedl serve`` re-bases the
    default one. Everything started is stopped after the test.
    """
    stops = []

    def serve(how, mdir, make):
        if how == "static":
            server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(mdir)))
            threading.Thread(target=server.serve_forever, daemon=True).start()
            stops.append(lambda: (server.shutdown(), server.server_close()))
            url = f"http://127.0.0.1:{server.server_address[1]}/composer/"
            make(url)
            return url
        make(None)
        proc = subprocess.Popen([sys.executable, "-m", "magedl", "serve", str(mdir), "--port", "0", "--ready-file",
                                 str(tmp_path / "ready")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stops.append(lambda: (proc.terminate(), proc.communicate(timeout=30)))
        base = proc.stdout.readline().strip()  # printed once listening
        assert base.startswith("http://127.0.0.1:"), proc.stderr.read() if proc.poll() is not None else base
        return base + "composer/"

    yield serve
    for stop in stops:
        stop()


def project(tmp_path, env, url, name, require):
    """A project installed from the mirror at *url* (its lock made there too)."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / "composer.json").write_text(json.dumps({"name": f"acme/{name}", "require": require,
                                                      "repositories": [{"type": "composer", "url": url}]}))
    done = composer(env, folder, "update", "--ignore-platform-reqs")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return folder


@pytest.mark.parametrize("how", ["static", "magedl serve"])
def test_composer_audit_inside_the_gap_reports_what_affects_the_locked_versions(repos, composer_env, served, capsys,
                                                                                tmp_path, how):
    mdir = tmp_path / "mirror"

    def make(url):
        extra = ("--composer-url", url) if url else ()
        code, _, err = run(capsys, "-q", "mirror", str(mdir), "--composer-repo", repos.magento_url, "--composer-repo",
                           repos.packagist_url, "--composer-require", f"{PRODUCT}:2.4.7", "--composer-require",
                           "monolog/monolog:2.9.1", "--composer-require", "psr/log:^1", *extra)
        assert code == 0, err
        repos.stop()  # the far side has no network but the mirror

    url = served(how, mdir, make)

    shop = project(tmp_path, composer_env, url, "shop", {PRODUCT: "2.4.7", "monolog/monolog": "2.9.1"})
    audit = composer(composer_env, shop, "audit", "--locked", "--format=json")
    assert audit.returncode != 0, audit.stdout + audit.stderr  # Composer's way of saying "advisories found"
    found = json.loads(audit.stdout)["advisories"]
    assert sorted(found) == [PRODUCT, "monolog/monolog"]
    product = list(found[PRODUCT].values()) if isinstance(found[PRODUCT], dict) else found[PRODUCT]
    assert [(a["cve"], a["affectedVersions"]) for a in product] == [
        ("CVE-2024-34102", ">=2.4.7,<2.4.7-p1|>=2.4.6,<2.4.6-p6|>=2.4.5,<2.4.5-p8|<2.4.4-p9")]
    assert "CosmicSting" in product[0]["title"]
    table = composer(composer_env, shop, "audit", "--locked")
    assert "CVE-2024-34102" in table.stdout + table.stderr and "Log record injection" in table.stdout + table.stderr

    clean = project(tmp_path, composer_env, url, "clean", {"psr/log": "^1"})
    audit = composer(composer_env, clean, "audit", "--locked")
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "No security vulnerability advisories found" in audit.stdout + audit.stderr
