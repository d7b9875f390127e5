"""The real Composer client in end-to-end tests: an isolated home, one way to run it, a plain static server.

Composer gets its own home and cache, no keys, packagist.org switched off and plain http allowed, so what
it installs can only have come from the repositories a test gives it. The host's PHP may lack ext-intl:
platform requirements are never what is tested, so they are ignored.
"""

import atexit
import functools
import os
import shutil
import subprocess
import tempfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMPOSER, PHP = shutil.which("composer"), shutil.which("php")
MISSING = "needs php and composer (Debian: php-cli composer)"


_RESOLVING = ("install", "update", "create-project", "require")  # the commands that check platform requirements


def isolated_env(home, **extra) -> dict:
    """The environment of a Composer with its home under *home* (and *extra* variables such as COMPOSER_AUTH).

    The home is a copy of one Composer configured (``composer config -g``) once per test run with the same
    *extra*: the same files, without two Composer start-ups per test.
    """
    def environment(folder):
        env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSER")}
        env.update(COMPOSER_HOME=str(folder), COMPOSER_CACHE_DIR=str(folder / "cache"), COMPOSER_NO_INTERACTION="1",
                   COMPOSER_NO_AUDIT="1", COMPOSER_ALLOW_SUPERUSER="1", **extra)
        return env

    key = tuple(sorted(extra.items()))
    if key not in _HOMES:
        template = Path(tempfile.mkdtemp(prefix="composer-home-"))
        atexit.register(shutil.rmtree, template, True)
        for setting in (("secure-http", "false"), ("repo.packagist", "false")):
            subprocess.run([COMPOSER, "config", "-g", *setting], env=environment(template), check=True,
                           capture_output=True)
        _HOMES[key] = template
    shutil.copytree(_HOMES[key], home, symlinks=True, dirs_exist_ok=True)
    return environment(Path(home))


_HOMES = {}  # (extra variables) -> a Composer home configured with them, copied for each test


def run_composer(env, cwd, *argv) -> subprocess.CompletedProcess:
    """Composer's answer, whatever its exit code (``audit`` exits non-zero when it finds advisories)."""
    platform = ("--ignore-platform-reqs",) if argv[0] in _RESOLVING else ()
    return subprocess.run([COMPOSER, *argv, *platform], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def composer(env, cwd, *argv) -> subprocess.CompletedProcess:
    """Run Composer and insist that it succeeded."""
    result = run_composer(env, cwd, *argv)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve_folder(folder):
    """A plain static web server over *folder* on loopback: (base URL, stop)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/", lambda: (server.shutdown(), server.server_close())
