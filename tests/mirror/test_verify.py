"""``magedl verify``: offline re-hash of a mirror against SHA256SUMS and info/json."""

import json
import subprocess

import pytest
from clirun import run

from magedl.mirror.verify import verify

PATCH = "patches/MDVA-43395_CE_2.4.6_v1.sh"
ZIP = "Magento-CE-2.4.6-p10.zip"


@pytest.fixture
def mdir(emulator, tmp_path, capsys):
    """A mirror of the 2.4.6 CE archives and patch, made by ``magedl mirror``; then the emulator is gone."""
    root = tmp_path / "mirror"
    code, _, err = run(capsys, "--base-url", emulator.base_url, "--mageid", emulator.mageid, "--token",
                       emulator.token, "mirror", str(root), "--type", "ce-full", "--type", "ce-patch",
                       "--version", "2.4.6*")
    assert code == 0, err
    emulator.stop()  # verify is offline
    return root


def statuses(out):
    return {r["path"].split("/mirror/", 1)[1]: r["status"] for r in json.loads(out)}


def test_an_intact_mirror_passes_with_the_json_contract(mdir, capsys):
    code, out, err = run(capsys, "--json", "verify", str(mdir))
    assert code == 0, err
    rows = json.loads(out)
    assert {r["status"] for r in rows} == {"ok"}
    files = [r for r in rows if r["file_name"]]
    assert {r["file_name"] for r in files} >= {PATCH, ZIP}
    assert all({"name", "file_name", "version", "type", "md5", "sha256", "size", "path"} <= set(r) for r in files)
    assert all(r["md5"] == r["actual_md5"] for r in files)
    code, out, err = run(capsys, "verify", str(mdir))
    assert code == 0 and f"file/{ZIP}: OK" in out and "all intact" in err


def test_missing_extra_and_bad_files_are_each_named(mdir, capsys):
    (mdir / "file" / PATCH).unlink()
    (mdir / "file" / "intruder.tar.gz").write_bytes(b"\x1f\x8b\x08 nope")
    data = bytearray((mdir / "file" / ZIP).read_bytes())
    data[100] ^= 1
    (mdir / "file" / ZIP).write_bytes(bytes(data))
    code, out, err = run(capsys, "--json", "verify", str(mdir))
    assert code == 6
    found = statuses(out)
    assert found[f"file/{PATCH}"] == "missing"
    assert found["file/intruder.tar.gz"] == "extra"
    assert found[f"file/{ZIP}"] == "bad"
    assert sum(s != "ok" for s in found.values()) == 3
    for name in (PATCH, "intruder.tar.gz", ZIP):
        assert name in err
    assert "NOT intact" in err
    # sha256sum agrees about the bad and missing ones.
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=mdir, capture_output=True, text=True)
    assert check.returncode != 0 and f"file/{ZIP}: FAILED" in check.stdout


def test_a_tampered_index_is_caught(mdir, capsys):
    feed = (mdir / "info" / "json").read_text()
    md5 = json.loads(feed)["ce-full"]["2.4.6-p10"][1]["md5"]
    (mdir / "info" / "json").write_text(feed.replace(md5, "0" * 32))
    code, out, _ = run(capsys, "--json", "verify", str(mdir))
    assert code == 6
    found = statuses(out)
    assert found["info/json"] == "bad" and found[f"file/{ZIP}"] == "bad"


def test_lost_checksum_list_fails_but_md5s_are_still_checked(mdir, capsys):
    (mdir / "SHA256SUMS").unlink()
    code, out, err = run(capsys, "--json", "verify", str(mdir))
    assert code == 6
    found = statuses(out)
    assert found["SHA256SUMS"] == "missing" and found[f"file/{ZIP}"] == "ok"


def test_an_unfinished_download_is_reported_but_not_a_failure(mdir, capsys):
    (mdir / "file" / "Magento-CE-2.4.8.zip.magedl-part").write_bytes(b"PK\x03\x04")
    code, out, err = run(capsys, "--json", "verify", str(mdir))
    assert code == 0
    assert statuses(out)["file/Magento-CE-2.4.8.zip.magedl-part"] == "partial" and "unfinished" in err
    assert "intact, 1 download unfinished" in err and "all intact" not in err


def test_single_files(mdir, capsys, tmp_path):
    code, out, _ = run(capsys, "verify", str(mdir / "file" / ZIP), str(mdir / "file" / PATCH))
    assert code == 0 and sorted(out.splitlines()) == sorted([f"file/{PATCH}: OK", f"file/{ZIP}: OK"])
    (mdir / "file" / ZIP).write_bytes(b"PK\x03\x04 rotten")
    code, out, _ = run(capsys, "verify", str(mdir / "file" / PATCH), str(mdir / "file" / ZIP))
    assert code == 6 and f"file/{ZIP}: BAD" in out and f"file/{PATCH}: OK" in out
    loose = tmp_path / "loose.zip"
    loose.write_bytes(b"PK")
    code, _, err = run(capsys, "verify", str(loose))
    assert code == 5 and "not inside a mirror" in err


def test_not_a_mirror(tmp_path, capsys):
    assert run(capsys, "verify", str(tmp_path / "nowhere"))[0] == 5
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "verify", str(tmp_path / "empty"))
    assert code == 5 and "not a mirror" in err


def test_progress_covers_the_total_bytes(mdir):
    seen = []
    findings = verify([mdir], progress=lambda done, total: seen.append((done, total)))
    total = sum(f.size for f in findings if f.size)
    assert seen[-1] == (total, total)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_progress_lines_when_not_a_terminal(mdir, capsys):
    from magedl.cli.progress import ByteBar

    bar = ByteBar("lines", "verifying", interval=0)
    verify([mdir], progress=bar)
    err = capsys.readouterr().err
    assert "magedl: verifying: 100%" in err


def test_a_path_listed_twice_with_different_sums_fails(mdir, capsys):
    sums = (mdir / "SHA256SUMS").read_text().splitlines()
    rel = next(line.split("  ", 1)[1] for line in sums if line.endswith(".tar.gz"))
    (mdir / "SHA256SUMS").write_text(f"{'0' * 64}  {rel}\n" + "\n".join(sums) + "\n")
    code, out, err = run(capsys, "verify", str(mdir))
    assert code == 6 and "SHA256SUMS" in out


def test_an_index_file_gone_from_disk_and_from_the_sums_fails(mdir, capsys):
    (mdir / "info" / "versions").unlink()
    lines = [line for line in (mdir / "SHA256SUMS").read_text().splitlines() if not line.endswith("info/versions")]
    (mdir / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    code, out, err = run(capsys, "verify", str(mdir))
    assert code == 6 and "info/versions: MISSING" in out


def test_a_missing_file_target_is_not_found(mdir, capsys):
    code, _, err = run(capsys, "verify", str(mdir / "file" / "no-such.tar.gz"))
    assert code == 5 and "no such file" in err
