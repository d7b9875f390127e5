"""Fixtures of the tests that run the real Composer against a mirror (tests/composerkit.py)."""

import subprocess
import sys

import pytest
from composerkit import isolated_env, serve_folder


@pytest.fixture
def composer_env(tmp_path):
    """Composer with its own home and cache, no keys, packagist.org off and plain http allowed."""
    return isolated_env(tmp_path / "composer-home")


@pytest.fixture
def far_side(tmp_path):
    """``far_side(how, mirror, make)``: serve the folder *make* fills, the static way or with ``magedl serve``.

    *make(composer_url or None)* makes the mirror (None: the default ``--composer-url``, which
    ``magedl serve`` re-bases); the URL Composer should use is returned. Everything started is
    stopped after the test.
    """
    stops = []

    def serve(how, mdir, make):
        if how == "static":
            base, stop = serve_folder(mdir)
            stops.append(stop)
            make(base + "composer/")
            return base + "composer/"
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
