"""The documents that name tests (docs/*.md) name tests that exist.

docs/guarantees.md and docs/security.md tie each guarantee to the tests that
hold it; a renamed or deleted test would leave a guarantee unproven without
anyone noticing. This keeps the references honest.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
# `dir/test_x.py` or `dir/test_x.py::test_name` (also `::test_name` following a file on the same line)
REF = re.compile(r"`((?:[\w]+/)*test_\w+\.py)((?:::\w+)?)`|`::(test_\w+)`")


def references(text):
    """(file, test or None) pairs, a bare `::name` belonging to the last file named before it."""
    out, last = [], None
    for match in REF.finditer(text):
        if match.group(1):
            last = match.group(1)
            out.append((last, match.group(2)[2:] or None))
        elif last:
            out.append((last, match.group(3)))
    return out


def test_the_docs_name_tests():
    assert DOCS, "docs/ has no documents"
    assert any(references(doc.read_text()) for doc in DOCS)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_named_test_exists(doc):
    missing = []
    for rel, name in references(doc.read_text()):
        path = ROOT / "tests" / rel
        if not path.is_file():
            missing.append(rel)
        elif name and not re.search(rf"^(?:async )?def {name}\(", path.read_text(), re.M):
            missing.append(f"{rel}::{name}")
    assert not missing, f"{doc.name} names tests that do not exist: {missing}"
