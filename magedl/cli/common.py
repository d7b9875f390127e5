"""What every command needs from its parsed arguments: a client, the catalogue, a selection, transfer options.

Each helper turns the parsed arguments into the library's values, so a default or a rule lives here
once and not in every command.
"""

import argparse
import dataclasses
import logging
import os
import sys
from typing import Iterable, List, Optional, Sequence

from magedl.config import is_service, resolve
from magedl.errors import MagedlError
from magedl.service import catalog
from magedl.text import printable
from magedl.transfer import options as defaults  # the one home of every default
from magedl.transfer.options import TransferOptions

log = logging.getLogger(__name__)


def make_client(args: argparse.Namespace, *, credentials: bool = True):
    """A :class:`magedl.service.api.Client` for the base URL, credentials, TLS and retry options in *args*.

    Use it as a context manager. Warns when the real service is asked without
    credentials (a mirror usually needs none). With ``credentials=False`` no
    MAGEID or token is looked for anywhere (for requests that are not to the
    downloads service: Composer repositories); TLS, proxies, retries and
    timeouts are the same.
    """
    from magedl.service.api import Client  # requests and urllib3: a run's cost, not its parsing's

    if credentials:
        settings = resolve(base_url=args.base_url, mageid=args.mageid, token=args.token, token_file=args.token_file,
                           ca_bundle=args.ca_bundle, insecure=args.insecure)
        if settings.credentials is None and is_service(settings.base_url):
            log.warning("no MAGEID and token found; the service will likely refuse (see 'magedl --help')")
    else:
        settings = settings_without_credentials(args)
    # Enough pooled connections per host for every connection a run may open (fetch_many's budget) to be reused.
    jobs = getattr(args, "jobs", None) or 1
    connections = getattr(args, "connections", None) or defaults.DEFAULT_CONNECTIONS
    return Client(settings, retry=retry_policy(args), timeout=timeouts(args),
                  pool_size=max(defaults.MAX_CONNECTIONS, jobs, connections))


def settings_without_credentials(args: argparse.Namespace, base_url: Optional[str] = None):
    """:class:`magedl.config.Settings` with TLS options resolved as for the service, and no MAGEID or token.

    For requests to other servers (Composer repositories): the CA bundle
    comes from ``--ca-bundle``, the environment or the config file as always.
    """


    env = {k: v for k, v in os.environ.items() if k not in ("MAGEDL_MAGEID", "MAGEDL_TOKEN", "MAGEDL_BASE_URL")}
    settings = resolve(base_url=base_url, ca_bundle=getattr(args, "ca_bundle", None),
                       insecure=getattr(args, "insecure", False), env=env, use_netrc=False)
    return dataclasses.replace(settings, credentials=None)


def retry_policy(args: argparse.Namespace):
    """The :class:`~magedl.service.retry.RetryPolicy` of ``--retries`` and ``--retry-wait``."""
    from magedl.service.retry import RetryPolicy

    return RetryPolicy(attempts=args.retries, backoff=args.retry_wait)


def timeouts(args: argparse.Namespace) -> tuple:
    """(connect, read) timeouts from ``--timeout`` (0: wait for ever once connected)."""
    read = args.timeout or None
    return (min(defaults.CONNECT_TIMEOUT, read or defaults.CONNECT_TIMEOUT), read)


def catalogue(client) -> list:
    """Every release the account sees, feed warnings logged (their text made printable)."""

    return client.catalog(warn=lambda msg: log.warning("feed: %s", printable(msg)))


def has_selection(args: argparse.Namespace) -> bool:
    """True when any of ``--type``, ``--version``, ``--format``, ``--latest`` was given."""
    return any(getattr(args, name, None) for name in ("type", "versions", "formats", "latest"))


def select_releases(releases: Sequence, args: argparse.Namespace) -> list:
    """The records ``--type``/``--version``/``--format``/``--latest`` choose, in catalogue order.

    Catalogue order is the order ``list`` prints: newest version first, then
    type, then file name; ``get --json`` and ``mirror`` keep it whatever order
    transfers finish in.

    Raises
    ------
    NotFoundError
        An unknown type, or a selection that matches nothing: the message
        names it and what exists (exit 5).
    """

    types = list(getattr(args, "type", None) or ())
    versions = list(getattr(args, "versions", None) or ())
    formats = list(getattr(args, "formats", None) or ())
    latest = bool(getattr(args, "latest", False))
    return catalog.select_checked(releases, types=types, versions=versions, formats=formats, latest=latest)


def transfer_options(args: argparse.Namespace, **overrides) -> TransferOptions:
    """The :class:`TransferOptions` ``--connections``, ``--jobs``, ``--limit-rate`` and ``--require-checksum`` give.

    Without ``--connections``, transfers start with one connection and add
    more (up to the default) only when it proves slow. *overrides* set other
    fields (``sha256=True`` for mirrors).
    """
    return TransferOptions(
        connections=args.connections or defaults.DEFAULT_CONNECTIONS,
        adaptive=args.connections is None,
        jobs=args.jobs,
        limit_rate=args.limit_rate,
        require_checksum=args.require_checksum,
        **overrides,
    )


def first_failure_code(outcomes: Iterable) -> int:
    """Exit code of a multi-file run: that of the first failure in *outcomes*, else 0.

    *outcomes* may mix results and :class:`MagedlError` values (or hold only
    the errors); anything that is not an error counts as a success.
    """
    failure: Optional[MagedlError] = next((o for o in outcomes if isinstance(o, MagedlError)), None)
    return failure.exit_code if failure is not None else 0


def progress_mode(args: argparse.Namespace) -> str:
    """``"bar"`` on a terminal, ``"lines"`` in a pipe, a log or a ``TERM=dumb`` terminal, ``"none"`` with ``-q``."""

    if args.quiet:
        return "none"
    # A dumb terminal cannot erase a line: the bar's redraws would pile up as escape sequences.
    return "bar" if sys.stderr.isatty() and os.environ.get("TERM") != "dumb" else "lines"


__all__: List[str] = ["make_client", "settings_without_credentials", "retry_policy", "timeouts", "catalogue",
                      "has_selection", "select_releases", "transfer_options", "first_failure_code", "progress_mode"]
