"""The advisory module on its own (issue 21): what is a full advisory, batches, bounds, failures, bookkeeping.

Network through ``responses``; the mirror end to end is test_advisories.py, the real Composer test_audit.py.
"""

import json
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from magedl.config import Settings
from magedl.emulator.composer_apps import ADVISORIES
from magedl.mirror.composer import advisories as adv
from magedl.mirror.composer.index import render
from magedl.service.api import Client
from magedl.service.retry import RetryPolicy

API = "https://packagist.example/api/security-advisories/"
FULL = dict(ADVISORIES[1], packageName="psr/log")


@pytest.fixture
def client():
    with Client(Settings("https://packagist.example/", None), retry=RetryPolicy(attempts=2, backoff=0)) as c:
        yield c


def answer(listed):
    return json.dumps({"advisories": listed or []})


@pytest.mark.parametrize("change", [
    {"title": None}, {"sources": []}, {"sources": [{"name": "GitHub"}]}, {"reportedAt": "yesterday"},
    {"affectedVersions": ">=2.0,<<3"}, {"affectedVersions": None}, {"advisoryId": ""}, {"title": "x" * 5000},
    {"link": 7},
])
def test_anything_composer_audit_would_refuse_is_no_full_advisory(change):
    assert adv.full_advisory("psr/log", FULL) is not None
    assert adv.full_advisory("psr/log", {**FULL, **change}) is None


def test_a_partial_advisory_as_upstream_p2_files_carry_is_no_full_advisory():
    assert adv.full_advisory("psr/log", {"advisoryId": "PKSA-1", "affectedVersions": "<1.0"}) is None


def test_a_full_advisory_keeps_only_what_composer_reads_and_names_its_package():
    out = adv.full_advisory("psr/log", {**FULL, "packageName": "evil/other", "extra": "x" * 100})
    assert out["packageName"] == "psr/log" and "extra" not in out


def test_render_publishes_advisories_in_p2_and_metadata_in_the_root():
    files = render({"psr/log": [{"version": "1.1.4", "version_normalized": "1.1.4.0"}]}, "http://m/composer/",
                   {"psr/log": [FULL]})
    assert json.loads(files["composer/packages.json"])["security-advisories"] == {"metadata": True}
    assert json.loads(files["composer/p2/psr/log.json"])["security-advisories"] == [FULL]
    plain = render({"psr/log": [{"version": "1.1.4"}]}, "http://m/composer/")
    assert all("security-advisories" not in json.loads(body) for body in plain.values())


@responses.activate
def test_names_go_in_batches_and_bad_entries_are_left_out_with_a_warning(client, tmp_path):
    names = [f"vendor/p{i:03d}" for i in range(250)]
    responses.get(API, body=answer({"vendor/p001": [dict(FULL, packageName="vendor/p001"),
                                                    {"advisoryId": "partial", "affectedVersions": "<1"}],
                                    "not/held": [FULL]}))
    warnings = []
    done = adv.refresh(client, (API,), names, tmp_path, None, warn=warnings.append)
    asked = [parse_qs(urlsplit(c.request.url).query)["packages[]"] for c in responses.calls]
    assert [len(a) for a in asked] == [100, 100, 50] and sum(asked, []) == names
    assert [a["advisoryId"] for a in done.advisories["vendor/p001"]] == [FULL["advisoryId"]]
    assert done.advisories["vendor/p000"] == [] and "not/held" not in done.advisories
    assert len(warnings) == 3 and all("partial" in w and "not a full advisory" in w for w in warnings)


@responses.activate
def test_a_source_that_fails_leaves_what_was_held_and_the_next_run_asks_everything(client, tmp_path):
    held = {"psr/log": [adv.full_advisory("psr/log", FULL)]}
    responses.get(API, body=answer({"psr/log": []}))
    adv.refresh(client, (API,), ["psr/log"], tmp_path, held, now=1000)
    responses.replace(responses.GET, API, body=b"x" * (adv.MAX_ANSWER_BYTES + 1))
    warnings = []
    done = adv.refresh(client, (API,), ["psr/log"], tmp_path, held, now=2000, warn=warnings.append)
    assert done.advisories == held and done.errors and "keeps the advisories it held" in warnings[0]
    responses.replace(responses.GET, API, body=answer({}))
    adv.refresh(client, (API,), ["psr/log"], tmp_path, held, now=3000)
    query = parse_qs(urlsplit(responses.calls[-1].request.url).query)
    assert query == {"packages[]": ["psr/log"]}  # asked by name, not updatedSince


@responses.activate
def test_a_transient_failure_is_retried(client, tmp_path):
    responses.get(API, status=503)
    responses.get(API, body=answer({"psr/log": [FULL]}))
    done = adv.refresh(client, (API,), ["psr/log"], tmp_path, None)
    assert len(responses.calls) == 2 and [a["cve"] for a in done.advisories["psr/log"]] == [FULL["cve"]]


@responses.activate
def test_updated_since_merges_by_advisory_id_and_a_week_later_everything_is_asked_again(client, tmp_path):
    responses.get(API, body=answer({"psr/log": [FULL]}))
    first = adv.refresh(client, (API,), ["psr/log"], tmp_path, None, now=100_000)
    changed = dict(FULL, title="Changed title")
    responses.replace(responses.GET, API, body=answer({"psr/log": [changed]}))
    second = adv.refresh(client, (API,), ["psr/log"], tmp_path, first.advisories, now=100_100)
    query = parse_qs(urlsplit(responses.calls[-1].request.url).query)
    assert query == {"updatedSince": [str(100_000 - adv.SKEW)]}
    assert [a["title"] for a in second.advisories["psr/log"]] == ["Changed title"]
    responses.replace(responses.GET, API, body=answer({}))  # withdrawn upstream
    third = adv.refresh(client, (API,), ["psr/log"], tmp_path, second.advisories, now=100_000 + adv.FULL_EVERY + 1)
    assert "packages" in responses.calls[-1].request.url and third.advisories == {"psr/log": []}


def test_sources_are_what_the_repositories_name_or_the_one_given():
    class Repo:
        url = "https://r/"

        def __init__(self, root):
            self._root = root

        def root(self):
            return self._root

        def resolve(self, ref):
            return "https://r" + ref if ref.startswith("/") else ref

    repos = [Repo({"security-advisories": {"metadata": True, "api-url": "/api/security-advisories/"}}),
             Repo({"packages": []}), Repo({"security-advisories": {"api-url": "https://u:pw@x/"}})]
    warnings = []
    assert adv.sources_of(repos, adv.AdvisoryOptions(), warnings.append) == ("https://r/api/security-advisories/",)
    assert len(warnings) == 1 and "pw" not in warnings[0]
    assert adv.sources_of(repos, adv.AdvisoryOptions(url=API)) == (API,)
    assert adv.sources_of(repos, adv.AdvisoryOptions(enabled=False)) == ()


def test_affecting_reads_composer_constraints():
    advisory = adv.full_advisory("magento/product-community-edition", ADVISORIES[0])
    assert adv.affecting([advisory], "2.4.7") == [advisory]
    assert adv.affecting([advisory], "2.4.7-p1") == [] and adv.affecting([advisory], "2.4.6-p6") == []
    assert adv.affecting([advisory], "2.4.6-p5") == [advisory] and adv.affecting([advisory], "not a version") == []


@responses.activate
def test_an_updated_since_answer_too_big_falls_back_to_asking_by_name_in_the_same_run(client, tmp_path):
    responses.get(API, body=answer({}))
    first = adv.refresh(client, (API,), ["psr/log"], tmp_path, None, now=100_000)
    responses.replace(responses.GET, API, body=b" " * (adv.MAX_ANSWER_BYTES + 1))
    responses.add(responses.GET, API, body=answer({"psr/log": [FULL]}))
    done = adv.refresh(client, (API,), ["psr/log"], tmp_path, first.advisories, now=100_100)
    queries = [parse_qs(urlsplit(c.request.url).query) for c in responses.calls[1:]]
    assert queries == [{"updatedSince": [str(100_000 - adv.SKEW)]}, {"packages[]": ["psr/log"]}]
    assert [a["advisoryId"] for a in done.advisories["psr/log"]] == [FULL["advisoryId"]] and not done.errors


@responses.activate
def test_a_name_no_source_could_be_asked_about_is_not_published_as_clean(client, tmp_path):
    responses.get(API, body=answer({}))
    first = adv.refresh(client, (API,), ["psr/log"], tmp_path, None, now=100_000)
    responses.replace(responses.GET, API, status=404)
    done = adv.refresh(client, (API,), ["psr/log", "vendor/new"], tmp_path, first.advisories, now=100_100,
                       warn=lambda message: None)
    assert done.errors and done.advisories == {"psr/log": []}  # vendor/new: no key, not "[]"
    files = render({"vendor/new": [{"version": "1.0.0"}], "psr/log": [{"version": "1.0.0"}]}, "http://m/c/",
                   done.advisories)
    assert "security-advisories" not in json.loads(files["composer/p2/vendor/new.json"])
    assert json.loads(files["composer/p2/psr/log.json"])["security-advisories"] == []
