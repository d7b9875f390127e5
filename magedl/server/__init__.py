"""The API-shaped HTTP server behind ``magedl serve``.

- :mod:`~magedl.server.app`: :class:`ApiServer` (routing, auth, replies) and
  :class:`Hooks`, the extension point the emulator plugs into;
- :mod:`~magedl.server.stores`: what is served, a mirror folder (:class:`DirStore`)
  or memory (:class:`MemoryStore`);
- :mod:`~magedl.server.connections`: connections, their cap and timeouts (:class:`Limits`);
- :mod:`~magedl.server.http`: request heads and replies as pure functions.
"""

from magedl.server.app import ApiServer, Hooks
from magedl.server.connections import Limits
from magedl.server.http import Reply, Request, http_date
from magedl.server.stores import DirStore, FileInfo, MemoryStore, Store, feed_file_names

__all__ = ["ApiServer", "Hooks", "Limits", "Reply", "Request", "http_date", "DirStore", "FileInfo",
           "MemoryStore", "Store", "feed_file_names"]
