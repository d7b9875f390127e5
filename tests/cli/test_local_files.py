"""Local files a checkout can carry (issue 19, items 12, 13, 15): a FIFO, a link to /dev/zero, a lock probe.

Run as subprocesses with a timeout: on the old code these commands hung (a FIFO opened
blocking) or died of MemoryError, and a hung test must fail, not hang the suite.
"""

import os
import subprocess
import sys

import pytest


def magedl(*argv, env=None, timeout=60):
    proc = subprocess.run([sys.executable, "-m", "magedl", "--retry-wait", "0", "--retries", "1", *argv],
                          capture_output=True, text=True, env=env or dict(os.environ), timeout=timeout,
                          stdin=subprocess.DEVNULL)
    return proc.returncode, proc.stdout, proc.stderr


def plant(path, kind):
    if kind == "fifo":
        os.mkfifo(path)
    else:
        os.symlink("/dev/zero", path)


def one_line_error(err, *words):
    lines = [line for line in err.splitlines() if line.startswith("magedl: error")]
    assert len(lines) == 1 and all(w in lines[0] for w in words), err
    assert "Traceback" not in err and "internal error" not in err and "MemoryError" not in err


@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_a_project_auth_json_that_is_a_fifo_or_dev_zero_is_a_one_line_error(tmp_path, kind):
    """Issue 19 item 12: ``keys check`` read project auth.json with read_bytes(): a FIFO hung it."""
    project = tmp_path / "shop"
    project.mkdir()
    (project / "composer.json").write_text("{}")
    plant(project / "auth.json", kind)
    code, out, err = magedl("keys", "check", "--project", str(project), "--repo-url", "http://127.0.0.1:9/")
    assert code == 1
    one_line_error(err, str(project / "auth.json"))


@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_a_global_auth_json_that_is_a_fifo_or_dev_zero_stops_mirror_and_doctor_with_one_line(tmp_path, kind):
    home = tmp_path / "composer-home"
    home.mkdir()
    plant(home / "auth.json", kind)
    env = dict(os.environ, COMPOSER_HOME=str(home))
    code, out, err = magedl("mirror", str(tmp_path / "m"), "--composer-repo", "http://127.0.0.1:9/",
                            "--composer-require", "a/b", env=env)
    assert code == 1
    one_line_error(err, str(home / "auth.json"))
    code, out, err = magedl("doctor", "--repo-url", "http://127.0.0.1:9/", "-o", str(tmp_path), env=env)
    assert str(home / "auth.json") in out + err and "Traceback" not in err


@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_a_composer_lock_that_is_a_fifo_or_dev_zero_is_a_one_line_error(tmp_path, kind):
    plant(tmp_path / "composer.lock", kind)
    code, out, err = magedl("mirror", str(tmp_path / "m"), "--composer-repo", "http://127.0.0.1:9/",
                            "--composer-lock", str(tmp_path / "composer.lock"))
    assert code in (1, 2)
    assert "composer.lock" in err and "Traceback" not in err and "MemoryError" not in err


@pytest.mark.parametrize("fd", ["1", "2"])
def test_keys_store_never_prints_the_private_key_to_stdout_or_stderr(fd):
    """Issue 19 item 15: ``--print-env 1`` wrote the private key into the CI job log (stdout was not a terminal)."""
    public, private = "0a1b2c3d4e5f60718293a4b5c6d7e8f9", "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
    proc = subprocess.run([sys.executable, "-m", "magedl", "keys", "store", "--no-check", "--print-env", fd],
                          input=f"{public}\n{private}\n", capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert private not in proc.stdout + proc.stderr and private[:8] not in proc.stdout + proc.stderr
    assert "use another descriptor, e.g. --print-env 3 3>" in proc.stderr


def test_doctor_probes_a_fifo_named_like_a_lock_without_hanging(tmp_path):
    """Issue 19 item 13: ``doctor -o DIR`` opened ``*.magedl-lock`` blocking: a FIFO hung it."""
    os.mkfifo(tmp_path / "x.zip.magedl-lock")
    (tmp_path / "y.zip.magedl-lock").write_text("")  # a lock a killed run left
    code, out, err = magedl("doctor", "--repo-url", "http://127.0.0.1:9/", "-o", str(tmp_path))
    assert "x.zip.magedl-lock: named like a lock, but not a regular file" in out + err
    assert "y.zip.magedl-lock: a lock no process holds" in out + err


def test_the_lock_probe_tells_held_free_and_not_a_lock(tmp_path):
    from magedl.locks import FileLock, is_held

    os.mkfifo(tmp_path / "fifo")
    os.symlink(tmp_path / "free", tmp_path / "link")
    (tmp_path / "free").write_text("")
    assert is_held(tmp_path / "fifo") is None and is_held(tmp_path / "link") is None
    assert is_held(tmp_path / "missing") is None and is_held(tmp_path / "free") is False
    with FileLock(tmp_path / "held", "busy"):
        assert is_held(tmp_path / "held") is True
