"""What each path answers, from a store: ``info/...`` and ``file/...`` (the downloads API), ``composer/...``."""

from __future__ import annotations

import json
from typing import BinaryIO, Optional

from magedl.errors import UnsafeNameError
from magedl.paths import check_name
from magedl.ranges import UNSATISFIABLE, parse_range
from magedl.server.http import Reply, Request, http_date, parse_http_date
from magedl.server.stores import FileInfo, Store

__all__ = ["composer_reply", "file_reply", "info_reply", "not_found", "page_reply", "page_rel", "ranged_reply"]

_BINARY = "application/octet-stream"
_ARCHIVE_TYPES = {"zip": "application/zip", "tar": "application/x-tar", "gz": "application/gzip"}


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
    """Answer ``file/<name>`` from *store*: 200, 206 for a single Range, 416, or 404."""
    try:
        check_name(name)  # the client's text: no '..', control characters or side-file names
    except UnsafeNameError:
        return not_found()
    got = store.get(name)
    if got is None:
        return not_found()
    return ranged_reply(req, *got)


def composer_reply(store: Store, req: Request, rel: str, reached_at: Optional[str]) -> Reply:
    """Answer ``composer/<rel>`` from a mirror's Composer part, its metadata re-based on *reached_at*."""
    get = getattr(store, "composer", None)
    try:
        check_name(rel)
    except UnsafeNameError:
        return not_found()
    got = get(rel, reached_at) if get is not None else None
    if got is None:
        return not_found()
    kind = "application/json" if rel.endswith(".json") else _ARCHIVE_TYPES.get(rel.rpartition(".")[2], _BINARY)
    return ranged_reply(req, *got, content_type=kind)


def page_rel(route: str) -> Optional[str]:
    """The mirror file a route names when it is one of the pages or checksum files (``""`` -> ``index.html``)."""
    from magedl.mirror.layout import SIG, SUMS
    from magedl.mirror.pages.site import is_page

    rel = route + "index.html" if route in ("", "composer/") else route
    return rel if is_page(rel) or rel in (SUMS, SIG) else None


def page_reply(store: Store, req: Request, rel: str) -> Reply:
    """Answer a page (:mod:`magedl.mirror.pages`) or ``SHA256SUMS[.sig]``; revalidated on every use."""
    get = getattr(store, "page", None)
    try:
        check_name(rel)
    except UnsafeNameError:
        return not_found()
    got = get(rel) if get is not None else None
    if got is None:
        return not_found()
    kind = "text/html; charset=utf-8" if rel.endswith(".html") else "text/plain; charset=utf-8"
    reply = ranged_reply(req, *got, content_type=kind)
    # Pages change whenever the mirror does: a cache may keep them, but asks again before each use.
    reply.headers.append(("Cache-Control", "no-cache"))
    return reply


def ranged_reply(req: Request, info: FileInfo, fh: BinaryIO, content_type: str = _BINARY) -> Reply:
    """200 with the whole file, 206 for a single satisfiable Range (If-Range honoured), or 416."""
    headers = [("Content-Type", content_type), ("ETag", info.etag),
               ("Last-Modified", http_date(info.last_modified)), ("Accept-Ranges", "bytes")]
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


def info_reply(store: Store, route: str) -> Reply:
    """Answer an ``info/`` endpoint from *store*, as the downloads API does."""
    from magedl.service import textformat
    from magedl.service.catalog import select

    route = route.rstrip("/")
    if route == "info/json":
        return Reply.text(200, json.dumps(store.feed(), indent=1), content_type="application/json")
    if route == "info/help":
        return Reply.text(200, textformat.HELP_TEXT)
    if route == "info/files":
        return Reply.text(200, textformat.render_table(store.releases()))
    if route == "info/versions":
        return Reply.text(200, textformat.render_versions(store.releases()))
    for kind, key in (("info/filter/version/", "versions"), ("info/filter/type/", "types")):
        if route.startswith(kind) and len(route) > len(kind):
            chosen = select(store.releases(), **{key: (route[len(kind):],)})
            return Reply.text(200, textformat.render_table(chosen))
    return not_found()
