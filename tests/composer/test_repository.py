"""ComposerRepository against hand-made repositories: layouts, URLs, hashes,
malformed and hostile metadata; expand_minified; read_lock."""

import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from magedl.composer.lockfile import read_lock
from magedl.composer.metadata import expand_minified, minify_versions, provider_label
from magedl.composer.repository import ComposerRepository
from magedl.errors import FeedError, IntegrityError, MagedlError, NotFoundError, UsageError
from magedl.safejson import MAX_DEPTH, parse_json

REPO = "https://repo.example/composer/"


def encode(document):
    return document if isinstance(document, bytes) else json.dumps(document).encode()


class Fake:
    """A fetch over a dict URL -> document; unknown URLs are 404, as a server says it."""

    def __init__(self, files):
        self.files = {url: encode(doc) for url, doc in files.items()}
        self.calls = []

    def __call__(self, url):
        self.calls.append(url)
        url = url.replace("%24", "$")
        if url not in self.files:
            raise NotFoundError(f"{url}: HTTP 404")
        return self.files[url]


def repository(files, url=REPO, **kwargs):
    warnings = []
    repo = ComposerRepository(url, Fake(files), warn=warnings.append, **kwargs)
    return repo, warnings


def entry(name, version, **extra):
    return {"name": name, "version": version, **extra}


def sha256(document):
    return hashlib.sha256(encode(document)).hexdigest()


def test_urls_resolve_as_composer_does():
    repo, _ = repository({})
    assert repo.packages_url == "https://repo.example/composer/packages.json"
    assert repo.base_url == "https://repo.example/composer"
    assert repo.resolve("/p2/%package%.json") == "https://repo.example/p2/%package%.json"
    assert repo.resolve("p/provider-ce$1.json") == REPO + "p/provider-ce$1.json"
    assert repo.resolve("https://cdn.example/x.json") == "https://cdn.example/x.json"
    named = ComposerRepository("http://h:8080/a/root.json?x=1", Fake({}))
    assert named.packages_url == "http://h:8080/a/root.json?x=1"
    assert named.base_url == "http://h:8080/a"
    assert named.resolve("/p/x") == "http://h:8080/p/x"
    with pytest.raises(UsageError):
        ComposerRepository("repo.example/composer", Fake({}))


def test_inline_layout_and_lowercase_names():
    repo, _ = repository({REPO + "packages.json": {"packages": {"Vendor/Pkg": {
        "1.0.0": entry("Vendor/Pkg", "1.0.0", require={"php": ">=8.1"}),
        "2.0.0": entry("vendor/pkg", "2.0.0", version_normalized="2.0.0.0")}}}})
    assert repo.layout == "inline"
    assert repo.package_names() == ["vendor/pkg"]
    assert [v["version"] for v in repo.versions("VENDOR/pkg")] == ["1.0.0", "2.0.0"]
    assert repo.provider_groups() == {}


def test_inline_includes_are_read_and_checked():
    include = {"packages": {"a/b": {"1.0": entry("a/b", "1.0")}}}
    sha1 = hashlib.sha1(encode(include)).hexdigest()
    files = {REPO + "packages.json": {"packages": [], "includes": {"include/all$x.json": {
        "sha1": sha1}}}, REPO + "include/all$x.json": include}
    repo, _ = repository(files)
    assert repo.versions("a/b")[0]["version"] == "1.0"
    files[REPO + "packages.json"]["includes"]["include/all$x.json"]["sha1"] = "0" * 40
    with pytest.raises(IntegrityError, match="sha1 mismatch"):
        repository(files)[0].package_names()


def providers_repo(tamper=False, nested=False):
    package = {"packages": {"magento/framework": {"103.0.7": entry("magento/framework",
                                                                    "103.0.7")}}}
    package_sha = sha256(package)
    ce = {"providers": {"magento/framework": {"sha256": package_sha},
                        "magento/bad": {"sha": "missing"}}}
    ee = {"providers": {"magento/module-staging": {"sha256": "1" * 64}}}
    files = {REPO + f"p/magento/framework${package_sha}.json":
             encode(package) + (b" " if tamper else b"")}
    includes = {"p/provider-ce$%hash%.json": {"sha256": sha256(ce)}}
    files[REPO + f"p/provider-ce${sha256(ce)}.json"] = ce
    if nested:  # an include that itself includes another, as packagist v1 had
        ce["provider-includes"] = {"p/provider-ee$%hash%.json": {"sha256": sha256(ee)}}
        includes = {"p/provider-ce$%hash%.json": {"sha256": sha256(ce)}}
        files[REPO + f"p/provider-ce${sha256(ce)}.json"] = ce
    else:
        includes["p/provider-ee$%hash%.json"] = {"sha256": sha256(ee)}
    files[REPO + f"p/provider-ee${sha256(ee)}.json"] = ee
    files[REPO + "packages.json"] = {"packages": [], "provider-includes": includes,
                                    "providers-url": "/composer/p/%package%$%hash%.json"}
    return repository(files)


def test_providers_layout_counts_groups_and_skips_bad_listings():
    repo, warnings = providers_repo()
    assert repo.layout == "providers"
    assert repo.package_names() == ["magento/framework", "magento/module-staging"]
    assert repo.provider_groups() == {"Open Source": 1, "Commerce": 1}
    assert any("magento/bad" in w for w in warnings)
    assert repo.versions("magento/framework")[0]["version"] == "103.0.7"
    nested, _ = providers_repo(nested=True)
    assert nested.provider_groups() == {"Open Source": 2}


def test_providers_package_file_is_checked():
    repo, _ = providers_repo(tamper=True)
    with pytest.raises(IntegrityError) as caught:
        repo.versions("magento/framework")
    assert "p/magento/framework$" in str(caught.value)


def test_metadata_url_wins_over_providers_and_reads_dev_files():
    root = {"packages": [], "metadata-url": "/p2/%package%.json",
            "providers-url": "/p/%package%$%hash%.json", "provider-includes": {}}
    minified = {"minified": "composer/2.0", "packages": {"a/b": [
        entry("a/b", "2.0.0", require={"x/y": "^1"}), {"version": "1.0.0", "require": "__unset"}]}}
    files = {REPO + "packages.json": root, "https://repo.example/p2/a/b.json": minified,
             "https://repo.example/p2/a/b~dev.json": {"packages": {"a/b": [
                 entry("a/b", "dev-main")]}},
             "https://repo.example/p2/c/d~dev.json": {"packages": {"c/d": [
                 entry("c/d", "dev-x")]}}}
    repo, warnings = repository(files)
    assert repo.layout == "metadata-url"
    assert [v["version"] for v in repo.versions("a/b")] == ["2.0.0", "1.0.0", "dev-main"]
    assert "require" not in repo.versions("a/b")[1]
    assert [v["version"] for v in repo.versions("a/b", dev=False)] == ["2.0.0", "1.0.0"]
    assert [v["version"] for v in repo.versions("c/d")] == ["dev-x"]  # only a ~dev file
    with pytest.raises(NotFoundError) as caught:
        repo.versions("e/f")
    assert "e/f" in str(caught.value) and REPO in str(caught.value)
    assert repo.package_names() == []
    assert any("available-packages" in w for w in warnings)


def test_versions_are_copies_and_root_is_read_once():
    repo, _ = repository({REPO + "packages.json": {"packages": {"a/b": {"1": entry("a/b", "1")}}}})
    repo.versions("a/b")[0]["version"] = "changed"
    assert repo.versions("a/b")[0]["version"] == "1"
    repo.package_names()
    assert repo._fetch.calls == [REPO + "packages.json"]


def test_wrong_typed_entries_are_skipped_with_a_warning():
    versions = {"1": entry("a/b", "1", require=[]), "2": entry("a/b", 2), "3": "text",
                "4": entry("a/b", "4", require={"x/y": 1}), "5": entry("a/b", "5", dist="zip"),
                "6": entry("other/pkg", "6"), "7": {"version": "7"},
                "8": entry("a/b", "8", version_normalized=8), "9": entry(["a/b"], "9")}
    repo, warnings = repository({REPO + "packages.json": {"packages": {"a/b": versions,
                                                                        "c/d": "nonsense"}}})
    got = repo.versions("a/b")
    assert [v["version"] for v in got] == ["1", "7"]
    assert got[0]["require"] == {} and got[1]["name"] == "a/b"
    assert len(warnings) == 7  # 2, 3, 4, 5, 8, 9 and c/d; other/pkg is silently not ours


@pytest.mark.parametrize("body, message", [
    (b"[]", "expected a JSON object"),
    (b'"packages"', "expected a JSON object"),
    (b"{not json", "not valid JSON"),
    (b'{"a": NaN}', "not valid JSON"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b"[" * 200_000, "nested deeper"),
    (b'{"a":' * 100_000, "nested deeper"),
])
def test_unparseable_roots_are_feed_errors_naming_the_url(body, message):
    repo, _ = repository({REPO + "packages.json": body})
    with pytest.raises(FeedError) as caught:
        repo.root()
    assert message in str(caught.value) and "packages.json" in str(caught.value)


def test_depth_limit_counts_brackets_outside_strings_only():
    assert parse_json(b'{"a": "' + b"[" * 500 + b'"}', "x") == {"a": "[" * 500}
    assert parse_json(b'["\\"[[["' + b"]" * 0 + b"]", "x") == ['"[[[']
    deep = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert parse_json(deep, "x") is not None
    with pytest.raises(FeedError):
        parse_json(b"[" + deep + b"]", "x")


def test_size_bound_applies_to_bytes_and_streams():
    repo, _ = repository({REPO + "packages.json": b'{"packages": {}}' + b" " * 100},
                         max_bytes=100)
    with pytest.raises(FeedError, match="100-byte limit"):
        repo.root()
    closed = []

    def endless(url):
        def chunks():
            try:
                while True:
                    yield b" " * 4096
            finally:
                closed.append(url)
        return chunks()

    with pytest.raises(FeedError, match="packages.json"):
        ComposerRepository(REPO, endless, max_bytes=1 << 20).root()
    assert closed == [REPO + "packages.json"]


def test_credentials_in_the_url_stay_out_of_messages():
    url = "https://user:s3cret@repo.example/"
    repo = ComposerRepository(url, Fake({url + "packages.json": b"[]"}))
    with pytest.raises(FeedError) as caught:
        repo.root()
    assert "s3cret" not in str(caught.value)


def test_expand_minified_applies_diffs_and_unset():
    minified = [{"name": "a/b", "version": "3.0", "require": {"php": ">=8"}, "extra": {"x": 1}},
                {"version": "2.0", "extra": "__unset"},
                "garbage",
                {"version": "1.0", "require": "__unset", "license": ["MIT"]}]
    warnings = []
    expanded = expand_minified(minified, warnings.append)
    assert expanded == [
        {"name": "a/b", "version": "3.0", "require": {"php": ">=8"}, "extra": {"x": 1}},
        {"name": "a/b", "version": "2.0", "require": {"php": ">=8"}},
        {"name": "a/b", "version": "1.0", "license": ["MIT"]}]
    assert len(warnings) == 1
    assert expand_minified([]) == []
    assert expand_minified([{}, {"version": "1"}]) == [{}, {"version": "1"}]


# No "__unset" string: that value means "remove" in the minified format.
scalars = (st.none() | st.booleans() | st.integers(-2, 2) | st.sampled_from([0.0, 1.0, 1.5])
           | st.sampled_from(["", "1.0", "^1", "a/b"]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.sampled_from(["php", "x/y"]), inner, max_size=2), max_leaves=6)


@given(st.lists(st.dictionaries(st.sampled_from(["name", "version", "require", "dist", "x"]),
                                json_values, min_size=1), max_size=6))
def test_minify_then_expand_round_trips(versions):
    assert expand_minified(minify_versions(versions)) == versions


def test_provider_labels():
    assert provider_label("p/provider-ce$%hash%.json") == "Open Source"
    assert provider_label("p/provider-ee$%hash%.json") == "Commerce"
    assert provider_label("p/provider-b2b$%hash%.json") == "B2B"
    assert provider_label("p/provider-marketplace-extensions$%hash%.json") == (
        "Marketplace extensions")
    assert provider_label("p/provider-2024$%hash%.json") == "provider-2024"


KEYS = ["packages", "providers-url", "provider-includes", "providers", "metadata-url",
        "available-packages", "includes", "minified", "sha256", "sha1", "a/b", "version",
        "name", "require", "dist", "url"]
documents = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8)
    | st.sampled_from(["/p2/%package%.json", "p/%package%$%hash%.json", "composer/2.0",
                       "a/b", "__unset", "1.0"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(KEYS) | st.text(max_size=4), inner, max_size=5),
    max_leaves=25)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_arbitrary_json_never_raises_anything_but_magedl_errors(data):
    def fetch(url):
        return json.dumps(data.draw(documents)).encode()

    repo = ComposerRepository(REPO, fetch, warn=lambda message: None)
    names = []
    for action in (lambda: repo.layout, repo.provider_groups, lambda: repo.versions("a/b"),
                   lambda: names.extend(repo.package_names())):
        try:
            action()
        except MagedlError:
            pass
    for name in names[:5]:
        try:
            repo.versions(name)
        except MagedlError:
            pass


def test_read_lock(tmp_path):
    lock = tmp_path / "composer.lock"
    lock.write_text(json.dumps({"packages": [entry("a/b", "1.0"), "junk", {"name": "x"}],
                                "packages-dev": [entry("c/d", "2.0")]}))
    warnings = []
    got = read_lock(lock, warn=warnings.append)
    assert [(p["name"], p["dev"]) for p in got] == [("a/b", False), ("c/d", True)]
    assert len(warnings) == 2
    assert [p["name"] for p in read_lock(lock, dev=False, warn=warnings.append)] == ["a/b"]
    with pytest.raises(UsageError):
        read_lock(tmp_path / "missing.lock")
    lock.write_text('{"content-hash": "x"}')
    with pytest.raises(FeedError, match="not a composer.lock"):
        read_lock(lock)
    lock.write_text("[" * 100_000)
    with pytest.raises(FeedError):
        read_lock(lock)
