"""The library's front door: open a client, list, select, download.

Scripted builds import these instead of shelling out::

    import magedl
    with magedl.open_client() as client:           # env / config / netrc credentials
        releases = client.catalog()
        [release] = magedl.select(releases, types=["ce-full"], versions=["2.4.7"], formats=["tar.gz"])
        result = magedl.fetch_release(client, release, "downloads/")
        print(result.path, result.md5)

Every failure is a :class:`magedl.errors.MagedlError` subclass whose
``exit_code`` says what kind it is.
"""

from . import config
from .api import Client
from .paths import check_name, destination
from .retry import RetryPolicy
from .transfer import download


def open_client(base_url=None, *, mageid=None, token=None, token_file=None, ca_bundle=None,
                insecure=False, retry=None, timeout=(15.0, 60.0)):
    """A :class:`~magedl.api.Client` with settings resolved as the CLI does.

    Parameters left ``None`` come from the environment, the config file or
    ``~/.netrc``, in that order.
    """
    settings = config.resolve(
        base_url=base_url, mageid=mageid, token=token, token_file=token_file,
        ca_bundle=ca_bundle, insecure=insecure,
    )
    return Client(settings, retry=retry or RetryPolicy(), timeout=timeout)


def fetch_release(client, release, folder, *, require_checksum=False, progress=None):
    """Download one catalogue record into *folder*, verified against its md5.

    Parameters
    ----------
    client : magedl.api.Client
    release : magedl.catalog.Release
    folder : path
        Target folder; the file lands at ``folder/<file_name>``.
    require_checksum : bool
        Refuse files the feed gives no md5 for.
    progress : callable, optional
        Receives :class:`magedl.transfer.Progress` updates.

    Returns
    -------
    magedl.transfer.Result
    """
    check_name(release.file_name)
    dest = destination(folder, release.file_name)
    return download(
        client,
        client.file_url(release.file_name),
        dest,
        file_name=release.file_name,
        md5=release.md5,
        require_checksum=require_checksum,
        progress=progress,
    )
