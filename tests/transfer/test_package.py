"""What ``magedl.transfer`` exports, and that importing its options stays cheap."""

import subprocess
import sys


def test_the_package_exports_the_functions_not_the_modules():
    import magedl.transfer.one_file  # noqa: F401 - importing the module does not change the package's names
    from magedl import transfer
    from magedl.transfer import Progress, Result, TransferOptions, download, fetch_many, fetch_release
    from magedl.transfer.one_file import Download

    assert callable(download) and download.__name__ == "download" and transfer.download is download
    assert fetch_release.__module__ == fetch_many.__module__ == "magedl.transfer.fetch"
    assert {Progress.__name__, Result.__name__, TransferOptions.__name__} == {"Progress", "Result", "TransferOptions"}
    assert Download.__module__ == "magedl.transfer.one_file"
    assert type(transfer) is type(subprocess)  # a plain module: no class swapped in to keep the names apart


def test_the_top_level_package_exports_the_same_names():
    import magedl
    from magedl import transfer

    for name in ("download", "Progress", "Result", "md5_file", "fetch_release", "fetch_many", "TransferOptions"):
        assert getattr(magedl, name) is getattr(transfer, name)


def test_importing_the_options_does_not_import_requests():
    code = "import sys, magedl.transfer.options; print('requests' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
