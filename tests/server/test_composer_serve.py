"""``serve`` and a mirror's Composer part: files as they are, metadata re-based on the address reached."""

import hashlib
import json

import pytest
import requests

from magedl.server import ApiServer, DirStore, MemoryStore

WRITTEN_FOR = "http://127.0.0.1:8080/composer/"
ZIP = b"PK\x03\x04" + b"composer archive bytes" * 100
DIST = "dist/psr/log/3.0.0.0.zip"


def entry(url):
    return {"name": "psr/log", "version": "3.0.0", "version_normalized": "3.0.0.0",
            "dist": {"type": "zip", "url": url, "reference": "abc", "shasum": hashlib.sha1(ZIP).hexdigest()}}


@pytest.fixture
def mirror(tmp_path):
    """A hand-made mirror with a Composer part written for WRITTEN_FOR."""
    root = tmp_path / "m"
    (root / "info").mkdir(parents=True)
    (root / "info" / "json").write_text("{}")
    (root / ".magedl").mkdir()
    (root / ".magedl" / "composer.json").write_text(json.dumps({"version": 1, "url": WRITTEN_FOR}))
    composer = root / "composer"
    (composer / "p2" / "psr").mkdir(parents=True)
    (composer / "dist" / "psr" / "log").mkdir(parents=True)
    (composer / "packages.json").write_text(json.dumps(
        {"packages": [], "metadata-url": "/composer/p2/%package%.json", "available-packages": ["psr/log"]}))
    (composer / "p2" / "psr" / "log.json").write_text(json.dumps({"packages": {"psr/log": [
        entry(WRITTEN_FOR + DIST), entry("https://elsewhere.example/psr-log.zip")]}}))
    (composer / DIST).write_bytes(ZIP)
    return root


@pytest.fixture
def server(mirror):
    with ApiServer(DirStore(mirror)) as srv:
        yield srv


def test_dist_urls_follow_the_address_the_client_reached(server):
    p2 = requests.get(server.base_url + "composer/p2/psr/log.json").json()
    ours, theirs = p2["packages"]["psr/log"]
    assert ours["dist"]["url"] == f"http://127.0.0.1:{server.port}/composer/{DIST}"
    assert theirs["dist"]["url"] == "https://elsewhere.example/psr-log.zip"  # not ours: left alone
    assert ours["dist"]["shasum"] == hashlib.sha1(ZIP).hexdigest() and ours["dist"]["reference"] == "abc"
    # The URL works: the archive, byte for byte.
    archive = requests.get(ours["dist"]["url"])
    assert archive.status_code == 200 and archive.content == ZIP
    assert archive.headers["Content-Type"] == "application/zip"


def test_any_host_name_and_a_tls_proxy_in_front(server):
    r = requests.get(server.base_url + "composer/p2/psr/log.json",
                     headers={"Host": "mirror.internal:9000", "X-Forwarded-Proto": "https"})
    assert r.json()["packages"]["psr/log"][0]["dist"]["url"] == f"https://mirror.internal:9000/composer/{DIST}"
    r = requests.get(server.base_url + "composer/packages.json", headers={"Host": "mirror.internal"})
    assert r.json()["metadata-url"] == "/composer/p2/%package%.json"
    assert r.json()["available-packages"] == ["psr/log"]
    assert int(r.headers["Content-Length"]) == len(r.content)


@pytest.mark.parametrize("host", ['x"},"evil":{"a', "a b", "host/path", "\u00e9vil.example", ""])
def test_a_host_header_unfit_for_a_url_leaves_the_urls_as_written(server, host):
    r = requests.get(server.base_url + "composer/p2/psr/log.json", headers={"Host": host.encode("utf-8")})
    assert r.status_code == 200
    assert r.json()["packages"]["psr/log"][0]["dist"]["url"] == WRITTEN_FOR + DIST


def test_rewritten_bodies_get_their_own_validators(server):
    one = requests.get(server.base_url + "composer/p2/psr/log.json", headers={"Host": "a.example"})
    two = requests.get(server.base_url + "composer/p2/psr/log.json", headers={"Host": "b.example"})
    assert one.headers["ETag"] != two.headers["ETag"]
    ranged = requests.get(server.base_url + "composer/p2/psr/log.json",
                          headers={"Host": "a.example", "Range": "bytes=0-9"})
    assert ranged.status_code == 206 and ranged.content == one.content[:10]


def test_without_a_recorded_url_the_metadata_is_served_as_is(server, mirror):
    (mirror / ".magedl" / "composer.json").unlink()
    body = (mirror / "composer" / "p2" / "psr" / "log.json").read_bytes()
    assert requests.get(server.base_url + "composer/p2/psr/log.json").content == body


@pytest.mark.parametrize("path", ["composer/" + DIST + ".magedl-part", "composer/../.magedl/composer.json",
                                  "composer/.magedl/x", "composer/", "composer/nope.json"])
def test_side_files_bookkeeping_and_strays_are_404(server, mirror, path):
    (mirror / "composer" / (DIST + ".magedl-part")).write_bytes(ZIP)
    (mirror / "composer" / ".magedl").mkdir()
    (mirror / "composer" / ".magedl" / "x").write_bytes(b"x")
    assert requests.get(server.base_url + path).status_code == 404


def test_a_symlinked_composer_folder_is_not_followed(tmp_path, mirror):
    outside = tmp_path / "outside"
    (mirror / "composer").rename(outside)
    (mirror / "composer").symlink_to(outside)
    with ApiServer(DirStore(mirror)) as srv:
        assert requests.get(srv.base_url + "composer/packages.json").status_code == 404


def test_a_memory_store_has_no_composer_part():
    with ApiServer(MemoryStore({}, {})) as srv:
        assert requests.get(srv.base_url + "composer/packages.json").status_code == 404


# -- behind a caching proxy: Vary, or a fixed public URL -----------------------------


def test_documents_rebased_on_the_host_say_they_vary_with_it(server):
    for path in ("composer/packages.json", "composer/p2/psr/log.json"):
        r = requests.get(server.base_url + path, headers={"Host": "a.example"})
        assert r.status_code == 200 and r.headers["Vary"] == "Host, X-Forwarded-Proto"
    # An archive is the same bytes for every host: no Vary, so a cache keeps one copy.
    assert "Vary" not in requests.get(server.base_url + "composer/" + DIST).headers


def test_a_public_url_fixes_the_address_whatever_the_host(mirror):
    with ApiServer(DirStore(mirror), public_url="https://mirror.example/magento") as server:
        for host in ("evil.example", "127.0.0.1", "mirror.internal:9000"):
            r = requests.get(server.base_url + "composer/p2/psr/log.json",
                             headers={"Host": host, "X-Forwarded-Proto": "http"})
            dist = r.json()["packages"]["psr/log"][0]["dist"]["url"]
            assert dist == "https://mirror.example/magento/composer/" + DIST
            assert "Vary" not in r.headers
        r = requests.get(server.base_url + "composer/packages.json", headers={"Host": "evil.example"})
        assert r.json()["metadata-url"] == "/magento/composer/p2/%package%.json"


def test_a_rebased_document_is_rebased_once_per_version_and_address(mirror, monkeypatch):
    import magedl.server.stores as stores

    calls = []
    real = stores.rewrite
    monkeypatch.setattr(stores, "rewrite", lambda *a: calls.append(a[2]) or real(*a))
    path = mirror / "composer" / "p2" / "psr" / "log.json"
    with ApiServer(DirStore(mirror)) as server:
        for _ in range(3):
            for host in ("a.example", "b.example"):
                r = requests.get(server.base_url + "composer/p2/psr/log.json", headers={"Host": host})
                assert r.json()["packages"]["psr/log"][0]["dist"]["url"] == f"http://{host}/composer/{DIST}"
        assert sorted(calls) == ["http://a.example/composer/", "http://b.example/composer/"]
        doc = json.loads(path.read_text())
        doc["packages"]["psr/log"][0]["version"] = "3.0.1"
        path.write_text(json.dumps(doc))  # the mirror updated in place: served fresh
        r = requests.get(server.base_url + "composer/p2/psr/log.json", headers={"Host": "a.example"})
        assert r.json()["packages"]["psr/log"][0]["version"] == "3.0.1" and len(calls) == 3
