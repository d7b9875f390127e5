"""Read a ``composer.lock``: the packages it pins, as the lock describes them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from magedl.errors import FeedError, UsageError
from magedl.fsutil import read_regular
from magedl.safejson import DEFAULT_MAX_BYTES, parse_json, read_bounded

log = logging.getLogger(__name__)

__all__ = ["read_lock"]


def read_lock(path: str | Path, *, dev: bool = True, warn: Callable[[str], None] | None = None,
              max_bytes: int = DEFAULT_MAX_BYTES) -> list[dict]:
    """Return the locked packages of a ``composer.lock``.

    Parameters
    ----------
    path : str or Path
    dev : bool
        Include ``packages-dev``.
    warn : callable, optional
        Receives one line per skipped entry.

    Returns
    -------
    list of dict
        Each package entry as the lock has it, plus ``"dev"``: True for
        ``packages-dev``.

    Raises
    ------
    UsageError
        The file cannot be read.
    FeedError
        It is not JSON, too big or too deep, or has no ``packages`` list.
    """
    warn = warn or log.warning
    try:
        data = read_regular(path, max_bytes)  # a FIFO or /dev/zero from a checkout must not hang or fill memory
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the Composer lock file: "
                         f"{exc.strerror or exc}") from None
    doc = parse_json(read_bounded(data, max_bytes, str(path)), str(path))
    if not isinstance(doc, dict) or not isinstance(doc.get("packages"), list):
        raise FeedError(f"{path}: not a composer.lock (no 'packages' list)")
    out = []
    for section, is_dev in (("packages", False), ("packages-dev", True)):
        items = doc.get(section)
        if (is_dev and not dev) or items is None:
            continue
        if not isinstance(items, list):
            warn(f"{path}: '{section}' is not a list; ignored")
            continue
        for item in items:
            if (isinstance(item, dict) and isinstance(item.get("name"), str)
                    and isinstance(item.get("version"), str)):
                out.append({**item, "dev": is_dev})
            else:
                warn(f"{path}: a '{section}' entry without a name and version; skipped")
    return out


