"""One byte budget for the Composer metadata bodies a run holds at once (fetched ahead, not yet parsed).

Rule: a body is given back to the budget the moment it is parsed; a body that does not fit is
dropped and fetched again when its lookup needs it.
"""

from __future__ import annotations

import threading

# Bodies fetched ahead and waiting to be parsed, at most, per run.
PREFETCH_BUDGET = 64 << 20


class ByteBudget:
    """Bytes of metadata bodies held at once, fetched ahead of parsing (issue 19: bodies are not kept)."""

    def __init__(self, limit: int):
        self.limit, self.held = limit, 0
        self._lock = threading.Lock()

    def take(self, n: int) -> bool:
        """Hold *n* more bytes if they fit; whether they did."""
        with self._lock:
            if self.held + n > self.limit:
                return False
            self.held += n
            return True

    def has_room(self) -> bool:
        with self._lock:
            return self.held < self.limit

    def give(self, n: int) -> None:
        with self._lock:
            self.held = max(0, self.held - n)
