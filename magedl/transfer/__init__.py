"""One file from URL to disk: partial file and sidecar, ranges, segments, hashing, rate.

::

    from magedl.transfer import fetch_release, TransferOptions
    result = fetch_release(client, release, "downloads/", TransferOptions(connections=4))

The names below are imported on first use, so importing
:mod:`magedl.transfer.options` (the command line does, for its help text)
does not pay for importing requests.
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
