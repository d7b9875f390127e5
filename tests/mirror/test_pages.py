"""The browsable pages as pure functions: escaping, links, size at scale, unchanged content kept byte for byte."""

import json
from html.parser import HTMLParser
from urllib.parse import unquote, urlsplit

import pytest

from magedl.mirror.pages import composer as composer_pages
from magedl.mirror.pages import releases as release_pages
from magedl.mirror.pages.html import FILTER_SCRIPT
from magedl.mirror.pages.site import INDEX, HeldFile, drop_stale, is_page, render_pages
from magedl.service.catalog import Release

HOSTILE = "<script>document.body.dataset.pwned=1</script>\"'&<img src=x onerror=alert(1)>"
URL = "http://127.0.0.1:8080/composer/"
ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "nav", "a", "h1", "h2", "h3", "input", "p",
                "dl", "dt", "dd", "div", "table", "thead", "tbody", "tr", "th", "td", "span", "code", "b", "ul",
                "li", "pre", "script"}


class Page(HTMLParser):
    """What a browser's parser makes of a page: tags, attributes, text, scripts."""

    def __init__(self, data: bytes):
        super().__init__(convert_charrefs=True)
        self.tags, self.attrs, self.text, self.scripts, self._in_script = [], [], [], [], False
        self.feed(data.decode("utf-8"))

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += attrs
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        (self.scripts if self._in_script else self.text).append(data)

    @property
    def hrefs(self):
        return [v for k, v in self.attrs if k == "href"]

    @property
    def all_text(self):
        return "".join(self.text)


def held_for(records):
    return {f"file/{r.file_name}": HeldFile(len(r.file_name), "a" * 32, "b" * 64) for r in records}


def p2(name, versions, advisories=()):
    doc = {"packages": {name: versions}}
    if advisories:
        doc["security-advisories"] = list(advisories)
    return {f"composer/p2/{name}.json": json.dumps(doc).encode()}


def version(v, **more):
    vn = ".".join((v.split(".") + ["0"] * 4)[:4])
    return {"name": "x", "version": v, "version_normalized": vn, "time": "2024-04-09T12:00:00+00:00",
            "license": ["MIT"], "require": {"php": ">=8.1"}, "description": "a package",
            "dist": {"type": "zip", "url": f"{URL}dist/acme/lib/{vn}.zip", "shasum": "c" * 40}, **more}


def render(records=(), composer=None, **kw):
    held = held_for(records)
    for rel, data in (composer or {}).items():
        for entry in json.loads(data)["packages"].popitem()[1]:
            dist = entry.get("dist")
            if isinstance(dist, dict) and isinstance(dist.get("url"), str) and dist["url"].startswith(URL):
                held["composer/" + dist["url"][len(URL):]] = HeldFile(10, "d" * 32, "e" * 64, "c" * 40)
    return dict(render_pages(list(records), held, composer or {}, composer_url=URL, version="0.1.0", **kw))


def hostile_mirror():
    release = Release(name=HOSTILE, file_name="Magento-CE-2.4.7<b>\"'.zip", version=HOSTILE, type=HOSTILE,
                      md5=HOSTILE, ce_versions=(HOSTILE,), ee_versions=(HOSTILE,))
    patch = Release(name=HOSTILE, file_name="p.sh", version="2.4.7", type="ce-patch", md5="", ce_versions=(HOSTILE,))
    entry = version("1.0.0", description=HOSTILE, license=[HOSTILE], time=HOSTILE, require={HOSTILE: HOSTILE},
                    homepage=HOSTILE, type=HOSTILE)
    entry["dist"]["shasum"] = HOSTILE
    meta = {"version": HOSTILE, "version_normalized": HOSTILE, "description": HOSTILE, "license": HOSTILE}
    advisory = {k: HOSTILE for k in ("advisoryId", "packageName", "remoteId", "title", "link", "cve", "severity",
                                     "reportedAt", "affectedVersions")}
    return [release, patch], p2("acme/lib", [entry, meta], [advisory])


def test_every_upstream_string_is_escaped_on_every_page():
    records, composer = hostile_mirror()
    pages = render(records, composer, signer=HOSTILE)
    assert {INDEX, "composer/index.html", "composer/browse/acme.html", "composer/browse/acme/lib.html"} <= set(pages)
    for rel, data in pages.items():
        page = Page(data)
        assert set(page.tags) <= ALLOWED_TAGS, rel
        assert page.scripts == [FILTER_SCRIPT], rel  # our filter box's script, and no other
        assert not [k for k, _ in page.attrs if k.startswith("on")], rel
        for link in page.hrefs:
            assert not urlsplit(link).scheme and not urlsplit(link).netloc, (rel, link)  # relative, never javascript:
        assert b"<script>document" not in data and b"<img" not in data, rel
    # Shown as text, not dropped: the reader sees exactly what upstream sent.
    assert HOSTILE in Page(pages[INDEX]).all_text
    assert HOSTILE in Page(pages["composer/browse/acme/lib.html"]).all_text
    assert any(unquote(h).endswith("file/Magento-CE-2.4.7<b>\"'.zip") for h in Page(pages[INDEX]).hrefs)


def test_links_are_relative_to_each_page_and_name_the_files_held():
    records = [Release(name="CE", file_name="Magento-CE-2.4.7.zip", version="2.4.7", type="ce-full", md5="0" * 32),
               Release(name="patch", file_name="patches/MDVA 1.sh", version="2.4.7", type="ce-patch", md5="",
                       ce_versions=("2.4.7",))]
    pages = render(records, p2("acme/lib", [version("1.0.0")]))
    assert {"file/Magento-CE-2.4.7.zip", "file/patches/MDVA%201.sh", "composer/index.html",
            "composer/browse/acme.html", "SHA256SUMS"} <= set(Page(pages[INDEX]).hrefs)
    package = Page(pages["composer/browse/acme/lib.html"])
    assert "../../dist/acme/lib/1.0.0.0.zip" in package.hrefs and "../../../index.html" in package.hrefs
    text = package.all_text.replace("\xa0", " ")
    assert "php >=8.1" in text and "MIT" in text and "2024-04-09" in text and "sha1 " + "c" * 40 in text


def test_branches_from_the_dev_file_show_with_the_tagged_versions():
    files = {**p2("acme/lib", [version("1.0.0")]),
             "composer/p2/acme/lib~dev.json": json.dumps({"packages": {"acme/lib": [
                 {**version("1.0.0"), "version": "dev-main", "version_normalized": "dev-main"}]}}).encode()}
    text = Page(render((), files)["composer/browse/acme/lib.html"]).all_text
    assert "dev-main" in text and "1.0.0" in text and "Versions held2" in text.replace("\n", "")


def test_advisories_mark_the_versions_they_affect():
    advisory = {"advisoryId": "PKSA-1", "title": "XSS in lib", "cve": "CVE-2024-1", "affectedVersions": ">=1.0,<1.1",
                "severity": "high", "link": "https://example.test/a", "reportedAt": "2024-05-01 00:00:00"}
    pages = render((), p2("acme/lib", [version("2.0.0"), version("1.0.0")], [advisory]))
    data = pages["composer/browse/acme/lib.html"].decode()
    rows = data.split("<h2>Versions</h2>", 1)[1].split("</tr>")
    assert "CVE-2024-1" not in rows[1] and "CVE-2024-1" in rows[2]  # 2.0.0 is not affected, 1.0.0 is
    assert "Security advisories (1)" in data and "XSS in lib" in data
    assert "1 with security advisories" in pages[INDEX].decode()


def test_unchanged_content_keeps_the_front_page_byte_for_byte():
    records = [Release(name="CE", file_name="a.zip", version="2.4.7", type="ce-full", md5="0" * 32)]
    first = render(records, now=0)[INDEX]
    assert b"1970-01-01 00:00 UTC" in first
    assert render(records, now=10 ** 9, previous=first)[INDEX] == first  # nothing changed: nothing rewritten
    edited = first.replace(b"a.zip</a>", b"evil.zip</a>")
    assert render(records, now=10 ** 9, previous=edited)[INDEX] == first  # an edited copy is put right
    more = records + [Release(name="CE", file_name="b.zip", version="2.4.8", type="ce-full", md5="0" * 32)]
    changed = render(more, now=10 ** 9, previous=first)[INDEX]
    assert changed != first and b"2001-09-09 01:46 UTC" in changed


def test_pages_stay_small_at_100000_archives(monkeypatch):
    records = [Release(name=f"Magento {i}", file_name=f"Magento-CE-2.{i // 1000}.{i % 1000}.zip",
                       version=f"2.{i // 1000}.{i % 1000}", type="ce-full" if i % 2 else "ee-full", md5="0" * 32)
               for i in range(60_000)]
    composer = {}
    for i in range(4_000):  # 40,000 archives more, 400 vendors
        vs = [version(f"1.0.{k}") for k in range(10)]
        for v in vs:
            v["dist"]["url"] = f"{URL}dist/v{i % 400}/p{i}/{v['version_normalized']}.zip"
        composer.update(p2(f"v{i % 400}/p{i}", vs))
    monkeypatch.setattr(composer_pages, "INLINE_MAX", 1_000)  # the vendor-only listing too
    sizes = {rel: len(data) for rel, data in render(records, composer).items()}
    assert max(sizes.values()) < 4 << 20, max(sizes.items(), key=lambda kv: kv[1])
    assert sizes[INDEX] < 1 << 20
    assert len([r for r in sizes if r.startswith("releases/")]) >= 30  # per category and version line
    assert len([r for r in sizes if r.startswith("composer/browse/") and r.count("/") == 3]) == 4_000


def test_release_pages_split_by_line_and_a_new_release_changes_only_its_line(monkeypatch):
    monkeypatch.setattr(release_pages, "INLINE_MAX", 3)
    records = [Release(name="", file_name=f"M-{v}.zip", version=v, type="ce-full", md5="")
               for v in ("2.4.6", "2.4.7", "2.3.1", "1.9.4.5")]
    first = render(records)
    assert {"releases/ce-full/2.4.html", "releases/ce-full/2.3.html", "releases/ce-full/1.9.html"} <= set(first)
    second = render(records + [Release(name="", file_name="M-2.4.8.zip", version="2.4.8", type="ce-full", md5="")])
    assert [rel for rel in first if rel.startswith("releases/") and first[rel] != second[rel]] == [
        "releases/ce-full/2.4.html"]
    assert release_pages.slug("../x y") != release_pages.slug("__x_y") and "/" not in release_pages.slug("../x y")


def test_stale_pages_go_and_nothing_else_does(tmp_path):
    for rel in ("index.html", "composer/index.html", "composer/browse/a.html", "composer/browse/a/b.html",
                "releases/ce-full/2.4.html", "composer/p2/a/b.json", "file/x.html"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    drop_stale(tmp_path, {"index.html": "", "composer/browse/a.html": ""})
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert left == ["composer/browse/a.html", "composer/p2/a/b.json", "file/x.html", "index.html"]
    assert not (tmp_path / "releases").exists()


@pytest.mark.parametrize("rel, page", [("index.html", True), ("composer/index.html", True),
                                       ("composer/browse/a/b.html", True), ("releases/x/2.4.html", True),
                                       ("composer/p2/a/b.json", False), ("file/x.html", False),
                                       ("info/index.html", False), ("composer/browse/a.json", False)])
def test_is_page(rel, page):
    assert is_page(rel) is page
