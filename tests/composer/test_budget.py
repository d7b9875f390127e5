"""Issue 19 item 4: metadata bodies fetched ahead are held within one byte budget and dropped once parsed."""

import json

from magedl.composer.budget import ByteBudget
from magedl.composer.repository import ComposerRepository

NAMES = [f"acme/lib-{i:02d}" for i in range(20)]


def p2(name):
    return json.dumps({"packages": {name: [{"name": name, "version": "1.0.0", "version_normalized": "1.0.0.0",
                                            "description": "x" * 1000}]}}).encode()


def repo(budget):
    files = {"https://repo.example/packages.json": json.dumps(
        {"packages": [], "metadata-url": "/p2/%package%.json", "available-packages": NAMES}).encode()}
    files.update({f"https://repo.example/p2/{n}.json": p2(n) for n in NAMES})
    fetched = []

    def fetch(url):
        fetched.append(url)
        return files[url]

    r = ComposerRepository("https://repo.example/", fetch)
    r.budget = budget
    return r, fetched


def test_prefetched_bodies_stay_within_the_budget_and_are_given_back_once_parsed():
    budget = ByteBudget(5 * len(p2(NAMES[0])))
    r, fetched = repo(budget)
    peak = []
    real_take = budget.take

    def take(n):
        ok = real_take(n)
        peak.append(budget.held)
        return ok

    budget.take = take
    r.prefetch(NAMES, jobs=4)
    assert max(peak) <= budget.limit and len(r._ready) <= 5
    for name in NAMES:  # every lookup still answers: what did not fit is fetched when needed
        assert r.versions(name, dev=False)[0]["name"] == name
    assert budget.held == 0 and r._ready == {}  # parsed bodies are not kept
    assert len([u for u in fetched if "/p2/" in u]) <= len(NAMES) + 4  # at most the in-flight ones twice


def test_a_shared_budget_spans_repositories():
    budget = ByteBudget(3 * len(p2(NAMES[0])))
    one, _ = repo(budget)
    two, _ = repo(budget)
    one.prefetch(NAMES[:10], jobs=1)
    two.prefetch(NAMES[10:], jobs=1)
    assert len(one._ready) + len(two._ready) == 3 and budget.held <= budget.limit


def test_the_metadata_cache_spools_bodies_instead_of_holding_them_until_it_is_saved(tmp_path):
    from pathlib import Path

    from magedl.composer.cache import MetadataCache

    cache = MetadataCache(tmp_path / "mirror")
    digest = cache.keep(p2("acme/lib-00"))
    assert all(isinstance(v, Path) for v in cache._pending.values())  # no body bytes held by the cache
    assert cache.body(digest) == p2("acme/lib-00")
    assert not (tmp_path / "mirror").exists()  # nothing written in the mirror before save()
    cache.save()
    assert cache.body(digest) == p2("acme/lib-00")
