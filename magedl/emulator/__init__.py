"""Magento's downloads API, repo.magento.com and packagist, played on loopback, with faults.

Rule: tests wait on the request log, never on time. What each module plays: see docs/design.md,
"Notes: the emulator".
"""

from magedl.emulator.catalogue import DEMO_MAGEID, DEMO_TOKEN, demo_catalogue, make_file
from magedl.emulator.composer import DEMO_KEYS, ComposerRepos
from magedl.emulator.core import DEFAULT_PREFIX, Emulator
from magedl.emulator.faults import AUTH_FAILURE_BODY, Faults, Pacing
from magedl.emulator.recorder import RecordingServer, RequestRecord

__all__ = ["Emulator", "ComposerRepos", "Faults", "Pacing", "RecordingServer", "RequestRecord", "demo_catalogue",
           "make_file", "DEMO_MAGEID", "DEMO_TOKEN", "DEMO_KEYS", "DEFAULT_PREFIX", "AUTH_FAILURE_BODY"]
