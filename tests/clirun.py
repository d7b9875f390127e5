"""Run the command line in-process, as the CLI, mirror, verify and serve tests do."""

from magedl import cli


def run(capsys, *argv):
    """``magedl --retry-wait 0 ARGV...``: (exit code, stdout, stderr)."""
    code = cli.main(["--retry-wait", "0", *argv])
    out, err = capsys.readouterr()
    return code, out, err
