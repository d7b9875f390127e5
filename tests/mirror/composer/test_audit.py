"""The real ``composer audit`` behind the air gap, against the advisories a magedl mirror carries (issue 21).

The connected side mirrors from the emulated repo.magento.com and packagist
(whose advisory API knows CVE-2024-34102 on magento/product-community-edition
2.4.7 and an advisory on monolog/monolog 2.9.1); then both are stopped, and
the mirror is served by ``magedl serve`` or by a plain static web server.
Debian's Composer installs a project from it (packagist.org disabled, no
other network) and ``composer audit --locked`` must report exactly the
advisories that affect the locked versions, with their CVE and title, and
exit non-zero as Composer does; a project whose versions are clean exits 0.
Skipped, with the reason, where php or composer is missing.
"""

import json

import pytest
from clirun import run
from composerkit import COMPOSER, MISSING, PHP, composer, run_composer

pytestmark = pytest.mark.skipif(not (COMPOSER and PHP), reason=MISSING)
PRODUCT = "magento/product-community-edition"


def project(tmp_path, env, url, name, require):
    """A project installed from the mirror at *url* (its lock made there too)."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / "composer.json").write_text(json.dumps({"name": f"acme/{name}", "require": require,
                                                      "repositories": [{"type": "composer", "url": url}]}))
    composer(env, folder, "update")
    return folder


@pytest.mark.parametrize("how", ["static", "magedl serve"])
def test_composer_audit_inside_the_gap_reports_what_affects_the_locked_versions(repos, composer_env, far_side, capsys,
                                                                                tmp_path, how):
    mdir = tmp_path / "mirror"

    def make(url):
        extra = ("--composer-url", url) if url else ()
        code, _, err = run(capsys, "-q", "mirror", str(mdir), "--composer-repo", repos.magento_url, "--composer-repo",
                           repos.packagist_url, "--composer-require", f"{PRODUCT}:2.4.7", "--composer-require",
                           "monolog/monolog:2.9.1", "--composer-require", "psr/log:^1", *extra)
        assert code == 0, err
        repos.stop()  # the far side has no network but the mirror

    url = far_side(how, mdir, make)

    shop = project(tmp_path, composer_env, url, "shop", {PRODUCT: "2.4.7", "monolog/monolog": "2.9.1"})
    audit = run_composer(composer_env, shop, "audit", "--locked", "--format=json")
    assert audit.returncode != 0, audit.stdout + audit.stderr  # Composer's way of saying "advisories found"
    found = json.loads(audit.stdout)["advisories"]
    assert sorted(found) == [PRODUCT, "monolog/monolog"]
    product = list(found[PRODUCT].values()) if isinstance(found[PRODUCT], dict) else found[PRODUCT]
    assert [(a["cve"], a["affectedVersions"]) for a in product] == [
        ("CVE-2024-34102", ">=2.4.7,<2.4.7-p1|>=2.4.6,<2.4.6-p6|>=2.4.5,<2.4.5-p8|<2.4.4-p9")]
    assert "CosmicSting" in product[0]["title"]
    table = run_composer(composer_env, shop, "audit", "--locked")
    assert "CVE-2024-34102" in table.stdout + table.stderr and "Log record injection" in table.stdout + table.stderr

    clean = project(tmp_path, composer_env, url, "clean", {"psr/log": "^1"})
    audit = run_composer(composer_env, clean, "audit", "--locked")
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "No security vulnerability advisories found" in audit.stdout + audit.stderr
