"""The command line against the emulator: output, exit codes, credentials.

Most tests call ``cli.main`` in-process; those that need a real process
(kill -9, Ctrl-C) run ``python -m magedl``.
"""

import json
import os
import signal
import subprocess
import sys

import pytest
from clirun import run

from magedl.service.catalog import parse_feed
from magedl.transfer.one_file import md5_file
from magedl.versions import sort_versions

BIG = "Magento-CE-2.4.7.tar.gz"


def range_start(record):
    """First byte a logged request asked for (``Range: bytes=N-...``), or None."""
    return int(record.range.split("=")[1].split("-")[0]) if record.range else None


def feed_md5(emulator, name):
    return next(r.md5 for r in parse_feed(emulator.store.feed()) if r.file_name == name)


def test_versions_plain_and_json(env, capsys):
    code, out, err = run(capsys, "versions", "--type", "ce-full")
    assert code == 0
    versions = [line.split()[1] for line in out.splitlines()[1:]]
    assert versions == sort_versions(versions) and versions[0] == "2.4.7"
    assert versions.index("2.4.6-p10") < versions.index("2.4.6-p2") < versions.index("2.4.6")
    code, out, _ = run(capsys, "--json", "versions", "--type", "ce-full")
    rows = json.loads(out)
    assert rows[0] == {"type": "ce-full", "edition": "CE", "version": versions[0]}
    assert [r["version"] for r in rows] == versions


def test_list_json_is_the_contract_and_alone_on_stdout(env, capsys):
    code, out, err = run(capsys, "list", "--json")
    assert code == 0
    rows = json.loads(out)  # nothing but the JSON array on stdout
    assert rows and all({"name", "file_name", "version", "type", "md5"} <= set(r) for r in rows)
    assert {r["type"] for r in rows} >= {"ce-full", "ee-full", "ce-patch", "other"}


def test_list_filters(env, capsys):
    code, out, _ = run(capsys, "list", "--json", "--type", "ce-full", "--latest", "--format", "tar.gz")
    rows = json.loads(out)
    assert sorted(r["file_name"] for r in rows) == [BIG, "Magento-CE-2.4.7_sample_data.tar.gz"]
    code, out, _ = run(capsys, "list", "--json", "--type", "ce-full", "--version", "2.4.6*")
    assert rows and all(r["version"].startswith("2.4.6") for r in json.loads(out))


def test_list_plain_table_in_a_pipe(env, capsys):
    code, out, _ = run(capsys, "list", "--type", "ce-full")
    lines = out.splitlines()
    assert lines[0].split() == ["TYPE", "VERSION", "FILE", "NAME", "MD5", "DESCRIPTION"]
    assert any(BIG in line for line in lines[1:])


def test_get_by_name_prints_path_and_verifies(env, capsys, tmp_path):
    code, out, err = run(capsys, "get", BIG, "-o", str(tmp_path))
    assert code == 0
    assert out.strip() == str((tmp_path / BIG).resolve())
    assert "md5 verified" in err
    assert md5_file(tmp_path / BIG) == feed_md5(env, BIG)


def test_get_selection_and_json(env, capsys, tmp_path):
    code, out, err = run(capsys, "--json", "get", "--version", "2.4.7", "--type", "ce-full",
                         "--format", "zip", "-o", str(tmp_path))
    assert code == 0
    [row] = json.loads(out)
    assert row["file_name"].endswith(".zip") and row["status"] == "fetched" and row["verified"] is True
    assert md5_file(row["path"]) == row["md5"]


def test_get_unknown_name_exits_5(env, capsys, tmp_path):
    code, out, err = run(capsys, "get", "Magento-CE-9.9.9.tar.gz", "-o", str(tmp_path))
    assert code == 5 and "not in the catalogue" in err and out == ""


@pytest.mark.parametrize("name", ["../evil.tar.gz", "/etc/passwd", "C:evil.zip", "a/../../b.zip", "x\x00y"])
def test_get_unsafe_name_exits_2_before_any_request(env, capsys, tmp_path, name):
    code, out, err = run(capsys, "get", name, "-o", str(tmp_path))
    assert code == 2 and "unsafe" in err
    assert env.log == []
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv", [["get"], ["list", "--bogus"], ["frobnicate"], ["--retries", "zero", "list"],
                                  ["get", "x", "--version", "2.4.7"]])
def test_usage_errors_are_one_line_exit_2(capsys, argv):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_bad_token_exits_3(env, capsys, monkeypatch):
    monkeypatch.setenv("MAGEDL_TOKEN", "0" * 40)
    code, out, err = run(capsys, "list")
    # Which credentials were sent and where they came from (the advice depends on the host: C2's config rules).
    assert code == 3 and "refused" in err and "MAGEDL_TOKEN" in err and out == ""
    assert "0" * 40 not in err


def test_forbidden_exits_4(env, capsys, tmp_path):
    env.set_faults(forbidden={BIG})
    code, _, err = run(capsys, "get", BIG, "-o", str(tmp_path))
    assert code == 4 and "entitle" in err.lower()


def test_checksum_mismatch_exits_6(env, capsys, tmp_path):
    env.store.replace(BIG, b"\x1f\x8b\x08" + b"x" * 10_000, update_md5=False)
    code, _, err = run(capsys, "get", BIG, "-o", str(tmp_path))
    assert code == 6 and "md5 mismatch" in err
    assert not (tmp_path / BIG).exists()


def test_unreachable_server_exits_7_at_once(capsys, monkeypatch, tmp_path, sleeps):
    import socket

    with socket.socket() as s:  # a port nobody listens on: held bound, so no other server can take it meanwhile
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        monkeypatch.setenv("MAGEDL_BASE_URL", f"http://127.0.0.1:{port}/")
        code, _, err = run(capsys, "--retries", "2", "list")
    assert code == 7 and f"127.0.0.1:{port}" in err and "nothing listens there" in err
    assert sleeps == []  # a literal address that never answered: a typo, not waited for


def test_json_get_reports_failures_too(env, capsys, tmp_path):
    env.set_faults(forbidden={BIG})
    code, out, err = run(capsys, "--json", "get", BIG, "Magento-CE-2.4.7.zip", "-o", str(tmp_path))
    rows = {r["file_name"]: r for r in json.loads(out)}
    assert code == 4
    assert rows[BIG]["status"] == "failed" and rows[BIG]["exit_code"] == 4 and "entitlement" in rows[BIG]["error"]
    assert rows["Magento-CE-2.4.7.zip"]["status"] == "fetched"


def test_one_failure_does_not_stop_the_others(env, capsys, tmp_path):
    other = "Magento-CE-2.4.7.zip"
    env.set_faults(forbidden={BIG})
    code, out, err = run(capsys, "get", BIG, other, "-o", str(tmp_path))
    assert code == 4
    assert (tmp_path / other).exists() and not (tmp_path / BIG).exists()


def test_local_write_failure_names_the_file_and_the_rest_go_on(env, capsys, tmp_path):
    other = "Magento-CE-2.4.7.zip"
    (tmp_path / BIG).mkdir()
    code, out, err = run(capsys, "get", BIG, other, "-o", str(tmp_path))
    assert code == 1 and "cannot write" in err and "Traceback" not in err and "internal error" not in err
    assert (tmp_path / other).is_file()


def test_quiet_is_silent_on_success(env, capsys, tmp_path):
    code, out, err = run(capsys, "-q", "get", BIG, "-o", str(tmp_path))
    assert code == 0 and err == ""


def test_plain_progress_lines_when_not_a_terminal(env, capsys, tmp_path):
    code, _, err = run(capsys, "get", BIG, "-o", str(tmp_path))
    assert f"{BIG}: downloading" in err and "\r" not in err


def test_require_checksum_refuses_unverifiable(env, capsys, tmp_path):
    code, out, err = run(capsys, "--json", "list")
    unverifiable = next(r["file_name"] for r in json.loads(out) if not r["md5"])
    code, _, err = run(capsys, "get", unverifiable, "--require-checksum", "-o", str(tmp_path))
    assert code == 6 and "require-checksum" in err


def test_config_file_readable_by_others_is_refused(emulator, capsys, isolated_home, monkeypatch):
    path = isolated_home / ".config" / "magedl" / "config"
    path.parent.mkdir(parents=True)
    path.write_text(f"[magedl]\nmageid = {emulator.mageid}\ntoken = {emulator.token}\n")
    os.chmod(path, 0o644)
    monkeypatch.setenv("MAGEDL_BASE_URL", emulator.base_url)
    code, _, err = run(capsys, "list")
    assert code == 1 and "chmod 600" in err and emulator.token not in err
    os.chmod(path, 0o600)
    code, _, _ = run(capsys, "list")
    assert code == 0


def test_netrc_credentials(emulator, capsys, isolated_home, monkeypatch):
    netrc = isolated_home / ".netrc"
    netrc.write_text(f"machine 127.0.0.1 login {emulator.mageid} password {emulator.token}\n")
    os.chmod(netrc, 0o600)
    monkeypatch.setenv("MAGEDL_BASE_URL", emulator.base_url)
    code, _, _ = run(capsys, "list")
    assert code == 0


def test_curl_style_base_url_and_token_file(emulator, capsys, tmp_path):
    url = emulator.base_url.replace("http://", f"http://{emulator.mageid}:{emulator.token}@")
    assert run(capsys, "--base-url", url, "list")[0] == 0
    token_file = tmp_path / "token"
    token_file.write_text(emulator.token + "\n")
    os.chmod(token_file, 0o600)  # a secret's file must be private (magedl refuses it otherwise)
    code, _, _ = run(capsys, "--base-url", emulator.base_url, "--mageid", emulator.mageid,
                     "--token-file", str(token_file), "list")
    assert code == 0


def test_options_after_the_command(env, capsys):
    code, out, _ = run(capsys, "list", "--json", "-q")
    assert code == 0 and json.loads(out)


# -- real processes --------------------------------------------------------


def magedl_process(emulator, *argv, **kw):
    env = dict(os.environ, MAGEDL_BASE_URL=emulator.base_url, MAGEDL_MAGEID=emulator.mageid,
               MAGEDL_TOKEN=emulator.token)
    return subprocess.Popen([sys.executable, "-m", "magedl", "--retry-wait", "0", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, **kw)


def interrupted_run(emulator, tmp_path, sig):
    size = len(emulator.store.data(BIG))
    emulator.set_faults(rate=size // 4)  # about four seconds for the whole file
    proc = magedl_process(emulator, "get", BIG, "-o", str(tmp_path))
    assert emulator.wait_for(lambda s: s.bytes_sent(BIG) >= size // 3, timeout=30)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    # The server logs the cut request once it notices; wait so later log checks see only new requests.
    assert emulator.wait_for(lambda s: any(r.file_name == BIG for r in s.log), timeout=30)
    return proc.returncode, out.decode(), err.decode(), size


def test_kill_9_then_resume_fetches_only_missing_bytes(emulator, tmp_path):
    code, _, _, size = interrupted_run(emulator, tmp_path, signal.SIGKILL)
    assert code == -signal.SIGKILL
    part = tmp_path / (BIG + ".magedl-part")
    state = json.loads((tmp_path / (BIG + ".magedl-part.json")).read_text())
    [[start, end, kept]] = state["segments"]  # the test file is too small to be split
    assert 0 < kept < size and not (tmp_path / BIG).exists()
    emulator.clear_faults()
    emulator.clear_log()
    proc = magedl_process(emulator, "get", BIG, "-o", str(tmp_path))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    [get] = [r for r in emulator.log if r.file_name == BIG and r.method == "GET"]
    assert range_start(get) == kept and get.bytes_sent == size - kept
    assert md5_file(tmp_path / BIG) == feed_md5(emulator, BIG)
    assert b"resumed at" in err
    assert not part.exists()


def test_ctrl_c_exits_130_keeps_partial_no_traceback(emulator, tmp_path):
    code, out, err, size = interrupted_run(emulator, tmp_path, signal.SIGINT)
    assert code == 130
    assert "Traceback" not in err and "interrupted" in err
    state = json.loads((tmp_path / (BIG + ".magedl-part.json")).read_text())
    assert state["segments"][0][2] > 0


def test_sigterm_is_a_clean_stop_exit_143_partial_kept_lock_released(emulator, tmp_path):
    code, out, err, size = interrupted_run(emulator, tmp_path, signal.SIGTERM)
    assert code == 143
    assert "Traceback" not in err and "stopped" in err and "resumes" in err
    state = json.loads((tmp_path / (BIG + ".magedl-part.json")).read_text())
    assert state["segments"][0][2] > 0
    assert not (tmp_path / (BIG + ".magedl-lock")).exists()


# -- get: output order, lines, counts -------------------------------------------------


def test_get_json_is_in_catalogue_order_whatever_finishes_first(env, capsys, tmp_path):
    # The release (first in catalogue order) is ten times the sample data: it finishes last.
    env.set_faults(rate=2 << 20)
    code, out, _ = run(capsys, "--json", "list", "--type", "ce-full", "--version", "2.4.7", "--format", "tar.gz")
    listed = [r["file_name"] for r in json.loads(out)]
    code, out, err = run(capsys, "--json", "get", "--type", "ce-full", "--version", "2.4.7", "--format", "tar.gz",
                         "--jobs", "2", "-o", str(tmp_path))
    assert code == 0
    assert [r["file_name"] for r in json.loads(out)] == listed == [BIG, "Magento-CE-2.4.7_sample_data.tar.gz"]


def test_get_paths_on_stdout_in_catalogue_order(env, capsys, tmp_path):
    code, out, _ = run(capsys, "get", "--type", "ce-full", "--version", "2.4.7", "--format", "tar.gz",
                       "-o", str(tmp_path))
    assert out.splitlines() == [str((tmp_path / n).resolve()) for n in (BIG, "Magento-CE-2.4.7_sample_data.tar.gz")]


def test_json_get_still_says_fetched_on_stderr(env, capsys, tmp_path):
    code, out, err = run(capsys, "--json", "get", BIG, "-o", str(tmp_path))
    assert code == 0 and f"{BIG}: fetched" in err and "md5 verified" in err
    code, out, err = run(capsys, "--json", "get", BIG, "-o", str(tmp_path))
    assert f"{BIG}: already present" in err


def test_the_first_failure_in_catalogue_order_sets_the_exit_code(env, capsys, tmp_path):
    env.set_faults(forbidden={BIG}, missing_files={"Magento-CE-2.4.7.zip"})
    code, out, err = run(capsys, "get", "Magento-CE-2.4.7.zip", BIG, "-o", str(tmp_path))
    assert code == 5  # the zip was named first; its 404 wins over the 403 whichever ends first
    assert "2 of 2 files failed" in err


def test_versions_of_an_unknown_type_exits_5_naming_the_known_ones(env, capsys):
    code, out, err = run(capsys, "versions", "--type", "ce-ful")
    assert code == 5 and out == "" and "ce-full" in err


def test_list_of_nothing_exits_5(env, capsys):
    code, out, err = run(capsys, "list", "--type", "ce-full", "--version", "9.9.*")
    assert code == 5 and out == "" and "9.9.*" in err


@pytest.mark.parametrize("verbose", [False, True])
def test_dash_v_says_where_the_credentials_came_from(emulator, capsys, isolated_home, monkeypatch, verbose):
    netrc = isolated_home / ".netrc"
    netrc.write_text(f"machine 127.0.0.1 login {emulator.mageid} password {emulator.token}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("MAGEDL_BASE_URL", emulator.base_url)
    code, _, err = run(capsys, *(["-v"] if verbose else []), "versions")
    assert code == 0
    said = "credentials for 127.0.0.1: " in err and "'machine 127.0.0.1' entry" in err
    assert said is verbose and "verbose:" not in err


def test_the_command_freezes_the_heap_before_exit_and_main_does_not(monkeypatch, capsys):
    """``magedl`` (entry) skips the interpreter's final collections; ``main``, called in-process, leaves gc alone."""
    import gc

    import magedl.cli as cli

    frozen = []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(True))
    assert cli.main([]) == 2 and frozen == []  # no command: help, exit 2, heap untouched
    monkeypatch.setattr(cli, "main", lambda: 3)
    assert cli.entry() == 3 and frozen == [True]
