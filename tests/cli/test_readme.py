"""The README's examples, run: every fenced block right after an ``<!-- tested -->`` comment.

Blocks run in README order, as a reader following along would, in one
sandbox, against the emulator: a ``magedl`` on PATH runs this checkout with
the emulator's base URL and credentials (``file://`` base URLs are kept),
absolute paths under the usual roots (``/srv``, ``/build``, ``/media``,
``/run/secrets``, ``/etc/magedl``, ``~``) are moved into the sandbox, and
``tar`` only records what it was asked to do (the emulator's archives are not
real ones). Every ``magedl`` call must exit 0, and an archive the README
extracts must be a release, never its sample data.

The emulator walk-through starts its own emulator: there ``magedl`` keeps the
environment the walk-through's ``eval`` set, ``.venv/bin/python`` is this
interpreter, the emulator takes free ports (``--port 0``, as several test
runs may share the machine), and whatever the block does, the emulator it
started is stopped when the block ends.
"""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
MARKED = re.compile(r"<!--\s*tested\s*-->\s*\n```[ \t]*(\w*)[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
ROOTS = ("/srv/", "/build/", "/media/", "/run/secrets/", "/etc/magedl/")


def marked_blocks(text):
    """``(language, body)`` of every block marked ``<!-- tested -->``."""
    return [(m.group(1), m.group(2)) for m in MARKED.finditer(text)]


def test_the_readme_has_marked_blocks():
    blocks = marked_blocks(README.read_text(encoding="utf-8"))
    assert blocks, ("README.md has no fenced block marked '<!-- tested -->': mark the examples "
                    "(the scripted build among them) so this test runs them")
    assert any("magedl" in body for _, body in blocks)


def test_the_marker_finder_finds_what_it_should():
    text = "a\n<!-- tested -->\n```sh\nmagedl list\n```\n\n```sh\nmagedl versions\n```\n<!-- tested -->\n```\nx\n```\n"
    assert marked_blocks(text) == [("sh", "magedl list\n"), ("", "x\n")]


def _sandboxed(body, sandbox):
    for root in ROOTS:
        body = re.sub(rf"(?<![\w./]){re.escape(root)}", f"{sandbox}{root}", body)
    body = body.replace(".venv/bin/python -m magedl.emulator", f"{shlex.quote(sys.executable)} -m magedl.emulator "
                        "--port 0")
    if "magedl.emulator" in body:  # stop what the block started, even when a step failed
        body = f"trap '[ -n \"${{MAGEDL_EMULATOR_PID:-}}\" ] && kill \"$MAGEDL_EMULATOR_PID\" 2>/dev/null' EXIT\n{body}"
    return re.sub(r"(?<![\w/])~/", f"{sandbox}/home/", body)


def _executable(path, text):
    path.write_text(text)
    path.chmod(0o700)  # the magedl wrapper holds the emulator's token: private, like any secret file


@pytest.fixture
def sandbox(tmp_path, emulator):
    root = tmp_path / "sandbox"
    for sub in ("srv", "build/dist", "build/src", "media/usb", "run/secrets", "etc/magedl", "home", "bin", "work"):
        (root / sub).mkdir(parents=True)
    for secret in (root / "run/secrets/magento_downloads_token", root / "home/.magento-token"):
        secret.write_text(emulator.token + "\n")
        secret.chmod(0o600)
    log = root / "magedl.log"
    _executable(root / "bin/magedl", f"""#!/bin/sh
if [ -z "${{MAGEDL_EMULATOR_PID:-}}" ]; then  # not in the walk-through, which set its own
  case "$MAGEDL_BASE_URL" in file://*) ;; *) MAGEDL_BASE_URL={shlex.quote(emulator.base_url)} ;; esac
  MAGEDL_MAGEID={shlex.quote(emulator.mageid)} MAGEDL_TOKEN={shlex.quote(emulator.token)}
  export MAGEDL_BASE_URL MAGEDL_MAGEID MAGEDL_TOKEN
fi
for arg in "$@"; do
  [ "$arg" = serve ] && {{ echo "README test: a tested block must not run 'serve'" >&2; exit 99; }}
done
{shlex.quote(sys.executable)} -m magedl "$@"
rc=$?
printf '%s %s\\n' "$rc" "$*" >> {shlex.quote(str(log))}
exit $rc
""")
    _executable(root / "bin/tar", f"""#!/bin/sh
printf '%s\\n' "$*" >> {shlex.quote(str(root / 'tar.log'))}
""")
    return root


def test_every_tested_readme_block_runs(sandbox, emulator):
    blocks = marked_blocks(README.read_text(encoding="utf-8"))
    if not blocks:
        pytest.fail("README.md has no fenced block marked '<!-- tested -->'")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAGEDL_")}
    env.update(PATH=f"{sandbox / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}", HOME=str(sandbox / "home"),
               XDG_CONFIG_HOME=str(sandbox / "home/.config"))
    ran = 0
    for number, (language, body) in enumerate(blocks, 1):
        if "magedl" not in body:
            continue
        script = _sandboxed(body, sandbox)
        if language == "python":  # the library example, against the emulator as the wrapper's magedl is
            command = [sys.executable, "-c", script]
            run_env = dict(env, MAGEDL_BASE_URL=emulator.base_url, MAGEDL_MAGEID=emulator.mageid,
                           MAGEDL_TOKEN=emulator.token)
        else:
            command, run_env = ["bash" if language == "bash" else "sh", "-c", script], env
        done = subprocess.run(command, cwd=sandbox / "work", env=run_env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, f"tested README block {number} exited {done.returncode}:\n{body}\n{done.stderr}"
        ran += 1
    assert any(language == "python" for language, _ in blocks), "the README's library example is not marked tested"
    calls = (sandbox / "magedl.log").read_text().splitlines() if (sandbox / "magedl.log").exists() else []
    assert calls, "no tested README block ran magedl"
    failed = [c for c in calls if not c.startswith("0 ")]
    assert not failed, f"README examples that did not exit 0: {failed}"
    # The emulator walk-through ran against its own emulator: keys stored, checked, Composer packages mirrored.
    assert any(c.startswith("0 keys store --global --repo-url http://127.0.0.1:") for c in calls), calls
    assert any(c.startswith("0 mirror practice-mirror --composer-require") for c in calls), calls
    extracted = (sandbox / "tar.log").read_text().splitlines() if (sandbox / "tar.log").exists() else []
    for line in extracted:
        for word in line.split():
            name = os.path.basename(word)
            if name.startswith("Magento-"):
                assert "sample_data" not in name, f"the README extracts the sample data, not the release: {line}"
    assert ran
