"""Progress on the terminal: tqdm bars on a TTY, periodic plain lines otherwise.

This is terminal code; the transfer engine only calls a callback with
:class:`magedl.transfer.Progress` and never imports this module.
"""

import logging
import sys
import threading
import time

from magedl.config import RedactingFilter


def human_bytes(n):
    """``1536`` -> ``'1.5 KiB'``."""
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


class ConsoleHandler(logging.Handler):
    """Log records to stderr as ``magedl: warning: ...``, without breaking bars."""

    def __init__(self, stream=None):
        super().__init__()
        self.stream = stream
        self.addFilter(RedactingFilter())

    def emit(self, record):
        try:
            label = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
            msg = f"magedl: {label}{record.getMessage()}"
            stream = self.stream or sys.stderr
            if "tqdm" in sys.modules:
                from tqdm import tqdm

                tqdm.write(msg, file=stream)
            else:
                stream.write(msg + "\n")
                stream.flush()
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


class ProgressView:
    """A callable progress sink for :mod:`magedl.transfer`.

    Parameters
    ----------
    mode : {"bar", "lines", "none"}
        Bars (a TTY), plain periodic lines (a log file or CI), or nothing (``-q``).
    stream : file
        Where to draw; stderr by default, so stdout stays data only.
    interval : float
        Seconds between plain lines for one file.
    """

    def __init__(self, mode, stream=None, interval=5.0):
        self.mode = mode
        self.stream = stream or sys.stderr
        self.interval = interval
        self._bars = {}
        self._last_line = {}
        self._started = {}
        self._lock = threading.Lock()

    def __call__(self, p):
        if self.mode == "none":
            return
        with self._lock:
            if self.mode == "bar":
                self._bar(p)
            else:
                self._line(p)

    def _bar(self, p):
        from tqdm import tqdm

        bar = self._bars.get(p.file_name)
        if bar is None:
            if p.event == "skip":
                return
            bar = tqdm(
                total=p.total, initial=p.done, desc=_short(p.file_name), unit="B", unit_scale=True,
                unit_divisor=1024, file=self.stream, leave=True, dynamic_ncols=True, position=len(self._bars),
                miniters=1, mininterval=0.2,
            )
            self._bars[p.file_name] = bar
        if p.total is not None and bar.total != p.total:
            bar.total = p.total
        if p.event == "restart" or p.done < bar.n:
            bar.reset(total=p.total)
        bar.update(p.done - bar.n)
        if p.event in ("done", "skip"):
            bar.close()
            del self._bars[p.file_name]

    def _line(self, p):
        now = time.monotonic()
        name = p.file_name
        if p.event == "start":
            self._started[name] = (now, p.done)
            self._last_line[name] = now
            where = f", resuming at {human_bytes(p.done)}" if p.done else ""
            self._write(f"{name}: downloading{where}")
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
            eta = f", ETA {int((p.total - p.done) / rate)}s" if rate > 0 else ""
            self._write(f"{name}: {100 * p.done // p.total}% {human_bytes(p.done)} of "
                        f"{human_bytes(p.total)}, {human_bytes(rate)}/s{eta}")
        else:
            self._write(f"{name}: {human_bytes(p.done)}, {human_bytes(rate)}/s")

    def _write(self, text):
        self.stream.write(f"magedl: {text}\n")
        self.stream.flush()

    def close(self):
        with self._lock:
            for bar in self._bars.values():
                bar.close()
            self._bars.clear()


def _short(name, width=36):
    return name if len(name) <= width else "..." + name[-(width - 3):]
