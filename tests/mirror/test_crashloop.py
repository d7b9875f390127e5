"""Crash loop (issue 9) for mirrors: ``magedl mirror`` killed with SIGKILL at seeded moments, then finished.

The loop lives in ``scripts/chaos.py`` (``make chaos`` runs longer ones). Each
kill is synchronised on the bytes the emulator served, never on time. After
every kill, ``SHA256SUMS`` may only describe bytes that are on disk and right;
at the end every file matches the feed, ``magedl verify`` and ``sha256sum -c``
accept the mirror, no partial file is left, and no more than one copy of the
data plus half a second of transfer per kill was served.
"""

import importlib.util
import shutil
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location("chaos", Path(__file__).parents[2] / "scripts" / "chaos.py")
chaos = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(chaos)

SIZE = 8 << 20
RATE = 4 << 20  # per connection: the mirror run takes about a second with two jobs


@pytest.fixture
def emulator8():
    emulator = chaos.emulator_with(SIZE)
    yield emulator
    emulator.stop()


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="sha256sum (coreutils) is not installed")
def test_mirror_survives_sigkill_at_random_moments(emulator8, tmp_path):
    out = chaos.mirror_crash_loop(emulator8, tmp_path / "mirror", kills=3, seed=4242, rate=RATE)
    assert out.kills == 3  # every kill landed mid-run
    assert out.problems == []
    assert out.served <= out.allowance, f"served {out.served} bytes, allowed {out.allowance}"


def test_check_index_catches_an_entry_without_its_bytes(tmp_path):
    (tmp_path / "file").mkdir()
    (tmp_path / "file" / "a.zip").write_bytes(b"good")
    good = chaos.hashlib.sha256(b"good").hexdigest()
    (tmp_path / "SHA256SUMS").write_text(f"{good}  file/a.zip\n{good}  file/b.zip\n")
    assert chaos.check_index(tmp_path) == ["SHA256SUMS lists file/b.zip but the bytes there differ or are missing"]


def test_check_delta_catches_a_path_the_index_lists_and_the_delta_lacks(tmp_path):
    root = tmp_path / "m"
    root.mkdir()
    (root / "SHA256SUMS").write_text("00  file/a.zip\n00  info/json\n")
    delta = tmp_path / "delta"
    delta.write_text("file/a.zip\ninfo/json\nSHA256SUMS\n")
    assert chaos.check_delta(root, delta) == []
    delta.write_text("file/a.zip\nSHA256SUMS\n")
    assert chaos.check_delta(root, delta) == ["the delta file lacks 1 changed path(s): info/json"]
