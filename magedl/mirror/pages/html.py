"""The bricks every page is built of: escaping, relative links, the page frame, the stylesheet, the filter box.

The rule a reader must not break: every string that reaches a page goes through :func:`text` (content)
or :func:`href` (a link); links are relative, never a URL from upstream. Why, and the
Content-Security-Policy: see docs/design.md, "Notes: the mirror".
"""

from __future__ import annotations

import base64
import hashlib
import html
from typing import Iterable, Optional
from urllib.parse import quote

from magedl.text import human_bytes, printable

# Longest upstream text shown in one place; the rest is cut (the JSON has it all).
MAX_TEXT = 400

STYLE = """
:root{color-scheme:light dark;--fg:#1b1f24;--bg:#fff;--muted:#57606a;--line:#d0d7de;--head:#f6f8fa;
--link:#0550ae;--bad:#a40e26;--bad-bg:#ffebe9;--ok:#116329}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--bg:#0d1117;--muted:#9198a1;--line:#30363d;
--head:#161b22;--link:#6cb6ff;--bad:#ff9492;--bad-bg:#3c1618;--ok:#57ab5a}}
*{box-sizing:border-box}
body{margin:0 auto;max-width:1280px;padding:1rem;font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;
color:var(--fg);background:var(--bg)}
a{color:var(--link)}
h1{font-size:1.5rem;margin:.2rem 0 .6rem}h2{font-size:1.2rem;margin:1.6rem 0 .4rem}
h3{font-size:1.05rem;margin:1.2rem 0 .3rem}
nav{font-size:.9rem;color:var(--muted)}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1rem;margin:.5rem 0}
.facts dt{color:var(--muted)}.facts dd{margin:0;overflow-wrap:anywhere}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;margin:.3rem 0 1rem}
th,td{text-align:left;vertical-align:top;padding:.3rem .5rem;border-bottom:1px solid var(--line)}
th{background:var(--head);font-weight:600}
td.num,td.date,.adv{white-space:nowrap}td.num{text-align:right}
table.packages{table-layout:fixed}table.packages th:nth-child(n+2){width:7.5rem}
code,.sum{font:12px/1.35 ui-monospace,SFMono-Regular,Menlo,monospace}
.sum{color:var(--muted);word-break:break-all;display:block}
.name{overflow-wrap:anywhere}
.muted,.desc{color:var(--muted)}.desc{font-size:.9rem}
.adv{color:var(--bad);background:var(--bad-bg);border-radius:4px;padding:0 .3rem;font-size:.85rem}
.ok{color:var(--ok)}
ul.req{margin:0;padding-left:1rem;font-size:.88rem}
ul.cols{columns:16rem;padding-left:1.2rem}
#filter{width:100%;max-width:28rem;padding:.4rem;font:inherit;margin:.3rem 0}
pre{background:var(--head);padding:.6rem;overflow-x:auto}
@media (max-width:640px){body{padding:.5rem;font-size:14px}th,td{padding:.25rem .3rem}
.wide{display:none}}
""".strip()

# Hides the rows whose text lacks every typed word; the box is shown only when this runs.
FILTER_SCRIPT = (
    "(function(){var b=document.getElementById('filter');if(!b)return;b.hidden=false;"
    "b.addEventListener('input',function(){var w=b.value.toLowerCase().split(/\\s+/).filter(Boolean);"
    "document.querySelectorAll('tbody tr, li.item').forEach(function(r){var t=r.textContent.toLowerCase();"
    "r.hidden=!w.every(function(x){return t.indexOf(x)>=0;});});});})();")
_SCRIPT_HASH = base64.b64encode(hashlib.sha256(FILTER_SCRIPT.encode()).digest()).decode()
POLICY = (f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{_SCRIPT_HASH}'; "
          "img-src 'self' data:; base-uri 'none'; form-action 'none'")


def text(value, limit: int = MAX_TEXT) -> str:
    """Upstream *value* as HTML text: made printable, cut to *limit* characters, escaped (quotes too)."""
    if value is None:
        return ""
    value = printable(value if isinstance(value, str) else str(value))
    if len(value) > limit:
        value = value[:limit - 1] + "\u2026"
    return html.escape(value, quote=True)


def href(page: str, target: str) -> str:
    """The link from the page at *page* to *target* (both relative to the mirror), quoted and escaped."""
    # Both are plain relative paths inside the mirror: no file system (os.path.relpath asks for the cwd).
    base, parts = page.split("/")[:-1], target.split("/")
    same = 0
    while same < len(base) and same < len(parts) - 1 and base[same] == parts[same]:
        same += 1
    up = "../" * (len(base) - same) + "/".join(parts[same:])
    return html.escape(quote(up, safe="/"), quote=True)


def link(page: str, target: str, label) -> str:
    return f'<a href="{href(page, target)}">{text(label)}</a>'


def size(n: Optional[int]) -> str:
    return "" if n is None else f'<span title="{n} bytes">{human_bytes(n)}</span>'


def sums(**digests: str) -> str:
    """Checksums, one a line, labelled (empty ones left out)."""
    return "".join(f'<span class="sum">{name}&nbsp;{text(value, 200)}</span>'
                   for name, value in digests.items() if value)


def table(headers: Iterable[str], rows: Iterable[str], wide: Iterable[int] = (), css: str = "") -> str:
    """A table of pre-rendered ``<tr>`` rows; columns in *wide* are hidden on narrow windows."""
    wide = set(wide)
    head = "".join(f'<th{" class=wide" if i in wide else ""}>{h}</th>' for i, h in enumerate(headers))
    css = f' class="{css}"' if css else ""
    body = "".join(rows)
    return f'<div class="scroll"><table{css}><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table></div>\n'


def frame(page: str, title: str, body: str, *, crumbs: Iterable[tuple] = (), filter_box: bool = True,
          meta: str = "") -> bytes:
    """A whole page: head (charset, viewport, policy, style), breadcrumbs, an optional filter box, *body*.

    *title* and *crumbs* labels are plain text (escaped here); *body* is HTML already escaped.
    """
    trail = " / ".join(link(page, target, label) for target, label in crumbs)
    nav = f"<nav>{trail}</nav>\n" if trail else ""
    box = ('<input id="filter" type="search" placeholder="Filter: type words to hide rows without them" '
           'aria-label="Filter rows" hidden>\n') if filter_box else ""
    script = f"<script>{FILTER_SCRIPT}</script>\n" if filter_box else ""
    out = (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
           f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
           f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">\n'
           f'<meta name="referrer" content="no-referrer">\n{meta}'
           f'<title>{text(title)}</title>\n<style>\n{STYLE}\n</style>\n</head>\n<body>\n{nav}'
           f'<h1>{text(title)}</h1>\n{box}{body}{script}</body>\n</html>\n')
    return out.encode("utf-8")
