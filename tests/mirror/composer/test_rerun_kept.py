"""A release-only re-run of a mirror that holds Composer archives too (issue 18).

With no Composer options the held archives are kept; one present as its state row records it (fingerprint,
digests, a record) costs no plan item and no state write (:attr:`ComposerPart.kept`), yet stays listed in the
p2 files and ``SHA256SUMS`` byte for byte, and ``--json`` still reports it.
"""

import json

from clirun import run
from mirror.composer.test_prune_parts import both_parts, composer_sums, rows

from magedl.mirror.core import Mirror
from magedl.mirror.state import State


def p2_files(mdir):
    return {p.relative_to(mdir).as_posix(): p.read_bytes() for p in sorted((mdir / "composer").rglob("*.json"))}


def spy(monkeypatch):
    """The plans made and the paths the state is asked to write, from now on."""
    plans, written = [], []
    plan, set_ = Mirror.plan, State.set
    monkeypatch.setattr(Mirror, "plan", lambda self, *a, **k: plans.append(plan(self, *a, **k)) or plans[-1])
    monkeypatch.setattr(State, "set", lambda self, rel, entry: written.append(rel) or set_(self, rel, entry))
    return plans, written


def test_a_release_only_rerun_makes_no_item_and_no_write_per_held_archive(repos, env, capsys, tmp_path,
                                                                          monkeypatch):
    mdir = tmp_path / "m"
    held = both_parts(capsys, mdir, repos)
    archives = {rel for rel in held if rel.startswith("composer/dist/")}
    before, sums = p2_files(mdir), (mdir / "SHA256SUMS").read_bytes()
    plans, written = spy(monkeypatch)
    code, _, err = run(capsys, "mirror", str(mdir), "--type", "ce-patch")
    assert code == 0, err
    part = plans[-1].composer
    assert part.items == [] and part.kept == archives
    assert not [rel for rel in written if rel.startswith("composer/")]
    assert p2_files(mdir) == before and (mdir / "SHA256SUMS").read_bytes() == sums


def test_a_held_archive_changed_on_disk_is_still_reported_and_left_out_of_the_index(repos, env, capsys, tmp_path,
                                                                                   monkeypatch):
    mdir = tmp_path / "m"
    held = both_parts(capsys, mdir, repos)
    archives = sorted(rel for rel in held if rel.startswith("composer/dist/"))
    victim = archives[0]
    (mdir / victim).write_bytes((mdir / victim).read_bytes() + b"x")
    plans, _ = spy(monkeypatch)
    code, out, err = run(capsys, "--json", "mirror", str(mdir), "--type", "ce-patch")
    assert code == 0, err
    assert [it.rel for it in plans[-1].composer.items] == [victim] and plans[-1].composer.kept == set(archives[1:])
    assert "changed on disk since it was verified; left out of the index" in rows(out)[victim]["reason"]
    assert set(composer_sums(mdir)) & set(archives) == set(archives[1:])
    p2 = "".join(data.decode() for data in p2_files(mdir).values())
    assert victim.rsplit("/", 1)[1] not in p2 and archives[1].rsplit("/", 1)[1] in p2


def test_json_still_reports_every_held_archive_kept(repos, env, capsys, tmp_path):
    mdir = tmp_path / "m"
    held = both_parts(capsys, mdir, repos)
    archives = {rel for rel in held if rel.startswith("composer/dist/")}
    code, out, err = run(capsys, "--json", "mirror", str(mdir), "--type", "ce-patch")
    assert code == 0, err
    composer = {f: r for f, r in rows(out).items() if f.startswith("composer/")}
    assert set(composer) == archives
    assert all(r["action"] == "keep" and r["status"] == "keep" and r["reason"] == "no Composer selection given; kept"
               and r["sha256"] == held[f] for f, r in composer.items()), json.dumps(composer)[:500]
