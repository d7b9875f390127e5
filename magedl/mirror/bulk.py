"""The per-file phases of a mirror run (catalogue, plan, index write), without Python's cyclic garbage collector.

A large mirror's run builds hundreds of thousands of objects (records, entries, items) that form no
cycles. While they are being built, the collector's passes would walk all of them again and again
for nothing (a fifth of an up-to-date re-run; docs/scale.md). Reference counting still frees
whatever is dropped at once; the collector is back the moment the phase ends, and a phase is CPU
work over the files, never a transfer that may last hours.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager


@contextmanager
def collector_paused():
    """Pause the cyclic garbage collector inside (a context manager, or a decorator); restore it after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
