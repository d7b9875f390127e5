"""The pages in a real browser: Debian's headless Chromium opens a mirror built from the emulator.

The mirror holds release archives, patches and a Composer closure, with a
``<script>`` planted upstream in a release's description and in a package's
description. Chromium (installed by ``.ci/run``; the test skips without it)
renders the pages served by ``magedl serve`` and opened as ``file://``; its
DOM must list every release file and Composer package, the filter box's own
script must have run (so scripts do run in this browser) while the planted
ones did not, and screenshots at 1280 and 390 pixels must hold a real
render. Every link of every page is followed through ``serve``.
"""

import copy
import json
import shutil
import struct
import subprocess
import sys
import zlib
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest
import requests
from clirun import run

from magedl.emulator.composer_graph import build_graph
from magedl.mirror.index import read_feed
from magedl.server import MemoryStore

CHROMIUM = shutil.which("chromium-headless-shell") or shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium-headless-shell or chromium (.ci/run installs "
                                                         "chromium-headless-shell)")
PLANTED = '<script>document.documentElement.dataset.pwned="yes"</script>"\'&'
PROJECT = "magento/project-community-edition"


class Dom(HTMLParser):
    """Tags, attributes and text of a dumped DOM."""

    def __init__(self, data: str):
        super().__init__(convert_charrefs=True)
        self.starts, self.text = [], []
        self.feed(data)

    def handle_starttag(self, tag, attrs):
        self.starts.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def all(self, tag):
        return [attrs for t, attrs in self.starts if t == tag]

    @property
    def hrefs(self):
        return [a["href"] for a in self.all("a") if "href" in a]

    @property
    def all_text(self):
        return "".join(self.text)


def browser(tmp_path, *argv):
    """Run headless Chromium once with a new, empty profile; its stdout."""
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    profile.mkdir()
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                           "--no-first-run", "--disable-background-networking", "--disable-component-update",
                           "--disable-sync", f"--user-data-dir={profile}", *argv],
                          capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def png_check(path, width):
    """(width, height, distinct byte values of the pixels) of a PNG, read with zlib alone."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", data[16:24])
    pos, idat = 8, b""
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    pixels = zlib.decompress(idat)
    assert w == width and h > 100
    assert len(set(pixels)) > 32, "a blank render"  # text, links, table rules: many shades


@pytest.fixture
def mdir(make_emulator, composer_upstream, demo, capsys, tmp_path):
    """A mirror of every release file and the 2.4.7 project closure, each with a script planted upstream."""
    feed, files = demo
    feed = copy.deepcopy(feed)
    feed["ce-full"]["2.4.7"][0]["name"] = PLANTED
    emulator = make_emulator(store=MemoryStore(feed, files))
    graph = build_graph()
    for release in graph.package("psr/log").releases:
        release.entry["description"] = PLANTED
    repos = composer_upstream(graph=graph)
    repos.use_keys("commerce")
    root = tmp_path / "mirror"
    code, _, err = run(capsys, "--base-url", emulator.base_url, "--mageid", emulator.mageid, "--token",
                       emulator.token, "mirror", str(root), "--version", "*", "--composer-repo", repos.magento_url,
                       "--composer-repo", repos.packagist_url, "--composer-require", f"{PROJECT}:2.4.7")
    assert code == 0, err
    emulator.stop()
    repos.stop()  # the far side of the air gap
    return root


@pytest.fixture
def served(mdir):
    proc = subprocess.Popen([sys.executable, "-m", "magedl", "serve", str(mdir), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://"), proc.stderr.read()
        yield url
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def release_files(mdir):
    return {r.file_name for r in read_feed(mdir / "info" / "json")}


def packages(mdir):
    return set(json.loads((mdir / "composer" / "packages.json").read_text())["available-packages"])


def check_rendered(dom_text, mdir, what):
    dom = Dom(dom_text)
    assert not dom.all("html")[0].get("data-pwned"), f"a planted script ran on {what}"
    assert [s for s in dom.all("script")] == [{}], f"a script element other than the filter box's on {what}"
    assert "hidden" not in dom.all("input")[0], f"the filter box's own script did not run on {what}"
    return dom


def test_the_served_pages_list_everything_and_run_no_planted_script(mdir, served, tmp_path):
    files, names = release_files(mdir), packages(mdir)
    assert len(files) > 10 and len(names) > 10
    dom = check_rendered(browser(tmp_path, "--dump-dom", served), mdir, "/")
    text = dom.all_text
    assert {f for f in files if f not in text} == set(), "release files missing from the front page"
    assert PLANTED in text  # shown as the text upstream sent
    dom = check_rendered(browser(tmp_path, "--dump-dom", served + "composer/"), mdir, "/composer/")
    assert {n for n in names if n not in dom.all_text} == set(), "packages missing from /composer/"
    dom = check_rendered(browser(tmp_path, "--dump-dom", served + "composer/browse/psr/log.html"), mdir, "psr/log")
    assert PLANTED in dom.all_text and "3.0.0" in dom.all_text
    # The advisories the mirror carries mark the versions they affect (emulator: monolog 2.9.1, not 2.9.2).
    page = browser(tmp_path, "--dump-dom", served + "composer/browse/monolog/monolog.html")
    rows = {row.split("</b>", 1)[0].rsplit(">", 1)[-1]: row for row in page.split("<tr>")[1:] if "</b>" in row}
    assert "PKSA-emu2-monolog-0002" in rows["2.9.1"] and "PKSA-emu2-monolog-0002" not in rows["2.9.2"]
    assert "Security advisories (1)" in page
    for width in (1280, 390):
        shot = tmp_path / f"index-{width}.png"
        browser(tmp_path, f"--screenshot={shot}", f"--window-size={width},900", "--hide-scrollbars", served)
        png_check(shot, width)


def test_every_link_of_every_page_answers_through_serve(mdir, served):
    todo, seen, checked = [served], set(), set()
    while todo:
        page = todo.pop()
        if page in seen:
            continue
        seen.add(page)
        got = requests.get(page)
        assert got.status_code == 200 and got.headers["Content-Type"].startswith("text/html"), page
        for link in Dom(got.text).hrefs:
            target = urljoin(page, link)
            assert urlsplit(target).netloc == urlsplit(served).netloc, (page, link)  # nothing outside the mirror
            if target.endswith(".html") or target.endswith("/"):
                todo.append(target)
            elif target not in checked:
                checked.add(target)
                answer = requests.head(target)
                assert answer.status_code == 200, (page, link, answer.status_code)
    assert len(seen) > 20 and len(checked) >= len(release_files(mdir)) + 20


def test_the_pages_work_as_files(mdir, tmp_path):
    index = mdir / "index.html"
    dom = check_rendered(browser(tmp_path, "--dump-dom", index.as_uri()), mdir, "file:// index.html")
    assert {f for f in release_files(mdir) if f not in dom.all_text} == set()
    for link in dom.hrefs:
        target = urlsplit(urljoin(index.as_uri(), link))
        assert target.scheme == "file" and Path(unquote(target.path)).is_file(), link
    dom = check_rendered(browser(tmp_path, "--dump-dom", (mdir / "composer" / "index.html").as_uri()), mdir,
                         "file:// composer/index.html")
    assert {n for n in packages(mdir) if n not in dom.all_text} == set()
