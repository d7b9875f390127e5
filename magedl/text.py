"""Text from outside (feeds, file names, request paths) made safe for a terminal or a log.

Rule: every such value goes through :func:`printable` before it reaches stdout, stderr or a log record,
so no escape sequence from a feed, a carried mirror or a client moves the cursor or hides a line.
"""

import unicodedata


def printable(text, limit: int = 0) -> str:
    """*text* with every control or format character shown as a backslash escape.

    Printable characters, non-ASCII letters included, pass unchanged, so
    ordinary names look as they are; ``"a\\x1b[2Jb"`` becomes ``a\\x1b[2Jb``.
    With a *limit*, a longer text is cut there (``...`` and its length added),
    so a hostile value cannot fill a log line.
    """
    text = str(text)
    if limit and len(text) > limit:
        return f"{printable(text[:limit])}... ({len(text):,} characters)"
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else _escape(c) for c in text)


def _escape(c):
    if unicodedata.category(c) in ("Zl", "Zp") or ord(c) > 0xFF:
        return f"\\u{ord(c):04x}"
    return c.encode("unicode_escape").decode("ascii")


_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def human_bytes(n, smallest: str = "B") -> str:
    """Binary units, as ``--limit-rate`` takes them: ``1536`` -> ``'1.5 KiB'``; ``None`` -> ``'?'``.

    *smallest* sets the smallest unit shown: disk-space messages use
    ``"MiB"`` so their figures compare at a glance (``'0.5 MiB'``).
    """
    if n is None:
        return "?"
    value = float(n)
    units = _UNITS[_UNITS.index(smallest):]
    value /= 1024 ** _UNITS.index(smallest)
    for unit in units:
        if abs(value) < 1024 or unit == units[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def plural(n: int, word: str, words: str = "") -> str:
    """``plural(1, "file")`` -> ``'1 file'``; ``plural(2, "file")`` -> ``'2 files'``."""
    return f"{n} {word if n == 1 else (words or word + 's')}"
