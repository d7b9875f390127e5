"""text.printable and human_bytes: outside text safe for a terminal; sizes in one unit system."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from magedl.text import human_bytes, printable


@pytest.mark.parametrize("raw, shown", [
    ("Magento-CE-2.4.7.tar.gz", "Magento-CE-2.4.7.tar.gz"),
    ("é ü 日本", "é ü 日本"),
    ("a\x1b[2Jb", "a\\x1b[2Jb"),
    ("tab\there", "tab\\there"),
    ("line\nbreak", "line\\nbreak"),
    ("\u202eevil", "\\u202eevil"),
    ("\x00", "\\x00"),
])
def test_printable(raw, shown):
    assert printable(raw) == shown


@given(st.text())
def test_printable_leaves_no_control_character(text):
    shown = printable(text)
    assert all(c.isprintable() or c == " " for c in shown)


@pytest.mark.parametrize("n, smallest, shown", [
    (None, "B", "?"), (0, "B", "0 B"), (1023, "B", "1023 B"), (1536, "B", "1.5 KiB"),
    (5 << 20, "B", "5.0 MiB"), (3 << 30, "B", "3.0 GiB"), (0, "MiB", "0.0 MiB"), (512 << 10, "MiB", "0.5 MiB"),
])
def test_human_bytes(n, smallest, shown):
    assert human_bytes(n, smallest) == shown
