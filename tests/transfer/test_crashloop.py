"""Crash loop (issue 9): ``magedl get`` killed with SIGKILL at seeded random byte counts, then finished.

The loop itself lives in ``scripts/chaos.py`` (``make chaos`` runs longer
ones); here a short loop of each kind, single stream and segmented. Each
kill is synchronised on the bytes the emulator served, never on time; after
each, the sidecar may only claim bytes that are on disk and right, and the
next run must continue from them (no request from byte 0). At the end: the
feed's md5, nothing left over, and at most one copy of the file
plus half a second of transfer per kill served in all.
"""

import importlib.util
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location("chaos", Path(__file__).parents[2] / "scripts" / "chaos.py")
chaos = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(chaos)

SIZE = 12 << 20  # with the default 4 MiB pieces, a segmented run uses three connections
RATE = 6 << 20  # per connection: a whole single-stream run takes two seconds


@pytest.fixture
def emulator12():
    emulator = chaos.emulator_with(SIZE)
    yield emulator
    emulator.stop()


@pytest.mark.parametrize("connections", [1, 4], ids=["single", "segmented"])
def test_get_survives_sigkill_at_random_moments(emulator12, tmp_path, connections):
    out = chaos.crash_loop(emulator12, tmp_path, connections=connections, kills=3, seed=20240 + connections,
                           rate=RATE)
    assert out.kills == 3  # every kill landed mid-transfer
    assert out.restarts == 0  # every run continued from what the sidecar held
    assert out.md5_ok and out.leftovers == []
    assert out.served <= out.allowance, f"served {out.served} bytes, allowed {out.allowance}"
