"""``mirror_folder``: a mirror run as one library call, without the command line (issue 23).

The command line's tests (tests/mirror/test_mirror.py) hold the behaviour;
these hold that the engine alone does it: a request in, a typed report out,
nothing printed.
"""

import hashlib
from dataclasses import replace

import pytest

from magedl.config import Credentials, Settings
from magedl.errors import NotFoundError, UsageError
from magedl.mirror.model import Action, Status
from magedl.mirror.run import Clients, MirrorRequest, ReleaseSelection, mirror_folder
from magedl.service.api import Client
from magedl.service.catalog import parse_feed

BIG = "Magento-CE-2.4.7.tar.gz"


def clients_of(emulator):
    settings = Settings(emulator.base_url, Credentials(emulator.mageid, emulator.token))

    def no_composer():
        raise AssertionError("no Composer options: the Composer repositories must not be asked")

    return Clients(releases=lambda: Client(settings), composer=no_composer)


def test_a_library_call_mirrors_the_selection_and_returns_what_it_did(emulator, tmp_path, capsys):
    root = tmp_path / "mirror"
    request = MirrorRequest(root, releases=ReleaseSelection(types=("ce-patch",)))
    planned, seen = [], []
    report = mirror_folder(request, clients_of(emulator), on_plan=planned.append, on_item=seen.append)
    wanted = {r.file_name for r in parse_feed(emulator.store.feed()) if r.type == "ce-patch"}
    assert not report.dry_run and report.failures == [] and planned == [report.plan]
    assert report.items == [] and {it.file_name for it in seen} == wanted  # reported, not held (every_item keeps)
    assert report.summary.count(Status.FETCHED) == len(wanted) and report.summary.transferred > 0
    assert report.sums_sha256 == hashlib.sha256((root / "SHA256SUMS").read_bytes()).hexdigest()
    assert report.signed is None and report.advisories is None
    assert capsys.readouterr().out == ""  # the engine renders nothing: that is the command line's work

    again = mirror_folder(request, clients_of(emulator))
    assert again.summary.count(Status.PRESENT) == len(wanted) and again.summary.transferred == 0


def test_every_file_reports_the_unchanged_files_too_and_every_item_also_keeps_them(emulator, tmp_path):
    """every_file (--json): an unchanged file reaches on_item too, and the report holds no item; every_item:
    the report's items list every file, as a library caller asking for it has them."""
    request = MirrorRequest(tmp_path / "mirror", releases=ReleaseSelection(types=("ce-patch",)))
    wanted = {r.file_name for r in parse_feed(emulator.store.feed()) if r.type == "ce-patch"}
    assert mirror_folder(request, clients_of(emulator)).summary.count(Status.FETCHED) == len(wanted)
    seen = []
    report = mirror_folder(request, clients_of(emulator), on_item=seen.append, every_file=True)
    assert report.items == [] and sorted(it.file_name for it in seen) == sorted(wanted)
    assert {it.status for it in seen} == {Status.PRESENT} and report.summary.count(Status.PRESENT) == len(wanted)
    report = mirror_folder(request, clients_of(emulator), every_item=True)
    assert sorted(it.file_name for it in report.items) == sorted(wanted)
    assert report.summary.count(Status.PRESENT) == len(wanted)  # each counted once


def test_a_dry_run_returns_the_plan_with_sizes_and_creates_nothing(emulator, tmp_path):
    root = tmp_path / "mirror"
    request = MirrorRequest(root, releases=ReleaseSelection(types=("ce-full",), versions=("2.4.7",)), dry_run=True)
    report = mirror_folder(request, clients_of(emulator))
    assert report.dry_run and report.failures == [] and report.items == [] and not root.exists()
    [big] = [it for it in report.plan.to_fetch if it.file_name == BIG]
    assert big.action is Action.FETCH and big.size == 512 * 1024  # from a HEAD request
    assert not [r for r in emulator.log if r.method == "GET" and r.file_name]


def test_a_refused_request_creates_nothing(emulator, tmp_path):
    root = tmp_path / "mirror"
    request = MirrorRequest(root, releases=ReleaseSelection(types=("ce-full",), versions=("9.9.9",)))
    with pytest.raises(NotFoundError, match="the mirror was not changed"):
        mirror_folder(request, clients_of(emulator))
    with pytest.raises(UsageError, match="--diff-file"):
        mirror_folder(replace(request, diff_file=str(tmp_path / "missing" / "delta")), clients_of(emulator))
    assert not root.exists()
