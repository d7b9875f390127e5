"""What goes to stdout: JSON, tables that never wrap a file name or an md5, sizes in one unit system.

Rule: every cell goes through :func:`magedl.text.printable` and reaches rich as plain text, never
markup, so feed text never reaches the terminal raw. How tables fit a terminal or a pipe: see
docs/design.md, "Notes: the command line".
"""

import json
import os
import re
from array import array
from dataclasses import dataclass
from typing import IO, Callable, Iterable, List, Optional, Sequence

from magedl.text import printable

# Whatever a terminal says, never lay out for less than this (some report 0 columns).
MIN_WIDTH = 40

FALLBACK_WIDTH = 80
_GAP = "  "  # between plain columns
_RICH_GAP = 3  # between rich's columns: a padding space each side of a blank divider


def terminal_width(stream: IO) -> int:
    """Columns of the terminal *stream* is on: ``COLUMNS`` first, never below :data:`MIN_WIDTH`.

    A terminal that reports 0 columns (some CI consoles, a pty nobody sized)
    gets :data:`FALLBACK_WIDTH`.
    """
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(stream.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return max(MIN_WIDTH, columns or FALLBACK_WIDTH)


def is_tty(stream: IO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def print_json(rows, out: IO) -> None:
    """The ``--json`` output: one JSON array on *out*, and nothing else."""
    json.dump(rows, out, indent=2)
    out.write("\n")
    out.flush()


def print_json_rows(rows: Iterable, out: IO) -> None:
    """:func:`print_json`, written row by row as *rows* yields them (the same text): none is held after."""
    opened = False
    for row in rows:
        out.write(",\n  " if opened else "[\n  ")
        out.write(json.dumps(row, indent=2).replace("\n", "\n  "))  # a string's own newlines are escaped
        opened = True
    out.write("\n]\n" if opened else "[]\n")
    out.flush()


_SORTED_AT_ONCE = 16384  # SpilledRows: rows whose keys are made and sorted at a time, the runs then merged
_BATCH = 4096  # SpilledRows: rows whose keys and offsets are packed together, in buffers made at their size


class SpilledRows:
    """JSON rows to print in key order once all are known, held on disk meanwhile, not as a dict each.

    Each row added goes as its JSON text to an unnamed temporary file in *folder* (made by the first
    row); in memory only its key and where its text ends, packed a batch of rows at a time into
    buffers made at their size (100,000 rows under ``file/``: about 4.5 MiB, and no buffer grown by
    copies that leave holes in the heap). Iterating reads the rows back in key order (equal keys in
    the order added), each parsed as it is read: dicts equal to those added, made one at a time; the
    keys are sorted a run at a time and the runs merged, so no key object per row is made at once
    either. Leaving it as a context manager closes the file. The file goes in *folder* (a mirror's
    ``.magedl``), not the system's temporary folder, which may be memory (tmpfs): the mirror's disk has
    room for its own listing. A write that fails is a :class:`~magedl.errors.LocalFileError` naming it.
    """

    def __init__(self, folder: Optional[os.PathLike] = None):
        self._folder = folder
        self._file: Optional[IO[bytes]] = None
        self._packed: List[tuple] = []  # per batch: (its keys in UTF-8, where each key starts, where each text starts)
        self._keys: List[str] = []  # the batch being filled: its keys, and where each text starts then ends
        self._offsets: List[int] = [0]

    def add(self, key: str, row: dict) -> None:
        text = json.dumps(row).encode("ascii")  # ensure_ascii: every character, lone surrogates too, escaped
        try:
            if self._file is None:
                import tempfile  # only when there are rows to hold (parsing a command does not pay for it)

                self._file = tempfile.TemporaryFile(dir=self._folder)
            self._file.write(text)
        except OSError as exc:
            from magedl.errors import LocalFileError

            raise LocalFileError(f"{printable(str(self._folder))}: cannot hold the --json rows there until they "
                                 f"are printed ({exc.strerror or exc}); free some space, or leave out --json") from None
        self._keys.append(key)
        self._offsets.append(self._offsets[-1] + len(text))
        if len(self._keys) == _BATCH:
            self._pack()

    def _pack(self) -> None:
        keys = [key.encode("utf-8", "surrogatepass") for key in self._keys]  # sorts as the str, surrogates too
        starts = array("q", [0])
        for key in keys:
            starts.append(starts[-1] + len(key))
        self._packed.append((b"".join(keys), starts, array("q", self._offsets)))
        self._keys, self._offsets = [], [self._offsets[-1]]

    def __len__(self) -> int:
        return sum(len(starts) - 1 for _, starts, _ in self._packed) + len(self._keys)

    def _key(self, i: int) -> bytes:
        keys, starts, _ = self._packed[i // _BATCH]
        i %= _BATCH
        return keys[starts[i]:starts[i + 1]]

    def _span(self, i: int) -> tuple:
        offsets = self._packed[i // _BATCH][2]
        i %= _BATCH
        return offsets[i], offsets[i + 1] - offsets[i]

    def __iter__(self):
        import heapq

        if self._keys:
            self._pack()  # the last batch, short: rows are all added before they are read
        n, spill = len(self), self._file
        runs = [array("q", sorted(range(first, min(first + _SORTED_AT_ONCE, n)), key=self._key))
                for first in range(0, n, _SORTED_AT_ONCE)]  # each stable; merge takes ties from earlier runs first
        for i in heapq.merge(*runs, key=self._key):
            start, length = self._span(i)
            spill.seek(start)
            yield json.loads(spill.read(length))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file, self._packed, self._keys, self._offsets = None, [], [], [0]

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_line(out: IO, text: str) -> None:
    """One line of data on *out* (stdout), never through a progress line drawn on the same terminal."""
    from magedl.cli.progress import terminal

    terminal().data(out, text)


@dataclass(frozen=True)
class Column:
    """One column of :func:`print_table`.

    Attributes
    ----------
    header : str
    whole : bool
        Never shortened (file names, md5s: they are copied into other commands).
    drop : int
        0: always shown. Otherwise the column may be shortened to *shortest*
        characters and then dropped when the terminal is too narrow; higher
        numbers go first.
    shortest : int
        Narrowest a droppable column is shortened to before it is dropped.
    """

    header: str
    whole: bool = False
    drop: int = 0
    shortest: int = 12


def print_table(columns: Sequence[Column], rows: Sequence[Sequence[str]], out: IO,
                width: Optional[int] = None) -> None:
    """*rows* under *columns* on *out*: plain in a pipe, drawn by rich to fit the terminal otherwise.

    Parameters
    ----------
    width : int, optional
        On a terminal, lay out for this many columns instead of the
        terminal's width. Ignored in a pipe: plain output is never cut.
    """
    headers = [c.header for c in columns]
    cells = [[printable(cell) for cell in row] for row in rows]
    if not is_tty(out):
        text = "\n".join(_aligned(headers, cells, [_natural(i, headers, cells) for i in range(len(headers))]))
    else:
        text = _on_terminal(list(columns), headers, cells, out, width or terminal_width(out))
    write_line(out, text)


def _on_terminal(columns, headers, cells, out, width):
    """The table as rich draws it within *width*, or blocks when the whole columns cannot stand side by side."""
    from rich import box
    from rich.cells import cell_len
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    fitted = _fit(columns, headers, cells, width, _RICH_GAP, cell_len)
    if fitted is None:
        return "\n".join(_blocks(columns, cells, width))
    keep, widths = fitted
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for i in keep:
        # Widths are settled here, so rich never has to squeeze: a whole column gets all it needs.
        table.add_column(headers[i], width=widths[i], no_wrap=True,
                         overflow="ignore" if columns[i].whole else "ellipsis")
    for row in cells:
        table.add_row(*(Text(row[i]) for i in keep))
    console = Console(file=out, width=width, highlight=False, emoji=False, markup=False)
    with console.capture() as captured:
        console.print(table)
    return "\n".join(_rstrip(line) for line in captured.get().rstrip("\n").split("\n"))


_TRAILING = re.compile(r"(?:[ ]|\x1b\[[0-9;]*m)+$")


def _rstrip(line):
    """*line* without the blanks rich pads its last column with (a copied row gets no trailing spaces)."""
    m = _TRAILING.search(line)
    if m is None:
        return line
    return line[:m.start()] + ("\x1b[0m" if "\x1b[" in m.group(0) else "")


def _natural(i, headers, cells, measure: Callable[[str], int] = len):
    return max([measure(headers[i])] + [measure(row[i]) for row in cells])


def _aligned(headers, cells, widths):
    out = []
    for row in [headers] + cells:
        out.append(_GAP.join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return out


def _cut(text, width):
    return text if len(text) <= width else text[: max(0, width - 1)] + "\u2026"


def _fit(columns, headers, cells, width, gap, measure):
    """``(kept column indexes, their widths)`` within *width*: droppable columns shortened, then dropped.

    The highest :attr:`Column.drop` goes first. None when even the columns
    that are never dropped do not fit.
    """
    widths = [_natural(i, headers, cells, measure) for i in range(len(columns))]
    keep = list(range(len(columns)))

    def total():
        return sum(widths[i] for i in keep) + gap * (len(keep) - 1)

    for i in sorted((i for i, c in enumerate(columns) if c.drop), key=lambda i: -columns[i].drop):
        if total() <= width:
            break
        over = total() - width
        shortest = min(widths[i], max(columns[i].shortest, measure(headers[i])))
        if widths[i] - over >= shortest:
            widths[i] -= over
            break
        keep.remove(i)
    if total() > width:
        return None
    return keep, [widths[i] for i in keep]


def _blocks(columns, cells, width):
    """One block per row when the columns cannot stand side by side.

    The whole values (file name, md5) come first, on one line when they fit
    together (aligned across rows), else one a line; the other values follow,
    indented, shortened to the width if need be.
    """
    whole = [i for i, c in enumerate(columns) if c.whole]
    rest = [i for i, c in enumerate(columns) if not c.whole]
    widths = {i: max(len(row[i]) for row in cells) for i in whole} if cells else {}
    together = sum(widths.values()) + len(_GAP) * (len(whole) - 1) <= width
    lines: List[str] = []
    for row in cells:
        if together:
            lines.append(_GAP.join(row[i].ljust(widths[i]) for i in whole).rstrip())
        else:
            lines.extend(row[whole[0]:whole[0] + 1] + [f"  {row[i]}" for i in whole[1:]])
        extra = _GAP.join(row[i] for i in rest if row[i])
        if extra:
            lines.append("  " + _cut(extra, width - 2))
    return lines


# -- the tables the commands print ---------------------------------------------

RELEASE_COLUMNS = (
    Column("TYPE"), Column("VERSION"), Column("FILE NAME", whole=True), Column("MD5", whole=True),
    Column("DESCRIPTION", drop=1, shortest=16),
)


def print_releases(releases, out: IO, width: Optional[int] = None) -> None:
    """The ``list`` table: type, version, file name, md5, description; in catalogue order."""
    rows = [[r.type, r.version or "-", r.file_name, r.md5 or "-", r.name] for r in releases]
    print_table(RELEASE_COLUMNS, rows, out, width)


def print_versions(rows, out: IO) -> None:
    """The ``versions`` table: one line per version, grouped by type, newest first."""
    print_table((Column("TYPE"), Column("VERSION", whole=True)), [[r["type"], r["version"]] for r in rows], out)
