"""One file from URL to disk: partial file and sidecar, ranges, segments, hashing, rate.

::

    from magedl.transfer import fetch_release, TransferOptions
    result = fetch_release(client, release, "downloads/", TransferOptions(connections=4))

The names below are imported on first use, so importing
:mod:`magedl.transfer.options` (the command line does, for its help text)
does not pay for importing requests.

The transfer's invariants
-------------------------
Every module of this package keeps these; they are why a success means the
bytes on disk are the bytes the md5 vouches for, whatever the network did.

1. **One writer per byte.** A segment's worker owns ``[start, end)``. A split
   cuts at or beyond what that worker has *received* from the network
   (``Segment.read_pos``), never at what is merely written: the worker
   records each block as received, cut to the segment's end, under the
   download's lock, in the same step that reads the end. So no byte range is
   ever written by two answers, even when two answers disagree.
2. **Hashed as written.** The hasher sees a block only after it is in the
   file (the writer hands it over), or reads the bytes back from the file.
   It never hashes a buffer whose bytes are not, or not yet, what the file holds.
3. **Counted as written.** ``Segment.done`` (what the sidecar records, what a
   resume continues from, what the hasher may read back) grows only after the
   bytes are written; the sidecar is saved only after they are synced.
4. **Who writes what.** Network threads only read into buffers; one writer
   (the caller's thread for a small file, a writer thread otherwise) writes
   them to the file in the order they were received; the hasher thread only
   reads. A buffer is reused only when the last stage that holds it lets go.
5. **In place only when verified.** A file appears under its final name only
   after its md5 matched and its bytes were synced, on its own filesystem
   (:mod:`magedl.transfer.commit`).
"""

import importlib

_EXPORTS = {
    "download": "one_file",
    "Result": "one_file",
    "Progress": "one_file",
    "md5_file": "one_file",
    "fetch_release": "fetch",
    "fetch_many": "fetch",
    "open_client": "fetch",
    "TransferOptions": "options",
    "Tuning": "options",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'magedl.transfer' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
