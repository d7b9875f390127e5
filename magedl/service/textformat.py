"""The plain-text endpoints: parse them (client) and render them (emulator, mirrors).

Rule: rows are read by the header's column names, since the column set has changed over the years.
The formats: see docs/service.md, "Endpoints".
"""

import re
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence

from magedl.errors import FeedError
from magedl.service.catalog import Release
from magedl.versions import sort_versions

NO_RESULTS = "No results found."

# Header name (lower-case) -> Release field; "date" goes to extra.
_FIELDS = {
    "file description": "name",
    "file type": "type",
    "md5 hash": "md5",
    "publication date": "date",
    "version": "version",
    "file name": "file_name",
}
_COLUMNS = ("File Description", "File Type", "Md5 Hash", "Publication Date", "Version", "File Name")
# A cell: words joined by single spaces; two spaces or a tab end it.
_CELL = re.compile(r"[^ \t\r\n]+(?: [^ \t\r\n]+)*")
_RULE = re.compile(r"[-=\s]*-[-=\s]*")
_MD5 = re.compile(r"[0-9a-f]{32}")
# Placeholder for an empty cell, so that every row has one cell per column.
_EMPTY = "-"


def _ignore(message):
    pass


def parse_table(text: str, warn: Optional[Callable[[str], None]] = None) -> List[Release]:
    """Parse a text table into release records.

    Parameters
    ----------
    text : str
        The body of ``info/files`` or ``info/filter/...``.
    warn : callable, optional
        Called with a one-line message for each row skipped or repaired.

    Returns
    -------
    list of Release
        In table order; empty for ``No results found.``.

    Raises
    ------
    FeedError
        If the text is neither a table nor ``No results found.``.
    """
    warn = warn or _ignore
    # Numbered before blank lines are dropped, so warnings point at real lines.
    lines = [(n, line.rstrip()) for n, line in enumerate(text.lstrip("\ufeff").splitlines(), 1)]
    lines = [(n, line) for n, line in lines if line.strip()]
    if [line.strip() for _, line in lines] == [NO_RESULTS]:
        return []
    if not lines:
        raise FeedError("the file list is empty, not a table")
    columns = [cell.lower() for cell in _CELL.findall(lines[0][1])]
    if "file name" not in columns:
        raise FeedError(f"the file list is not a table (first line: {lines[0][1][:60]!r})")
    releases = []
    for number, line in lines[1:]:
        if _RULE.fullmatch(line):
            continue
        cells = _split_row(line, columns)
        if cells is None or cells["file name"] == _EMPTY:
            warn(f"file list line {number}: does not fit the columns; skipped")
            continue
        releases.append(_row_release(cells, number, warn))
    return releases


def _split_row(line, columns):
    """Map column name -> text, or None when the row does not fit.

    Every column but the description is a single token (the date: two), so
    they are taken from the right and the description gets whatever is left,
    double spaces included.
    """
    cells = list(_CELL.finditer(line))
    desc = columns.index("file description") if "file description" in columns else None
    left = columns[:desc] if desc is not None else []
    right = columns[desc + 1:] if desc is not None else columns
    if len(cells) < len(left) + len(right):
        return None
    values = dict(zip(left, (c.group() for c in cells)))
    tail = cells[len(cells) - len(right):]
    for column, cell in zip(right, tail):
        spaces = cell.group().count(" ")
        if spaces > (1 if column == "publication date" else 0):
            return None
        values[column] = cell.group()
    middle = cells[len(left):len(cells) - len(right)]
    if desc is not None:
        values["file description"] = (
            line[middle[0].start():middle[-1].end()] if middle else ""
        )
    elif middle:
        return None
    return values


def _row_release(cells, number, warn):
    def get(column):
        value = cells.get(column, "")
        return "" if value == _EMPTY else value

    file_name = get("file name")
    md5 = get("md5 hash").lower()
    if md5 and not _MD5.fullmatch(md5):
        warn(f"file list line {number}: md5 of {file_name} is not 32 hex digits; ignored")
        md5 = ""
    extra = {}
    for column in cells:
        if column not in _FIELDS and get(column):
            extra[column.replace(" ", "_")] = get(column)
    if get("publication date"):
        extra["date"] = get("publication date")
    return Release(
        name=cells.get("file description") or file_name,
        file_name=file_name,
        version=get("version"),
        type=get("file type"),
        md5=md5,
        extra=extra,
    )


def _cell_text(value):
    # A line break or tab inside a value would split the row or the cell.
    text = str(value)
    if "\t" in text or "\r" in text or "\n" in text:
        text = re.sub(r"[\t\r\n]", " ", text)
    text = text.strip()
    return text or _EMPTY


def render_table(releases: Sequence[Release]) -> str:
    """Render records as the service's text table.

    Empty values are written as ``-`` (read back as empty), so every row has
    one cell per column. An empty list gives ``No results found.``.
    """
    if not releases:
        return NO_RESULTS + "\n"
    return "\n".join(table_lines(releases)) + "\n"


def table_lines(releases: Sequence[Release]) -> Iterator[str]:
    """The lines of :func:`render_table` for a non-empty *releases*, without line ends.

    Two passes over *releases* (the column widths, then the lines): no row is
    held, which matters for a mirror's ``info/files`` of 100,000 records.
    """
    widths = [len(title) for title in _COLUMNS]
    for r in releases:
        for i, cell in enumerate(_row(r)):
            if len(cell) > widths[i]:
                widths[i] = len(cell)

    def line(row):
        return "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()

    yield line(_COLUMNS)
    # The longest line is as wide as the columns: every cell is stripped and never empty ("-").
    yield "-" * (sum(widths) + 2 * (len(widths) - 1))
    for r in releases:
        yield line(_row(r))


def _row(r: Release) -> list:
    date = " ".join(str(r.extra.get("date") or "").split())
    return [_cell_text(v) for v in (r.name or r.file_name, r.type, r.md5, date, r.version, r.file_name)]


def parse_versions(text: str) -> Dict[str, List[str]]:
    """Parse ``info/versions`` into ``{"CE": [...], "EE": [...]}``.

    A block is a title line (its first word is the edition), a dash rule and
    one version per line, up to a blank line or the next title. Each list is
    deduplicated and sorted newest first. ``No results found.`` gives ``{}``.

    Raises
    ------
    FeedError
        If no block is found.
    """
    lines = [line.strip() for line in text.lstrip("\ufeff").splitlines()]
    if [line for line in lines if line] == [NO_RESULTS]:
        return {}
    blocks, current = {}, None
    for i, line in enumerate(lines):
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if not line:
            current = None
        elif _RULE.fullmatch(line):
            continue
        elif _RULE.fullmatch(following):
            current = blocks.setdefault(line.split()[0].upper(), [])
        elif current is not None:
            current.append(line)
    if not blocks:
        raise FeedError("the versions list has no 'CE Versions' or 'EE Versions' block")
    return {edition: sort_versions(found) for edition, found in blocks.items()}


def render_versions(releases: Iterable[Release]) -> str:
    """Render ``info/versions`` from the ``ce-full`` and ``ee-full`` records.

    CE comes first, then EE, newest first; an edition without versions is
    left out, and with none at all the answer is ``No results found.``.
    """
    blocks = []
    for edition in ("CE", "EE"):
        found = sort_versions(
            r.version for r in releases if r.type == f"{edition.lower()}-full" and r.version)
        if found:
            title = f"{edition} Versions"
            blocks.append("\n".join([title, "-" * len(title)] + found) + "\n")
    return "\n".join(blocks) if blocks else NO_RESULTS + "\n"


HELP_TEXT = """\
Magento downloads API

Authenticate with HTTP Basic auth: your MAGEID as the user name and your
downloads access token (Account Settings > Downloads Access Token) as the
password. Example:

    curl https://MAGEID:TOKEN@www.magentocommerce.com/products/downloads/info/help

Paths, relative to https://www.magentocommerce.com/products/downloads/

  info/help                  this page
  info/files                 every file your account can see, as a table
  info/versions              the versions available, per edition
  info/filter/version/<v>    the table, filtered by version; '*' is a wildcard (1.9.*)
  info/filter/type/<t>       the table, filtered by type: ce-full, ee-full,
                             ce-patch, ee-patch, other
  info/json                  every file, as JSON
  file/<file name>           download the file named in the table

Table columns: File Description, File Type, Md5 Hash, Publication Date,
Version, File Name. An empty result reads "No results found."
"""
