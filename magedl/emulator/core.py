"""The emulator: Magento's downloads API on loopback, with switches for its failures.

:class:`Emulator` is the real server of ``serve`` (:class:`magedl.server.ApiServer`) with the demo
catalogue behind Basic auth, :class:`~magedl.emulator.faults.Faults` for each known or plausible
misbehaviour of the service, and a request log tests wait on.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Optional

from magedl.emulator.catalogue import DEMO_MAGEID, DEMO_TOKEN, demo_catalogue
from magedl.emulator.composer import ComposerRepos
from magedl.emulator.faults import Counters, FaultHooks, Faults
from magedl.emulator.recorder import RecordingServer
from magedl.server import MemoryStore

__all__ = ["Emulator", "DEFAULT_PREFIX"]

DEFAULT_PREFIX = "/products/downloads/"


class Emulator(RecordingServer):
    """The downloads API on loopback, with faults and a request log.

    Parameters
    ----------
    store : MemoryStore or DirStore or None
        What to serve; None builds the demo catalogue.
    mageid, token : str
        The credentials accepted as HTTP Basic auth.
    host, port, prefix : str, int, str
        Where to listen; ``port=0`` picks a free port.
    faults : Faults or None
    require_auth : bool
        False serves without credentials (like a mirror).
    access_log : callable or None
        See :class:`magedl.server.ApiServer`.
    limits : magedl.server.Limits or None
        Connection cap and timeouts.
    composer : bool or ComposerRepos
        Also play repo.magento.com and packagist (:class:`~magedl.emulator.composer.ComposerRepos`,
        each on its own port of *host*), started and stopped with the emulator; see :attr:`composer`.

    Examples
    --------
    >>> with Emulator() as emu:                              # doctest: +SKIP
    ...     emu.set_faults(drop_after=1000, drop_count=1)
    ...     requests.get(emu.base_url + "info/json",
    ...                  auth=(emu.mageid, emu.token)).json()
    """

    def __init__(self, store=None, mageid: str = DEMO_MAGEID, token: str = DEMO_TOKEN,
                 host: str = "127.0.0.1", port: int = 0, prefix: str = DEFAULT_PREFIX,
                 faults: Optional[Faults] = None, require_auth: bool = True, access_log=None, limits=None,
                 composer=False):
        if store is None:
            store = MemoryStore(*demo_catalogue())
        self.mageid = mageid
        self.token = token
        self._faults = faults if faults is not None else Faults()
        self.counters = Counters()
        #: Set when the emulator stops: stalls and throttled bodies end at once.
        self.stopping = threading.Event()
        super().__init__(store, hooks=FaultHooks(self), host=host, port=port, prefix=prefix,
                         auth={mageid: token} if require_auth else None, access_log=access_log, limits=limits)
        if composer is True:
            try:
                composer = ComposerRepos(host=host, access_log=access_log)
            except BaseException:
                super().stop()
                raise
        #: The emulated Composer repositories (``magento_url``, ``packagist_url``, ``keys``), or None.
        self.composer: Optional[ComposerRepos] = composer or None

    @property
    def faults(self) -> Faults:
        """The faults in force; assigning a new one restarts the counters."""
        return self._faults

    @faults.setter
    def faults(self, faults: Faults):
        self.counters = Counters()
        self._faults = faults

    def set_faults(self, **changes) -> Faults:
        """Install a copy of the current faults with ``changes`` applied; counters restart."""
        self.faults = dataclasses.replace(self._faults, **changes)
        return self._faults

    def clear_faults(self) -> None:
        """Switch every fault off."""
        self.faults = Faults()

    def start(self) -> "Emulator":
        super().start()
        if self.composer is not None:
            self.composer.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        super().stop()
        if self.composer is not None:
            self.composer.stop()

    def __repr__(self):
        # Never the token: a repr ends up in test reports and logs.
        return f"<Emulator {self.base_url} mageid={self.mageid}>"
