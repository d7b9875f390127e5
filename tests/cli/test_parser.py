"""The parser: defaults rendered from their one home, help that lists only what a command uses, usage errors
that are one line and never repeat a value given to a mistyped option."""

import pytest
from clirun import run

from magedl.cli.app import build_parser
from magedl.cli.commands import COMMANDS
from magedl.transfer import options


def help_of(capsys, *argv):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*argv, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_defaults_come_from_transfer_options_into_help_and_values(capsys, monkeypatch):
    monkeypatch.setattr(options, "DEFAULT_JOBS", 7)
    monkeypatch.setattr(options, "DEFAULT_RETRIES", 9)
    monkeypatch.setattr(options, "DEFAULT_TIMEOUT", 42.0)
    monkeypatch.setattr(options, "DEFAULT_CONNECTIONS", 3)
    text = help_of(capsys, "get")
    assert "(default 7)" in text and "(default 9)" in text and "(default 42)" in text and "up to 3" in text
    args = build_parser().parse_args(["get", "x"])
    assert (args.jobs, args.retries, args.timeout) == (7, 9, 42.0)


def test_the_real_defaults_are_shown(capsys):
    text = help_of(capsys, "get")
    assert f"(default {options.DEFAULT_JOBS})" in text and f"(default {options.DEFAULT_RETRIES})" in text
    assert f"up to {options.DEFAULT_CONNECTIONS}" in text and f"(1-{options.MAX_CONNECTIONS})" in text


@pytest.mark.parametrize("command", ["verify", "serve"])
def test_offline_commands_list_no_token_or_retry_options(capsys, command):
    text = help_of(capsys, command)
    for option in ("--token", "--token-file", "--mageid", "--base-url", "--retries", "--retry-wait", "--timeout",
                   "--ca-bundle", "--insecure"):
        assert option not in text, option
    assert "--quiet" in text


def test_network_commands_list_them(capsys):
    text = help_of(capsys, "list")
    assert "--token-file" in text and "--retries" in text and "--ca-bundle" in text


@pytest.mark.parametrize("argv", [
    ["--tokn", "SECRET-VALUE", "list"],
    ["list", "--tokn", "SECRET-VALUE"],
    ["list", "--tokn=SECRET-VALUE"],
    ["get", "--tokn", "SECRET-VALUE", "x.zip"],
    ["get", "-t", "SECRET-VALUE"],
    ["list", "SECRET-VALUE"],
])
def test_a_mistyped_option_never_echoes_its_value(capsys, argv):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert "SECRET-VALUE" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_mistyped_option_is_named_with_a_suggestion(capsys):
    code, _, err = run(capsys, "--tokn", "x", "list")
    assert "--tokn" in err and "did you mean --token?" in err


def test_an_option_of_another_command_says_where_it_belongs(capsys):
    code, _, err = run(capsys, "list", "--jobs", "3")
    assert code == 2 and "--jobs is an option of get" in err


def test_a_mistyped_command_gets_a_suggestion_and_the_list(capsys):
    code, _, err = run(capsys, "lsit")
    assert code == 2 and "did you mean 'list'?" in err and "versions, list, get" in err


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400", "-1", "ten", "1e9"])
@pytest.mark.parametrize("option", ["--timeout", "--retry-wait"])
def test_seconds_must_be_a_sane_finite_number(capsys, option, value):
    code, out, err = run(capsys, option, value, "list")
    assert code == 2 and option in err
    assert len(err.strip().splitlines()) == 1 and "internal error" not in err


def test_no_command_prints_help_and_exits_2(capsys):
    code, out, err = run(capsys)
    assert code == 2 and "COMMAND" in err and out == ""


@pytest.mark.parametrize("argv, module", [(["versions", "--help"], "magedl.cli.versions"),
                                          (["--base-url", "http://x/", "-v", "verify", "--help"], "magedl.cli.verify"),
                                          (["--base-url=http://x/", "keys", "check", "--help"], "magedl.cli.keys")])
def test_a_run_imports_the_module_of_its_command_only(argv, module):
    import subprocess
    import sys

    code = (f"import sys; from magedl.cli import main\ntry: main({argv!r})\nexcept SystemExit: pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('magedl.cli.') and m not in "
            "('magedl.cli.app', 'magedl.cli.commands', 'magedl.cli.progress', 'magedl.cli.output', "
            "'magedl.cli.common')), file=sys.stderr)")
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stderr
    loaded = eval(err.strip().splitlines()[-1])
    assert module in loaded
    others = {c.module for c in COMMANDS.values()} - {module, "magedl.cli.keys", "magedl.cli.sign"}  # shared options
    assert not others & set(loaded), loaded


def test_every_command_is_listed_in_help_with_its_one_summary(capsys):
    from magedl.cli import main

    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name, command in COMMANDS.items():
        assert f"{name} {' '.join(command.summary.split())}" in text


def test_an_option_of_another_command_is_named_with_its_command(capsys):
    code, out, err = run(capsys, "versions", "--composer-lock", "x")
    assert code == 2 and "--composer-lock is an option of mirror" in err
