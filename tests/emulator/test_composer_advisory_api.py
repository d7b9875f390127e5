"""The emulated packagist's security advisory API (issue 21), called as a pure handler.

What packagist.org answers: ``GET /api/security-advisories/?packages[]=NAME...`` and
``?updatedSince=UNIX_TIME`` with ``{"advisories": {NAME: [...]}}`` (``[]`` when empty, as PHP
writes an empty map), 400 with neither; its ``packages.json`` names the API, and p2 files carry
the partial form.
"""

import json
import time

from magedl.composer.constraints import parse_constraint
from magedl.composer.semver import normalize
from magedl.emulator.composer_apps import ADVISORIES, PackagistApp
from magedl.emulator.composer_graph import build_graph
from magedl.mirror.composer.advisories import full_advisory

BASE = "http://packagist.test"


def get(app, path):
    reply = app.handle("GET", path, base_url=BASE)
    return reply.status, json.loads(reply.body)


def test_packages_json_names_the_api_and_both_query_forms_answer():
    app = PackagistApp(build_graph())
    assert get(app, "/packages.json")[1]["security-advisories"] == {
        "metadata": True, "api-url": f"{BASE}/api/security-advisories/"}
    status, doc = get(app, "/api/security-advisories/?packages[]=monolog/monolog&packages[]=psr/log")
    assert status == 200 and list(doc["advisories"]) == ["monolog/monolog"]
    status, doc = get(app, "/api/security-advisories/?updatedSince=0")
    assert sorted(doc["advisories"]) == ["magento/product-community-edition", "monolog/monolog"]
    assert get(app, "/api/security-advisories/?updatedSince=4000000000")[1] == {"advisories": []}
    assert get(app, "/api/security-advisories/")[0] == 400


def test_updated_since_lists_what_was_added_since_and_both_filters_combine():
    app = PackagistApp(build_graph())
    before = int(time.time()) - 1
    app.add_advisory(dict(ADVISORIES[1], advisoryId="PKSA-new", packageName="psr/log"))
    doc = get(app, f"/api/security-advisories/?updatedSince={before}")[1]
    assert [a["advisoryId"] for a in doc["advisories"]["psr/log"]] == ["PKSA-new"] and len(doc["advisories"]) == 1
    doc = get(app, f"/api/security-advisories/?updatedSince={before}&packages[]=monolog/monolog")[1]
    assert doc == {"advisories": []}


def test_the_fixture_advisories_are_full_and_affect_the_versions_they_should():
    graph = build_graph()
    for advisory in ADVISORIES:
        assert full_advisory(advisory["packageName"], advisory) is not None
    affected = {(a["packageName"], r.version) for a in ADVISORIES
                for r in graph.package(a["packageName"]).releases
                if not r.is_dev and parse_constraint(a["affectedVersions"]).matches(normalize(r.version))}
    assert affected == {("magento/product-community-edition", "2.4.7"), ("monolog/monolog", "2.9.1")}


def test_p2_files_carry_the_partial_form_as_packagist_does():
    app = PackagistApp(build_graph())
    doc = get(app, "/p2/monolog/monolog.json")[1]
    assert doc["security-advisories"] == [{"advisoryId": "PKSA-emu2-monolog-0002",
                                           "affectedVersions": ADVISORIES[1]["affectedVersions"]}]
    assert get(app, "/p2/psr/log.json")[1]["security-advisories"] == []
