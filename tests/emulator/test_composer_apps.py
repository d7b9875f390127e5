"""The emulated repo.magento.com and packagist, served over loopback HTTP and
read back with ComposerRepository through a requests-based fetch."""

import base64
import hashlib
import io
import json
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from apphandler import app_handler

from magedl.composer.repository import ComposerRepository
from magedl.emulator.composer_apps import (
    COMMERCE,
    DISABLED,
    INVALID_KEYS_WARNING,
    LAPSED,
    NO_KEYS_WARNING,
    OPEN_SOURCE,
    Entitlement,
    MagentoRepoApp,
    PackagistApp,
)
from magedl.emulator.composer_graph import EMPTY_DIR, MAGENTO, PACKAGIST, build_graph
from magedl.errors import AuthError, EntitlementError, FeedError, IntegrityError, NetworkError, NotFoundError

GRAPH = build_graph()
KEYS = {
    "pub-os": Entitlement("priv-os", OPEN_SOURCE),
    "pub-ee": Entitlement("priv-ee", COMMERCE),
    "pub-off": Entitlement("priv-off", DISABLED),
    "pub-lapsed": Entitlement("priv-lapsed", LAPSED),
}
OS, EE = ("pub-os", "priv-os"), ("pub-ee", "priv-ee")
CE_NAMES = {n for n in GRAPH.names(MAGENTO) if GRAPH.package(n).edition == "ce"}


class EndlessHandler(BaseHTTPRequestHandler):
    """A packages.json that never ends (capped so a broken client cannot hang the suite)."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        chunk = b" " * 65536
        try:
            self.wfile.write(b'{"packages": {')
            for _ in range(4096):  # 256 MiB at most
                self.wfile.write(chunk)
        except OSError:
            pass  # the client hung up, as it should

    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    """Start a loopback server for an app (or a handler class); returns its base URL."""
    running = []

    def start(app_or_handler):
        handler = app_or_handler if isinstance(app_or_handler, type) else app_handler(app_or_handler)
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        # A short poll interval only makes shutdown() prompt; nothing waits on it.
        thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
        thread.start()
        running.append((server, thread))
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server, thread in running:
        server.shutdown()
        server.server_close()
        thread.join()


def http_fetch(auth=None):
    """A fetch for ComposerRepository: streams 200 bodies, maps statuses to magedl errors."""
    session = requests.Session()

    def stream(response):
        try:
            yield from response.iter_content(65536)
        finally:
            response.close()

    def fetch(url):
        try:
            response = session.get(url, auth=auth, stream=True, timeout=10)
        except requests.RequestException as exc:
            raise NetworkError(f"{url}: {exc}") from None
        if response.status_code == 200:
            return stream(response)
        try:
            warning = response.json().get("warning", "")
        except ValueError:
            warning = ""
        response.close()
        errors = {401: AuthError, 403: EntitlementError, 404: NotFoundError}
        raise errors.get(response.status_code, NetworkError)(
            f"{url}: HTTP {response.status_code} {warning}".strip())

    return fetch


def magento(serve, layout="providers", auth=OS, **kwargs):
    app = MagentoRepoApp(GRAPH, layout=layout, keys=KEYS)
    url = serve(app)
    return app, url, ComposerRepository(url + "/", http_fetch(auth), **kwargs)


def test_providers_layout_lists_open_source_and_verifies_files(serve):
    app, url, repo = magento(serve)
    assert repo.layout == "providers"
    assert set(repo.package_names()) == CE_NAMES
    assert repo.provider_groups() == {"Open Source": len(CE_NAMES)}
    versions = repo.versions("Magento/Framework")
    assert [v["version"] for v in versions] == ["103.0.7-p1", "103.0.7"]
    assert versions[0]["version_normalized"] == "103.0.7.0-patch1"
    assert versions[0]["require"]["psr/log"] == "^1 || ^2 || ^3"
    assert versions[0]["dist"]["url"] == (
        url + "/archives/magento/framework/magento-framework-103.0.7.0-patch1.zip")
    # packages.json was read once, and '$' went out as %24, as Composer sends it.
    paths = [p for _, p in app.requests]
    assert paths.count("/packages.json") == 1
    assert any("provider-ce%24" in p for p in paths)


def test_commerce_keys_see_the_commerce_group(serve):
    _, _, repo = magento(serve, auth=EE)
    assert repo.provider_groups() == {"Open Source": len(CE_NAMES), "Commerce": 2}
    assert "magento/product-enterprise-edition" in repo.package_names()
    ee = repo.versions("magento/product-enterprise-edition")
    assert ee[0]["type"] == "metapackage" and "dist" not in ee[0]


def test_open_source_keys_do_not_see_commerce(serve):
    _, url, repo = magento(serve)
    with pytest.raises(NotFoundError) as caught:
        repo.versions("magento/product-enterprise-edition")
    assert "magento/product-enterprise-edition" in str(caught.value) and url in str(caught.value)


@pytest.mark.parametrize("layout", ["inline", "metadata-url"])
def test_every_magento_layout_gives_the_same_metadata(serve, layout):
    app = MagentoRepoApp(GRAPH, layout=layout, keys=KEYS)
    url = serve(app)
    repo = ComposerRepository(url, http_fetch(OS))
    assert repo.layout == layout
    assert set(repo.package_names()) == CE_NAMES
    assert repo.provider_groups() == {}
    release = GRAPH.release("magento/module-catalog", "104.0.7")
    assert repo.versions("magento/module-catalog")[1] == GRAPH.entry(release, url)


@pytest.mark.parametrize("minified", [True, False])
def test_packagist_p2_with_dev_files(serve, minified):
    app = PackagistApp(GRAPH, minified=minified)
    url = serve(app)
    repo = ComposerRepository(url, http_fetch())
    assert repo.layout == "metadata-url"
    assert set(repo.package_names()) == set(GRAPH.names(PACKAGIST))
    full = repo.versions("monolog/monolog")
    assert sorted(v["version"] for v in full) == ["2.9.1", "2.9.2", "3.5.0", "dev-main"]
    expected = {r.version: GRAPH.entry(r, url) for r in GRAPH.package("monolog/monolog").releases}
    assert all(v == expected[v["version"]] for v in full)
    stable = repo.versions("monolog/monolog", dev=False)
    assert "dev-main" not in [v["version"] for v in stable]
    beta = [v for v in repo.versions("symfony/console") if "BETA" in v["version"]]
    assert beta[0]["version_normalized"] == "6.4.0.0-beta1"
    # available-packages is complete: an unknown name is answered without a request.
    before = len(app.requests)
    with pytest.raises(NotFoundError):
        repo.versions("nobody/nothing")
    assert len(app.requests) == before


def test_packagist_minified_file_is_really_minified(serve):
    url = serve(PackagistApp(GRAPH))
    body = requests.get(url + "/p2/psr/log.json", timeout=10).json()
    assert body["minified"] == "composer/2.0"
    assert "name" not in body["packages"]["psr/log"][1]  # only what changed


def test_product_is_served_by_both_repositories(serve):
    _, _, magento_repo = magento(serve)
    packagist = ComposerRepository(serve(PackagistApp(GRAPH)), http_fetch())
    name = "magento/product-community-edition"
    # No dist: identical, but for the Composer 1 "uid" that provider files carry.
    assert [{k: v for k, v in e.items() if k != "uid"} for e in magento_repo.versions(name)] == packagist.versions(name)
    assert all(isinstance(e["uid"], int) for e in magento_repo.versions(name))
    assert magento_repo.versions(name)[0]["require"]["magento/framework"] == "103.0.7-p1"


@pytest.mark.parametrize("target, read", [
    ("provider-ce", lambda repo: repo.package_names()),
    ("magento/framework", lambda repo: repo.versions("magento/framework")),
])
def test_tampered_files_fail_sha256(serve, target, read):
    app, url, repo = magento(serve)
    app.tamper(target)
    with pytest.raises(IntegrityError) as caught:
        read(repo)
    message = str(caught.value)
    assert "sha256 mismatch" in message and url in message and target in message


@pytest.mark.parametrize("auth, warning", [
    (None, NO_KEYS_WARNING),
    (("pub-os", "wrong"), INVALID_KEYS_WARNING),
    (("nobody", "priv-os"), INVALID_KEYS_WARNING),
    (("pub-off", "priv-off"), INVALID_KEYS_WARNING),
])
def test_missing_or_bad_keys_get_401_with_a_warning(serve, auth, warning):
    _, url, repo = magento(serve, auth=auth)
    with pytest.raises(AuthError) as caught:
        repo.root()
    assert warning in str(caught.value)
    release = GRAPH.release("magento/framework", "103.0.7")
    sha = "0" * 64
    for path in ("/packages.json", f"/p/provider-ce${sha}.json",
                 f"/p/magento/framework${sha}.json", "/" + release.dist_path):
        response = requests.get(url + path, auth=auth, timeout=10)
        assert response.status_code == 401
        assert response.json() == {"warning": warning}


def test_bad_authorization_headers_are_invalid_keys():
    app = MagentoRepoApp(GRAPH, keys=KEYS)
    for value in ("Basic !!!", "Bearer " + base64.b64encode(b"pub-os:priv-os").decode(),
                  "Basic " + base64.b64encode(b"no-colon").decode()):
        reply = app.handle("GET", "/packages.json", {"Authorization": value})
        assert reply.status == 401 and json.loads(reply.body)["warning"] == INVALID_KEYS_WARNING


@pytest.mark.parametrize("auth, name, status", [
    (OS, "magento/module-staging", 403),       # a Commerce archive with Open Source keys
    (("pub-lapsed", "priv-lapsed"), "magento/framework", 403),
    (EE, "magento/module-staging", 200),
    (OS, "magento/framework", 200),
])
def test_archive_entitlements(serve, auth, name, status):
    url = serve(MagentoRepoApp(GRAPH, keys=KEYS))
    release = GRAPH.package(name).releases[0]
    response = requests.get(f"{url}/{release.dist_path}", auth=auth, timeout=10)
    assert response.status_code == status
    if status == 200:
        assert response.content == release.archive


def test_lapsed_keys_read_metadata_but_not_archives(serve):
    _, _, repo = magento(serve, auth=("pub-lapsed", "priv-lapsed"))
    dist = repo.versions("magento/framework")[0]["dist"]["url"]
    with pytest.raises(EntitlementError):
        http_fetch(("pub-lapsed", "priv-lapsed"))(dist)


def test_unknown_archive_is_404(serve):
    url = serve(MagentoRepoApp(GRAPH, keys=KEYS))
    for path in ("/archives/magento/framework/magento-framework-9.9.9.0.zip",
                 "/archives/nobody/x/nobody-x-1.0.0.0.zip", "/archives/short.zip"):
        assert requests.get(url + path, auth=OS, timeout=10).status_code == 404


def test_head_and_one_byte_range(serve):
    url = serve(MagentoRepoApp(GRAPH, keys=KEYS))
    release = GRAPH.release("magento/magento2-base", "2.4.7")
    head = requests.head(f"{url}/{release.dist_path}", auth=OS, timeout=10)
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["Content-Length"]) == len(release.archive)
    assert head.headers["Accept-Ranges"] == "bytes"
    one = requests.get(f"{url}/{release.dist_path}", auth=OS, headers={"Range": "bytes=0-0"},
                       timeout=10)
    assert one.status_code == 206 and one.content == release.archive[:1]
    assert one.headers["Content-Range"] == f"bytes 0-0/{len(release.archive)}"


def test_other_ranges_and_methods():
    app = PackagistApp(GRAPH)
    body = app.handle("GET", "/packages.json").body
    tail = app.handle("GET", "/packages.json", {"range": "bytes=-5"})
    assert tail.status == 206 and tail.body == body[-5:]
    beyond = app.handle("GET", "/packages.json", {"Range": f"bytes={len(body)}-"})
    assert beyond.status == 416 and beyond.headers["Content-Range"] == f"bytes */{len(body)}"
    assert app.handle("POST", "/packages.json").status == 405
    assert app.handle("GET", "/p2/nobody/nothing.json").status == 404


@pytest.mark.parametrize("status", [429, 503])
def test_throttle_answers_retry_after(serve, status):
    app = PackagistApp(GRAPH)
    url = serve(app)
    app.throttle(2, status)
    answers = [requests.get(url + "/packages.json", timeout=10) for _ in range(3)]
    assert [a.status_code for a in answers] == [status, status, 200]
    assert all(a.headers["Retry-After"] == "1" for a in answers[:2])
    with pytest.raises(NetworkError):
        app.throttle(1, status)
        ComposerRepository(url, http_fetch()).root()


def test_huge_and_endless_bodies_are_bounded(serve):
    _, url, repo = magento(serve, layout="inline", max_bytes=1000)
    with pytest.raises(FeedError) as caught:
        repo.root()
    assert "1000-byte limit" in str(caught.value) and url in str(caught.value)
    endless = serve(EndlessHandler)
    with pytest.raises(FeedError, match="1048576-byte limit"):
        ComposerRepository(endless, http_fetch(), max_bytes=1 << 20).root()


def test_magento_zips_keep_their_empty_directory_and_sha1(serve):
    _, _, repo = magento(serve)
    entry = repo.versions("magento/magento2-base")[1]
    archive = requests.get(entry["dist"]["url"], auth=OS, timeout=10).content
    assert entry["dist"]["shasum"] == hashlib.sha1(archive).hexdigest()
    assert entry["dist"]["reference"] is None
    with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
        assert zipped.getinfo(EMPTY_DIR).is_dir()
        assert json.loads(zipped.read("composer.json"))["version"] == "2.4.7"


def test_packagist_zipballs_have_a_top_folder_and_a_reference(serve):
    repo = ComposerRepository(serve(PackagistApp(GRAPH)), http_fetch())
    dist = repo.versions("psr/log")[0]["dist"]
    assert dist["shasum"] == "" and len(dist["reference"]) == 40
    archive = requests.get(dist["url"], timeout=10).content
    with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
        top = f"psr-log-{dist['reference'][:7]}/"
        assert all(n.startswith(top) for n in zipped.namelist())
        assert json.loads(zipped.read(top + "composer.json"))["name"] == "psr/log"


def test_graph_is_deterministic_and_realistic():
    again = build_graph()
    for name, package in GRAPH.packages.items():
        assert [r.archive for r in package.releases] == [
            r.archive for r in again.package(name).releases]
        for release in package.releases:
            if release.archive is not None and MAGENTO in package.repos:
                assert release.entry["dist"]["shasum"] == hashlib.sha1(
                    release.archive).hexdigest()
    assert 15 <= len(GRAPH.packages) <= 25
    assert build_graph(1).release("psr/log", "3.0.0").archive != GRAPH.release(
        "psr/log", "3.0.0").archive
    project = GRAPH.release("magento/project-community-edition", "2.4.7-p1").entry
    assert project["require"] == {"magento/product-community-edition": "2.4.7-p1"}
    assert GRAPH.release("monolog/monolog", "dev-main").is_dev


def test_conditional_requests_are_answered_304():
    app = PackagistApp(GRAPH)
    first = app.handle("GET", "/p2/psr/log.json")
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert first.status == 200 and etag.startswith('"') and modified.endswith("GMT")
    same = app.handle("GET", "/p2/psr/log.json", {"If-None-Match": etag})
    assert same.status == 304 and same.body == b"" and same.headers["ETag"] == etag
    assert app.handle("GET", "/p2/psr/log.json", {"If-Modified-Since": modified}).status == 304
    assert app.handle("GET", "/p2/psr/log.json", {"If-Modified-Since": "Mon, 01 Jan 2024 00:00:00 GMT"}).status == 200
    # If-None-Match decides when both are sent (RFC 9110 13.2.2).
    assert app.handle("GET", "/p2/psr/log.json", {"If-None-Match": '"other"', "If-Modified-Since": modified}).status \
        == 200
    app.touch("psr/log")
    later = app.handle("GET", "/p2/psr/log.json", {"If-Modified-Since": modified})
    assert later.status == 200 and later.headers["Last-Modified"] != modified and later.headers["ETag"] == etag
    magento = MagentoRepoApp(GRAPH, keys=KEYS)
    auth = {"Authorization": "Basic " + base64.b64encode(b"pub-os:priv-os").decode()}
    root = magento.handle("GET", "/packages.json", auth)
    assert magento.handle("GET", "/packages.json", {**auth, "If-None-Match": root.headers["ETag"]}).status == 304
    assert magento.handle("GET", "/packages.json", {"If-None-Match": root.headers["ETag"]}).status == 401


def test_the_changes_feed_answers_as_packagists():
    app = PackagistApp(GRAPH)
    root = json.loads(app.handle("GET", "/packages.json", base_url="http://p").body)
    assert root["metadata-changes-url"] == "http://p/metadata/changes.json"
    start = app.handle("GET", "/metadata/changes.json")
    assert start.status == 400 and "since" in json.loads(start.body)["error"]
    since = json.loads(start.body)["timestamp"]
    quiet = json.loads(app.handle("GET", f"/metadata/changes.json?since={since}").body)
    assert quiet["actions"] == [] and quiet["timestamp"] >= since
    app.touch("psr/log", "monolog/monolog~dev")
    changed = json.loads(app.handle("GET", f"/metadata/changes.json?since={since}").body)
    assert [(a["type"], a["package"]) for a in changed["actions"]] == [("update", "psr/log"),
                                                                      ("update", "monolog/monolog~dev")]
    assert json.loads(app.handle("GET", f"/metadata/changes.json?since={changed['timestamp']}").body)["actions"] == []
    app.resync()
    resync = json.loads(app.handle("GET", f"/metadata/changes.json?since={changed['timestamp']}").body)
    assert [a["type"] for a in resync["actions"]] == ["resync"]
    fresh = json.loads(app.handle("GET", f"/metadata/changes.json?since={resync['timestamp']}").body)
    assert fresh["actions"] == []


def test_a_tampered_archive_keeps_its_listed_sha1():
    app = MagentoRepoApp(GRAPH, keys=KEYS)
    release = GRAPH.release("magento/module-store", "101.2.7")
    auth = {"Authorization": "Basic " + base64.b64encode(b"pub-os:priv-os").decode()}
    app.tamper(release.dist_path)
    served = app.handle("GET", "/" + release.dist_path, auth).body
    assert len(served) == len(release.archive) and served != release.archive
    app.untamper()
    assert app.handle("GET", "/" + release.dist_path, auth).body == release.archive
