"""Tables on stdout: rich on a terminal, plain aligned columns in a pipe.

Plain output never truncates or wraps, so scripts can ``awk`` it.
"""

import json


def print_json(rows, out):
    """The ``--json`` output: one JSON array on *out*, and nothing else."""
    json.dump(rows, out, indent=2)
    out.write("\n")
    out.flush()


def _table(headers, rows, out, title=None):
    if out.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, header_style="bold", show_edge=False, pad_edge=False)
        for h in headers:
            table.add_column(h, overflow="fold")
        for row in rows:
            table.add_row(*row)
        Console(file=out).print(table)
        return
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    for row in [headers] + rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() + "\n")
    out.flush()


def print_releases(releases, out):
    """The ``list`` table: type, version, file name, md5, description."""
    rows = [[r.type, r.version or "-", r.file_name, r.md5 or "-", r.name] for r in releases]
    _table(["TYPE", "VERSION", "FILE NAME", "MD5", "DESCRIPTION"], rows, out)


def print_versions(rows, types, out):
    """The ``versions`` table: one line per version, grouped by type, newest first."""
    _table(["TYPE", "VERSION"], [[r["type"], r["version"]] for r in rows], out)
