"""Helpers shared by the transfer tests (import as ``from transfer.xferkit import ...``)."""

import json
import threading

import pytest

from magedl.config import Credentials, Settings
from magedl.errors import Interrupted
from magedl.service.api import Client
from magedl.service.retry import RetryPolicy
from magedl.transfer.fetch import fetch_release
from magedl.transfer.options import TransferOptions, Tuning

BIG = "Magento-CE-2.4.7.tar.gz"
# Pieces of 32 KiB, so the 512 KiB test file takes many segments; progress on every chunk.
SMALL = Tuning(min_split=16 << 10, piece=32 << 10, align=4 << 10, progress_interval=0, block=16 << 10)


def options(connections=1, adaptive=False, tuning=SMALL, **kwargs):
    return TransferOptions(connections=connections, adaptive=adaptive, tuning=tuning, **kwargs)


def client_for(server, attempts=4, timeout=(5.0, 5.0), **settings):
    creds = Credentials(server.mageid, server.token) if getattr(server, "mageid", None) else None
    return Client(Settings(server.base_url, creds, **settings), retry=RetryPolicy(attempts=attempts, backoff=0.01),
                  timeout=timeout)


def release(client, name=BIG):
    return next(r for r in client.catalog() if r.file_name == name)


def gets(server, name=BIG):
    return [r for r in server.log if r.file_name == name and r.method == "GET"]


def range_start(record):
    """First byte a logged request asked for (``Range: bytes=N-...``), or None."""
    return int(record.range.split("=")[1].split("-")[0]) if record.range else None


def sidecar_of(dest):
    return json.loads((dest.parent / (dest.name + ".magedl-part.json")).read_text())


def kept_bytes(dest):
    """Bytes a partial download holds, by its sidecar (the part file is preallocated)."""
    return sum(done for _, _, done in sidecar_of(dest)["segments"])


def leftovers(folder):
    return sorted(p.name for p in folder.rglob("*") if ".magedl-" in p.name)


def interrupted_fetch(server, rel, folder, opts, after=100_000, client=None):
    """A run stopped (as by Ctrl-C) once *after* bytes are on disk; returns the bytes kept.

    The server cuts the first body a little later, so the client cannot have
    the whole file by the time it is interrupted, however the reads fall.
    """
    cancel = threading.Event()

    def stop(p):
        if p.event == "data" and p.done >= after:
            cancel.set()

    server.set_faults(drop_after=after + 50_000, drop_count=1)
    with pytest.raises(Interrupted):
        fetch_release(client or client_for(server), rel, folder, opts, progress=stop, cancel=cancel)
    server.set_faults(drop_after=None)
    assert server.wait_for(lambda s: not [r for r in s.in_flight if r.file_name == rel.file_name], timeout=10)
    server.clear_log()
    return kept_bytes(folder / rel.file_name)
