"""Security advisories in a Composer mirror (issue 21): fetched while mirroring, published where Composer reads them.

Against the emulated packagist (tests/mirror/conftest.py), whose ``packages.json``
names its advisory API as packagist.org does, and which knows one advisory on
a Magento package (CVE-2024-34102 on magento/product-community-edition 2.4.7)
and one on a third-party package (monolog/monolog < 2.9.2). The real Composer
client's view is tests/mirror/composer/test_audit.py.
"""

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from clirun import run

from magedl.emulator.composer_apps import ADVISORIES
from magedl.mirror.composer import advisories as adv

PROJECT = "magento/project-community-edition"
CVE = "CVE-2024-34102"


def mirror(capsys, mdir, repos, *argv, json_out=True):
    return run(capsys, *(("--json",) if json_out else ()), "mirror", str(mdir), "--composer-repo", repos.magento_url,
               "--composer-repo", repos.packagist_url, *argv)


def p2doc(mdir, name):
    return json.loads((mdir / "composer" / "p2" / f"{name}.json").read_text())


def advisory_gets(repos):
    return repos.gets(repos.packagist_app, "api/security-advisories")


def asked_names(path):
    return parse_qs(urlsplit(path).query).get("packages[]", [])


def test_the_mirror_publishes_full_advisories_where_composer_reads_them(repos, capsys, tmp_path):
    mdir = tmp_path / "m"
    code, out, err = mirror(capsys, mdir, repos, "--composer-require", f"{PROJECT}:2.4.7",
                            "--composer-require", "monolog/monolog:2.9.1")
    assert code == 0, err
    root = json.loads((mdir / "composer" / "packages.json").read_text())
    assert root["security-advisories"] == {"metadata": True}  # no api-url: nothing to ask behind the gap
    product = p2doc(mdir, "magento/product-community-edition")["security-advisories"]
    assert [a["cve"] for a in product] == [CVE]
    assert set(product[0]) >= {"advisoryId", "packageName", "remoteId", "title", "link", "cve", "affectedVersions",
                               "source", "reportedAt", "composerRepository", "severity", "sources"}
    assert product[0] == adv.full_advisory("magento/product-community-edition", ADVISORIES[0])
    assert [a["advisoryId"] for a in p2doc(mdir, "monolog/monolog")["security-advisories"]] == [
        "PKSA-emu2-monolog-0002"]
    assert p2doc(mdir, "psr/log")["security-advisories"] == []  # asked: none known
    # Every name the mirror holds, Magento's (from repo.magento.com) included, asked in one batch.
    gets = advisory_gets(repos)
    assert len(gets) == 1
    assert set(asked_names(gets[0])) == {p.name[:-5] and str(p.relative_to(mdir / "composer" / "p2"))[:-5]
                                         for p in (mdir / "composer" / "p2").rglob("*.json")}
    # Listed in SHA256SUMS, and the summary names what is affected (still mirrored).
    sums = (mdir / "SHA256SUMS").read_text()
    assert "composer/p2/magento/product-community-edition.json" in sums
    assert "advisories affect 2 versions mirrored" in err
    assert "magento/product-community-edition 2.4.7" in err and "monolog/monolog 2.9.1" in err
    assert "2 advisories carried" in err
    rows = json.loads(out)
    monolog = [r for r in rows if r["name"] == "monolog/monolog" and r["version"] == "2.9.1"]
    assert [a["advisoryId"] for a in monolog[0]["advisories"]] == ["PKSA-emu2-monolog-0002"]
    assert [r for r in rows if r["name"] == "psr/log"][0]["advisories"] == []
    meta = [r for r in rows if r["name"] == "magento/product-community-edition"]  # a metapackage: no archive row
    assert [a["cve"] for r in meta for a in r["advisories"]] == [CVE]


def test_a_rerun_asks_once_what_changed_plus_the_new_names(repos, capsys, tmp_path):
    mdir = tmp_path / "m"
    assert mirror(capsys, mdir, repos, "--composer-require", "psr/log:^1")[0] == 0
    first = advisory_gets(repos)
    assert len(first) == 1 and "updatedSince" not in first[0]
    code, _, err = mirror(capsys, mdir, repos, "--composer-require", "psr/log:^1")
    assert code == 0, err
    again = advisory_gets(repos)[len(first):]
    assert len(again) == 1 and "updatedSince=" in again[0] and not asked_names(again[0])  # one request
    # An advisory published upstream meanwhile, and a package newly selected: both arrive.
    new = dict(ADVISORIES[1], advisoryId="PKSA-new-psr-log", packageName="psr/log", affectedVersions="<1.1.4",
               sources=[{"name": "GitHub", "remoteId": "GHSA-new"}])
    repos.packagist_app.add_advisory(new)
    code, _, err = mirror(capsys, mdir, repos, "--composer-require", "psr/log:^1",
                          "--composer-require", "monolog/monolog:2.9.1")
    assert code == 0, err
    third = advisory_gets(repos)[len(first) + 1:]
    assert len(third) == 2 and "updatedSince=" in third[0]
    assert asked_names(third[1]) == ["monolog/monolog"]  # only the name the mirror did not hold
    assert [a["advisoryId"] for a in p2doc(mdir, "psr/log")["security-advisories"]] == ["PKSA-new-psr-log"]
    assert [a["advisoryId"] for a in p2doc(mdir, "monolog/monolog")["security-advisories"]] == [
        "PKSA-emu2-monolog-0002"]


def test_changed_p2_files_go_into_the_delta_file(repos, capsys, tmp_path):
    mdir, delta = tmp_path / "m", tmp_path / "delta"
    assert mirror(capsys, mdir, repos, "--composer-require", "psr/log:^1", "--diff-file", str(delta))[0] == 0
    repos.packagist_app.add_advisory(dict(ADVISORIES[1], advisoryId="PKSA-x", packageName="psr/log",
                                          affectedVersions="<1.0"))
    assert mirror(capsys, mdir, repos, "--composer-require", "psr/log:^1", "--diff-file", str(delta))[0] == 0
    # The pages that show psr/log's advisories changed with its p2 file (issue 24), and nothing else.
    assert delta.read_text().splitlines() == ["composer/browse/psr.html", "composer/browse/psr/log.html",
                                              "composer/index.html", "composer/p2/psr/log.json", "index.html",
                                              "SHA256SUMS"]


def test_no_composer_advisories_carries_none_and_asks_nothing(repos, capsys, tmp_path):
    mdir = tmp_path / "m"
    assert mirror(capsys, mdir, repos, "--composer-require", "psr/log:^1")[0] == 0
    before = len(advisory_gets(repos))
    code, _, err = mirror(capsys, mdir, repos, "--composer-require", "psr/log:^1", "--no-composer-advisories")
    assert code == 0, err
    assert len(advisory_gets(repos)) == before
    assert "security-advisories" not in json.loads((mdir / "composer" / "packages.json").read_text())
    assert "security-advisories" not in p2doc(mdir, "psr/log")


def test_a_release_only_run_keeps_the_advisories_held(repos, capsys, tmp_path):
    mdir = tmp_path / "m"
    assert mirror(capsys, mdir, repos, "--composer-require", "monolog/monolog:2.9.1")[0] == 0
    before = p2doc(mdir, "monolog/monolog")
    code, _, err = run(capsys, "mirror", str(mdir), "--composer-url", "http://mirror.example/composer/")
    assert code == 0, err
    after = p2doc(mdir, "monolog/monolog")
    assert after["security-advisories"] == before["security-advisories"]
    assert after["packages"] != before["packages"]  # rewritten for the new URL, advisories kept


def test_a_given_source_is_asked_instead_and_a_failing_one_never_stops_the_run(repos, capsys, tmp_path):
    mdir = tmp_path / "m"
    bad = repos.magento_url + "nothing-here/"  # repo.magento.com answers 404 there
    code, out, err = mirror(capsys, mdir, repos, "--composer-require", "psr/log:^1", "--composer-advisories", bad)
    assert code == 0, err
    assert "advisories:" in err and "nothing-here" in err
    assert not advisory_gets(repos)  # packagist's own API is not asked when a source is given
    assert "security-advisories" not in p2doc(mdir, "psr/log")  # never asked: not claimed clean
    code, _, err = mirror(capsys, mdir, repos, "--composer-require", "psr/log:^1")
    assert code == 0, err
    assert p2doc(mdir, "psr/log")["security-advisories"] == []


def test_a_lock_with_an_affected_version_is_warned_about(repos, capsys, tmp_path):
    lock = tmp_path / "composer.lock"
    lock.write_text(json.dumps({"packages": [{"name": "monolog/monolog", "version": "2.9.1"},
                                             {"name": "psr/log", "version": "1.1.4"}]}))
    code, _, err = mirror(capsys, tmp_path / "m", repos, "--composer-lock", str(lock), json_out=False)
    assert code == 0, err
    assert f"{lock}: monolog/monolog 2.9.1 is affected by PKSA-emu2-monolog-0002" not in err  # cve None: remoteId
    assert f"{lock}: monolog/monolog 2.9.1 is affected by monolog/monolog/emulated-1.yaml" in err
    assert "psr/log 1.1.4 is affected" not in err


@pytest.mark.parametrize("argv", [["--composer-advisories", "ftp://x/"],
                                  ["--composer-advisories", "https://u:secret@packagist.org/api/"],
                                  ["--composer-advisories", "https://packagist.org/", "--no-composer-advisories"],
                                  ["--no-composer-advisories"]])
def test_bad_advisory_options_are_refused_before_anything_happens(capsys, tmp_path, argv):
    code, _, err = run(capsys, "mirror", str(tmp_path / "m"), *argv)
    assert code == 2
    assert "secret" not in err and not (tmp_path / "m").exists()


def test_verify_catches_an_advisory_changed_after_the_run(repos, capsys, tmp_path):
    mdir = tmp_path / "m"
    assert mirror(capsys, mdir, repos, "--composer-require", "monolog/monolog:2.9.1")[0] == 0
    assert run(capsys, "verify", str(mdir))[0] == 0
    path = mdir / "composer" / "p2" / "monolog" / "monolog.json"
    doc = json.loads(path.read_text())
    doc["security-advisories"] = []  # someone hiding an advisory on the way across
    path.write_text(json.dumps(doc))
    code, out, _ = run(capsys, "verify", str(mdir))
    assert code == 6 and "composer/p2/monolog/monolog.json: BAD" in out


def test_credentials_go_only_to_the_host_they_were_found_for(repos, capsys, tmp_path):
    assert mirror(capsys, tmp_path / "a", repos, "--composer-require", "psr/log:^1")[0] == 0
    asked = [r for r in repos.packagist.log if r.path.startswith("/api/security-advisories/")]
    assert asked and not any(r.had_authorization for r in asked)  # the keys are repo.magento.com's
    on_magento = repos.magento_url + "api/security-advisories/"
    code, _, err = mirror(capsys, tmp_path / "b", repos, "--composer-require", "psr/log:^1",
                          "--composer-advisories", on_magento)
    assert code == 0, err
    asked = [r for r in repos.magento.log if r.path.startswith("/api/security-advisories/")]
    assert asked and all(r.had_authorization for r in asked)
    assert repos.keys["commerce"][1] not in err
