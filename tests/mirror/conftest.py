"""Fixtures of the mirror tests: the emulated repo.magento.com and packagist, as the emulator runs them.

:class:`~magedl.emulator.composer.ComposerRepos` (the one way the suite runs
them): repo.magento.com on 127.0.0.1, packagist on 127.0.0.2, so keys bound
to one host are seen not to reach the other. COMPOSER_HOME and COMPOSER_AUTH
are cleared: only the keys a test gives are found.
"""

import json

import pytest

from magedl.emulator.composer import ComposerRepos


class Upstream(ComposerRepos):
    """ComposerRepos with what the mirror tests ask of it."""

    monkeypatch = None

    def use_keys(self, kind="commerce", private=None):
        """Put the *kind* keys (or that public key with another *private* key) in COMPOSER_AUTH."""
        public, right = self.keys[kind]
        host = self.magento_url.split("//", 1)[1].rstrip("/")
        auth = {"http-basic": {host: {"username": public, "password": private or right}}}
        self.monkeypatch.setenv("COMPOSER_AUTH", json.dumps(auth))

    @property
    def requests(self):
        """Every (method, path) both repositories were asked, repo.magento.com's first."""
        return self.magento_app.requests + self.packagist_app.requests

    @staticmethod
    def gets(app, prefix=""):
        """The paths *app* answered GET for, under *prefix* (no leading slash)."""
        return [p for m, p in app.requests if m == "GET" and p.lstrip("/").startswith(prefix)]


@pytest.fixture
def composer_upstream(monkeypatch):
    """Factory: ``composer_upstream(layout="providers", graph=None)`` -> a started :class:`Upstream`.

    Every one started is stopped after the test (stopping one earlier, for the far side of an air gap, is fine).
    """
    monkeypatch.delenv("COMPOSER_HOME", raising=False)
    monkeypatch.delenv("COMPOSER_AUTH", raising=False)
    started = []

    def start(layout="providers", graph=None, minified=True):
        repos = Upstream(layout=layout, graph=graph, minified=minified, packagist_host="127.0.0.2")
        repos.monkeypatch = monkeypatch
        started.append(repos.start())
        return repos

    yield start
    for repos in started:
        repos.stop()


@pytest.fixture
def repos(composer_upstream):
    """repo.magento.com (providers layout, Commerce keys in COMPOSER_AUTH) and packagist (p2, minified)."""
    upstream = composer_upstream()
    upstream.use_keys("commerce")
    return upstream
