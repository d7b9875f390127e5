"""The index files as pure functions: render, write, read back."""

import hashlib
import json
import subprocess

from magedl.mirror.index import (
    parse_sums,
    read_feed,
    read_sums,
    release_from_dict,
    release_rels,
    render_indexes,
    render_sums,
    write_indexes,
)
from magedl.service.catalog import Release, parse_feed

R = Release(name="Magento CE 2.4.7", file_name="Magento-CE-2.4.7.zip", version="2.4.7", type="ce-full",
            md5="0" * 32, extra={"date": "2024-04-09"})


def test_render_indexes_gives_the_upstream_shape():
    files = render_indexes([R])
    assert set(files) == {"info/json", "info/files", "info/versions"}
    feed = json.loads(files["info/json"])
    assert parse_feed(feed) == [R] and feed["ce-full"]["2.4.7"][0]["date"] == "2024-04-09"


def test_sums_round_trip_and_bad_lines_are_numbered():
    sums = {"file/b": "b" * 64, "file/a": "a" * 64}
    text = render_sums(sums).decode()
    assert text.splitlines()[0].endswith("  file/a")
    assert parse_sums(text) == (sums, [])
    damaged = text + "garbage\n" + f"{'c' * 64}  file/a\n"
    assert parse_sums(damaged) == (sums, [3, 4])


def test_write_indexes_lists_archives_and_indexes_and_sha256sum_agrees(tmp_path):
    (tmp_path / "file").mkdir()
    (tmp_path / "file" / R.file_name).write_bytes(b"zip")
    extra = {"composer/packages.json": b"{}\n"}
    changed = write_indexes(tmp_path, [R], {f"file/{R.file_name}": hashlib.sha256(b"zip").hexdigest()}, extra)
    assert set(changed) == {"info/json", "info/files", "info/versions", "composer/packages.json", "SHA256SUMS"}
    sums, bad = read_sums(tmp_path / "SHA256SUMS")
    assert not bad and set(sums) == {f"file/{R.file_name}", "info/json", "info/files", "info/versions",
                                     "composer/packages.json"}
    check = subprocess.run(["sha256sum", "--strict", "-c", "SHA256SUMS"], cwd=tmp_path, capture_output=True)
    assert check.returncode == 0
    assert write_indexes(tmp_path, [R], {f"file/{R.file_name}": sums[f"file/{R.file_name}"]}, extra) == []
    assert release_rels(sums) == {R.file_name: sums[f"file/{R.file_name}"]}


def test_reading_refuses_links_and_damage(tmp_path):
    (tmp_path / "real").write_text(f"{'a' * 64}  file/x\n")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert read_sums(tmp_path / "real")[0] == {"file/x": "a" * 64}
    for path in (tmp_path / "link", tmp_path / "missing"):
        try:
            read_sums(path)
        except OSError:
            pass
        else:
            raise AssertionError(f"{path} was read")
    (tmp_path / "feed").write_text("[" * 100000)
    assert read_feed(tmp_path / "feed") is None and read_feed(tmp_path / "link") is None


def test_release_from_dict_keeps_extra_fields():
    again = release_from_dict(R.to_dict())
    assert again == R and again.extra == {"date": "2024-04-09"}
    assert release_from_dict({"file_name": "x.zip"}).name == "x.zip"
