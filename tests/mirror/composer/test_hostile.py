"""``magedl mirror`` against a hostile Composer repository on loopback (docs/security.md, section 1).

Each test plays one attack of issue 19 with :class:`~magedl.emulator.hostile.HostileRepo`
and holds what must hold: the run ends with a clear message (or a warning and a skip),
keys go only where the repository's own layout points, and nothing grows without bound.
"""

import json

import pytest
from clirun import run

from magedl.emulator.hostile import HostileRepo, dump, minified_bomb, p2_file, p2_root, self_including

PUBLIC, PRIVATE = "a1b2c3d4e5f60718293a4b5c6d7e8f90", "f0e1d2c3b4a5968778695a4b3c2d1e0f"


@pytest.fixture
def hostile(monkeypatch):
    """Factory: ``hostile(documents)`` -> a started HostileRepo whose host COMPOSER_AUTH gives keys for."""
    monkeypatch.delenv("COMPOSER_HOME", raising=False)
    started = []

    def start(documents):
        repo = HostileRepo(documents).start()
        started.append(repo)
        auth = {"http-basic": {repo.host: {"username": PUBLIC, "password": PRIVATE}}}
        monkeypatch.setenv("COMPOSER_AUTH", json.dumps(auth))
        return repo

    yield start
    for repo in started:
        repo.stop()


def mirror(capsys, mdir, repo, *argv):
    return run(capsys, "--json", "mirror", str(mdir), "--composer-repo", repo.url, *argv)


def test_a_dependency_name_never_chooses_where_the_keys_go(hostile, capsys, tmp_path):
    """Issue 19 item 7: a require of ``../../admin/delete?all=1&x`` must not become a request with the keys."""
    repo = hostile({
        "/packages.json": p2_root(),
        "/p2/evil/root.json": p2_file("evil/root", [{
            "version": "1.0.0", "type": "metapackage",
            "require": {"../../admin/delete?all=1&x": "*", "evil/other": "*"}}]),
        "/p2/evil/other.json": p2_file("evil/other", [{"version": "1.0.0", "type": "metapackage"}]),
    })
    code, out, err = mirror(capsys, tmp_path / "m", repo, "--composer-require", "evil/root")
    asked = [path for path, _ in repo.requests]
    assert not [p for p in asked if "admin" in p or ".." in p], asked
    assert set(asked) <= {"/packages.json", "/p2/evil/root.json", "/p2/evil/other.json",
                          "/p2/evil/root~dev.json", "/p2/evil/other~dev.json"}
    assert "admin/delete" in err and "skipped" in err  # the bad name is named, once, as a skip
    assert code == 0, err


def test_a_minified_amplification_bomb_ends_the_lookup_with_one_line_naming_the_file(hostile, capsys, tmp_path):
    """Issue 19 item 1: 60 KB that expands to gigabytes is refused before it is built; the rest of the run goes on."""
    repo = hostile({
        "/packages.json": p2_root(),
        "/p2/evil/bomb.json": minified_bomb("evil/bomb", keys=4000, entries=8000),
        "/p2/evil/fine.json": p2_file("evil/fine", [{"version": "1.0.0", "type": "metapackage"}]),
    })
    code, out, err = mirror(capsys, tmp_path / "m", repo, "--composer-require", "evil/bomb",
                            "--composer-require", "evil/fine")
    assert code not in (0, 2) and "Traceback" not in err and "internal error" not in err
    bad = [line for line in err.splitlines() if "/p2/evil/bomb.json: minified metadata that expands" in line]
    assert bad, err
    assert json.loads((tmp_path / "m" / "composer" / "p2" / "evil" / "fine.json").read_text())


def test_a_self_including_repository_is_refused_after_a_bounded_number_of_files(hostile, capsys, tmp_path):
    """Issue 19 item 2: M=2 self-includes under new query strings cost 510 fetches and 834 MB before."""
    repo = hostile({"/packages.json": self_including(2)})
    code, out, err = mirror(capsys, tmp_path / "m", repo, "--composer-require", "evil/pkg")
    assert code not in (0, 2) and "Traceback" not in err
    assert "more than 100 include files" in err
    assert len(repo.requests) <= 102


def test_a_huge_constraint_from_a_repository_is_a_one_line_skip(hostile, capsys, tmp_path):
    """Issue 19 item 3: a dependency's constraint of 120,000 blanks is refused at once, in one short line."""
    repo = hostile({
        "/packages.json": p2_root(),
        "/p2/evil/root.json": p2_file("evil/root", [{
            "version": "1.0.0", "type": "metapackage", "require": {"evil/dep": "1.0 " + " " * 120000 + "x"}}]),
    })
    code, out, err = mirror(capsys, tmp_path / "m", repo, "--composer-require", "evil/root")
    lines = [line for line in err.splitlines() if "characters, over 1,024" in line]
    assert len(lines) == 1 and len(lines[0]) < 600, err
    assert code == 0, err


def test_a_password_in_an_upstream_dist_url_reaches_no_output_and_no_file(hostile, capsys, tmp_path, secret_scan):
    """Issue 19 item 9: ``http://deploy:S3cret@host/...`` appeared verbatim in ``mirror --json`` and state.json."""
    password = "S3cretDeployPass"
    repo = hostile({"/packages.json": p2_root()})
    dist = {"type": "zip", "url": repo.url.replace("http://", f"http://deploy:{password}@") + "dist/a.zip",
            "shasum": "0" * 40}
    repo.documents["/p2/evil/pkg.json"] = p2_file("evil/pkg", [{"version": "1.0.0", "dist": dist}])
    repo.documents["/p2/evil/fine.json"] = p2_file("evil/fine", [{"version": "1.0.0", "type": "metapackage"}])
    mdir = tmp_path / "m"
    code, out, err = mirror(capsys, mdir, repo, "--composer-require", "evil/pkg", "--composer-require", "evil/fine")
    assert (mdir / "composer" / "p2" / "evil" / "fine.json").is_file()  # the run went on, and wrote its files
    assert code == 2 and "evil/pkg 1.0.0: its dist URL" in err and "carries credentials" in err
    seen = out + err + "".join(p.read_text(errors="replace") for p in mdir.rglob("*") if p.is_file())
    assert password not in seen
    assert "/dist/a.zip" not in [path for path, _ in repo.requests]


def test_a_changes_feed_vouches_only_for_files_of_its_own_repository(hostile, capsys, tmp_path):
    """Issue 19 item 6: repository B points metadata-url at A's p2 files and says "no changes": A's release was lost."""
    a = hostile({"/p2/evil/pkg.json": p2_file("evil/pkg", [{"version": "1.0.0", "type": "metapackage"}])})
    b = HostileRepo({"/changes.json": lambda query: dump({"timestamp": 1700000000, "actions": []})},
                    host="127.0.0.2").start()
    try:
        b.documents["/packages.json"] = p2_root(**{"metadata-url": a.url + "p2/%package%.json",
                                                   "metadata-changes-url": "/changes.json"})
        mdir = tmp_path / "m"
        code, out, err = mirror(capsys, mdir, b, "--composer-require", "evil/pkg")
        assert code == 0, err
        a.documents["/p2/evil/pkg.json"] = p2_file("evil/pkg", [{"version": "2.0.0", "type": "metapackage"},
                                                                {"version": "1.0.0", "type": "metapackage"}])
        code, out, err = mirror(capsys, mdir, b, "--composer-require", "evil/pkg")
        assert code == 0, err
    finally:
        b.stop()
    assert [p for p, _ in a.requests].count("/p2/evil/pkg.json") == 2  # asked again: B cannot vouch for A's file
    versions = json.loads((mdir / "composer" / "p2" / "evil" / "pkg.json").read_text())["packages"]["evil/pkg"]
    assert [v["version"] for v in versions] == ["2.0.0", "1.0.0"]


def test_a_name_too_long_for_a_file_name_is_skipped_and_the_rest_is_indexed(hostile, capsys, tmp_path):
    """Issue 19 item 5: a valid 300-character metapackage name made the index write fail: no SHA256SUMS at all."""
    long = "evil/" + "a" * 295
    repo = hostile({
        "/packages.json": p2_root(),
        f"/p2/{long}.json": p2_file(long, [{"version": "1.0.0", "type": "metapackage"}]),
        "/p2/evil/fine.json": p2_file("evil/fine", [{"version": "1.0.0", "type": "metapackage"}]),
    })
    mdir = tmp_path / "m"
    code, out, err = mirror(capsys, mdir, repo, "--composer-require", long, "--composer-require", "evil/fine")
    assert code == 0, err
    warned = [line for line in err.splitlines() if "warning" in line and "too long" in line]
    assert len(warned) == 1 and len(warned[0]) < 400, err
    root = json.loads((mdir / "composer" / "packages.json").read_text())
    assert root["available-packages"] == ["evil/fine"]
    assert "composer/p2/evil/fine.json" in (mdir / "SHA256SUMS").read_text()


def test_a_version_without_version_normalized_is_normalised_locally_and_indexed(hostile, capsys, tmp_path):
    """Issue 19 item 8: such entries were fetched and checked, then silently left out of the index (exit 0)."""
    import hashlib
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("evil-pkg/composer.json", '{"name": "evil/pkg"}')
    data = buffer.getvalue()
    repo = hostile({"/packages.json": p2_root(), "/dist/pkg.zip": data})
    dist = {"type": "zip", "url": repo.url + "dist/pkg.zip", "shasum": hashlib.sha1(data).hexdigest()}
    repo.documents["/p2/evil/pkg.json"] = p2_file("evil/pkg", [{"version": "v1.2", "dist": dist},
                                                               {"version": "1.1.0", "type": "metapackage"}])
    mdir = tmp_path / "m"
    code, out, err = mirror(capsys, mdir, repo, "--composer-require", "evil/pkg")
    assert code == 0, err
    versions = json.loads((mdir / "composer" / "p2" / "evil" / "pkg.json").read_text())["packages"]["evil/pkg"]
    assert [(v["version"], v["version_normalized"]) for v in versions] == [("v1.2", "1.2.0.0"), ("1.1.0", "1.1.0.0")]
    assert (mdir / "composer" / "dist" / "evil" / "pkg" / "1.2.0.0.zip").read_bytes() == data
