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
import sys
import types

_EXPORTS = {
    "download": "download",
    "Result": "download",
    "Progress": "download",
    "md5_file": "download",
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


class _Package(types.ModuleType):
    """``download`` names both a submodule and the function it defines: the attribute is the function.

    Importing a submodule sets an attribute of that name on its package, which
    would hide the function behind the module object; this property keeps
    ``from magedl.transfer import download`` the function, while the module
    stays importable as ``magedl.transfer.download`` (``sys.modules``).
    """

    @property
    def download(self):
        return __getattr__("download")

    @download.setter
    def download(self, module):
        pass  # the import system recording the submodule: it lives on in sys.modules


sys.modules[__name__].__class__ = _Package
