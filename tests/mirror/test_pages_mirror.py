"""The pages as a mirror run writes them: listed in SHA256SUMS, checked by verify, gone with --no-html."""

import json

from clirun import run

from magedl.mirror.index import read_sums


def mirror(capsys, mdir, *argv):
    return run(capsys, "mirror", str(mdir), "--type", "ce-patch", *argv)


def test_pages_are_listed_in_sha256sums_and_checked_by_verify(env, capsys, tmp_path):
    mdir = tmp_path / "m"
    code, _, err = mirror(capsys, mdir)
    assert code == 0, err
    page = (mdir / "index.html").read_text()
    assert "PATCH_SUPEE-6788_CE_1.9.2.1_v1.sh" in page and "Magento Open Source patches" in page
    assert "index.html" in read_sums(mdir / "SHA256SUMS")[0]
    code, out, err = run(capsys, "--json", "verify", str(mdir))
    statuses = {r["path"]: r["status"] for r in json.loads(out)}
    assert code == 0 and statuses[str(mdir / "index.html")] == "ok"
    # A page changed on the carried disk is named, as any other file would be.
    (mdir / "index.html").write_text(page.replace("patches", "p<script>atches"))
    code, out, err = run(capsys, "--json", "verify", str(mdir))
    assert code == 6 and [r["path"] for r in json.loads(out) if r["status"] != "ok"] == [str(mdir / "index.html")]
    # The next run puts it right.
    code, _, err = mirror(capsys, mdir)
    assert code == 0 and (mdir / "index.html").read_text() == page


def test_no_html_removes_the_pages_and_a_later_run_brings_them_back(env, capsys, tmp_path):
    mdir, diff = tmp_path / "m", tmp_path / "delta"
    assert mirror(capsys, mdir, "--diff-file", str(diff))[0] == 0
    code, _, err = mirror(capsys, mdir, "--no-html", "--diff-file", str(diff))
    assert code == 0, err
    assert not (mdir / "index.html").exists()
    assert "index.html" not in read_sums(mdir / "SHA256SUMS")[0]
    assert diff.read_text().splitlines() == ["SHA256SUMS"]  # nothing else changed
    assert run(capsys, "verify", str(mdir))[0] == 0
    assert mirror(capsys, mdir)[0] == 0 and (mdir / "index.html").is_file()
