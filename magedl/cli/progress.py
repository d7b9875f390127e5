"""The terminal's one owner: messages, a tqdm progress bar, and stdout lines that never collide.

Rule: everything magedl writes to stderr goes through :func:`terminal`, so a message or a path never
lands in the middle of a bar. The engine only calls a callback with
:class:`magedl.transfer.one_file.Progress` and never imports this module. See docs/design.md,
"Notes: the command line".
"""

import logging
import sys
import threading
import time
from typing import IO, Optional

from magedl.cli.output import is_tty, terminal_width
from magedl.secrecy import SECURITY, VERBOSE, RedactingFilter
from magedl.text import human_bytes, plural, printable

__all__ = ["Terminal", "terminal", "ConsoleHandler", "setup_logging", "ProgressView", "ByteBar", "human_bytes"]

# Narrowest bar worth drawing, and how much of a single file's name is kept before the bar makes room.
_MIN_BAR = 10
_NAME_KEPT = 24
_BAR_CLASS = None


def _bar_class():
    """A tqdm subclass drawn under the terminal owner's lock, with binary sizes, fitted to the terminal's width.

    Made on first use: importing tqdm costs time ``magedl --help`` should not pay.
    """
    global _BAR_CLASS
    if _BAR_CLASS is not None:
        return _BAR_CLASS
    from tqdm import tqdm

    class Bar(tqdm):
        """One line: ``HEAD NAME 45%|█████     | 1.2/3.4 MiB 1.1 MiB/s ETA 00:02``, laid out by :func:`_layout`.

        tqdm keeps the count, the smoothed rate and the remaining time and
        draws the bar; the figures are written here, in binary units (tqdm's
        own scaling says "MB" even with ``unit_divisor=1024``).
        """

        # No monitor thread: every redraw happens in an update, under the owner's lock.
        monitor_interval = 0

        def __init__(self, *args, head: str = "", name: str = "", width: int = 80, **kwargs):
            self.head, self.name, self.width = head, name, width
            super().__init__(*args, **kwargs)

        @staticmethod
        def status_printer(file):
            # tqdm pads a shorter line with spaces; erasing to the end of the line leaves no trailing
            # blanks for a later line (a path someone copies) to inherit.
            def print_status(text):
                file.write(f"\r{text}\x1b[K")
                file.flush()

            return print_status

        @property
        def format_dict(self):
            d = super().format_dict
            n, total, elapsed = d["n"], d["total"], d["elapsed"]
            rate = d["rate"] or ((n - d["initial"]) / elapsed if elapsed and n > d["initial"] else None)
            figures = [_sizes(n, total)]
            if rate:
                figures.append(f"{human_bytes(rate)}/s")
                if total and total > n:
                    figures.append(f"ETA {self.format_interval((total - n) / rate)}")
            ncols = self.width - 1  # never write into the last column: some terminals wrap there
            name, bar, keep = _layout(self.head, self.name, bool(total), figures, ncols)
            prefix = " ".join(x for x in (self.head, name) if x)
            parts = ["{desc}"] if prefix else []
            if total:
                parts.append("{percentage:3.0f}%" + ("|{bar}|" if bar else ""))
            parts += [f.replace("{", "{{").replace("}", "}}") for f in figures[:keep]]
            d.update(prefix=prefix, ncols=ncols, bar_format=" ".join(parts))
            return d

    Bar.set_lock(threading.RLock())  # not tqdm's default multiprocessing lock: one process, one owner
    _BAR_CLASS = Bar
    return Bar


def _sizes(done, total):
    """``12.3/45.6 MiB`` (one unit when both share it, as pip writes it), ``1.0 KiB/2.0 MiB``, or ``12.3 MiB``."""
    if not total:
        return human_bytes(done)
    a, b = human_bytes(done), human_bytes(total)
    return f"{a.split()[0]}/{b}" if a.split()[1] == b.split()[1] else f"{a}/{b}"


def _layout(head, name, has_total, figures, ncols):
    """How one bar line of *ncols* is spent: ``(name as shown, draw the bar, how many figures to keep)``.

    A single file's name keeps up to :data:`_NAME_KEPT` characters before
    anything else gives way; then the bar goes, then the figures from the
    last (ETA, then rate); then the name loses its start (its end, version
    and suffix, tells more). Behind a *head* ("1/3 files:") the name is
    secondary and only gets what is left.
    """
    want = min(len(name), _NAME_KEPT) if not head else 0

    def room(bar, keep):
        used = len(head) + (1 if head else 0)
        if has_total:
            used += 5 + (2 + _MIN_BAR if bar else 0)  # " 100%", "|bar|"
        return ncols - used - sum(1 + len(f) for f in figures[:keep])

    options = [(has_total, len(figures))] + [(False, k) for k in range(len(figures), 0, -1)]
    bar, keep = next(((b, k) for b, k in options if room(b, k) >= want), options[-1])
    space = room(bar, keep)
    if len(name) > space:
        name = "\u2026" + name[len(name) - space + 1:] if space >= 12 else ""  # a shorter stub tells nothing
    return name, bar, keep


class Terminal:
    """Serialises every write to stderr, and to stdout while a bar is drawn; holds the one bar.

    Parameters
    ----------
    stream : file, optional
        Where messages and the bar go; ``sys.stderr`` as it is at each write
        (so a test's captured stderr is honoured).
    """

    def __init__(self, stream: Optional[IO] = None):
        self._stream = stream
        self.lock = threading.RLock()
        self._bar = None

    @property
    def stream(self) -> IO:
        return self._stream or sys.stderr

    @property
    def bar(self):
        """The bar drawn now (a tqdm instance), or None."""
        return self._bar

    def message(self, text: str) -> None:
        """One whole line on stderr, above the bar."""
        with self.lock:
            self._lifted(self.stream, text)

    def data(self, out: IO, text: str) -> None:
        """One whole line on *out* (stdout): the bar is lifted first when both share a terminal."""
        with self.lock:
            self._lifted(out, text, lift=is_tty(out))

    def _lifted(self, out, text, lift=True):
        # What tqdm.write does: clear the bar, write the line, redraw the bar below it.
        bar = self._bar if lift else None
        if bar is not None:
            bar.clear(nolock=True)
        out.write(text + "\n")
        out.flush()
        if bar is not None:
            bar.width = self.width()
            bar.refresh(nolock=True)

    def open_bar(self, head: str = "", name: str = "", total: Optional[int] = None):
        """Draw a new bar at the bottom of the terminal (the previous one, if any, is removed)."""
        with self.lock:
            self.close_bar()
            self._bar = _bar_class()(total=total, head=head, name=name, width=self.width(), file=self.stream,
                                     leave=False, position=0, miniters=1, mininterval=0.1, unit="B", unit_scale=True,
                                     unit_divisor=1024, ncols=80,
                                     # Explicit, so TQDM_* variables cannot hide the bar or leave it on the screen.
                                     disable=False, delay=0, gui=False, write_bytes=False)
            return self._bar

    def close_bar(self) -> None:
        """Remove the bar: what is written next lands on a clean line."""
        with self.lock:
            bar, self._bar = self._bar, None
            if bar is not None:
                bar.close()

    def width(self) -> int:
        return terminal_width(self.stream)


_TERMINAL = Terminal()


def terminal() -> Terminal:
    """The process's terminal owner (stderr)."""
    return _TERMINAL


class ConsoleHandler(logging.Handler):
    """Log records as ``magedl: warning: ...`` lines through the terminal owner, redacted and printable."""

    def __init__(self, stream: Optional[IO] = None):
        super().__init__()
        self._terminal = Terminal(stream) if stream is not None else None
        self.addFilter(RedactingFilter())

    def emit(self, record):
        try:
            label = "" if logging.DEBUG < record.levelno <= logging.INFO else f"{record.levelname.lower()}: "
            (self._terminal or terminal()).message(f"magedl: {label}{printable(record.getMessage())}")
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


def _quiet(record) -> bool:
    """``-q``'s filter: errors, and the warnings marked :data:`~magedl.secrecy.SECURITY`."""
    return record.levelno >= logging.ERROR or all(getattr(record, k, None) == v for k, v in SECURITY.items())


def setup_logging(verbose: int, quiet: bool):
    """Route the ``magedl`` loggers to stderr: with ``-q`` errors and security warnings only, debug with ``-vv``.

    Returns a function that puts both loggers back as they were, so a program
    (or a test) that calls :func:`magedl.cli.main` in-process keeps its own
    logging set-up afterwards.
    """
    level = logging.INFO
    if quiet:
        level = logging.WARNING  # the handler's filter lets only security warnings through
    elif verbose >= 2:
        level = logging.DEBUG
    elif verbose == 1:
        level = VERBOSE  # causes and sources: which netrc entry, why a connection failed
    log = logging.getLogger("magedl")
    lib = logging.getLogger("urllib3")
    saved = [(logger, logger.handlers[:], logger.level, logger.propagate) for logger in (log, lib)]
    log.handlers[:] = [ConsoleHandler()]
    if quiet:
        log.handlers[0].addFilter(_quiet)
    log.setLevel(level)
    log.propagate = False
    if verbose >= 2:
        # urllib3's debug lines show URLs and status; its handler gets our redaction too.
        lib.handlers[:] = [ConsoleHandler()]
        lib.setLevel(logging.DEBUG)
    else:
        # urllib3's own warnings ("Connection pool is full, discarding connection") are about its
        # bookkeeping, not the user's files: magedl reports every failure itself. Left to Python's
        # last-resort handler they would be printed raw, through the progress bar.
        lib.handlers[:] = [logging.NullHandler()]
        lib.propagate = False
        lib.setLevel(logging.WARNING)

    def restore():
        for logger, handlers, old_level, propagate in saved:
            logger.handlers[:] = handlers
            logger.setLevel(old_level)
            logger.propagate = propagate

    return restore


def _eta(seconds):
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}:{seconds % 60:02d}"


class ProgressView:
    """A progress sink for :mod:`magedl.transfer`: one overall tqdm bar, or plain periodic lines.

    Parameters
    ----------
    mode : {"bar", "lines", "none"}
        A bar (a terminal), plain periodic lines (a log file or CI), or
        nothing (``-q``).
    files : int, optional
        How many files the run holds, for "2/5 files:".
    interval : float
        Seconds between plain lines for one file.
    """

    def __init__(self, mode: str, files: Optional[int] = None, interval: float = 5.0):
        self.mode = mode
        self.files = files
        self.interval = interval
        self._files = {}  # name -> [done, total] of the files the bar counts
        self._finished = set()
        self._last_line = {}
        self._started = {}

    def __call__(self, p) -> None:
        if self.mode == "none":
            return
        with terminal().lock:  # transfers run in threads; the bar and every line share one lock
            now = time.monotonic()
            if self.mode == "bar":
                self._draw(p)
            else:
                self._line(p, now)

    # -- the bar ------------------------------------------------------------------------

    def _draw(self, p):
        moved, shift = self._account(p)
        bar = terminal().bar
        if bar is None:
            if p.event == "skip":
                return  # nothing to move: its "already present" line says it all
            bar = terminal().open_bar(*self._label(), total=self._total())
        bar.total = self._total()
        bar.head, bar.name = self._label()
        if shift:
            # Bytes that were already there (a resume) or are thrown away (a restart): shown, but not a speed.
            bar.n += shift
            bar.last_print_n += shift
            bar.initial += shift
        bar.update(moved)
        if p.event != "data":
            bar.refresh()

    def _account(self, p):
        """Book *p*: ``(bytes moved now, bytes that changed without moving)``."""
        name = p.file_name
        if p.event == "skip":
            self._finished.add(name)
            self._files.pop(name, None)
            return 0, 0
        entry = self._files.get(name)
        shift = 0
        if entry is None or p.event == "restart":
            shift = p.done - (entry[0] if entry else 0)
            entry = self._files[name] = [p.done, p.total]
        moved = max(0, p.done - entry[0])
        entry[0], entry[1] = p.done, p.total if p.total is not None else entry[1]
        if p.event == "done":
            self._finished.add(name)
        return moved, shift

    def _total(self):
        sizes = [e[1] for e in self._files.values()]
        return sum(sizes) if sizes and all(size is not None for size in sizes) else None

    def _label(self):
        """``(head, name)``: the file alone, or "1/3 files:" and the file(s) under way."""
        active = [n for n in self._files if n not in self._finished]
        count = self.files or len(set(self._files) | self._finished)
        if count <= 1 and len(active) <= 1:
            return "", printable(active[0] if active else next(iter(self._files), ""))
        name = printable(active[0]) + (f" +{len(active) - 1}" if len(active) > 1 else "") if active else ""
        return f"{len(self._finished)}/{plural(count, 'file')}:", name

    # -- plain lines ----------------------------------------------------------------------

    def _line(self, p, now):
        name = printable(p.file_name)
        if p.event == "start":
            self._started[name] = (now, p.done)
            self._last_line[name] = now
            where = f", resuming at {human_bytes(p.done)}" if p.done else ""
            terminal().message(f"magedl: {name}: downloading{where}")
            return
        if p.event == "restart":
            self._started[name] = (now, 0)
            return
        if p.event != "data" or now - self._last_line.get(name, 0) < self.interval:
            return
        self._last_line[name] = now
        t0, d0 = self._started.get(name, (now, p.done))
        rate = (p.done - d0) / (now - t0) if now > t0 else 0
        if p.total:
            eta = f", ETA {_eta((p.total - p.done) / rate)}" if rate > 0 else ""
            terminal().message(f"magedl: {name}: {100 * p.done // p.total}% {human_bytes(p.done)} of "
                               f"{human_bytes(p.total)}, {human_bytes(rate)}/s{eta}")
        else:
            terminal().message(f"magedl: {name}: {human_bytes(p.done)}, {human_bytes(rate)}/s")

    def close(self) -> None:
        """Remove the bar (messages printed after it land on a clean line)."""
        if self.mode == "bar":
            terminal().close_bar()


class ByteBar:
    """Progress over a byte total (``verify``): a tqdm bar, or a plain line every *interval* seconds.

    Call it with ``(done, total)``.
    """

    def __init__(self, mode: str, label: str, interval: float = 5.0):
        self.mode, self.label, self.interval = mode, label, interval
        self._last = time.monotonic()

    def __call__(self, done: int, total: Optional[int]) -> None:
        now = time.monotonic()
        if self.mode == "bar":
            with terminal().lock:
                bar = terminal().bar or terminal().open_bar(head=self.label, total=total)
                bar.total = total
                bar.update(done - bar.n)
                if done == total:
                    bar.refresh()
        elif self.mode == "lines" and (now - self._last >= self.interval or done == total):
            self._last = now
            pct = f"{100 * done // total}% " if total else ""
            terminal().message(f"magedl: {self.label}: {pct}{human_bytes(done)} of {human_bytes(total)}")

    def close(self) -> None:
        if self.mode == "bar":
            terminal().close_bar()
