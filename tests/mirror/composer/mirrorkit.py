"""One ``magedl mirror DIR --composer-require ...`` run in this process, as the re-run tests make it.

The run goes through :func:`~magedl.mirror.composer.fetch.select` and :class:`Mirror`, as ``magedl mirror``
does, and gives back what each item ended as.
"""

from magedl.config import Settings
from magedl.fsutil import make_dirs
from magedl.mirror.composer.fetch import select
from magedl.mirror.composer.select import ComposerOptions
from magedl.mirror.core import Mirror
from magedl.service.api import Client
from magedl.transfer.options import TransferOptions

PROJECT = "magento/project-community-edition"


def mirror(mdir, repos, requires=((PROJECT, "2.4.7"),), seen=None):
    """One run: ``{rel: status}`` of its items; *seen*, a list, gets the selection."""
    options = ComposerOptions(requires=requires, repos=(repos.magento_url, repos.packagist_url))
    with Client(Settings(repos.magento_url, None)) as client:
        notes, selection = select(client, options, mdir)
        assert not selection.failures, selection.failures
        if seen is not None:
            seen.append(selection)
        make_dirs(mdir)
        with Mirror(mdir).lock():
            selection.save()
            done = Mirror(mdir)
            items = []
            done.run(None, done.plan(None, (), composer=selection), TransferOptions(), on_item=items.append,
                     composer_client=client, composer_keys=notes, every_file=True)  # unchanged ones too
    return {it.rel: it.status for it in items}
