"""What each path answers, from a store: ``info/...`` and ``file/...`` (the downloads API), ``composer/...``,
and any other file a mirror folder publishes (:func:`static_reply`).

Rule: an answer costs the same however large the mirror; the feed and the tables come from the
store's snapshot (:mod:`magedl.server.snapshot`), files go out with ``sendfile``.
"""

from __future__ import annotations

import json
from typing import BinaryIO, Optional

from magedl.errors import UnsafeNameError
from magedl.paths import check_name
from magedl.ranges import UNSATISFIABLE, parse_http_date, parse_range
from magedl.server.http import Reply, Request, http_date
from magedl.server.stores import FileInfo, Store, rebased

__all__ = ["composer_reply", "content_type", "file_headers", "file_reply", "info_reply", "not_found", "page_reply",
           "page_rel", "ranged_reply", "static_reply"]

BINARY = "application/octet-stream"
JSON = "application/json"
# By the name's last extension, as nginx's mime.types does; what is not here is octet-stream.
_TYPES = {
    "html": "text/html; charset=utf-8", "htm": "text/html; charset=utf-8", "css": "text/css; charset=utf-8",
    "js": "text/javascript; charset=utf-8", "json": "application/json", "txt": "text/plain; charset=utf-8",
    "svg": "image/svg+xml", "png": "image/png", "ico": "image/x-icon", "woff2": "font/woff2",
    "zip": "application/zip", "tar": "application/x-tar", "gz": "application/gzip", "tgz": "application/gzip",
    "bz2": "application/x-bzip2", "xz": "application/x-xz",
}
#: The headers a rebased Composer document's body depends on (see ApiServer's ``public_url``).
VARY = "Host, X-Forwarded-Proto"


def not_found() -> Reply:
    return Reply.text(404, "Not Found\n")


def _if_range_matches(value: str, info: FileInfo) -> bool:
    value = value.strip()
    if value.startswith('"') or value.startswith("W/"):
        # Strong comparison: a weak tag never allows a partial answer.
        return not value.startswith("W/") and value == info.etag
    when = parse_http_date(value)
    return when is not None and int(when) == int(info.last_modified)


def file_reply(store: Store, req: Request, name: str) -> Reply:
    """Answer ``file/<name>`` from *store*: 200, 206 for a single Range, 416, or 404.

    *name* is the client's text: a store serves only names its feed lists,
    and a folder store opens them under the publishing rules (no ``..``,
    control characters or side-file names), so no check is repeated here.
    """
    got = store.get(name)
    if got is None:
        return not_found()
    return ranged_reply(req, *got)


def content_type(rel: str) -> str:
    """The Content-Type of a published file, from its name."""
    return _TYPES.get(rel.rpartition("/")[2].rpartition(".")[2].lower(), BINARY)


def static_reply(store: Store, req: Request, rel: str) -> Reply:
    """Answer with the file ``<mirror>/<rel>`` as it is (a page, a style sheet), typed by its name, or 404.

    For the mirror folder's own files beside the API's paths: the caller
    chooses which *rel* a path may reach (never ``file/`` or ``info/``, whose
    rules are above). Files are published under the same rules as archives
    (no links, no side files, no ``.magedl/``).
    """
    get = getattr(store, "static", None)
    try:
        check_name(rel)
    except UnsafeNameError:
        return not_found()
    got = get(rel) if get is not None else None
    if got is None:
        return not_found()
    return ranged_reply(req, *got, content_type=content_type(rel))


def composer_reply(store: Store, req: Request, rel: str, reached_at: Optional[str], varies: bool = True) -> Reply:
    """Answer ``composer/<rel>`` from a mirror's Composer part, its metadata re-based on *reached_at*.

    *varies*: *reached_at* came from the request's ``Host`` and
    ``X-Forwarded-Proto``, so a rebased document says so (``Vary``) and a
    cache in front keeps one copy per host instead of handing one client's
    URLs to every other.
    """
    get = getattr(store, "composer", None)
    try:
        check_name(rel)
    except UnsafeNameError:
        return not_found()
    got = get(rel, reached_at) if get is not None else None
    if got is None:
        return not_found()
    reply = ranged_reply(req, *got, content_type=content_type(rel))
    if varies and rebased(rel):
        reply.set_header("Vary", VARY)
    return reply


def _not_modified(req: Request, info: FileInfo) -> bool:
    """Whether the client's copy is current (RFC 9110 section 13.2.2: If-None-Match first, weakly compared)."""
    tags = req.header("If-None-Match")
    if tags is not None:
        mine = info.etag[2:] if info.etag.startswith("W/") else info.etag
        return any(tag == "*" or (tag[2:] if tag.startswith("W/") else tag) == mine
                   for tag in (t.strip() for t in tags.split(",")))
    since = req.header("If-Modified-Since")
    when = parse_http_date(since) if since is not None else None
    return when is not None and int(info.last_modified) <= when


def page_rel(route: str) -> Optional[str]:
    """The mirror file a route names when it is one of the pages or checksum files (``""`` -> ``index.html``)."""
    from magedl.mirror.layout import SIG, SUMS
    from magedl.mirror.pages.site import is_page

    rel = route + "index.html" if route in ("", "composer/") else route
    return rel if is_page(rel) or rel in (SUMS, SIG) else None


def page_reply(store: Store, req: Request, rel: str) -> Reply:
    """Answer a page (:mod:`magedl.mirror.pages`) or ``SHA256SUMS[.sig]`` (as text); revalidated on every use."""
    reply = static_reply(store, req, rel)
    if reply.status in (200, 206) and not rel.endswith(".html"):
        reply.set_header("Content-Type", "text/plain; charset=utf-8")
    if reply.status in (200, 206, 304):
        # Pages change whenever the mirror does: a cache may keep them, but asks again before each use.
        reply.set_header("Cache-Control", "no-cache")
    return reply


def file_headers(info: FileInfo, content_type: str = BINARY) -> list:
    """The headers of a file's 200 (its 304 keeps ETag and Last-Modified)."""
    return [("Content-Type", content_type), ("ETag", info.etag),
            ("Last-Modified", http_date(info.last_modified)), ("Accept-Ranges", "bytes")]


def ranged_reply(req: Request, info: FileInfo, fh: BinaryIO, content_type: str = BINARY) -> Reply:
    """200 with the whole file, 304 when the client's copy is current, 206 for a single satisfiable Range
    (If-Range honoured), or 416."""
    headers = file_headers(info, content_type)
    if _not_modified(req, info):
        fh.close()
        return Reply(304, headers[1:3])
    span = None
    if req.header("Range"):
        if_range = req.header("If-Range")
        if if_range is None or _if_range_matches(if_range, info):
            span = parse_range(req.header("Range"), info.size)
    if span == UNSATISFIABLE:
        fh.close()
        return Reply.text(416, "Range Not Satisfiable\n", headers=[("Content-Range", f"bytes */{info.size}")])
    if span is None:
        return Reply(200, headers, stream=fh, offset=0, length=info.size)
    start, end = span
    headers.append(("Content-Range", f"bytes {start}-{end}/{info.size}"))
    return Reply(206, headers, stream=fh, offset=start, length=end - start + 1)


def info_reply(store: Store, req: Request, route: str) -> Reply:
    """Answer an ``info/`` endpoint from *store*, as the downloads API does."""
    from magedl.service import textformat
    from magedl.service.catalog import select

    route = route.rstrip("/")
    if route == "info/json":
        feed_file = getattr(store, "feed_file", None)
        got = feed_file() if feed_file is not None else None
        if got is not None:  # the mirror's own file, sent as it is
            return ranged_reply(req, *got, content_type=JSON)
        index = store.index()
        body = index.derived("info/json", lambda: json.dumps(index.feed, indent=1).encode())
        return Reply.text(200, body, content_type="application/json")
    if route == "info/help":
        return Reply.text(200, textformat.HELP_TEXT)
    if route in ("info/files", "info/versions"):
        index = store.index()
        render = textformat.render_table if route == "info/files" else textformat.render_versions
        return Reply.text(200, index.derived(route, lambda: render(index.releases).encode("utf-8")))
    for kind, key in (("info/filter/version/", "versions"), ("info/filter/type/", "types")):
        if route.startswith(kind) and len(route) > len(kind):
            chosen = select(store.index().releases, **{key: (route[len(kind):],)})
            return Reply.text(200, textformat.render_table(chosen))
    return not_found()
