"""An up-to-date Composer re-run does only what changed upstream (issue 18 item 1, the Composer part).

Every document the last resolution read is unchanged: its selection is reused, nothing is resolved
(:mod:`magedl.mirror.composer.recall`). A package's p2 files are rendered only when what they are
made from changed (:mod:`magedl.mirror.composer.publish`). The runs go through
:func:`~magedl.mirror.composer.fetch.select` and :class:`Mirror`, as ``magedl mirror`` does.
"""

import json

import pytest
from clirun import run
from mirror.composer.mirrorkit import PROJECT, mirror

from magedl.config import Settings
from magedl.mirror.composer import advisories as advisories_module
from magedl.mirror.composer import index, publish
from magedl.mirror.composer import plan as plan_module
from magedl.mirror.composer import select as select_module
from magedl.mirror.composer.fetch import select
from magedl.mirror.composer.recall import MEMO
from magedl.mirror.composer.select import ComposerOptions
from magedl.mirror.core import Mirror
from magedl.mirror.index import read_sums
from magedl.mirror.model import Status
from magedl.service.api import Client


def p2_files(mdir):
    return {p.relative_to(mdir).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_ino)
            for p in (mdir / index.P2).rglob("*.json")}


def no_reading(*args, **kwargs):
    raise AssertionError("every p2 file read back")


@pytest.fixture
def counting(monkeypatch):
    """``counting()``: the names whose p2 files were rendered and the resolutions run since the last call."""
    rendered, resolved = [], []
    render, resolve = index.render_package, select_module.resolve

    def render_package(name, *args, **kwargs):
        rendered.append(name)
        return render(name, *args, **kwargs)

    def counted_resolve(*args, **kwargs):
        resolved.append(1)
        return resolve(*args, **kwargs)

    monkeypatch.setattr(index, "render_package", render_package)
    monkeypatch.setattr(select_module, "resolve", counted_resolve)

    def since_last():
        out = (sorted(set(rendered)), len(resolved))
        rendered.clear()
        resolved.clear()
        return out

    return since_last


def test_an_unchanged_upstream_is_not_resolved_again_and_no_p2_file_is_rendered(repos, tmp_path, counting,
                                                                                  monkeypatch):
    mdir = tmp_path / "m"
    statuses = mirror(mdir, repos)
    names, resolutions = counting()
    assert set(statuses.values()) == {Status.FETCHED} and resolutions == 1 and len(names) > 5
    before, sums = p2_files(mdir), (mdir / "SHA256SUMS").read_bytes()
    assert any(b'"dist"' not in data for data, _, _ in before.values())  # a metapackage among them
    # The metapackages the p2 files list come from the memo of the last index write.
    monkeypatch.setattr(plan_module, "read_index", no_reading)
    statuses = mirror(mdir, repos)
    assert set(statuses.values()) == {Status.PRESENT}
    assert counting() == ([], 0)  # the last resolution reused; every package's p2 files left as they were
    assert p2_files(mdir) == before and (mdir / "SHA256SUMS").read_bytes() == sums
    listed = read_sums(mdir / "SHA256SUMS")[0]
    assert all(rel in listed for rel in before)  # still listed, with the sha256 remembered for them


def test_the_command_line_rerun_reads_no_p2_file_back_for_the_advisories(repos, tmp_path, capsys, counting,
                                                                          monkeypatch):
    mdir = tmp_path / "m"
    argv = ("mirror", str(mdir), "--composer-repo", repos.magento_url, "--composer-repo", repos.packagist_url,
            "--composer-require", f"{PROJECT}:2.4.7")
    assert run(capsys, *argv)[0] == 0
    before = p2_files(mdir)
    assert b"security-advisories" in before[index.p2_rel("psr/log")][0]
    counting()
    monkeypatch.setattr(plan_module, "read_index", no_reading)
    monkeypatch.setattr(advisories_module, "walk_files", no_reading)
    code, _, err = run(capsys, *argv)
    assert code == 0, err
    assert counting() == ([], 0) and p2_files(mdir) == before


def test_a_changed_upstream_document_re_renders_only_its_package(repos, tmp_path, counting):
    mdir = tmp_path / "m"
    mirror(mdir, repos)
    counting()
    before = p2_files(mdir)
    for release in repos.graph.package("psr/log").releases:
        release.entry["description"] = "a new description upstream"
    repos.packagist_app.touch("psr/log")
    statuses = mirror(mdir, repos)
    names, resolutions = counting()
    assert names == ["psr/log"] and resolutions == 1  # resolved again: the feed names a file it read
    assert set(statuses.values()) == {Status.PRESENT}
    after = p2_files(mdir)
    changed = sorted(rel for rel in after if after[rel] != before.get(rel))
    assert changed == ["composer/p2/psr/log.json"]
    assert b"a new description upstream" in after["composer/p2/psr/log.json"][0]
    mirror(mdir, repos)
    assert counting() == ([], 0)  # and the run after that reuses the new resolution


def test_other_options_or_a_touched_p2_file_are_never_taken_as_unchanged(repos, tmp_path, counting):
    mdir = tmp_path / "m"
    mirror(mdir, repos)
    counting()
    statuses = mirror(mdir, repos, requires=(("psr/log", "^3"),))
    names, resolutions = counting()
    assert resolutions == 1 and Status.KEEP in statuses.values()  # other options: resolved again
    p2 = mdir / "composer/p2/psr/log.json"
    p2.write_bytes(p2.read_bytes().replace(b"psr/log", b"psr/lol"))
    mirror(mdir, repos, requires=(("psr/log", "^3"),))
    names, resolutions = counting()
    assert names == ["psr/log"] and resolutions == 0  # a p2 file changed on disk is rendered again
    assert b"psr/lol" not in p2.read_bytes()


def test_a_damaged_or_foreign_selection_memo_is_only_a_miss(repos, tmp_path, counting):
    mdir = tmp_path / "m"
    statuses = mirror(mdir, repos)
    counting()
    memo = mdir / MEMO
    head, *packages = memo.read_text().splitlines()
    doc = json.loads(head)
    url = next(u for u in doc["reads"] if "/p2/" in u)
    doc["reads"][url] = "0" * 64  # a document whose body is not the one read now
    memo.write_text("\n".join([json.dumps(doc), *packages]) + "\n")
    assert mirror(mdir, repos) == {rel: Status.PRESENT for rel in statuses}
    assert counting()[1] == 1
    memo.write_text("{not json")
    assert mirror(mdir, repos) == {rel: Status.PRESENT for rel in statuses}
    assert counting()[1] == 1
    memo.write_text("\n".join(memo.read_text().splitlines()[:-1]) + "\n")  # a package line lost
    assert mirror(mdir, repos) == {rel: Status.PRESENT for rel in statuses}
    assert counting()[1] == 1
    assert mirror(mdir, repos) == {rel: Status.PRESENT for rel in statuses}
    assert counting()[1] == 0
    head, *packages = memo.read_text().splitlines()
    doc = json.loads(head)
    doc["version"] = 2  # an older magedl's selection (no dist type beside each entry): resolved again
    memo.write_text("\n".join([json.dumps(doc), *packages]) + "\n")
    assert mirror(mdir, repos) == {rel: Status.PRESENT for rel in statuses}
    assert counting()[1] == 1


def test_a_selection_with_failures_is_not_kept(repos, tmp_path):
    mdir = tmp_path / "m"
    mirror(mdir, repos)
    assert (mdir / MEMO).exists()
    options = ComposerOptions(requires=(("psr/log", "^3"), ("acme/nothing-here", "*")),
                              repos=(repos.magento_url, repos.packagist_url))
    with Client(Settings(repos.magento_url, None)) as client:
        _, selection = select(client, options, mdir)
        assert selection.failures
        with Mirror(mdir).lock():
            selection.save()
    assert not (mdir / MEMO).exists()


def test_publish_writes_the_p2_files_and_lists_their_digests(tmp_path):
    held = {}
    part = publish.ComposerPart(metadata={"acme/meta": {"1.0.0.0": {"name": "acme/meta", "version": "1.0",
                                                                      "version_normalized": "1.0.0.0"}}})
    files = publish.index_files(tmp_path, part, held)
    assert sorted(files) == ["composer/p2/acme/meta.json", "composer/packages.json"]
    assert files.sha256("composer/p2/acme/meta.json") == files.on_disk["composer/p2/acme/meta.json"]
    assert json.loads(files["composer/p2/acme/meta.json"])["packages"]["acme/meta"][0]["version"] == "1.0"
    assert list(files.fresh) == ["composer/packages.json"]


def test_an_up_to_date_rerun_asks_the_state_to_write_no_archive_record_nor_reads_one_per_query(
        repos, tmp_path, monkeypatch):
    from magedl.mirror.state import State

    mdir = tmp_path / "m"
    mirror(mdir, repos)
    written, asked, set_record, get_record = [], [], State.set, State.get

    def counted_set(self, rel, entry):
        written.append(rel)
        return set_record(self, rel, entry)

    def counted_get(self, rel):
        asked.append(rel)
        return get_record(self, rel)

    monkeypatch.setattr(State, "set", counted_set)
    monkeypatch.setattr(State, "get", counted_get)
    statuses = mirror(mdir, repos)
    assert set(statuses.values()) == {Status.PRESENT} and len(statuses) > 5
    assert [rel for rel in written if rel.startswith(index.DIST + "/")] == []
    # The plan reads the archives' records in one ordered query, alongside its sorted paths.
    assert [rel for rel in asked if rel.startswith(index.DIST + "/")] == []
    # A record that differs from the entry now listed is still written (the run stays the state's truth).
    monkeypatch.setattr(plan_module, "_recorded", lambda *args: False)
    monkeypatch.setattr(plan_module, "_as_recorded", lambda *args: False)  # each archive planned as an item
    written.clear()
    mirror(mdir, repos)
    assert len([rel for rel in written if rel.startswith(index.DIST + "/")]) == len(statuses)


def test_the_selection_is_kept_a_line_at_a_time_never_held_whole_as_text(tmp_path):
    import tracemalloc

    from magedl.mirror.composer.recall import Reads, recall, remember
    from magedl.mirror.composer.select import Selection

    options = ComposerOptions(requires=((PROJECT, "2.4.7"),), repos=("http://127.0.0.1:9/",))
    reads = Reads(lambda url: b"{}")
    reads("http://127.0.0.1:9/packages.json")
    packages = {f"v/p{i}": {f"1.{j}.0.0": {"name": f"v/p{i}", "version": f"1.{j}.0", "version_normalized":
                                           f"1.{j}.0.0", "description": "x" * 200, "source": {"url": "s"}}
                            for j in range(3)} for i in range(2000)}
    selection = Selection(packages=packages, repo_of={name: "http://127.0.0.1:9/" for name in packages})
    tracemalloc.start()
    try:
        remember(tmp_path, options, reads, selection, [])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    size = (tmp_path / MEMO).stat().st_size
    assert size > 1_000_000 and peak < size / 2  # the old writer held the text three times over
    last = recall(tmp_path, options, reads, None)
    assert last["packages"]["v/p7"]["1.2.0.0"] == {k: v for k, v in packages["v/p7"]["1.2.0.0"].items()
                                                   if k != "source"}
