"""The knobs of a transfer, as small frozen values passed down whole.

:class:`TransferOptions` is what a user chooses (the command line renders its defaults from here);
:class:`Tuning` holds the engine's thresholds, so tests pass a small one instead of patching globals.
"""

from dataclasses import dataclass, field
from typing import Optional

# What a web browser opens to one host: polite to a slow service, yet enough to
# fill a link when the service throttles each connection.
DEFAULT_CONNECTIONS = 6
MAX_CONNECTIONS = 16
# Files at once, at most: a near, fast server gets 4 (more would only contend for the CPU), a far one
# up to this many, since then a small file costs a round trip, not work (magedl.transfer.fetch.fetch_many).
# All of them together keep to MAX_CONNECTIONS connections.
DEFAULT_JOBS = 16
DEFAULT_RETRIES = 5
DEFAULT_RETRY_WAIT = 1.0
DEFAULT_TIMEOUT = 60.0
CONNECT_TIMEOUT = 15.0


@dataclass(frozen=True)
class Tuning:
    """Engine thresholds; the defaults are what ``make bench`` was measured with.

    Attributes
    ----------
    block : int
        Bytes per block read from the network, the size of each reused buffer: larger blocks mean
        fewer hand-overs between the network, writer and hasher threads (see ``docs/transfer.md``).
    piece : int
        What one connection fetches per request once several share a file.
    min_split : int
        A split leaves both halves at least this long: less is not worth a request.
    align : int
        Split points are multiples of this (whole pages and disk blocks for each writer).
    expand_after : float
        Seconds of one connection before deciding whether to add more.
    fast_enough : int
        Bytes/s at which one connection is kept alone: more would only add CPU.
    save_interval : float
        Seconds between sidecar updates while data flows.
    progress_interval : float
        Seconds between "data" progress events.
    """

    block: int = 1 << 20
    piece: int = 4 << 20
    min_split: int = 2 << 20
    align: int = 64 << 10
    expand_after: float = 0.25
    fast_enough: int = 128 << 20
    save_interval: float = 0.5
    progress_interval: float = 0.1


@dataclass(frozen=True)
class TransferOptions:
    """How files are fetched: what a user chooses per run.

    Attributes
    ----------
    connections : int
        Most connections for one large file, when the server honours Range.
    adaptive : bool
        Start with one connection and add the others only when it proves slow;
        ``False`` (``--connections N`` given) opens them all at once.
    jobs : int
        Most files fetched at once (fewer while the server answers quickly).
    limit_rate : int or None
        Total bytes per second for the whole run, shared by every connection.
    require_checksum : bool
        Refuse a file the feed gives no md5 for.
    sha256 : bool
        Also compute each file's sha256 as it arrives (mirrors record it).
    caller_verifies : bool
        The caller checks another digest before using the file (a Composer
        archive's SHA-1): a missing md5 is then not warned about.
    sha1 : bool
        Also compute each file's SHA-1 as it arrives (the digest a Composer
        archive is checked against), so the caller need not read it back.
    folder_locked : bool
        The caller holds a lock that covers the whole destination folder and
        no other program writes there (a mirror's lock over its own staging
        folder): no lock file per file, so no file made and deleted per file.
    tuning : Tuning
        Engine thresholds.
    """

    connections: int = DEFAULT_CONNECTIONS
    adaptive: bool = True
    jobs: int = DEFAULT_JOBS
    limit_rate: Optional[int] = None
    require_checksum: bool = False
    sha256: bool = False
    caller_verifies: bool = False
    sha1: bool = False
    folder_locked: bool = False
    tuning: Tuning = field(default_factory=Tuning)
