"""``magedl mirror`` against the emulator: layout, incremental runs, failures, prune, locks.

Most tests call ``cli.main`` in-process; kill -9 and concurrent runs use
real ``python -m magedl`` processes, synchronised on the emulator's log.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys

import pytest
from clirun import run

from magedl.mirror import plan as plan_mod
from magedl.server.stores import MemoryStore
from magedl.service.catalog import parse_feed
from magedl.service.textformat import parse_table, parse_versions

BIG = "Magento-CE-2.4.7.tar.gz"
PATCH = "patches/MDVA-43395_CE_2.4.6_v1.sh"
SEL_246 = ("--type", "ce-full", "--type", "ce-patch", "--version", "2.4.6*")


@pytest.fixture
def mdir(tmp_path):
    return tmp_path / "mirror"


def upstream(emulator):
    return parse_feed(emulator.store.feed())


def held_names(mdir):
    return {r.file_name for r in parse_feed(json.loads((mdir / "info" / "json").read_text()))}


def sums(mdir):
    return {line.split("  ", 1)[1]: line.split("  ", 1)[0]
            for line in (mdir / "SHA256SUMS").read_text().splitlines()}


def sha256sum_check(mdir):
    return subprocess.run(["sha256sum", "--strict", "-c", "SHA256SUMS"], cwd=mdir, capture_output=True, text=True)


def file_bytes_sent(emulator):
    return sum(r.bytes_sent for r in emulator.log if r.file_name is not None)


# -- layout -----------------------------------------------------------------------


def test_mirror_writes_the_layout_and_sha256sum_accepts_it(env, capsys, mdir):
    code, out, err = run(capsys, "--json", "mirror", str(mdir), *SEL_246)
    assert code == 0, err
    rows = json.loads(out)
    wanted = {r.file_name for r in upstream(env) if r.type in ("ce-full", "ce-patch") and r.version.startswith("2.4.6")}
    assert {r["file_name"] for r in rows if r["status"] == "fetched"} == wanted
    assert all({"name", "file_name", "version", "type", "md5", "sha256", "status"} <= set(r) for r in rows)
    for name in wanted:
        assert (mdir / "file" / name).read_bytes() == env.store.data(name)
    # info/json: the upstream feed reduced to the files held, same shape, unknown fields kept.
    feed = json.loads((mdir / "info" / "json").read_text())
    assert isinstance(feed["ce-full"], dict) and "2.4.6-p10" in feed["ce-full"]
    assert all(entry["date"] for entries in feed["ce-full"].values() for entry in entries)  # extra fields kept
    records = parse_feed(feed)
    assert records == [r for r in upstream(env) if r.file_name in wanted]
    # The patch listed under two versions upstream is listed under both here too.
    assert [r.version for r in records if r.file_name == PATCH] == ["2.4.6", "2.4.6-p1"]
    assert {r.file_name for r in parse_table((mdir / "info" / "files").read_text())} == wanted
    assert parse_versions((mdir / "info" / "versions").read_text())["CE"][0] == "2.4.6-p10"
    listed = sums(mdir)
    assert set(listed) == {f"file/{n}" for n in wanted} | {"info/json", "info/files", "info/versions", "index.html"}
    assert list(listed) == sorted(listed)
    check = sha256sum_check(mdir)
    assert check.returncode == 0, check.stdout + check.stderr
    code, out, err = run(capsys, "mirror", str(mdir), *SEL_246)
    assert code == 0 and out == ""
    assert f"0 fetched (0 B transferred), {len(wanted)} already present" in err and "SHA256SUMS sha256" in err


def test_rerun_of_an_up_to_date_mirror_transfers_and_hashes_nothing(env, capsys, mdir, monkeypatch):
    assert run(capsys, "mirror", str(mdir), *SEL_246)[0] == 0
    stamps = {p: p.stat().st_mtime_ns for p in (mdir / "info").iterdir()}
    env.clear_log()

    def no_hashing(*a, **k):
        raise AssertionError("an unchanged file was re-hashed")

    monkeypatch.setattr(plan_mod, "file_digests", no_hashing)
    code, out, err = run(capsys, "--json", "mirror", str(mdir), *SEL_246)
    assert code == 0, err
    assert file_bytes_sent(env) == 0 and not [r for r in env.log if r.file_name]
    assert {r["status"] for r in json.loads(out)} == {"present"}
    assert {p: p.stat().st_mtime_ns for p in (mdir / "info").iterdir()} == stamps  # indexes untouched


def test_a_touched_file_is_rehashed_not_refetched(env, capsys, mdir):
    assert run(capsys, "mirror", str(mdir), "--type", "ce-patch")[0] == 0
    os.utime(mdir / "file" / PATCH, (1, 1))
    env.clear_log()
    code, out, err = run(capsys, "-v", "--json", "mirror", str(mdir), "--type", "ce-patch")
    assert code == 0 and file_bytes_sent(env) == 0
    assert "re-hashing" in err and {r["status"] for r in json.loads(out)} == {"present"}
    assert sha256sum_check(mdir).returncode == 0


# -- upstream changes and failures --------------------------------------------------


def test_changed_upstream_is_fetched_again(env, capsys, mdir):
    name = "Magento-CE-2.4.6.tar.gz"
    assert run(capsys, "mirror", str(mdir), "--type", "ce-full", "--version", "2.4.6")[0] == 0
    new = b"\x1f\x8b\x08" + os.urandom(20000)
    env.store.replace(name, new)
    code, out, err = run(capsys, "--json", "mirror", str(mdir), "--type", "ce-full", "--version", "2.4.6")
    assert code == 0, err
    [row] = json.loads(out)
    assert row["status"] == "updated" and "changed upstream" in row["reason"]
    assert (mdir / "file" / name).read_bytes() == new
    assert parse_feed(json.loads((mdir / "info" / "json").read_text()))[0].md5 == hashlib.md5(new).hexdigest()
    assert sha256sum_check(mdir).returncode == 0


def test_a_bad_new_version_never_replaces_the_good_copy(env, capsys, mdir):
    name = "Magento-CE-2.4.6.tar.gz"
    assert run(capsys, "mirror", str(mdir), "--type", "ce-full", "--version", "2.4.6")[0] == 0
    old = (mdir / "file" / name).read_bytes()
    env.store.replace(name, b"\x1f\x8b\x08" + os.urandom(20000))                 # the feed announces this
    env.store.replace(name, b"\x1f\x8b\x08" + os.urandom(20000), update_md5=False)  # but serves that
    code, out, err = run(capsys, "--json", "mirror", str(mdir), "--type", "ce-full", "--version", "2.4.6")
    assert code == 6
    [row] = json.loads(out)
    assert row["status"] == "failed" and row["exit_code"] == 6
    assert (mdir / "file" / name).read_bytes() == old
    # The index still describes the copy held, with the md5 it was verified against.
    [record] = parse_feed(json.loads((mdir / "info" / "json").read_text()))
    assert record.md5 == hashlib.md5(old).hexdigest()
    assert sha256sum_check(mdir).returncode == 0
    assert f"failed: {name}" in err


def test_one_failure_does_not_stop_the_others(env, capsys, mdir):
    forbidden = "Magento-CE-2.4.6-p2.tar.gz"
    env.set_faults(forbidden={forbidden})
    code, out, err = run(capsys, "--json", "mirror", str(mdir), *SEL_246)
    assert code == 4
    rows = {r["file_name"]: r for r in json.loads(out)}
    assert rows[forbidden]["status"] == "failed" and rows[forbidden]["exit_code"] == 4
    assert sum(r["status"] == "fetched" for r in rows.values()) == len(rows) - 1
    assert forbidden not in held_names(mdir) and len(held_names(mdir)) == len(rows) - 1
    assert "1 failed" in err and f"failed: {forbidden}" in err
    assert sha256sum_check(mdir).returncode == 0
    env.clear_faults()
    code, out, err = run(capsys, "--json", "mirror", str(mdir), *SEL_246)
    assert code == 0
    assert [r["file_name"] for r in json.loads(out) if r["status"] == "fetched"] == [forbidden]


def test_names_that_would_escape_are_skipped(make_emulator, capsys, mdir, monkeypatch, tmp_path):
    good = b"\x1f\x8b\x08" + b"x" * 5000
    entry = lambda name: {"name": name, "file_name": name, "md5": hashlib.md5(good).hexdigest()}  # noqa: E731
    feed = {"ce-full": {"2.4.7": [entry("../evil.tar.gz"), entry("/etc/evil.tar.gz"), entry("ok.tar.gz")]}}
    emu = make_emulator(store=MemoryStore(feed, {"ok.tar.gz": good, "../evil.tar.gz": good}))
    monkeypatch.setenv("MAGEDL_BASE_URL", emu.base_url)
    monkeypatch.setenv("MAGEDL_MAGEID", emu.mageid)
    monkeypatch.setenv("MAGEDL_TOKEN", emu.token)
    code, out, err = run(capsys, "--json", "mirror", str(mdir))
    assert code == 0
    statuses = {r["file_name"]: r["status"] for r in json.loads(out)}
    assert statuses == {"../evil.tar.gz": "skip", "/etc/evil.tar.gz": "skip", "ok.tar.gz": "fetched"}
    assert "skipping" in err and "evil" in err
    assert not (tmp_path / "evil.tar.gz").exists() and held_names(mdir) == {"ok.tar.gz"}


# -- dry run, prune, diff ------------------------------------------------------------


def test_dry_run_prints_the_plan_with_sizes_and_changes_nothing(env, capsys, mdir):
    code, out, err = run(capsys, "mirror", str(mdir), "--type", "ce-full", "--version", "2.4.7", "--dry-run")
    assert code == 0 and not mdir.exists()
    lines = out.splitlines()
    assert lines[0].split() == ["ACTION", "SIZE", "FILE", "NAME", "REASON"]
    big = next(line for line in lines if BIG in line)
    assert big.split()[:3] == ["fetch", "512.0", "KiB"]
    assert "nothing was changed" in err and not [r for r in env.log if r.method == "GET" and r.file_name]


def test_kept_until_pruned(env, capsys, mdir):
    assert run(capsys, "mirror", str(mdir), "--type", "ce-patch")[0] == 0
    (mdir / "file" / "stray.txt").write_text("not ours")
    # No longer selected: kept, still indexed, still verifiable.
    code, out, err = run(capsys, "--json", "mirror", str(mdir), "--type", "ee-patch")
    assert code == 0
    statuses = {r["file_name"]: r["status"] for r in json.loads(out)}
    assert statuses[PATCH] == "keep" and statuses["stray.txt"] == "stray"
    assert PATCH in held_names(mdir) and (mdir / "file" / PATCH).exists()
    assert "--prune removes" in err
    # The plan of a prune, then the prune.
    code, out, _ = run(capsys, "mirror", str(mdir), "--type", "ee-patch", "--prune", "--dry-run")
    assert code == 0 and any(line.startswith("prune") and PATCH in line for line in out.splitlines())
    assert (mdir / "file" / PATCH).exists()
    code, out, err = run(capsys, "--json", "mirror", str(mdir), "--type", "ee-patch", "--prune")
    assert code == 0
    statuses = {r["file_name"]: r["status"] for r in json.loads(out)}
    assert statuses[PATCH] == statuses["stray.txt"] == "pruned"
    assert not (mdir / "file" / "patches").exists() and not (mdir / "file" / "stray.txt").exists()
    assert held_names(mdir) == {r.file_name for r in upstream(env) if r.type == "ee-patch"}
    assert sha256sum_check(mdir).returncode == 0


def test_an_empty_selection_changes_nothing(env, capsys, mdir):
    assert run(capsys, "mirror", str(mdir), "--type", "ce-patch")[0] == 0
    code, _, err = run(capsys, "mirror", str(mdir), "--version", "9.9.9", "--prune")
    assert code == 5 and "not changed" in err
    assert (mdir / "file" / PATCH).exists()


def test_diff_file_lists_only_what_this_run_added_or_changed(env, capsys, mdir, tmp_path):
    diff = tmp_path / "delta.txt"
    assert run(capsys, "mirror", str(mdir), "--type", "ce-patch", "--diff-file", str(diff))[0] == 0
    first = diff.read_text().splitlines()
    assert set(first) == {f"file/{r.file_name}" for r in upstream(env) if r.type == "ce-patch"} | {
        "info/json", "info/files", "info/versions", "index.html", "SHA256SUMS"}
    assert run(capsys, "mirror", str(mdir), "--type", "ce-patch", "--diff-file", str(diff))[0] == 0
    assert diff.read_text() == ""
    env.store.replace(PATCH, b"#!/bin/bash\necho new\n")
    assert run(capsys, "mirror", str(mdir), "--type", "ce-patch", "--diff-file", str(diff))[0] == 0
    # The front page shows each file's checksums: it changed too (an unchanged run rewrote no page).
    assert set(diff.read_text().splitlines()) == {f"file/{PATCH}", "info/json", "info/files", "index.html",
                                                  "SHA256SUMS"}
    # The delta is enough: every path it names exists, relative to the mirror.
    assert all((mdir / rel).is_file() for rel in diff.read_text().splitlines())


# -- rot ---------------------------------------------------------------------------


def flip_byte(path, keep_mtime=False):
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize("keep_mtime", [False, True], ids=["plain", "mtime-restored"])
def test_rotted_file_is_named_by_verify_and_repaired_by_mirror(env, capsys, mdir, keep_mtime):
    name = "Magento-CE-2.4.6-p10.zip"
    assert run(capsys, "mirror", str(mdir), *SEL_246)[0] == 0
    flip_byte(mdir / "file" / name, keep_mtime)
    code, out, err = run(capsys, "verify", str(mdir))
    assert code == 6 and f"file/{name}: BAD" in out and name in err
    env.clear_log()
    code, out, err = run(capsys, "--json", "mirror", str(mdir), *SEL_246)
    assert code == 0, err
    rows = {r["file_name"]: r for r in json.loads(out)}
    assert rows[name]["status"] == "repaired"
    assert {r["status"] for n, r in rows.items() if n != name} == {"present"}
    assert [r.file_name for r in env.log if r.file_name] == [name]
    assert run(capsys, "verify", str(mdir))[0] == 0


# -- real processes: kill -9, concurrent runs -----------------------------------------


def mirror_process(emulator, mdir, *argv):
    env = dict(os.environ, MAGEDL_BASE_URL=emulator.base_url, MAGEDL_MAGEID=emulator.mageid,
               MAGEDL_TOKEN=emulator.token)
    return subprocess.Popen([sys.executable, "-m", "magedl", "--retry-wait", "0", "mirror", str(mdir), *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)


def test_interrupted_run_is_completed_by_a_rerun(env, capsys, mdir):
    sel = ("--type", "ce-full", "--version", "2.4.7", "--format", "tar.gz")
    size = len(env.store.data(BIG))
    env.set_faults(rate=size // 3)
    proc = mirror_process(env, mdir, *sel, "--connections", "1")
    assert env.wait_for(lambda s: s.bytes_sent(BIG) >= size // 2, timeout=30)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert env.wait_for(lambda s: any(r.file_name == BIG for r in s.log), timeout=30)
    assert not (mdir / "file" / BIG).exists() and (mdir / "file" / (BIG + ".magedl-part")).exists()
    assert b"pid" in (mdir / ".magedl" / "lock").read_bytes()  # a stale lock, which must not block
    env.clear_faults()
    env.clear_log()
    code, out, err = run(capsys, "--json", "mirror", str(mdir), *sel)
    assert code == 0, err
    statuses = {r["file_name"]: r["status"] for r in json.loads(out)}
    assert statuses[BIG] == "fetched"
    # Only the missing bytes crossed the wire the second time.
    assert 0 < file_bytes_sent(env) < size
    assert run(capsys, "verify", str(mdir))[0] == 0
    assert sha256sum_check(mdir).returncode == 0


def test_a_second_run_on_the_same_mirror_is_refused(env, capsys, mdir):
    size = len(env.store.data(BIG))
    env.set_faults(rate=size // 2)
    proc = mirror_process(env, mdir, "--type", "ce-full", "--version", "2.4.7", "--format", "tar.gz")
    try:
        assert env.wait_for(lambda s: s.bytes_sent(BIG) > 0, timeout=30)
        code, out, err = run(capsys, "mirror", str(mdir), "--type", "ce-patch")
        assert code == 1
        assert f"another magedl mirror run (pid {proc.pid} on " in err and str(mdir) in err
        assert not (mdir / "file" / PATCH).exists()
    finally:
        proc.kill()
        proc.communicate(timeout=30)


def test_ctrl_c_keeps_what_was_finished_indexed(env, capsys, mdir, tmp_path):
    small = "Magento-CE-2.4.7.tar.bz2"  # fetched before BIG with one job: the plan goes by name
    size = len(env.store.data(BIG))
    env.set_faults(rate=size // 10)  # ten seconds for BIG: the signal comes long before it could finish
    diff = tmp_path / "delta.txt"
    proc = mirror_process(env, mdir, "--type", "ce-full", "--version", "2.4.7", "--format", "tar.bz2",
                          "--format", "tar.gz", "--jobs", "1", "--diff-file", str(diff))
    assert env.wait_for(lambda s: s.bytes_sent(BIG) >= size // 30, timeout=30)
    assert [r.file_name for r in env.log if r.file_name] == [small]
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert held_names(mdir) == {small}
    assert diff.read_text().splitlines()[0] == f"file/{small}"
    assert sha256sum_check(mdir).returncode == 0
    code, out, err = run(capsys, "verify", str(mdir))
    assert code == 0 and "unfinished" in err


# -- found in review: index timing, delta, lost state, md5 across listings, links ---------


def test_a_replaced_file_is_indexed_at_once_and_a_kill_leaves_a_true_index(env, capsys, mdir, tmp_path):
    sel = ("--type", "ce-full", "--type", "ce-patch", "--version", "2.4.7", "--version", "2.4.6",
           "--format", "tar.gz", "--format", "sh")
    assert run(capsys, "mirror", str(mdir), *sel)[0] == 0
    env.store.replace(PATCH, b"#!/bin/bash\necho republished\n")
    env.store.replace(BIG, b"\x1f\x8b\x08" + os.urandom(len(env.store.data(BIG)) - 3))
    size = len(env.store.data(BIG))
    env.set_faults(rate=size // 20)  # the big one takes 20 s; the patch lands at once
    env.clear_log()
    proc = mirror_process(env, mdir, *sel, "--jobs", "2", "--connections", "1")
    assert env.wait_for(lambda s: s.bytes_sent(BIG) >= size // 10
                        and any(r.file_name == PATCH and r.finished for r in s.log), timeout=30)
    assert env.wait_for(lambda s: sums(mdir).get(f"file/{PATCH}") == hashlib.sha256(
        env.store.data(PATCH)).hexdigest(), timeout=5)  # indexed while the big file still runs
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert sha256sum_check(mdir).returncode == 0  # the killed run left an index true to the disk
    # The next run's delta still names the patch the killed run replaced.
    env.clear_faults()
    diff = tmp_path / "delta.txt"
    assert run(capsys, "mirror", str(mdir), *sel, "--diff-file", str(diff))[0] == 0
    delta = diff.read_text().splitlines()
    assert f"file/{PATCH}" in delta and f"file/{BIG}" in delta and delta[-1] == "SHA256SUMS"
    assert run(capsys, "mirror", str(mdir), *sel, "--diff-file", str(diff))[0] == 0
    assert diff.read_text() == ""  # all of it was handed over


def test_lost_bookkeeping_keeps_held_files_in_the_index(env, capsys, mdir):
    import shutil

    assert run(capsys, "mirror", str(mdir), "--type", "ce-full", "--version", "2.4.6*")[0] == 0
    listed = set(sums(mdir))
    shutil.rmtree(mdir / ".magedl")
    assert run(capsys, "mirror", str(mdir), "--type", "ce-full", "--version", "2.4.6-p10")[0] == 0
    assert set(sums(mdir)) == listed
    assert run(capsys, "verify", str(mdir))[0] == 0


def test_md5_from_another_listing_of_the_same_file_is_enforced(make_emulator, demo, capsys, mdir, monkeypatch):
    feed, files = json.loads(json.dumps(demo[0])), dict(demo[1])
    listings = [e for v in feed["ce-patch"].values() for e in v if e["file_name"] == PATCH]
    assert len(listings) == 2
    listings[0]["md5"] = ""  # the first listing has none; the other one does
    files[PATCH] = b"#!/bin/bash\necho tampered\n"
    emulator = make_emulator(store=MemoryStore(feed, files))
    for name, value in (("MAGEDL_BASE_URL", emulator.base_url), ("MAGEDL_MAGEID", emulator.mageid),
                        ("MAGEDL_TOKEN", emulator.token)):
        monkeypatch.setenv(name, value)
    code, _, err = run(capsys, "mirror", str(mdir), "--type", "ce-patch")
    assert code == 6 and "md5 mismatch" in err
    assert f"file/{PATCH}" not in sums(mdir)
    code, _, err = run(capsys, "get", PATCH, "-o", str(mdir.parent / "get"))
    assert code == 6


def test_a_symlink_in_place_of_a_file_is_replaced(env, capsys, mdir, tmp_path):
    sel = ("--type", "ce-full", "--version", "2.4.7", "--format", "zip")
    assert run(capsys, "mirror", str(mdir), *sel)[0] == 0
    name = "Magento-CE-2.4.7.zip"
    outside = tmp_path / "outside.zip"
    outside.write_bytes(env.store.data(name))
    (mdir / "file" / name).unlink()
    (mdir / "file" / name).symlink_to(outside)
    assert run(capsys, "mirror", str(mdir), *sel)[0] == 0
    assert not (mdir / "file" / name).is_symlink() and (mdir / "file" / name).is_file()
    assert run(capsys, "verify", str(mdir))[0] == 0
