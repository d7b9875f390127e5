"""The one metadata fetch (magedl.composer.remote) and the metadata cache (magedl.composer.cache), on loopback.

Against the emulated repositories (``composer_repos``, tests/conftest.py): a
401 explained with the server's warning and where the keys came from, files
named by their sha256 reused without a request, others revalidated (304),
the changes feed read as Packagist's.
"""

import hashlib

import pytest

from magedl.composer.cache import MetadataCache
from magedl.composer.remote import KeyNote, metadata_fetcher, read_changes
from magedl.composer.repository import ComposerRepository
from magedl.config import Credentials, Settings
from magedl.errors import AuthError
from magedl.service.api import Client


def client_for(url, keys=None):
    return Client(Settings(url, Credentials(*keys) if keys else None))


def test_a_401_says_what_was_sent_and_relays_the_servers_warning(composer_repos):
    url = composer_repos.magento_url
    with client_for(url) as client:
        fetch = metadata_fetcher(client, {url: KeyNote(url, False, "COMPOSER_AUTH, the global auth.json (absent)")})
        with pytest.raises(AuthError) as caught:
            fetch(url + "packages.json")
    message = str(caught.value)
    assert "found no keys" in message and "the global auth.json (absent)" in message
    assert "You haven't provided your Magento authentication keys" in message and "keys store" in message
    public, _ = composer_repos.keys["disabled"]
    with client_for(url, composer_repos.keys["disabled"]) as client:
        fetch = metadata_fetcher(client, KeyNote(url, True, "the keys (public key abcd…, from somewhere)"))
        with pytest.raises(AuthError) as caught:
            fetch(url + "packages.json")
    message = str(caught.value)
    assert "the keys (public key abcd…, from somewhere) were refused (HTTP 401)" in message
    assert "keys are invalid" in message and public not in message


def test_hashed_files_are_reused_and_others_revalidated(composer_repos, tmp_path):
    url, app = composer_repos.magento_url, composer_repos.magento_app
    with client_for(url, composer_repos.keys["commerce"]) as client:
        cache = MetadataCache(tmp_path)
        repo = ComposerRepository(url, metadata_fetcher(client, cache=cache))
        first = repo.versions("magento/framework")
        cache.save()
        cold = len(app.requests)
        assert cache.fetched == cold == 4  # packages.json, two provider includes, the package file
        cache = MetadataCache(tmp_path)
        repo = ComposerRepository(url, metadata_fetcher(client, cache=cache))
        assert repo.versions("magento/framework") == first
    assert [p for _, p in app.requests[cold:]] == ["/packages.json"]  # the rest named by its sha256
    assert composer_repos.magento.log[-1].status == 304
    assert (cache.reused, cache.revalidated, cache.fetched) == (3, 1, 0)
    for name in (tmp_path / ".magedl" / "composer-cache").iterdir():
        if name.name != "index.json":
            assert hashlib.sha256(name.read_bytes()).hexdigest() + ".json" == name.name


def test_a_tampered_file_is_never_cached(composer_repos, tmp_path):
    url = composer_repos.magento_url
    composer_repos.magento_app.tamper("magento/framework")
    with client_for(url, composer_repos.keys["commerce"]) as client:
        cache = MetadataCache(tmp_path)
        repo = ComposerRepository(url, metadata_fetcher(client, cache=cache))
        with pytest.raises(Exception, match="sha256 mismatch"):
            repo.versions("magento/framework")
    cache.save()
    names = {p.name for p in (tmp_path / ".magedl" / "composer-cache").iterdir()}
    assert len(names) == 4  # packages.json, the provider includes, the index: not the tampered file


def test_the_changes_feed(composer_repos):
    feed = composer_repos.packagist_url + "metadata/changes.json"
    with client_for(feed) as client:
        stamp, changed = read_changes(client, feed, None)
        assert stamp and changed is None  # no "since" yet: everything is to be revalidated
        assert read_changes(client, feed, stamp) == (stamp, set())
        composer_repos.packagist_app.touch("psr/log")
        later, changed = read_changes(client, feed, stamp)
        assert later > stamp and changed == {"psr/log"}
