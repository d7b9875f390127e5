"""Issue 18 item 2: ``--composer-require 'VENDOR/*'`` or ``'*'`` mirrors what repositories offer; exclusions.

Against the emulated repo.magento.com (providers: its provider listing is what
the keys see) and packagist (its list API when it does not list everything).
"""

import json

from clirun import run

from magedl.emulator.composer_graph import MAGENTO, PACKAGIST, build_graph

GRAPH = build_graph()


def mirror(capsys, mdir, repos, *argv):
    return run(capsys, "--json", "mirror", str(mdir), "--composer-repo", repos.magento_url,
               "--composer-repo", repos.packagist_url, *argv)


def held(mdir):
    """Package name -> versions published in the mirror's p2 files."""
    root = json.loads((mdir / "composer" / "packages.json").read_text())
    out = {}
    for name in root["available-packages"]:
        doc = json.loads((mdir / "composer" / "p2" / f"{name}.json").read_text())
        out[name] = sorted(e["version"] for e in doc["packages"][name])
    return out


def test_a_vendor_pattern_mirrors_every_package_the_keys_see(composer_upstream, capsys, tmp_path):
    repos = composer_upstream()
    repos.use_keys("open-source")
    code, out, err = mirror(capsys, tmp_path / "m", repos, "--composer-require", "magento/*")
    assert code == 0, err
    names = set(held(tmp_path / "m"))
    open_source = {n for n in GRAPH.names(MAGENTO) if GRAPH.package(n).edition == "ce"}
    assert open_source <= names  # every one its provider listing offers
    assert not {"magento/product-enterprise-edition", "magento/module-staging"} & names  # not theirs
    assert "laminas/laminas-code" in names  # and their dependencies, from packagist
    assert held(tmp_path / "m")["magento/framework"] == ["103.0.7", "103.0.7-p1"]


def test_star_with_a_constraint_uses_packagists_list_api_and_skips_what_does_not_match(composer_upstream, capsys,
                                                                                     tmp_path):
    repos = composer_upstream()
    repos.use_keys("commerce")
    repos.packagist_app.lists_all = False  # as the real packagist: no available-packages, a list API
    code, out, err = mirror(capsys, tmp_path / "m", repos, "--composer-require", "psr/*:^2.0",
                            "--composer-require", "symfony/*:^6.0")
    assert code == 0, err
    got = held(tmp_path / "m")
    assert got["psr/log"] == ["2.0.0"] and "2.0.2" in got["psr/container"]  # 1.x only if a dependency needs it
    assert got["symfony/console"] == ["6.4.4"] and "6.4.4" in got["symfony/string"]
    assert "symfony/polyfill-mbstring" in got  # a dependency of symfony/console, though no 6.x of its own
    listed = repos.gets(repos.packagist_app, "packages/list.json")
    assert listed and all("filter=" in p for p in listed)


def test_everything_minus_excluded_patterns(composer_upstream, capsys, tmp_path):
    repos = composer_upstream()
    repos.use_keys("commerce")
    code, out, err = mirror(capsys, tmp_path / "m", repos, "--composer-require", "*",
                            "--composer-exclude", "magento/module-*", "--composer-exclude", "psr/log")
    assert code == 0, err
    names = set(held(tmp_path / "m"))
    everything = set(GRAPH.names(MAGENTO)) | set(GRAPH.names(PACKAGIST))
    assert names == {n for n in everything if not n.startswith("magento/module-") and n != "psr/log"}
    # Left out as dependencies too: nothing asked for their metadata.
    assert not [p for m, p in repos.magento_app.requests if "module-" in p]
    assert run(capsys, "verify", str(tmp_path / "m"))[0] == 0


def test_a_pattern_that_matches_nothing_creates_nothing(repos, capsys, tmp_path):
    code, out, err = mirror(capsys, tmp_path / "m", repos, "--composer-require", "nosuchvendor/*")
    assert code == 5 and "matches it" in err and "nosuchvendor/*" in err
    assert not (tmp_path / "m").exists()


def test_bad_patterns_are_usage_errors(repos, capsys, tmp_path):
    code, out, err = mirror(capsys, tmp_path / "m", repos, "--composer-require", "ma?ento/*")
    assert code == 2 and "pattern" in err and "Traceback" not in err
    code, out, err = mirror(capsys, tmp_path / "m", repos, "--composer-require", "psr/log",
                            "--composer-exclude", "../*")
    assert code == 2 and "--composer-exclude" in err
    code, out, err = run(capsys, "mirror", str(tmp_path / "m"), "--composer-exclude", "psr/*")
    assert code == 2 and "--composer-require" in err
    assert not (tmp_path / "m").exists()
