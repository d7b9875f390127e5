"""Re-running an up-to-date Composer mirror costs a few requests and reads no archive (issue 11, speed).

The metadata cache (``DIR/.magedl/composer-cache``): provider and package
files named by their sha256 are reused without a request; other files are
revalidated (304); packagist's changes feed vouches for the p2 files it does
not name. Requests are counted on the emulated repositories' logs. The runs
go through :func:`magedl.mirror.composer.fetch.select` and :class:`Mirror`,
as ``magedl mirror`` does.
"""

import json

import pytest
from clirun import run

from magedl.composer.cache import CACHE
from magedl.config import Settings
from magedl.fsutil import make_dirs
from magedl.mirror import plan as mirror_plan
from magedl.mirror.composer.fetch import select
from magedl.mirror.composer.patterns import parse_require
from magedl.mirror.composer.select import ComposerOptions
from magedl.mirror.core import Mirror
from magedl.mirror.model import Status
from magedl.service.api import Client
from magedl.transfer.options import TransferOptions

PROJECT = "magento/project-community-edition"


def mirror(mdir, repos, *requires, dry_run=False):
    """One ``magedl mirror DIR --composer-require ...`` run: the selection, then the items' statuses."""
    options = ComposerOptions(requires=tuple(map(parse_require, requires)) or ((PROJECT, "2.4.7"),),
                              repos=(repos.magento_url, repos.packagist_url))
    with Client(Settings(repos.magento_url, None)) as client:
        notes, selection = select(client, options, mdir)
        if dry_run:
            return selection, {}
        make_dirs(mdir)
        with Mirror(mdir).lock():
            selection.cache.save()
            done = Mirror(mdir)
            items = []
            done.run(None, done.plan(None, (), composer=selection), TransferOptions(), on_item=items.append,
                     composer_client=client, composer_keys=notes, every_file=True)  # unchanged ones too
    assert not selection.failures, selection.failures
    return selection, {it.rel: it.status for it in items}


@pytest.fixture
def counted(repos):
    """``counted()``: the requests both repositories got since the last call, as (method, path)."""
    seen = [0, 0]

    def since_last():
        logs = [repos.magento_app.requests, repos.packagist_app.requests]
        new = [r for log, n in zip(logs, seen) for r in log[n:]]
        seen[:] = [len(log) for log in logs]
        return new

    return since_last


def archives(requests):
    return [p for _, p in requests if "/archives/" in p or "/dists/" in p]


def test_a_rerun_of_an_unchanged_closure_makes_three_requests_and_reads_no_archive(repos, counted, tmp_path,
                                                                                  monkeypatch):
    mdir = tmp_path / "m"
    _, statuses = mirror(mdir, repos)
    cold = counted()
    assert set(statuses.values()) == {Status.FETCHED} and len(archives(cold)) == len(statuses)
    assert any(p.startswith("/p/magento/") for _, p in cold)  # the providers layout, package by package
    held = sorted(p.name for p in (mdir / CACHE).iterdir())
    assert "index.json" in held and len(held) > 10

    def no_reading(*args, **kwargs):
        raise AssertionError("an archive was read")

    monkeypatch.setattr(mirror_plan, "file_digests", no_reading)  # fingerprints decide, as for releases
    _, statuses = mirror(mdir, repos)
    warm = counted()
    assert set(statuses.values()) == {Status.PRESENT}
    assert sorted(p.split("?")[0] for _, p in warm) == ["/metadata/changes.json", "/packages.json", "/packages.json"]
    for server in (repos.magento, repos.packagist):
        assert [r.status for r in server.log if r.path == "/packages.json"] == [200, 304]
    assert sorted(p.name for p in (mdir / CACHE).iterdir()) == held


def test_a_package_the_changes_feed_names_is_revalidated_and_a_resync_revalidates_all(repos, counted, tmp_path):
    mdir = tmp_path / "m"
    mirror(mdir, repos)
    mirror(mdir, repos)
    counted()
    repos.packagist_app.touch("psr/log")
    mirror(mdir, repos)
    assert [p for _, p in counted() if p.startswith("/p2/")] == ["/p2/psr/log.json"]
    repos.packagist_app.resync()
    before = len(repos.packagist.log)
    mirror(mdir, repos)
    again = [r for r in repos.packagist.log[before:] if r.path.startswith("/p2/")]
    assert len(again) == 8 and {r.status for r in again} == {304}  # every p2 file revalidated, no body sent
    counted()
    mirror(mdir, repos)
    assert not [p for _, p in counted() if p.startswith("/p2/")]  # the feed vouches for them again


def test_p2_files_without_a_changes_feed_are_revalidated_with_304(composer_upstream, tmp_path):
    repos = composer_upstream(layout="metadata-url")
    repos.use_keys("commerce")
    mdir = tmp_path / "m"
    mirror(mdir, repos)
    before = len(repos.magento.log)
    _, statuses = mirror(mdir, repos)
    again = repos.magento.log[before:]
    assert set(statuses.values()) == {Status.PRESENT}
    assert again and {r.status for r in again} == {304}
    assert all(r.headers.get("If-None-Match") and r.headers.get("If-Modified-Since") for r in again)


def test_a_damaged_or_missing_cache_costs_requests_never_a_wrong_answer(repos, counted, tmp_path):
    mdir = tmp_path / "m"
    mirror(mdir, repos)
    counted()
    bodies = [p for p in (mdir / CACHE).iterdir() if p.name != "index.json"]
    for body in bodies:
        body.write_bytes(body.read_bytes() + b" ")  # no longer the bytes its name says
    _, statuses = mirror(mdir, repos)
    assert set(statuses.values()) == {Status.PRESENT}
    assert len(counted()) > 10 and sorted(p.name for p in (mdir / CACHE).iterdir() if p.name != "index.json") == \
        sorted(p.name for p in bodies)  # fetched again, kept again
    (mdir / CACHE / "index.json").write_text("{not json")
    _, statuses = mirror(mdir, repos)
    assert set(statuses.values()) == {Status.PRESENT}


def test_a_dry_run_writes_no_cache_and_a_linked_cache_is_not_followed(repos, tmp_path, capsys):
    mdir = tmp_path / "m"
    mirror(mdir, repos, "psr/log", dry_run=True)
    assert not mdir.exists()
    mdir.mkdir()
    (mdir / ".magedl").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (mdir / CACHE).symlink_to(outside)
    selection, statuses = mirror(mdir, repos, "psr/log")
    assert set(statuses.values()) == {Status.FETCHED} and list(outside.iterdir()) == []


def test_the_cache_keeps_only_what_the_last_complete_run_used(repos, tmp_path):
    mdir = tmp_path / "m"
    mirror(mdir, repos)
    whole = {u for u in json.loads((mdir / CACHE / "index.json").read_text())["urls"]}
    mirror(mdir, repos, "psr/log:^3")
    narrow = {u for u in json.loads((mdir / CACHE / "index.json").read_text())["urls"]}
    assert narrow < whole and any(u.endswith("/p2/psr/log.json") for u in narrow)


def test_the_command_line_rerun_makes_a_few_requests(repos, capsys, tmp_path):
    mdir = tmp_path / "m"
    argv = ("mirror", str(mdir), "--composer-repo", repos.magento_url, "--composer-repo", repos.packagist_url,
            "--composer-require", f"{PROJECT}:2.4.7")
    assert run(capsys, *argv)[0] == 0
    apps = (repos.magento_app, repos.packagist_app)
    before = [len(app.requests) for app in apps]
    code, _, err = run(capsys, *argv)
    assert code == 0, err
    again = [r for app, n in zip(apps, before) for r in app.requests[n:]]
    advisories = [r for r in again if r[1].startswith("/api/security-advisories/")]
    assert len(advisories) == 1  # what changed since the last run (issue 21)
    assert len(again) - len(advisories) <= 3 and not archives(again)
