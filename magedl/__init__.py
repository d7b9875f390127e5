"""magedl: list, fetch and mirror Magento release archives and patches.

The public API is re-exported here lazily, so ``magedl --help`` does not pay
for importing requests and friends.
"""

__version__ = "0.1.0"

_EXPORTS = {
    "open_client": "transfer.fetch",
    "fetch_release": "transfer.fetch",
    "fetch_many": "transfer.fetch",
    "TransferOptions": "transfer.options",
    "Client": "service.api",
    "RetryPolicy": "service.retry",
    "Release": "service.catalog",
    "parse_feed": "service.catalog",
    "select": "service.catalog",
    "download": "transfer.one_file",
    "Progress": "transfer.one_file",
    "Result": "transfer.one_file",
    "md5_file": "transfer.one_file",
    "MagedlError": "errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'magedl' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
