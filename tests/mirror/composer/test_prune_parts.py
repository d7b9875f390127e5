"""``mirror --prune`` prunes only the parts the run mirrors: a mirror holding both parts loses nothing by surprise.

Release files are pruned only by a run that selects releases, Composer archives only by a run with
``--composer-require``/``--composer-lock``. The releases come from the emulated downloads service
(``env``), the packages from the emulated repositories (``repos``).
"""

import json
import shutil

from clirun import run


def both_parts(capsys, mdir, repos):
    """A mirror with the ce-patch release files and psr/log's archives; the Composer paths held."""
    code, _, err = run(capsys, "mirror", str(mdir), "--type", "ce-patch", "--composer-repo", repos.magento_url,
                       "--composer-repo", repos.packagist_url, "--composer-require", "psr/log")
    assert code == 0, err
    held = composer_sums(mdir)
    assert any(rel.startswith("composer/dist/") for rel in held)
    return held


def sums(mdir):
    return dict(reversed(line.split("  ", 1)) for line in (mdir / "SHA256SUMS").read_text().splitlines())


def composer_sums(mdir):
    return {rel: sha for rel, sha in sums(mdir).items() if rel.startswith("composer/")}


def archives(composer):
    # The p2 files may be rewritten (same entries), the archives must be the same bytes.
    return {rel: sha for rel, sha in composer.items() if rel.startswith("composer/dist/")}


def rows(out):
    return {r["file_name"]: r for r in json.loads(out)}


def test_prune_without_composer_options_keeps_the_composer_part(repos, env, capsys, tmp_path):
    mdir = tmp_path / "m"
    held = both_parts(capsys, mdir, repos)
    releases = {rel for rel in sums(mdir) if rel.startswith("file/")}
    code, out, err = run(capsys, "--json", "mirror", str(mdir), "--type", "ce-patch", "--version", "2.4.6*",
                         "--prune")
    assert code == 0, err
    statuses = rows(out)
    # The release part is pruned to the new selection ...
    pruned = {f"file/{f}" for f, r in statuses.items() if r["status"] == "pruned" and not f.startswith("composer/")}
    assert pruned and pruned < releases and not any((mdir / rel).exists() for rel in pruned)
    # ... the Composer part, which this run does not manage, stays: on disk, listed and served.
    assert {r["status"] for f, r in statuses.items() if f.startswith("composer/")} == {"keep"}
    assert set(composer_sums(mdir)) == set(held) and archives(composer_sums(mdir)) == archives(held)
    assert all((mdir / rel).is_file() for rel in held)
    assert "Composer packages are kept: no Composer options given" in err
    assert run(capsys, "verify", str(mdir))[0] == 0


def test_prune_with_no_selection_at_all_keeps_the_composer_part(repos, env, capsys, tmp_path):
    mdir = tmp_path / "m"
    held = both_parts(capsys, mdir, repos)
    code, _, err = run(capsys, "mirror", str(mdir), "--prune")
    assert code == 0, err
    assert set(composer_sums(mdir)) == set(held) and archives(composer_sums(mdir)) == archives(held)


def test_a_dry_run_shows_the_composer_part_kept(repos, env, capsys, tmp_path):
    mdir = tmp_path / "m"
    both_parts(capsys, mdir, repos)
    code, out, err = run(capsys, "--json", "mirror", str(mdir), "--type", "ce-patch", "--prune", "--dry-run")
    assert code == 0, err
    composer = [r for f, r in rows(out).items() if f.startswith("composer/")]
    assert composer and {r["action"] for r in composer} == {"keep"}
    assert all("no Composer selection given; kept" in r["reason"] for r in composer)
    assert "Composer packages are kept" in err and "0 to prune" in err


def test_composer_url_alone_with_prune_rewrites_and_keeps(repos, env, capsys, tmp_path):
    mdir = tmp_path / "m"
    held = both_parts(capsys, mdir, repos)
    code, _, err = run(capsys, "mirror", str(mdir), "--composer-url", "https://mirror.example/c", "--prune")
    assert code == 0, err
    assert set(composer_sums(mdir)) == set(held)
    assert all((mdir / rel).is_file() for rel in held if rel.startswith("composer/dist/"))


def test_prune_with_composer_options_prunes_the_composer_part_and_keeps_releases(repos, env, capsys, tmp_path):
    mdir = tmp_path / "m"
    held = both_parts(capsys, mdir, repos)
    releases = {rel: sha for rel, sha in sums(mdir).items() if rel.startswith("file/")}
    code, out, err = run(capsys, "--json", "mirror", str(mdir), "--composer-repo", repos.magento_url,
                         "--composer-repo", repos.packagist_url, "--composer-require", "psr/log:^3", "--prune")
    assert code == 0, err
    assert rows(out)["composer/dist/psr/log/1.1.4.0.zip"]["status"] == "pruned"
    assert set(composer_sums(mdir)) < set(held)
    assert {rel: sha for rel, sha in sums(mdir).items() if rel.startswith("file/")} == releases


def test_the_composer_part_is_dropped_by_removing_its_folder(repos, env, capsys, tmp_path):
    mdir = tmp_path / "m"
    both_parts(capsys, mdir, repos)
    shutil.rmtree(mdir / "composer")
    code, _, err = run(capsys, "mirror", str(mdir), "--type", "ce-patch")
    assert code == 0, err
    assert not composer_sums(mdir)
    assert run(capsys, "verify", str(mdir))[0] == 0


def test_strays_are_pruned_only_by_a_run_that_manages_their_part(repos, env, capsys, tmp_path):
    mdir = tmp_path / "m"
    both_parts(capsys, mdir, repos)
    release_stray, composer_stray = mdir / "file" / "stray.zip", mdir / "composer" / "dist" / "psr" / "stray.zip"
    release_stray.write_bytes(b"not the mirror's")
    composer_stray.write_bytes(b"not the mirror's")
    # A release run: the release stray would go, the Composer one is kept, and says which run removes it.
    code, out, err = run(capsys, "--json", "mirror", str(mdir), "--type", "ce-patch", "--prune", "--dry-run")
    assert code == 0, err
    assert rows(out)["stray.zip"]["action"] == "prune"
    kept = rows(out)["composer/dist/psr/stray.zip"]
    assert kept["action"] == "stray" and "--prune with Composer options" in kept["reason"]
    # A Composer run: the other way round.
    code, out, err = run(capsys, "--json", "mirror", str(mdir), "--composer-repo", repos.magento_url,
                         "--composer-repo", repos.packagist_url, "--composer-require", "psr/log", "--prune")
    assert code == 0, err
    assert "--prune with a release selection" in rows(out)["stray.zip"]["reason"] and release_stray.exists()
    assert not composer_stray.exists()
