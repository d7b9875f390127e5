"""Start-up: parsing a command imports what declaring it needs, not the engine that runs it."""

import subprocess
import sys

import pytest

# What parsing must not pay for: the mirror engine, the HTTP stack, the offline check, signing, the terminal.
ENGINE = {"magedl.mirror.run", "magedl.mirror.core", "magedl.mirror.verify", "magedl.mirror.signature",
          "magedl.transfer.fetch", "requests", "urllib3", "rich", "tqdm"}


@pytest.mark.parametrize("argv, module", [(["-q", "mirror", "DIR", "--type", "ce-patch"], "magedl.cli.mirror"),
                                          (["verify", "DIR", "--json"], "magedl.cli.verify"),
                                          (["sign", "DIR", "--key", "KEY"], "magedl.cli.sign")])
def test_parsing_a_command_imports_no_engine(argv, module):
    code = ("import sys\nfrom magedl.cli.app import parser_for\n"
            f"argv = {argv!r}\nparser_for(argv).parse_args(argv)\n"
            "print(sorted(sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(eval(out.strip().splitlines()[-1]))
    assert module in loaded
    assert not ENGINE & loaded, sorted(ENGINE & loaded)
