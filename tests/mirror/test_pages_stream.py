"""Issue 18: the pages are rendered from the state a row at a time, never holding every held file at once."""

import pytest
from clirun import run

from magedl.mirror.held import Held
from magedl.mirror.index import read_feed
from magedl.mirror.pages import site
from magedl.mirror.state import State

SEL = ("--type", "ce-full", "--type", "ce-patch", "--version", "2.4.6*")


@pytest.fixture
def mdir(tmp_path):
    return tmp_path / "mirror"


def counting_held_file(monkeypatch):
    """Replace ``site.HeldFile`` by a subclass counting the instances alive; returns ``{"alive", "peak", "made"}``."""
    seen = {"alive": 0, "peak": 0, "made": 0}

    class Counted(site.HeldFile):
        def __init__(self, *args):
            super().__init__(*args)
            seen["alive"] += 1
            seen["made"] += 1
            seen["peak"] = max(seen["peak"], seen["alive"])

        def __del__(self):
            seen["alive"] -= 1

    monkeypatch.setattr(site, "HeldFile", Counted)
    return seen


def test_a_cold_run_renders_the_pages_holding_no_object_per_held_file(env, capsys, mdir, monkeypatch):
    seen = counting_held_file(monkeypatch)
    assert run(capsys, "-q", "mirror", str(mdir), *SEL)[0] == 0
    files = [p for p in (mdir / "file").rglob("*") if p.is_file()]
    assert len(files) >= 3 and (mdir / site.INDEX).is_file()
    assert seen["made"] >= len(files)  # every file's row was rendered...
    assert seen["peak"] == 1  # ...each made as its row was, and dropped with it


def test_the_pages_from_the_state_are_the_bytes_rendered_from_every_file_at_once(env, capsys, mdir):
    assert run(capsys, "-q", "mirror", str(mdir), *SEL)[0] == 0
    state = State(mdir)
    held = Held(mdir, state, {}, set())
    records = read_feed(mdir / "info" / "json")
    every = {rel: site.HeldFile(e.fingerprint.size, e.md5, e.sha256, e.sha1) for rel, e in held.items()}
    previous = (mdir / site.INDEX).read_bytes()
    whole = dict(site.render_pages(records, every, {}, version=site_version(), previous=previous))
    streamed = dict(site.render_pages(records, site._Files(held), {}, version=site_version(), previous=previous))
    assert whole == streamed and whole[site.INDEX] == previous


def test_a_held_lookup_answers_one_row_and_leaves_out_a_file_changed_since_listed(env, capsys, mdir):
    assert run(capsys, "-q", "mirror", str(mdir), *SEL)[0] == 0
    names = sorted(rel for rel, _ in Held(mdir, State(mdir), {}, set()).items())
    (mdir / names[0]).write_bytes(b"changed")
    held = Held(mdir, State(mdir), {}, {names[1]})
    assert names[0] not in held and names[1] not in held and "file/none.zip" not in held
    assert held[names[2]].sha256 == dict(held.items())[names[2]].sha256
    assert held.totals("file/") == (len(names) - 2, sum((mdir / n).stat().st_size for n in names[2:]))


def site_version():
    from magedl import __version__

    return __version__
