"""``magedl mirror`` with Composer packages, against the emulated repo.magento.com and packagist on loopback.

repo.magento.com plays on 127.0.0.1 (providers layout, Marketplace keys in
COMPOSER_AUTH), packagist on 127.0.0.2 (p2, minified); archives are the
fixture graph's real zips (``repos``, tests/mirror/conftest.py).
"""

import hashlib
import json
import subprocess

import pytest
from clirun import run

from magedl.emulator.composer_graph import build_graph
from magedl.mirror.composer.index import DEFAULT_URL

GRAPH = build_graph()
PROJECT = "magento/project-community-edition"


def mirror(capsys, mdir, repos, *argv):
    return run(capsys, "--json", "mirror", str(mdir), "--composer-repo", repos.magento_url,
               "--composer-repo", repos.packagist_url, *argv)


def rows(out):
    return {r["file_name"]: r for r in json.loads(out)}


def p2(mdir, name):
    return json.loads((mdir / "composer" / "p2" / f"{name}.json").read_text())["packages"][name]


def sums(mdir):
    return {line.split("  ", 1)[1]: line.split("  ", 1)[0] for line in (mdir / "SHA256SUMS").read_text().splitlines()}


def closure_archives():
    """(name, version_normalized) of every archive the 2.4.7 project closure holds (known from the fixture)."""
    out = set()
    for name, package in GRAPH.packages.items():
        for release in package.releases:
            if release.archive is not None:
                out.add((name, release.version_normalized))
    return out


def test_a_require_closure_is_mirrored_byte_for_byte_and_indexed(repos, capsys, tmp_path):
    mdir = tmp_path / "m"
    code, out, err = mirror(capsys, mdir, repos, "--composer-require", f"{PROJECT}:2.4.7")
    assert code == 0, err
    fetched = {f for f, r in rows(out).items() if r["status"] == "fetched"}
    assert fetched and all(f.startswith("composer/dist/") for f in fetched)
    assert not repos.gets(repos.magento_app, "info/")  # the downloads feed is not asked
    # Every archive is the upstream bytes; each p2 entry names it with its SHA-1.
    for name in ("magento/magento2-base", "psr/log", "magento/framework"):
        for entry in p2(mdir, name):
            rel = "composer/" + entry["dist"]["url"][len(DEFAULT_URL):]
            data = (mdir / rel).read_bytes()
            assert data == GRAPH.release(name, entry["version"]).archive
            assert entry["dist"]["shasum"] == hashlib.sha1(data).hexdigest()
            assert "source" not in entry and "notification-url" not in entry and "uid" not in entry
            assert entry["dist"]["url"].startswith(DEFAULT_URL + "dist/")
    assert [e["version"] for e in p2(mdir, "psr/log")] == ["3.0.0", "2.0.0", "1.1.4"]  # newest first
    assert [e["version"] for e in p2(mdir, "monolog/monolog")] == ["2.9.2", "2.9.1"]  # ^2.7, no dev-main
    assert "dist" not in p2(mdir, "magento/product-community-edition")[0]  # a metapackage
    root = json.loads((mdir / "composer" / "packages.json").read_text())
    assert root["metadata-url"] == "/composer/p2/%package%.json"
    assert "magento/product-enterprise-edition" not in root["available-packages"]
    assert set(root["available-packages"]) >= {PROJECT, "psr/log", "magento/product-community-edition"}
    listed = sums(mdir)
    assert {f for f in listed if f.startswith("composer/dist/")} == fetched
    assert "composer/packages.json" in listed and "composer/p2/psr/log.json" in listed
    check = subprocess.run(["sha256sum", "--strict", "-c", "SHA256SUMS"], cwd=mdir, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    assert json.loads((mdir / ".magedl" / "composer.json").read_text())["url"] == DEFAULT_URL
    code, out, err = run(capsys, "verify", str(mdir))
    assert code == 0, out + err
    # A re-run fetches nothing and rewrites nothing.
    before = {p: p.stat().st_mtime_ns for p in (mdir / "composer").rglob("*.json")}
    code, out, err = mirror(capsys, mdir, repos, "--composer-require", f"{PROJECT}:2.4.7")
    assert code == 0 and {r["status"] for r in rows(out).values()} == {"present"}
    assert {p: p.stat().st_mtime_ns for p in (mdir / "composer").rglob("*.json")} == before


def test_newest_and_php_narrow_the_closure_and_a_failing_chain_is_named(repos, capsys, tmp_path):
    mdir = tmp_path / "m"
    code, out, err = mirror(capsys, mdir, repos, "--composer-require", "psr/log", "--composer-newest")
    assert code == 0, err
    assert [e["version"] for e in p2(mdir, "psr/log")] == ["3.0.0"]
    code, out, err = mirror(capsys, mdir, repos, "--composer-require", "symfony/console:5.4.36",
                            "--composer-php", "7.3")
    assert code == 5
    assert "psr/container ^1.1" in err and "symfony/service-contracts 2.5.2 <- symfony/console 5.4.36" in err
    assert "PHP 7.3" in err
    failed = [r for r in json.loads(out) if r["status"] == "failed"]
    assert [r["name"] for r in failed] == ["psr/container"] and failed[0]["exit_code"] == 5
    # The rest of the closure was mirrored all the same.
    assert [e["version"] for e in p2(mdir, "symfony/console")] == ["5.4.36"]
    assert (mdir / "composer" / "p2" / "symfony" / "polyfill-mbstring.json").exists()


def test_an_unknown_package_and_an_unsatisfiable_constraint_exit_5(repos, capsys, tmp_path):
    code, _, err = mirror(capsys, tmp_path / "m", repos, "--composer-require", "psr/log:^9")
    assert code == 5 and "psr/log ^9" in err and "3.0.0" in err
    code, _, err = mirror(capsys, tmp_path / "m", repos, "--composer-require", "nobody/nothing")
    assert code == 5 and "nobody/nothing" in err and "none of the Composer repositories" in err


def test_missing_and_refused_keys_exit_3_and_say_where_they_were_looked_for(repos, capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("COMPOSER_AUTH")
    code, _, err = mirror(capsys, tmp_path / "m", repos, "--composer-require", f"{PROJECT}:2.4.7")
    assert code == 3 and "no keys" in err and "magedl keys" in err
    assert "the COMPOSER_AUTH environment variable" in err and "auth.json" in err  # where they were looked for
    wrong = "0123456789abcdef" * 2
    repos.use_keys("commerce", private=wrong)
    code, _, err = mirror(capsys, tmp_path / "m", repos, "--composer-require", f"{PROJECT}:2.4.7")
    assert code == 3 and "refused" in err and "COMPOSER_AUTH" in err
    assert "Your Magento authentication keys are invalid" in err  # the keys check explanation: the server's word
    assert wrong not in err and repos.keys["commerce"][0] not in err  # neither key is shown


def test_an_archive_the_keys_may_not_fetch_exits_4_and_the_others_are_kept(repos, capsys, tmp_path):
    repos.use_keys("lapsed")
    mdir = tmp_path / "m"
    code, out, err = mirror(capsys, mdir, repos, "--composer-require", "magento/framework:103.0.7")
    assert code == 4 and "not entitled" in err
    statuses = rows(out)
    assert statuses["composer/dist/magento/framework/103.0.7.0.zip"]["status"] == "failed"
    assert statuses["composer/dist/psr/log/3.0.0.0.zip"]["status"] == "fetched"
    assert [e["version"] for e in p2(mdir, "psr/log")] == ["3.0.0", "2.0.0", "1.1.4"]
    assert not (mdir / "composer" / "p2" / "magento" / "framework.json").exists()  # nothing of it is held


def test_a_commerce_package_with_open_source_keys_exits_4_as_keys_check_says(repos, capsys, tmp_path):
    repos.use_keys("open-source")
    code, _, err = mirror(capsys, tmp_path / "m", repos, "--composer-require", "magento/product-enterprise-edition")
    assert code == 4 and "which see only: Open Source" in err and "Commerce" in err
    code, _, _ = run(capsys, "keys", "check", "--repo-url", repos.magento_url,
                     "--package", "magento/product-enterprise-edition")
    assert code == 4
    code, _, err = mirror(capsys, tmp_path / "m", repos, "--composer-require", "acme/no-such-package")
    assert code == 5 and "in none of the Composer repositories" in err


def test_a_fetched_archive_is_not_read_back_for_its_sha1(repos, capsys, tmp_path, monkeypatch):
    # The SHA-1 is computed as the bytes arrive, on the download's thread: reading each archive back on the
    # thread that lands them cost it eight system calls per archive (docs/scale.md, the Composer cold run).
    from magedl.mirror.composer import fetch as fetch_module

    def read_back(*args, **kwargs):
        raise AssertionError("an archive read back for its SHA-1")

    monkeypatch.setattr(fetch_module, "file_digests", read_back)
    code, out, _ = mirror(capsys, tmp_path / "m", repos, "--composer-require", "magento/module-store:101.2.7")
    fetched = [r for rel, r in rows(out).items() if rel.startswith("composer/dist/")]
    assert code == 0 and fetched and all(r["status"] == "fetched" for r in fetched)


def test_a_sha1_mismatch_exits_6_and_the_archive_is_not_kept(repos, capsys, tmp_path):
    release = GRAPH.release("magento/module-store", "101.2.7")
    repos.magento_app.tamper(release.dist_path)
    mdir = tmp_path / "m"
    code, out, err = mirror(capsys, mdir, repos, "--composer-require", "magento/module-store:101.2.7")
    assert code == 6 and "SHA-1 mismatch" in err
    assert not (mdir / "composer" / "dist" / "magento" / "module-store" / "101.2.7.0.zip").exists()
    assert not (mdir / "composer" / "p2" / "magento" / "module-store.json").exists()
    assert p2(mdir, "magento/framework")  # the others are
    repos.magento_app.untamper()
    code, out, _ = mirror(capsys, mdir, repos, "--composer-require", "magento/module-store:101.2.7")
    assert code == 0 and rows(out)["composer/dist/magento/module-store/101.2.7.0.zip"]["status"] == "fetched"


def test_packages_are_kept_without_composer_options_even_with_prune_and_urls_rewritten_alone(
        repos, capsys, tmp_path, env):
    mdir = tmp_path / "m"
    assert mirror(capsys, mdir, repos, "--composer-require", "psr/log")[0] == 0
    held = sorted(p.relative_to(mdir).as_posix() for p in (mdir / "composer" / "dist").rglob("*.zip"))
    # --composer-url alone: nothing fetched, every dist URL rewritten, the index follows.
    asked = len(repos.requests)
    code, out, err = run(capsys, "mirror", str(mdir), "--composer-url", "https://mirror.example/c")
    assert code == 0, err
    assert len(repos.requests) == asked
    assert all(e["dist"]["url"].startswith("https://mirror.example/c/dist/") for e in p2(mdir, "psr/log"))
    assert json.loads((mdir / "composer" / "packages.json").read_text())["metadata-url"] == "/c/p2/%package%.json"
    assert run(capsys, "verify", str(mdir))[0] == 0
    # A release run without Composer options keeps them, under the URL last given.
    code, out, err = run(capsys, "--json", "mirror", str(mdir), "--type", "ce-patch")
    assert code == 0, err
    assert {f for f, r in rows(out).items() if f.startswith("composer/")} == set(held)
    assert {r["status"] for f, r in rows(out).items() if f.startswith("composer/")} == {"keep"}
    assert p2(mdir, "psr/log")[0]["dist"]["url"].startswith("https://mirror.example/c/")
    # ... even with --prune (tests/mirror/composer/test_prune_parts.py).
    code, out, err = run(capsys, "--json", "mirror", str(mdir), "--type", "ce-patch", "--prune")
    assert code == 0, err
    assert {r["status"] for f, r in rows(out).items() if f.startswith("composer/")} == {"keep"}
    assert run(capsys, "verify", str(mdir))[0] == 0


def test_prune_narrows_the_composer_part_and_the_delta_lists_composer_files(repos, capsys, tmp_path):
    mdir, diff = tmp_path / "m", tmp_path / "delta.txt"
    code, _, err = mirror(capsys, mdir, repos, "--composer-require", "psr/log", "--diff-file", str(diff))
    assert code == 0, err
    first = set(diff.read_text().splitlines())
    assert {"composer/packages.json", "composer/p2/psr/log.json", "SHA256SUMS",
            "composer/dist/psr/log/1.1.4.0.zip"} <= first
    code, out, err = mirror(capsys, mdir, repos, "--composer-require", "psr/log:^3", "--prune", "--diff-file",
                            str(diff))
    assert code == 0, err
    assert rows(out)["composer/dist/psr/log/1.1.4.0.zip"]["status"] == "pruned"
    assert [e["version"] for e in p2(mdir, "psr/log")] == ["3.0.0"]
    # The pages that show psr/log's versions changed with it, and no other page.
    assert set(diff.read_text().splitlines()) == {"composer/p2/psr/log.json", "SHA256SUMS", "index.html",
                                                  "composer/index.html", "composer/browse/psr.html",
                                                  "composer/browse/psr/log.html"}
    assert run(capsys, "verify", str(mdir))[0] == 0


def test_a_failed_resolution_never_prunes(repos, capsys, tmp_path, monkeypatch):
    mdir = tmp_path / "m"
    assert mirror(capsys, mdir, repos, "--composer-require", "magento/module-store:101.2.7")[0] == 0
    monkeypatch.delenv("COMPOSER_AUTH")
    code, out, _ = mirror(capsys, mdir, repos, "--composer-require", "magento/module-store:101.2.7", "--prune")
    assert code == 3
    assert (mdir / "composer" / "dist" / "magento" / "module-store" / "101.2.7.0.zip").exists()
    assert p2(mdir, "magento/module-store")


def test_a_lock_is_mirrored_exactly(repos, capsys, tmp_path):
    chosen = [("psr/log", "1.1.4"), ("magento/framework", "103.0.7-p1"), ("monolog/monolog", "2.9.1")]
    base = {n: (repos.magento_url if n.startswith("magento/") else repos.packagist_url) for n, _ in chosen}
    lock = {"packages": [GRAPH.entry(GRAPH.release(n, v), base[n]) for n, v in chosen[:2]],
            "packages-dev": [GRAPH.entry(GRAPH.release(*chosen[2]), base[chosen[2][0]])]}
    path = tmp_path / "composer.lock"
    path.write_text(json.dumps(lock))
    mdir = tmp_path / "m"
    code, out, err = mirror(capsys, mdir, repos, "--composer-lock", str(path))
    assert code == 0, err
    assert sorted(f for f in rows(out)) == ["composer/dist/magento/framework/103.0.7.0-patch1.zip",
                                            "composer/dist/psr/log/1.1.4.0.zip"]
    code, out, err = mirror(capsys, mdir, repos, "--composer-lock", str(path), "--composer-dev")
    assert code == 0 and rows(out)["composer/dist/monolog/monolog/2.9.1.0.zip"]["status"] == "fetched"


def test_dry_run_plans_composer_archives_and_changes_nothing(repos, capsys, tmp_path):
    mdir = tmp_path / "m"
    code, out, err = run(capsys, "mirror", str(mdir), "--composer-repo", repos.magento_url, "--composer-repo",
                         repos.packagist_url, "--composer-require", "psr/log", "--dry-run")
    assert code == 0, err
    line = next(line for line in out.splitlines() if "psr/log/3.0.0.0.zip" in line)
    assert line.split()[0] == "fetch" and line.split()[2] in ("B", "KiB")  # the size, from a HEAD
    assert not mdir.exists() and not repos.gets(repos.packagist_app, "dists/")


def test_verify_names_a_bad_composer_archive_and_a_p2_entry_without_its_archive(repos, capsys, tmp_path):
    mdir = tmp_path / "m"
    assert mirror(capsys, mdir, repos, "--composer-require", "psr/log")[0] == 0
    dist = mdir / "composer" / "dist" / "psr" / "log"
    data = bytearray((dist / "3.0.0.0.zip").read_bytes())
    data[10] ^= 1
    (dist / "3.0.0.0.zip").write_bytes(bytes(data))
    (dist / "2.0.0.0.zip").unlink()
    code, out, _ = run(capsys, "verify", str(mdir))
    assert code == 6
    assert "composer/dist/psr/log/3.0.0.0.zip: BAD (sha256 differs from SHA256SUMS; SHA-1 differs from " \
           "composer/p2/psr/log.json)" in out
    assert "composer/dist/psr/log/2.0.0.0.zip: MISSING" in out


@pytest.mark.parametrize("argv, message", [
    (("--composer-require", "Not A Name"), "not vendor/name"),
    (("--composer-require", "psr/log:^^1"), "invalid version constraint"),
    (("--composer-lock", "/no/such/composer.lock"), "no such file"),
    (("--composer-url", "ftp://x/"), "expected http(s)"),
    (("--composer-url", "https://user:secret@x/"), "no user or password"),
    (("--composer-php", "eight"), "not a PHP version"),
    (("--composer-newest",), "give --composer-require or --composer-lock too"),
])
def test_bad_composer_options_are_usage_errors_before_anything_is_done(capsys, tmp_path, argv, message):
    code, _, err = run(capsys, "mirror", str(tmp_path / "m"), *argv)
    assert code == 2 and message in err and "secret" not in err
    assert not (tmp_path / "m").exists()


def test_links_in_the_composer_part_are_refused_or_replaced_never_followed(repos, capsys, tmp_path):
    mdir, outside = tmp_path / "m", tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    assert mirror(capsys, mdir, repos, "--composer-require", "psr/log")[0] == 0
    # composer/dist as a link: refused before anything is read, written or deleted.
    (mdir / "composer" / "dist").rename(tmp_path / "dist")
    (mdir / "composer" / "dist").symlink_to(outside)
    code, _, err = mirror(capsys, mdir, repos, "--composer-require", "psr/log", "--prune")
    assert code == 1 and "composer/dist is a symbolic link" in err
    (mdir / "composer" / "dist").unlink()
    (tmp_path / "dist").rename(mdir / "composer" / "dist")
    # A vendor folder of p2 as a link: the index is written in a real folder, the outside is untouched.
    (mdir / "composer" / "p2" / "psr" / "log.json").unlink()
    (mdir / "composer" / "p2" / "psr").rmdir()
    (mdir / "composer" / "p2" / "psr").symlink_to(outside)
    code, _, err = mirror(capsys, mdir, repos, "--composer-require", "psr/log")
    assert code == 0, err
    assert not (mdir / "composer" / "p2" / "psr").is_symlink() and p2(mdir, "psr/log")
    assert sorted(p.name for p in outside.iterdir()) == ["precious.txt"]
    # A link among the archives is an entry to prune, and verify names it.
    (mdir / "composer" / "dist" / "psr" / "evil.zip").symlink_to(outside / "precious.txt")
    code, out, _ = run(capsys, "verify", str(mdir))
    assert code == 6 and "composer/dist/psr/evil.zip: BAD (a symbolic link" in out
    code, out, _ = mirror(capsys, mdir, repos, "--composer-require", "psr/log", "--prune")
    assert code == 0 and rows(out)["composer/dist/psr/evil.zip"]["status"] == "pruned"
    assert (outside / "precious.txt").read_text() == "keep me"


def test_a_composer_only_run_keeps_release_files_even_with_prune(repos, env, capsys, tmp_path):
    mdir = tmp_path / "m"
    assert run(capsys, "mirror", str(mdir), "--type", "ce-patch")[0] == 0
    releases = {f for f in sums(mdir) if f.startswith("file/")}
    feed = (mdir / "info" / "json").read_bytes()
    env.clear_log()
    code, out, err = mirror(capsys, mdir, repos, "--composer-require", "psr/log", "--prune")
    assert code == 0, err
    assert not env.log  # the downloads service was not asked
    assert {f"file/{f}" for f, r in rows(out).items() if r["status"] == "keep"} == releases
    assert {f for f in sums(mdir) if f.startswith("file/")} == releases
    assert (mdir / "info" / "json").read_bytes() == feed
    assert "release files are kept" in err
    assert run(capsys, "verify", str(mdir))[0] == 0


def test_a_composer_selection_that_selects_nothing_creates_no_mirror(repos, capsys, tmp_path):
    code, _, err = mirror(capsys, tmp_path / "m", repos, "--composer-require", "nobody/nothing",
                          "--composer-require", "psr/log:^9")
    assert code == 5 and "nobody/nothing" in err and "psr/log ^9" in err
    assert not (tmp_path / "m").exists()


def test_a_failed_update_keeps_the_good_copy_and_its_index(repos, capsys, tmp_path):
    """Upstream re-publishes an archive (new SHA-1) but serves bytes that do not match it."""
    mdir = tmp_path / "m"
    rel = "composer/dist/magento/module-store/101.2.7.0.zip"
    assert mirror(capsys, mdir, repos, "--composer-require", "magento/module-store:101.2.7")[0] == 0
    good = (mdir / rel).read_bytes()
    release = repos.graph.release("magento/module-store", "101.2.7")  # the graph the repositories serve
    old_sha1 = release.entry["dist"]["shasum"]
    release.entry["dist"]["shasum"] = "0" * 40  # the listing changes ...
    repos.magento_app.republish()
    repos.magento_app.tamper(release.dist_path)  # ... and the bytes served match neither
    try:
        code, out, err = mirror(capsys, mdir, repos, "--composer-require", "magento/module-store:101.2.7")
    finally:
        release.entry["dist"]["shasum"] = old_sha1
        repos.magento_app.republish()
        repos.magento_app.untamper()
    assert rows(out)[rel]["action"] == "update"
    assert code == 6 and "SHA-1 mismatch" in err
    assert (mdir / rel).read_bytes() == good  # the old copy stays until a new one verifies
    assert sums(mdir)[rel] == hashlib.sha256(good).hexdigest()
    [entry] = [e for e in p2(mdir, "magento/module-store") if e["version_normalized"] == "101.2.7.0"]
    assert entry["dist"]["shasum"] == hashlib.sha1(good).hexdigest()
    assert not list((mdir / ".magedl").rglob("*.zip*"))  # nothing unverified left in incoming either
    assert run(capsys, "verify", str(mdir))[0] == 0


def test_composer_archives_are_not_called_unverified_by_the_transfer(repos, capsys, tmp_path):
    code, _, err = mirror(capsys, tmp_path / "m", repos, "--composer-require", "magento/module-store:101.2.7")
    assert code == 0 and "SHA-1 verified" in err
    assert "the feed gives no md5" not in err  # the mirror checks the SHA-1 itself; no contradicting warning


def test_a_branch_named_outright_or_locked_is_read_from_the_dev_file_and_published_there(repos, capsys, tmp_path):
    mdir = tmp_path / "m"
    code, out, err = mirror(capsys, mdir, repos, "--composer-require", "monolog/monolog:dev-main")
    assert code == 0, err
    assert repos.gets(repos.packagist_app, "p2/monolog/monolog~dev.json")  # where packagist keeps branches
    assert "composer/dist/monolog/monolog/dev-main.zip" in rows(out)
    dev = json.loads((mdir / "composer" / "p2" / "monolog" / "monolog~dev.json").read_text())
    assert [e["version"] for e in dev["packages"]["monolog/monolog"]] == ["dev-main"]
    assert p2(mdir, "monolog/monolog") == []  # the tagged file holds no branch
    assert "composer/p2/monolog/monolog~dev.json" in sums(mdir)
    code, out, err = run(capsys, "verify", str(mdir))
    assert code == 0, out + err
    code, out, err = mirror(capsys, mdir, repos, "--composer-require", "monolog/monolog:dev-main")
    assert code == 0 and {r["status"] for r in rows(out).values()} == {"present"}
    # A lock that pins the branch (as Magento's pins its testing framework at dev-develop).
    lock = tmp_path / "composer.lock"
    lock.write_text(json.dumps({"packages": [GRAPH.entry(GRAPH.release("monolog/monolog", "dev-main"),
                                                         repos.packagist_url)]}))
    code, out, err = mirror(capsys, tmp_path / "m2", repos, "--composer-lock", str(lock))
    assert code == 0, err
    assert rows(out)["composer/dist/monolog/monolog/dev-main.zip"]["status"] == "fetched"


def test_a_requirement_without_a_branch_constraint_never_reads_the_dev_file(repos, capsys, tmp_path):
    code, out, err = mirror(capsys, tmp_path / "m", repos, "--composer-require", "monolog/monolog:^2.7")
    assert code == 0, err
    assert not repos.gets(repos.packagist_app, "p2/monolog/monolog~dev.json")
    assert not (tmp_path / "m" / "composer" / "p2" / "monolog" / "monolog~dev.json").exists()
