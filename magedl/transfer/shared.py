"""What the downloads of one run share: the committer and a budget of connections to the host.

A download without a :class:`Shared` (:func:`magedl.transfer.one_file.download` on its own) syncs
its file itself and opens as many connections as its options allow.
"""

import threading
from dataclasses import dataclass
from typing import Callable, Optional

from magedl.transfer.commit import Committer


class Budget:
    """Connections a run may have open to its host at once, jobs and extra segments together.

    Each running download holds one (:meth:`hold`, waiting for it); a
    segmented download asks for more (:meth:`take`, never waiting) and gets
    what is free. So many small files may run at once over a slow link, and
    a large file still splits when it runs alone, without the two adding up
    to more connections than the polite limit.
    """

    def __init__(self, total: int):
        self._free = max(1, total)
        self._cond = threading.Condition(threading.Lock())

    def hold(self) -> None:
        """Wait for one connection (a download's own)."""
        with self._cond:
            self._cond.wait_for(lambda: self._free > 0)
            self._free -= 1

    def take(self, n: int) -> int:
        """Up to *n* more connections, as many as are free now (maybe 0)."""
        with self._cond:
            granted = max(0, min(n, self._free))
            self._free -= granted
            return granted

    def give(self, n: int = 1) -> None:
        """Return *n* connections."""
        if n > 0:
            with self._cond:
                self._free += n
                self._cond.notify_all()


@dataclass(frozen=True)
class Shared:
    """What one download of a run shares with the others.

    Attributes
    ----------
    committer : Committer
        Moves the finished file into place, batched with the others'.
    report_outcome : callable
        Receives the download's outcome (a :class:`~magedl.transfer.one_file.Result`
        or the error) once the file is in place.
    budget : Budget, optional
        Connections to the host for extra segments.
    """

    committer: Committer
    report_outcome: Callable[[object], None]
    budget: Optional[Budget] = None
