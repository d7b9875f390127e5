"""One version of a catalogue's feed, parsed once and shared by every request that sees that version.

Rule: nothing a request does may cost in proportion to the mirror; what is derived from the feed is
computed once per version, on first use.
"""

from __future__ import annotations

import threading
from typing import Callable, FrozenSet, Hashable, Optional, TypeVar

__all__ = ["FeedSnapshot", "feed_file_names"]

T = TypeVar("T")


def feed_file_names(feed: dict) -> set:
    """Collect every ``file_name`` in a feed, whatever its shape.

    Walks categories that map versions to lists as well as list-shaped ones,
    and unknown categories too, without the catalog parser: the server must
    decide what it may serve even from an odd feed.
    """
    names = set()

    def walk(node):
        if isinstance(node, dict):
            name = node.get("file_name")
            if isinstance(name, str):
                names.add(name)
                return
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(feed)
    return names


class FeedSnapshot:
    """A feed as it was at one moment, and what is derived from it.

    Read-only once made: callers must not change :attr:`feed`.

    Attributes
    ----------
    feed : dict
        The parsed feed (``{}`` when the feed is missing or unreadable).
    names : frozenset of str
        Every ``file_name`` the feed lists: the only files served.
    fingerprint : tuple or None
        What identifies this version of the feed's file (None in memory).
    readable : bool
        False when the feed's file did not parse as a feed (then :attr:`feed` is empty).
    """

    def __init__(self, feed: dict, fingerprint: Optional[tuple] = None, readable: bool = True):
        self.feed = feed
        self.fingerprint = fingerprint
        self.readable = readable
        self.names: FrozenSet[str] = frozenset(feed_file_names(feed))
        self._lock = threading.Lock()
        self._derived: dict = {}

    def derived(self, key: Hashable, make: Callable[[], T]) -> T:
        """``make()``, computed on the first call for *key* and remembered with this snapshot."""
        with self._lock:
            if key in self._derived:
                return self._derived[key]
        value = make()  # outside the lock: two first callers may both compute it, and agree
        with self._lock:
            return self._derived.setdefault(key, value)

    @property
    def releases(self) -> list:
        """The feed parsed into :class:`magedl.service.catalog.Release` records (a shared list: do not change it)."""
        from magedl.service.catalog import parse_feed

        return self.derived("releases", lambda: parse_feed(self.feed, warn=lambda *a, **k: None))
