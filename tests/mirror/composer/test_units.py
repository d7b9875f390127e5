"""The Composer part's pure pieces: names and paths, URLs, the p2 index, selection over in-memory repositories."""

import hashlib
import json
import threading

import pytest

from magedl.composer.repository import ComposerRepository
from magedl.errors import AuthError, ConstraintError, NotFoundError, UnsafeNameError, UsageError
from magedl.mirror.composer import index as ci
from magedl.mirror.composer.patterns import parse_require
from magedl.mirror.composer.select import ComposerOptions, is_platform, resolve


@pytest.mark.parametrize("name", ["Psr/Log", "magento/module-catalog", "a.b/c--d", "x_1/y.z"])
def test_package_names_composer_accepts(name):
    assert ci.check_package_name(name) == name.lower()


@pytest.mark.parametrize("name", ["psr", "../x/y", "psr/log/extra", "psr/.log", "-a/b", "psr/log~dev", "a/b\n",
                                  "x/.magedl-part"])
def test_package_names_that_could_escape_are_refused(name):
    with pytest.raises(UnsafeNameError):
        ci.check_package_name(name)


def test_dist_paths_are_plain_and_checked():
    assert ci.dist_rel("Psr/Log", "3.0.0.0", "zip") == "composer/dist/psr/log/3.0.0.0.zip"
    assert ci.dist_rel("a/b", "dev-main", None) == "composer/dist/a/b/dev-main.zip"
    for vn, kind in (("../../x", "zip"), ("1.0", "z/ip"), (".hidden", "zip"), ("1.0", "x" * 20)):
        with pytest.raises(UnsafeNameError):
            ci.dist_rel("a/b", vn, kind)
    # check_name is asked only when a side-file suffix could refuse the path; it still refuses those.
    for name, vn, kind in (("a/b.magedl-part", "1.0", "zip"), ("a.magedl-lock/b", "1.0", "zip"),
                           ("a/b", "1.0.magedl-part", "json"), ("a/b", "1.0.magedl-part.json", "tmp")):
        with pytest.raises(UnsafeNameError, match="side files"):
            ci.dist_rel(name, vn, kind)


@pytest.mark.parametrize("url, expected", [
    ("http://127.0.0.1:8080/composer", "http://127.0.0.1:8080/composer/"),
    ("https://mirror.example/", "https://mirror.example/"),
    ("https://[::1]:8443/c/", "https://[::1]:8443/c/"),
])
def test_composer_urls_are_normalised(url, expected):
    assert ci.normalize_url(url) == expected


@pytest.mark.parametrize("url", ["ftp://x/", "mirror.example/c", "https://u:p@x/", "https://x/?a=1", "http://[::1/"])
def test_bad_composer_urls_are_usage_errors(url):
    with pytest.raises(UsageError):
        ci.normalize_url(url)


def test_render_read_back_and_rewrite(tmp_path):
    url = "http://127.0.0.1:8080/composer/"
    entry = {"name": "psr/log", "version": "3.0.0", "version_normalized": "3.0.0.0", "source": {"url": "git"},
             "notification-url": "https://packagist.org/downloads/",
             "dist": {"type": "zip", "url": "https://up/x.zip", "reference": "abc", "shasum": ""}}
    older = dict(entry, version="1.1.4", version_normalized="1.1.4.0")
    rel = ci.dist_rel("psr/log", "3.0.0.0", "zip")
    mirrored = [ci.mirrored_entry(older, url, ci.dist_rel("psr/log", "1.1.4.0", "zip"), "1" * 40),
                ci.mirrored_entry(entry, url, rel, "3" * 40)]
    assert "source" not in mirrored[1] and "notification-url" not in mirrored[1]
    assert mirrored[1]["dist"] == {"type": "zip", "url": url + "dist/psr/log/3.0.0.0.zip", "reference": "abc",
                                   "shasum": "3" * 40}
    files = ci.render({"psr/log": mirrored, "acme/meta": [ci.mirrored_entry({"name": "acme/meta", "version": "1.0",
                                                                             "version_normalized": "1.0.0.0"},
                                                                            url, None, "")]}, url)
    assert set(files) == {"composer/packages.json", "composer/p2/psr/log.json", "composer/p2/acme/meta.json"}
    root = json.loads(files["composer/packages.json"])
    assert root == {"packages": [], "metadata-url": "/composer/p2/%package%.json",
                    "available-packages": ["acme/meta", "psr/log"]}
    versions = json.loads(files["composer/p2/psr/log.json"])["packages"]["psr/log"]
    assert [v["version"] for v in versions] == ["3.0.0", "1.1.4"]  # newest first
    for rel_path, data in files.items():
        (tmp_path / rel_path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel_path).write_bytes(data)
    index = ci.read_index(tmp_path)
    assert set(index) == {"psr/log", "acme/meta"}
    assert [ci.entry_rel(e, url) for e in index["psr/log"]] == [rel, "composer/dist/psr/log/1.1.4.0.zip"]
    assert ci.entry_rel(index["psr/log"][0], None) == rel  # without the bookkeeping, from the URL's path
    assert ci.entry_rel(index["acme/meta"][0], url) is None
    with pytest.raises(UnsafeNameError):
        ci.entry_rel({"dist": {"url": "https://elsewhere/archive.zip"}}, url)
    with pytest.raises(UnsafeNameError):
        ci.entry_rel({"dist": {"url": url + "dist/../../../etc/passwd/x"}}, url)
    # serve's rewrite: dist URLs and the metadata-url follow the address it is reached at.
    there = "http://mirror.lan:9000/composer/"
    moved = json.loads(ci.rewrite(files["composer/p2/psr/log.json"], url, there))["packages"]["psr/log"]
    assert moved[0]["dist"]["url"] == there + "dist/psr/log/3.0.0.0.zip"
    moved_root = json.loads(ci.rewrite(files["composer/packages.json"], url, "http://h/x/composer/"))
    assert moved_root["metadata-url"] == "/x/composer/p2/%package%.json"
    assert ci.rewrite(b"not json", url, there) == b"not json"
    ci.write_composer_url(tmp_path, url)
    assert ci.read_composer_url(tmp_path) == url
    (tmp_path / ".magedl" / "composer.json").write_text('{"url": "ftp://x"}')
    assert ci.read_composer_url(tmp_path) is None


def test_p2_files_are_the_same_bytes_whatever_order_an_entry_s_keys_come_in():
    # Fresh from upstream the keys come in the repository's order; read back from the state they come
    # sorted. The same content must give the same bytes, or a re-run churns SHA256SUMS and the signature.
    upstream = {"name": "a/b", "version": "1.0.0", "version_normalized": "1.0.0.0", "type": "library",
                "require": {"php": ">=8.1", "a/c": "^1"}, "autoload": {"psr-4": {"A\\B\\": "src/"}},
                "dist": {"type": "zip", "url": "http://x/composer/dist/a/b/1.0.0.0.zip", "reference": None,
                         "shasum": "0" * 40}}

    def sorted_deep(value):
        return {k: sorted_deep(value[k]) for k in sorted(value)} if isinstance(value, dict) else value

    advisories = {"a/b": [{"title": "t", "advisoryId": "X", "affectedVersions": "<1"}]}
    fresh = ci.render_package("a/b", [upstream], advisories)
    stored = ci.render_package("a/b", [sorted_deep(upstream)], {"a/b": [sorted_deep(advisories["a/b"][0])]})
    assert fresh == stored
    assert json.loads(fresh["composer/p2/a/b.json"])["packages"]["a/b"] == [upstream]


def test_parse_require():
    assert parse_require("Psr/Log") == ("psr/log", "*")
    assert parse_require("psr/log:^1 || ^2") == ("psr/log", "^1 || ^2")
    assert parse_require("psr/log=3.0.0") == ("psr/log", "3.0.0")
    for bad in ("psr", "psr/log:^^1", ""):
        with pytest.raises(ConstraintError):
            parse_require(bad)


def test_platform_requirements():
    assert all(is_platform(n) for n in ("php", "php-64bit", "ext-intl", "lib-icu", "composer-plugin-api",
                                        "composer-runtime-api", "hhvm"))
    assert not any(is_platform(n) for n in ("psr/log", "phpunit/phpunit", "composer/semver"))


def memory_repo(url, packages, *, refuse=False):
    """A repository in the inline layout, read from memory (``refuse``: every request answers 401)."""
    body = json.dumps({"packages": packages}).encode()

    def fetch(target):
        if refuse:
            raise AuthError(f"{target}: refused")
        if target.endswith("/packages.json"):
            return body
        raise NotFoundError(target)

    return ComposerRepository(url, fetch)


def version(name, v, vn, require=None, dist=True, **extra):
    entry = {"name": name, "version": v, "version_normalized": vn, "require": require or {}, **extra}
    if dist:
        entry["dist"] = {"type": "zip", "url": f"https://dl/{name}/{v}.zip", "reference": v, "shasum": ""}
    return entry


A = {
    "acme/app": {"1.0.0": version("acme/app", "1.0.0", "1.0.0.0", {"acme/lib": "self.version", "php": ">=8.1",
                                                                   "ext-json": "*", "acme/virtual": "^1"},
                                  replace={"acme/virtual": "self.version"})},
    "acme/lib": {"1.0.0": version("acme/lib", "1.0.0", "1.0.0.0", {"php": ">=8.1"}),
                 "1.1.0": version("acme/lib", "1.1.0", "1.1.0.0", {"php": ">=8.3"}),
                 "2.0.0-beta1": version("acme/lib", "2.0.0-beta1", "2.0.0.0-beta1"),
                 "dev-main": version("acme/lib", "dev-main", "dev-main")},
}


def test_selection_follows_self_version_skips_platform_dev_and_provided_names():
    selection = resolve([memory_repo("https://a/", A)], ComposerOptions(requires=(("acme/app", "*"),)))
    assert sorted((n, vn) for n, vn, _ in selection.entries()) == [("acme/app", "1.0.0.0"), ("acme/lib", "1.0.0.0")]
    assert selection.failures == []  # acme/virtual is replaced by acme/app


def test_stability_flags_php_and_newest():
    repo = [memory_repo("https://a/", A)]
    chosen = resolve(repo, ComposerOptions(requires=(("acme/lib", "*"),)))
    assert sorted(chosen.packages["acme/lib"]) == ["1.0.0.0", "1.1.0.0"]
    chosen = resolve(repo, ComposerOptions(requires=(("acme/lib", "*@beta"),), newest=True))
    assert sorted(chosen.packages["acme/lib"]) == ["2.0.0.0-beta1"]
    chosen = resolve(repo, ComposerOptions(requires=(("acme/lib", "^1"),), php="8.2"))
    assert sorted(chosen.packages["acme/lib"]) == ["1.0.0.0"]
    failed = resolve(repo, ComposerOptions(requires=(("acme/lib", "1.1.*"),), php="8.2")).failures
    assert len(failed) == 1 and "PHP 8.2" in str(failed[0].error) and failed[0].error.exit_code == 5


def test_the_resolution_holds_every_version_it_read_as_text_and_the_repository_keeps_none():
    from magedl.mirror.composer.select import Resolver

    repo = memory_repo("https://a/", A)
    resolver = Resolver([repo], ComposerOptions(requires=(("acme/app", "*"),)))
    selection = resolver.resolve()
    kept = [entry for found in resolver._found.values() if isinstance(found, tuple) for entry in found[1]]
    assert len(kept) == 5 and all(type(entry) is ci.KeptEntry for entry in kept)  # dev-main among them
    assert not [key for key in repo._cache if isinstance(key, tuple)]  # the parsed dicts went at once
    chosen = [entry for _, _, entry in selection.entries()]
    assert all(any(entry is e for e in kept) for entry in chosen)  # the selection's own, held once
    assert selection.packages["acme/lib"]["1.0.0.0"]["require"] == {"php": ">=8.1"}


def test_the_first_repository_listing_a_package_wins_and_a_failing_one_stops_the_lookup():
    other = {"acme/lib": {"9.0.0": version("acme/lib", "9.0.0", "9.0.0.0")}}
    chosen = resolve([memory_repo("https://a/", A), memory_repo("https://b/", other)],
                     ComposerOptions(requires=(("acme/lib", "*"),)))
    assert sorted(chosen.packages["acme/lib"]) == ["1.0.0.0", "1.1.0.0"] and chosen.repo_of["acme/lib"] == "https://a/"
    failed = resolve([memory_repo("https://a/", A, refuse=True), memory_repo("https://b/", other)],
                     ComposerOptions(requires=(("acme/lib", "*"),))).failures
    assert [f.error.exit_code for f in failed] == [3]


def test_a_lock_selects_exactly_its_versions(tmp_path):
    lock = tmp_path / "composer.lock"
    lock.write_text(json.dumps({"packages": [version("acme/lib", "1.0.0", "1.0.0.0")],
                                "packages-dev": [version("acme/dev", "0.1.0", "0.1.0.0")]}))
    repo = [memory_repo("https://a/", A)]
    chosen = resolve(repo, ComposerOptions(locks=(str(lock),)))
    assert sorted((n, vn) for n, vn, _ in chosen.entries()) == [("acme/lib", "1.0.0.0")]
    chosen = resolve(repo, ComposerOptions(locks=(str(lock),), dev=True))
    # acme/dev is in no repository: taken as the lock describes it, with its dist URL.
    assert sorted(chosen.packages) == ["acme/dev", "acme/lib"] and not chosen.failures


def test_prefetched_metadata_is_read_once_and_handed_to_the_repository():
    from magedl.mirror.composer.fetch import prefetch

    files = {"https://p/packages.json": {"packages": [], "metadata-url": "/p2/%package%.json",
                                         "available-packages": ["acme/lib", "acme/app"]}}
    for name, versions in A.items():
        files[f"https://p/p2/{name}.json"] = {"packages": {name: list(versions.values())}}
    asked = []

    def fetch(url):
        asked.append(url)
        if url not in files:
            raise NotFoundError(url)
        return json.dumps(files[url]).encode()

    repos = [ComposerRepository("https://p/", fetch)]
    selection = resolve(repos, ComposerOptions(requires=(("acme/app", "*"), ("nobody/else", "*"))),
                        prefetch=lambda names: prefetch(repos, names, 4))
    assert sorted(selection.packages) == ["acme/app", "acme/lib"]
    assert sorted(asked) == ["https://p/p2/acme/app.json", "https://p/p2/acme/lib.json", "https://p/packages.json"]


def test_each_level_asks_ahead_for_the_names_not_found_yet_without_a_scan_of_everything_found():
    # A closure of thousands of packages prefetches a batch of 64 requirements at a time: subtracting
    # every package found from each batch made the resolution quadratic.
    from magedl.mirror.composer.select import Resolver

    class NoScan(dict):
        def __iter__(self):
            raise AssertionError("every package found was scanned for one batch")

    asked = []
    resolver = Resolver([memory_repo("https://a/", A)], ComposerOptions(requires=(("acme/app", "*"),)),
                        lambda message: None, asked.append)
    resolver._found = NoScan()
    selection = resolver.resolve()
    assert sorted(selection.packages) == ["acme/app", "acme/lib"]
    assert asked == [["acme/app"], ["acme/lib", "acme/virtual"]]


def test_providers_files_are_prefetched_from_the_first_repository_listing_them():
    from magedl.mirror.composer.fetch import prefetch

    def package_file(name):
        return json.dumps({"packages": {name: A[name]}}).encode()

    sha = {name: hashlib.sha256(package_file(name)).hexdigest() for name in A}
    include = json.dumps({"providers": {name: {"sha256": sha[name]} for name in A}}).encode()
    files = {"https://m/packages.json": json.dumps({
        "packages": [], "providers-url": "/p/%package%$%hash%.json",
        "provider-includes": {"p/provider-ce$%hash%.json": {"sha256": hashlib.sha256(include).hexdigest()}}}).encode(),
        f"https://m/p/provider-ce%24{hashlib.sha256(include).hexdigest()}.json": include,
        **{f"https://m/p/{name}%24{sha[name]}.json": package_file(name) for name in A}}
    asked, threads = [], set()

    def fetch(url):
        asked.append(url)
        threads.add(threading.current_thread().name)
        if url not in files:
            raise NotFoundError(url)
        return files[url]

    providers, other = ComposerRepository("https://m/", fetch), memory_repo("https://b/", {"acme/lib": {}})
    prefetch([providers, other], ["acme/app", "acme/lib", "nobody/else"], jobs=4)
    packages = sorted(u for u in asked if "/p/acme/" in u)
    assert packages == sorted(f"https://m/p/{n}%24{sha[n]}.json" for n in A)
    assert any(t != threading.current_thread().name for t in threads)  # fetched by the pool
    assert providers.versions("acme/app") and providers.versions("acme/lib")
    assert sorted(u for u in asked if "/p/acme/" in u) == packages  # handed over, not fetched again


def test_a_locked_package_no_repository_lists_is_still_published_with_its_normalized_version(tmp_path):
    lock = tmp_path / "composer.lock"
    locked = {"name": "acme/private", "version": "2.1.0", "type": "library",
              "dist": {"type": "zip", "url": "https://git.example/acme/private/2.1.0.zip", "reference": "r"}}
    lock.write_text(json.dumps({"packages": [locked]}))
    chosen = resolve([memory_repo("https://a/", A)], ComposerOptions(locks=(str(lock),)))
    [(name, vn, entry)] = list(chosen.entries())
    assert (name, vn) == ("acme/private", "2.1.0.0") and entry["version_normalized"] == "2.1.0.0"


def test_a_lock_whose_dist_url_carries_a_password_is_refused_and_the_password_never_shown(tmp_path):
    lock = tmp_path / "composer.lock"
    locked = {"name": "acme/private", "version": "2.1.0", "type": "library",
              "dist": {"type": "zip", "url": "https://deploy:s3cret-lock-pw@git.example/p.zip"}}
    lock.write_text(json.dumps({"packages": [locked]}))
    chosen = resolve([memory_repo("https://a/", A)], ComposerOptions(locks=(str(lock),)))
    [failure] = chosen.failures
    assert failure.error.exit_code == 2 and "carries credentials" in str(failure.error)
    assert "s3cret-lock-pw" not in str(failure.error) and not chosen.packages


def test_branches_are_published_in_the_dev_file_and_read_back_with_the_tagged_versions(tmp_path):
    entries = {"acme/lib": [{"version": "dev-main", "version_normalized": "dev-main"},
                            {"version": "1.0.0", "version_normalized": "1.0.0.0"},
                            {"version": "2.x-dev", "version_normalized": "2.9999999.9999999.9999999-dev"}],
               "acme/tagged": [{"version": "1.0.0", "version_normalized": "1.0.0.0"}]}
    files = ci.render(entries, ci.DEFAULT_URL)
    assert sorted(files) == ["composer/p2/acme/lib.json", "composer/p2/acme/lib~dev.json",
                             "composer/p2/acme/tagged.json", "composer/packages.json"]
    dev = json.loads(files["composer/p2/acme/lib~dev.json"])["packages"]["acme/lib"]
    assert sorted(e["version"] for e in dev) == ["2.x-dev", "dev-main"]
    for rel, data in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    back = ci.read_index(tmp_path)
    assert sorted(e["version"] for e in back["acme/lib"]) == ["1.0.0", "2.x-dev", "dev-main"]


def test_a_branch_whose_name_is_no_file_name_gets_a_safe_unique_one():
    a = ci.dist_rel("acme/lib", "dev-feature/x", "zip")
    b = ci.dist_rel("acme/lib", "dev-feature_x", "zip")
    assert a.startswith("composer/dist/acme/lib/dev-feature_x-") and a.count("/") == 4 and a != b
    with pytest.raises(UnsafeNameError):
        ci.dist_rel("acme/lib", "../1.0", "zip")


def test_the_state_s_archive_records_are_read_in_path_order_alongside_the_planned_paths(tmp_path):
    from magedl.mirror.composer.plan import ComposerPlanner
    from magedl.mirror.model import Entry, Fingerprint
    from magedl.mirror.state import State

    state = State(tmp_path)
    held = {rel: Entry("m", rel, Fingerprint(1, 2, 3, 4), ({"name": "a/b"},), "s")
            for rel in ("composer/dist/a/b/1.zip", "composer/dist/a/b/3.zip", "composer/dist/z/z/1.zip",
                        "composer/dist0", "composer/distX", "file/a.zip")}
    with state.batch():
        for rel, e in held.items():
            state.set(rel, e)
    assert [rel for rel, _ in state.entries_in_order("composer/dist")] == [
        "composer/dist/a/b/1.zip", "composer/dist/a/b/3.zip", "composer/dist/z/z/1.zip"]
    planner = ComposerPlanner(tmp_path, state)
    wanted = ["composer/dist/a/a/1.zip", "composer/dist/a/b/1.zip", "composer/dist/a/b/2.zip",
              "composer/dist/a/b/3.zip", "composer/dist/zz/z/1.zip"]
    assert [(rel, row and row[2]) for rel, row in planner._stored(wanted)] == [  # its sha256
        ("composer/dist/a/a/1.zip", None), ("composer/dist/a/b/1.zip", "composer/dist/a/b/1.zip"),
        ("composer/dist/a/b/2.zip", None), ("composer/dist/a/b/3.zip", "composer/dist/a/b/3.zip"),
        ("composer/dist/zz/z/1.zip", None)]


SHA1 = "a" * 40


@pytest.mark.parametrize("text, agrees", [
    ('{"dist":{"type":"zip","url":"u"},"name":"a/b"}', True),  # no SHA-1 named: nothing to check
    ('{"dist":{"shasum":"","type":"zip"}}', True),
    ('{"dist":{"shasum":null,"type":"zip"}}', True),
    (f'{{"dist":{{"shasum":"{SHA1}","type":"zip"}}}}', True),
    (f'{{"dist":{{"shasum":"{SHA1.upper()}","type":"zip"}}}}', True),  # the planner compares it lower-cased
    (f'{{"dist":{{"shasum":"{"b" * 40}","type":"zip"}}}}', False),  # another SHA-1: the full path decides
    (f'{{"dist":{{"shasum":"{SHA1}0"}}}}', False),
    (f'{{"dist":{{"shasum":"{SHA1}"}},"extra":{{"shasum":"{SHA1}"}}}}', False),  # met twice: not searched further
])
def test_the_quick_path_checks_the_entry_sha1_against_the_one_recorded(text, agrees):
    from magedl.mirror.composer.plan import _shasum_agrees

    assert _shasum_agrees(text, SHA1) is agrees
