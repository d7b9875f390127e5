"""Run the command line in-process, as the CLI, mirror, verify and serve tests do."""

from magedl import cli


def run(capsys, *argv):
    """``magedl --retry-wait 0 ARGV...``: (exit code, stdout, stderr)."""
    code = cli.main(["--retry-wait", "0", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def printed_lines(proc, last, timeout=60.0):
    """Lines *proc* prints on stdout up to the one for which ``last(line)`` holds.

    Reads the pipe itself (not through Python's buffered reader, which would
    hide lines from the wait), and fails the test, rather than hanging it, when
    the process ends first or the line has not come within *timeout* seconds
    (a bound on a failure, not a wait).
    """
    import os
    import selectors
    import time

    import pytest

    data, deadline = b"", time.monotonic() + timeout
    fd = proc.stdout.fileno()

    def lines():
        return [line + "\n" for line in data.decode("utf-8", "replace").split("\n")[:-1]]

    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while not any(last(line) for line in lines()):
            if not sel.select(max(0.0, deadline - time.monotonic())):
                proc.kill()
                pytest.fail(f"no such line within {timeout} s; printed: {data!r}")
            chunk = os.read(fd, 65536)
            if not chunk:
                proc.kill()
                pytest.fail(f"the process ended first (rc={proc.wait()}); printed: {data!r}")
            data += chunk
    found = lines()
    return found[:next(i for i, line in enumerate(found) if last(line)) + 1]
