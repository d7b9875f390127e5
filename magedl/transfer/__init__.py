"""One file from URL to disk: partial file and sidecar, ranges, segments, hashing, rate.

::

    from magedl.transfer import fetch_release, TransferOptions
    result = fetch_release(client, release, "downloads/", TransferOptions(connections=4))

The names below are imported on first use, so importing
:mod:`magedl.transfer.options` (the command line does, for its help text)
does not pay for importing requests.
"""

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
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
