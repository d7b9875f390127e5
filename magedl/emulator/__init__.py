"""Magento's downloads API, repo.magento.com and packagist, played on loopback, with faults.

- :mod:`~magedl.emulator.core`: :class:`Emulator`, the server with faults and a request log;
- :mod:`~magedl.emulator.faults`: :class:`Faults` (the switches) and the hooks that play them;
- :mod:`~magedl.emulator.recorder`: the request log, and :class:`RecordingServer` (a plain server with one);
- :mod:`~magedl.emulator.catalogue`: the demo catalogue and its deterministic files;
- :mod:`~magedl.emulator.composer`: :class:`ComposerRepos`, repo.magento.com and packagist beside it;
- :mod:`~magedl.emulator.cli`: ``python -m magedl.emulator``.
"""

from magedl.emulator.catalogue import DEMO_MAGEID, DEMO_TOKEN, demo_catalogue, make_file
from magedl.emulator.composer import DEMO_KEYS, ComposerRepos
from magedl.emulator.core import DEFAULT_PREFIX, Emulator
from magedl.emulator.faults import AUTH_FAILURE_BODY, Faults, Pacing
from magedl.emulator.recorder import RecordingServer, RequestRecord

__all__ = ["Emulator", "ComposerRepos", "Faults", "Pacing", "RecordingServer", "RequestRecord", "demo_catalogue",
           "make_file", "DEMO_MAGEID", "DEMO_TOKEN", "DEMO_KEYS", "DEFAULT_PREFIX", "AUTH_FAILURE_BODY"]
