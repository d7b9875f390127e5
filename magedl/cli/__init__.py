"""The command line: ``main`` parses, runs one command module, and maps every error to an exit code here.

Rule: this is the one place an error becomes an exit code. How the parser, the command modules and
stdout/stderr fit together: see docs/design.md, "Notes: the command line".
"""

import gc
import os
import signal
import sys
import threading
import traceback
from typing import List, Optional

from magedl.cli.app import parser_for
from magedl.cli.progress import setup_logging, terminal
from magedl.errors import Interrupted, MagedlError
from magedl.secrecy import redact
from magedl.text import printable

__all__ = ["entry", "main"]

TERMINATED_EXIT = 128 + signal.SIGTERM  # 143, as a shell reports a process ended by SIGTERM
BROKEN_PIPE_EXIT = 128 + signal.SIGPIPE  # 141, as a shell reports a reader that went away


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be so every clean-up path (partial kept, locks released) runs."""


def entry() -> int:
    """The ``magedl`` command (``python -m magedl`` and the installed script): :func:`main`, then exit quickly.

    The heap is frozen before the interpreter shuts down, so that its final
    collections skip every object the run made (a visible share of a small
    ``get``; figures in docs/speed.md). Only here, not in :func:`main`, which
    tests and scripts may call many times in one process.
    """
    code = main()
    try:
        sys.stdout.flush()  # here, not at shutdown, where a closed pipe would turn into a bare exit 1
    except BrokenPipeError:
        _quiet_stdout()
        code = BROKEN_PIPE_EXIT
    gc.freeze()
    return code


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line; return the exit code."""
    out = sys.stdout
    previous = _catch_sigterm()
    restore_logging = None
    args = None
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        parser = parser_for(argv)
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        restore_logging = setup_logging(args.verbose, args.quiet)
        return args.run(args, out)
    except (KeyboardInterrupt, Interrupted) as exc:
        terminal().close_bar()
        note = _on_interrupt(args)
        if isinstance(exc, _Terminated) or _terminated.is_set():
            _say(f"stopped (SIGTERM){note}")
            return TERMINATED_EXIT
        _say(f"interrupted{note}")
        return Interrupted.exit_code
    except MagedlError as exc:
        terminal().close_bar()
        _say(f"error: {_shown(exc)}")
        return exc.exit_code
    except BrokenPipeError:
        # stdout closed early (piped into head): the reader has what it wanted. Quietly, with the code
        # a shell gives other tools killed by SIGPIPE, never a bare 1.
        _quiet_stdout()
        return BROKEN_PIPE_EXIT
    except OSError as exc:
        # The machine said no (a folder that cannot be written, a file that is not there):
        # a person's problem to fix, not a bug to report.
        terminal().close_bar()
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        _say(f"error: {_shown(where)}{_shown(exc.strerror or exc)}")
        return 1
    except Exception as exc:  # a bug: say so in one line, without secrets
        _say(f"internal error: {type(exc).__name__}: {_shown(exc)}")
        if os.environ.get("MAGEDL_DEBUG"):
            sys.stderr.write(redact("".join(traceback.format_exc())))
        return 1
    finally:
        _restore_sigterm(previous)
        if restore_logging is not None:
            restore_logging()


def _on_interrupt(args) -> str:
    """What an interruption left behind, as the command that was running knows it (``""`` when nothing)."""
    if args is None:
        return ""
    note = getattr(args, "on_interrupt", None)
    if note is None and getattr(args, "command", None) in ("get", "mirror"):
        note = "partial files are kept and the next run resumes them"
    return f"; {note}" if note else ""


def _quiet_stdout():
    """Point stdout at /dev/null, so the interpreter's last flush finds no closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def _shown(value) -> str:
    return printable(redact(str(value)))


def _say(text):
    sys.stderr.write(f"magedl: {text}\n")
    sys.stderr.flush()


_terminated = threading.Event()


def _on_sigterm(signum, frame):
    _terminated.set()
    raise _Terminated()


def _catch_sigterm():
    """Treat SIGTERM as Ctrl-C while main runs, unless the embedding program set its own handler."""
    _terminated.clear()
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return None
        return signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # pragma: no cover - no signals here
        return None


def _restore_sigterm(previous):
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)
