"""Start-up: parsing a command imports what declaring it needs, not the engine that runs it."""

import subprocess
import sys

import pytest

# What parsing must not pay for: the mirror engine, the HTTP stack, the offline check, signing, the terminal.
ENGINE = {"magedl.mirror.run", "magedl.mirror.core", "magedl.mirror.verify", "magedl.mirror.signature",
          "magedl.transfer.fetch", "requests", "urllib3", "rich", "tqdm"}
# Nor the Composer part: mirror's help shows its defaults from magedl.mirror.defaults.
COMPOSER = ("magedl.mirror.composer", "magedl.composer.constraints")


def _modules(code):
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(eval(out.strip().splitlines()[-1]))


@pytest.mark.parametrize("argv, module", [(["-q", "mirror", "DIR", "--type", "ce-patch"], "magedl.cli.mirror"),
                                          (["verify", "DIR", "--json"], "magedl.cli.verify"),
                                          (["sign", "DIR", "--key", "KEY"], "magedl.cli.sign")])
def test_parsing_a_command_imports_no_engine(argv, module):
    loaded = _modules("import sys\nfrom magedl.cli.app import parser_for\n"
                      f"argv = {argv!r}\nparser_for(argv).parse_args(argv)\n"
                      "print(sorted(sys.modules))")
    assert module in loaded
    assert not ENGINE & loaded, sorted(ENGINE & loaded)
    assert not {m for m in loaded if m.startswith(COMPOSER)}


def test_a_release_only_run_imports_no_composer_module():
    # Its request, the run module and the engine's core: the Composer part's modules come with a Composer part.
    loaded = _modules("import sys\nfrom magedl.cli.app import parser_for\n"
                      "from magedl.cli.mirror import mirror_request\n"
                      "argv = ['-q', 'mirror', 'DIR', '--type', 'ce-patch']\n"
                      "mirror_request(parser_for(argv).parse_args(argv))\nimport magedl.mirror.run\n"
                      "import magedl.mirror.core\nprint(sorted(sys.modules))")
    assert {"magedl.mirror.run", "magedl.mirror.core"} <= loaded
    assert not {m for m in loaded if m.startswith(COMPOSER)}, sorted(m for m in loaded if m.startswith(COMPOSER))
