"""``mirror --json`` at scale (issue 18): the stdout of one JSON array in path order, with no item nor row dict
held per file while the run goes; the rows wait as text in an unnamed file in ``DIR/.magedl``.
"""

import json
import os
import sys
import tempfile

import pytest
from clirun import run

from magedl.cli import mirror as cli_mirror
from magedl.mirror import core as core_mod
from magedl.mirror import held as held_mod
from magedl.mirror import model as model_mod
from magedl.mirror import plan as plan_mod

SEL_246 = ("--type", "ce-full", "--type", "ce-patch", "--version", "2.4.6*")


@pytest.fixture
def mdir(tmp_path):
    return tmp_path / "mirror"


def test_json_prints_one_array_in_path_order_of_fetched_failed_unchanged_and_pruned_files(env, capsys, mdir):
    env.set_faults(forbidden={"Magento-CE-2.4.6-p2.tar.gz"})
    assert run(capsys, "--json", "mirror", str(mdir), "--jobs", "4", *SEL_246)[0] == 4
    env.set_faults(forbidden={"Magento-CE-2.4.6-p1.zip"})
    (mdir / "file" / "Magento-CE-2.4.6-p1.zip").unlink()
    (mdir / "file" / "stray.txt").write_text("not ours")
    code, out, _ = run(capsys, "--json", "mirror", str(mdir), "--jobs", "4", "--type", "ce-full", "--version",
                       "2.4.6*", "--prune")
    rows = json.loads(out)
    assert code == 4 and out == json.dumps(rows, indent=2) + "\n"  # the text print_json writes of the whole array
    assert {row["file_name"]: row["status"] for row in rows} == {
        "Magento-CE-2.4.6-p1.zip": "failed", "Magento-CE-2.4.6-p10.tar.gz": "present",
        "Magento-CE-2.4.6-p10.zip": "present", "Magento-CE-2.4.6-p2.tar.gz": "fetched",
        "Magento-CE-2.4.6.tar.gz": "present", "patches/MDVA-43395_CE_2.4.6_v1.sh": "pruned", "stray.txt": "pruned"}
    assert [row["file_name"] for row in rows] == sorted(row["file_name"] for row in rows)
    present = [row for row in rows if row["status"] == "present"]
    assert all(row["md5"] == row["local_md5"] and len(row["sha256"]) == 64 and row["size"] for row in present)


@pytest.fixture
def counted(monkeypatch):
    """How many items, and how many row dicts (``Item.to_dict``), were made and at most alive at once."""
    alive, most = {"item": 0, "row": 0}, {"item": 0, "row": 0, "items made": 0, "rows made": 0}

    def made(kind):
        alive[kind] += 1
        most[kind] = max(most[kind], alive[kind])
        most[kind + "s made"] += 1

    class Counted(model_mod.Item):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made("item")

        def __del__(self):
            alive["item"] -= 1

    class Row(dict):
        def __del__(self):
            alive["row"] -= 1

    def to_dict(item, real=model_mod.Item.to_dict):
        made("row")
        return Row(real(item))

    for module in (plan_mod, core_mod, held_mod):
        monkeypatch.setattr(module, "Item", Counted)
    monkeypatch.setattr(model_mod.Item, "to_dict", to_dict)
    return most


def test_a_json_run_holds_no_item_nor_row_per_file_cold_or_up_to_date(env, capsys, mdir, counted):
    """Each file's item is made as its fate is known (an unchanged file's from its state row) and its row as it
    is reported; neither is kept for the sorted array, which is printed from the rows' text on disk."""
    code, out, _ = run(capsys, "-q", "--json", "mirror", str(mdir), "--jobs", "4", *SEL_246)
    files = len(json.loads(out))
    assert code == 0 and files > 4 and counted["rows made"] == counted["items made"] == files
    assert counted["item"] <= 2 and counted["row"] <= 1, counted  # the one reported (and the next transfer's)
    counted.update(item=0, row=0, **{"items made": 0, "rows made": 0})
    code, out, _ = run(capsys, "-q", "--json", "mirror", str(mdir), *SEL_246)
    rows = json.loads(out)
    assert code == 0 and len(rows) == files and {row["status"] for row in rows} == {"present"}
    assert counted["rows made"] == counted["items made"] == files
    assert counted["item"] <= 2 and counted["row"] <= 1, counted  # the one reported, the next made from its row


@pytest.fixture
def spills(monkeypatch):
    """The temporary files the command line made (the index write makes its own), with the folder of each."""
    made = []
    real = tempfile.TemporaryFile

    def temporary_file(**options):
        spill = real(**options)
        if sys._getframe(1).f_globals.get("__name__", "").startswith("magedl.cli"):
            made.append((options.get("dir"), spill))
        return spill

    monkeypatch.setattr(tempfile, "TemporaryFile", temporary_file)
    return made


def _rows_spilled(spills, mdir):
    assert {os.fspath(folder) for folder, _ in spills} == {os.fspath(mdir / ".magedl")}
    return [spill for _, spill in spills]


def test_the_rows_wait_in_an_unnamed_file_in_the_mirror_closed_once_printed(env, capsys, mdir, spills):
    code, out, _ = run(capsys, "--json", "mirror", str(mdir), *SEL_246)
    [spilled] = _rows_spilled(spills, mdir)
    assert code == 0 and json.loads(out) and spilled.closed
    assert not [name for name in os.listdir(mdir / ".magedl") if name.startswith("tmp")]


def test_ctrl_c_while_files_are_reported_leaves_no_spill_behind(env, capsys, mdir, spills, monkeypatch):
    reported = []
    real = cli_mirror._report_item

    def report_then_interrupt(item, quiet):
        reported.append(item.rel)
        if len(reported) == 3:
            raise KeyboardInterrupt
        real(item, quiet)

    monkeypatch.setattr(cli_mirror, "_report_item", report_then_interrupt)
    code, out, err = run(capsys, "--json", "mirror", str(mdir), *SEL_246)
    assert code == 130 and out == "" and "interrupted" in err
    [spilled] = _rows_spilled(spills, mdir)
    assert spilled.closed and not [name for name in os.listdir(mdir / ".magedl") if name.startswith("tmp")]
