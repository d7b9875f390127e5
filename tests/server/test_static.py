"""A mirror's own files beside the API (pages, styles): typed by name, validators, 304, the publishing rules."""

import json
import os

import pytest
import requests

from magedl.server import ApiServer, DirStore, Hooks
from magedl.server.routes import content_type, static_reply


class Pages(Hooks):
    """Routes ``/`` and ``/composer/`` to their index.html and any ``/pages/...`` file, as a page route would."""

    def __init__(self, store):
        self.store = store

    def before(self, req):
        if req.route in ("", "index.html"):
            return static_reply(self.store, req, "index.html")
        if req.route == "composer/":
            return static_reply(self.store, req, "composer/index.html")
        if req.route is not None and req.route.startswith("pages/"):
            return static_reply(self.store, req, req.route)
        return None


@pytest.fixture
def mirror(tmp_path):
    root = tmp_path / "m"
    (root / "info").mkdir(parents=True)
    (root / "info" / "json").write_text(json.dumps({}))
    (root / "composer").mkdir()
    (root / "pages").mkdir()
    (root / "index.html").write_text("<!doctype html><title>mirror</title>")
    (root / "composer" / "index.html").write_text("<!doctype html><title>composer</title>")
    (root / "pages" / "style.css").write_text("body { color: black }")
    (root / "pages" / "x.magedl-part").write_text("partial")
    return root


@pytest.fixture
def server(mirror):
    store = DirStore(mirror)
    with ApiServer(store, hooks=Pages(store)) as srv:
        yield srv


@pytest.mark.parametrize("path, kind, file", [
    ("", "text/html; charset=utf-8", "index.html"), ("index.html", "text/html; charset=utf-8", "index.html"),
    ("composer/", "text/html; charset=utf-8", "composer/index.html"),
    ("pages/style.css", "text/css; charset=utf-8", "pages/style.css"),
])
def test_pages_are_served_typed_with_validators(server, mirror, path, kind, file):
    r = requests.get(server.base_url + path)
    assert r.status_code == 200 and r.headers["Content-Type"] == kind
    assert r.content == (mirror / file).read_bytes() and r.headers["ETag"] and r.headers["Last-Modified"]


def test_a_current_copy_is_304_without_a_body(server):
    first = requests.get(server.base_url + "index.html")
    again = requests.get(server.base_url + "index.html", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.content == b"" and again.headers["ETag"] == first.headers["ETag"]
    since = requests.get(server.base_url + "index.html", headers={"If-Modified-Since": first.headers["Last-Modified"]})
    assert since.status_code == 304
    other = requests.get(server.base_url + "index.html", headers={"If-None-Match": '"another"'})
    assert other.status_code == 200 and other.content == first.content
    # Keep-alive goes on after a 304 (it carries no body, and says no length).
    with requests.Session() as s:
        assert s.get(server.base_url + "index.html", headers={"If-None-Match": "*"}).status_code == 304
        assert s.get(server.base_url + "pages/style.css").status_code == 200


def test_side_files_and_links_are_not_pages(server, mirror, tmp_path):
    (tmp_path / "outside.css").write_text("secret")
    os.symlink(tmp_path / "outside.css", mirror / "pages" / "link.css")
    for path in ("pages/x.magedl-part", "pages/link.css", "pages/%2e%2e/info/json", "pages/missing.css"):
        assert requests.get(server.base_url + path).status_code == 404, path


def test_content_types_by_name():
    assert content_type("a/b.JSON") == "application/json" and content_type("x.tar.gz") == "application/gzip"
    assert content_type("noext") == content_type("x.unknown") == "application/octet-stream"
