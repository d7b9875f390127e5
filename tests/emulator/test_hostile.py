"""The emulator's hostile Composer repository (magedl/emulator/hostile.py): every attack it plays is bounded.

``mirror`` is run in-process against each attack of :data:`~magedl.emulator.hostile.ATTACKS` with
Marketplace keys for its host; whatever the attack, the run ends (no traceback), says what it
refused, asks for a bounded number of documents and sends nothing where a name points.
"""

import json
import os
import subprocess
import sys

import pytest
import requests
from clirun import printed_lines, run

from magedl.emulator.hostile import ATTACKS, HostileRepo

PUBLIC, PRIVATE = "0f1e2d3c4b5a69788796a5b4c3d2e1f0", "1f2e3d4c5b6a79808f9eadbccbdaefe0"


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_every_attack_ends_with_a_message_and_bounded_requests(attack, capsys, monkeypatch, tmp_path):
    with HostileRepo(ATTACKS[attack]()) as repo:
        auth = {"http-basic": {repo.host: {"username": PUBLIC, "password": PRIVATE}}}
        monkeypatch.setenv("COMPOSER_AUTH", json.dumps(auth))
        code, out, err = run(capsys, "--json", "mirror", str(tmp_path / "m"), "--composer-repo", repo.url,
                             "--composer-require", "evil/root")
    assert "Traceback" not in err and "internal error" not in err and code in (0, 1, 7), err
    assert "warning" in err or "error" in err  # the attack is named, not silently absorbed
    assert len(repo.requests) <= 110
    assert all(path == "/packages.json" or path.startswith(("/p2/evil/", "/packages.json?"))
               for path, _ in repo.requests), repo.requests
    assert max(len(line) for line in err.splitlines()) < 1000


def test_the_emulator_command_runs_a_hostile_repository(tmp_path):
    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-m", "magedl.emulator", "--port", "0", "--composer-hostile", "names",
                             "--big-size", "1K", "--ready-file", str(ready)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        lines = printed_lines(proc, lambda line: line.startswith("# stop it"))
        [url] = [line.split("=", 1)[1].strip() for line in lines if line.startswith("export MAGEDL_EMULATOR_HOSTILE=")]
        assert url.startswith("http://")
        assert requests.get(url + "packages.json", timeout=10).json()["metadata-url"] == "/p2/%package%.json"
        assert "../../admin" in requests.get(url + "p2/evil/root.json", timeout=10).text
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert proc.returncode == 0
