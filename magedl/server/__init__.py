"""The API-shaped HTTP server behind ``magedl serve``.

- :mod:`~magedl.server.app`: :class:`ApiServer` (routing, auth, replies) and
  :class:`Hooks`, the extension point the emulator plugs into;
- :mod:`~magedl.server.routes`: what each path answers;
- :mod:`~magedl.server.stores`: what is served, a mirror folder (:class:`DirStore`)
  or memory (:class:`MemoryStore`), each feed version parsed once
  (:mod:`~magedl.server.snapshot`);
- :mod:`~magedl.server.connections`: connections, their cap and timeouts (:class:`Limits`);
- :mod:`~magedl.server.workers`: the threads that answer, reused;
- :mod:`~magedl.server.http`: request heads (strict) and reply heads as pure functions;
- :mod:`~magedl.server.writer`: replies onto the socket, files with ``sendfile``.
"""

from magedl.server.app import ApiServer, Hooks
from magedl.server.connections import Limits
from magedl.server.http import Reply, Request, http_date
from magedl.server.snapshot import FeedSnapshot, feed_file_names
from magedl.server.stores import DirStore, FileInfo, MemoryStore, Store

__all__ = ["ApiServer", "Hooks", "Limits", "Reply", "Request", "http_date", "DirStore", "FileInfo",
           "MemoryStore", "Store", "FeedSnapshot", "feed_file_names"]
