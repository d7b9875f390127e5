"""The API-shaped HTTP server behind ``magedl serve``.

How a request goes through the modules: see docs/design.md, "The layers, and three journeys
through them" and "Notes: the server".
"""

from magedl.server.app import ApiServer, Hooks
from magedl.server.connections import Limits
from magedl.server.http import Reply, Request, http_date
from magedl.server.snapshot import FeedSnapshot, feed_file_names
from magedl.server.stores import DirStore, FileInfo, MemoryStore, Store

__all__ = ["ApiServer", "Hooks", "Limits", "Reply", "Request", "http_date", "DirStore", "FileInfo",
           "MemoryStore", "Store", "FeedSnapshot", "feed_file_names"]
