"""``serve`` answers the mirror's pages: ``/``, ``/index.html``, ``/composer/``, vendor and package pages."""

import pytest
import requests

from magedl.server.app import ApiServer
from magedl.server.stores import DirStore, MemoryStore

PAGES = {"index.html": b"<!DOCTYPE html><p>front</p>", "composer/index.html": b"<p>composer</p>",
         "composer/browse/psr.html": b"<p>vendor</p>", "composer/browse/psr/log.html": b"<p>package</p>",
         "releases/ce-full/2.4.html": b"<p>line</p>", "SHA256SUMS": b"", "SHA256SUMS.sig": b"sig"}


@pytest.fixture
def site(tmp_path):
    for rel, data in {**PAGES, ".magedl/state.json": b"{}",
                      "file/index.html": b"an archive", "secret.html": b"x"}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    with ApiServer(DirStore(tmp_path)) as server:
        yield server


@pytest.mark.parametrize("path, rel", [("", "index.html"), ("index.html", "index.html"),
                                       ("composer/", "composer/index.html"),
                                       ("composer/index.html", "composer/index.html"),
                                       ("composer/browse/psr.html", "composer/browse/psr.html"),
                                       ("composer/browse/psr/log.html", "composer/browse/psr/log.html"),
                                       ("releases/ce-full/2.4.html", "releases/ce-full/2.4.html")])
def test_pages_are_html_and_revalidated(site, path, rel):
    got = requests.get(site.base_url + path)
    assert got.status_code == 200 and got.content == PAGES[rel]
    assert got.headers["Content-Type"] == "text/html; charset=utf-8"
    assert got.headers["Cache-Control"] == "no-cache" and got.headers["ETag"] and got.headers["Last-Modified"]
    head = requests.head(site.base_url + path)
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(PAGES[rel]))
    again = requests.get(site.base_url + path, headers={"If-None-Match": got.headers["ETag"]})
    assert again.status_code == 304 and again.headers["Cache-Control"] == "no-cache"


def test_the_checksum_files_are_plain_text(site):
    for rel in ("SHA256SUMS", "SHA256SUMS.sig"):
        got = requests.get(site.base_url + rel)
        assert got.status_code == 200 and got.headers["Content-Type"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize("path", ["secret.html", ".magedl/state.json",
                                  "composer/browse/../../secret.html", "composer/browse/%2e%2e/x.html",
                                  "releases/", "composer/browse/"])
def test_nothing_else_is_a_page(site, path):
    assert requests.get(site.base_url + path).status_code == 404


def test_a_catalogue_in_memory_has_no_pages():
    with ApiServer(MemoryStore({}, {})) as server:
        assert requests.get(server.base_url).status_code == 404
        assert requests.get(server.base_url + "composer/").status_code == 404
