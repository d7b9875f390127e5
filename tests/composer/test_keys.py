"""Marketplace key values: shape checks, masking, reading them from a stream or a prompt."""

import io
import secrets

import pytest

from magedl.composer.keys import key_shape_problems, mask_public, read_keys
from magedl.errors import UsageError
from magedl.secrecy import redact

# Values given to read_keys are registered as secrets for the whole test run: keep them
# unique so that no other test's text (md5 sums like "a" * 32) gets redacted.
R1, R2, R3 = (secrets.token_hex(16) for _ in range(3))


def pair():
    """A fresh (public, private) pair of Marketplace-shaped keys."""
    return secrets.token_hex(16), secrets.token_hex(16)


# ---------------------------------------------------------------- key shapes


def test_good_keys_have_no_shape_problems():
    assert key_shape_problems(*pair()) == ()
    assert key_shape_problems("A" * 16 + "b" * 16, "0" * 32) == ()


@pytest.mark.parametrize("public, private, expected", [
    (" " + "a" * 32, "b" * 32, "public key has spaces or a line break at its start or end"),
    ("a" * 32, "b" * 32 + "\n", "private key has spaces or a line break"),
    ('"' + "a" * 32 + '"', "b" * 32, "public key is wrapped in quotes"),
    ("a" * 32, "b" * 31, "private key is 31 characters long, not 32"),
    ("a" * 33, "b" * 32, "public key is 33 characters long"),
    ("a" * 31 + "-", "b" * 32, "public key holds characters other than letters and digits"),
    ("a" * 16 + " " + "a" * 15, "b" * 32, "public key holds spaces or line breaks inside it"),
    ("a" * 32, "a" * 32, "the public and the private key are the same"),
    ("MAG000123456", "b" * 32, "looks like a MAGEID"),
    ("a" * 32, "0123456789abcdef0123456789abcdef01234567", "looks like a downloads access token"),
    ("", "b" * 32, "the public key is empty"),
])
def test_shape_problems(public, private, expected):
    problems = key_shape_problems(public, private)
    assert any(expected in p for p in problems), problems
    for problem in problems:
        assert public.strip() not in problem or not public.strip()
        assert private.strip() not in problem


def test_stripped_key_is_said_to_be_fine_without_extras():
    problems = key_shape_problems("'" + "a" * 32 + "'", "b" * 32)
    assert any("valid 32-character key without the extra characters" in p for p in problems)


def test_mask_public():
    assert mask_public("abcdef0123456789abcdef0123456789") == "abcd…"
    assert mask_public("abcdefgh") == "…"
    assert mask_public("") == "…"


# ---------------------------------------------------------------- read_keys


@pytest.mark.parametrize("text", ["{0}\n{1}\n", "{0} {1}", "\ufeff  {0}\t{1}\r\n", "{0}\n\n{1}"])
def test_read_keys_from_stream(text):
    keys = pair()
    assert read_keys(io.StringIO(text.format(*keys)), prompt=False) == keys
    assert redact(keys[1]) == "***"


def test_read_keys_from_binary_stream():
    keys = pair()
    assert read_keys(io.BytesIO(f"{keys[0]}\n{keys[1]}\n".encode()), prompt=False) == keys


@pytest.mark.parametrize("words", [0, 1, 3])
def test_read_keys_wrong_count(words):
    values = [secrets.token_hex(16) for _ in range(words)]
    with pytest.raises(UsageError, match=f"got {words} word") as info:
        read_keys(io.StringIO(" ".join(values)), prompt=False)
    assert all(v not in str(info.value) for v in values)


def test_read_keys_too_much_input():
    with pytest.raises(UsageError, match="more than 4096 characters"):
        read_keys(io.StringIO(secrets.token_hex(2500)), prompt=False)


def test_read_keys_without_stream():
    with pytest.raises(UsageError):
        read_keys(None, prompt=False)


def test_read_keys_prompt():
    keys = pair()
    answers = iter([keys[0] + " ", keys[1]])
    prompts = []

    def fake(prompt):
        prompts.append(prompt)
        return next(answers)

    assert read_keys(None, prompt=True, getpass_fn=fake) == keys
    assert len(prompts) == 2 and "public" in prompts[0] and "private" in prompts[1]


@pytest.mark.parametrize("answers, match", [
    (["", R1], "no public key entered"),
    ([R1, ""], "no private key entered"),
    ([R2 + " " + R3, R1], "paste one key per prompt"),
])
def test_read_keys_prompt_errors(answers, match):
    it = iter(answers)
    with pytest.raises(UsageError, match=match):
        read_keys(None, prompt=True, getpass_fn=lambda prompt: next(it))


def test_read_keys_prompt_eof():
    def eof(prompt):
        raise EOFError

    with pytest.raises(UsageError, match="end of input"):
        read_keys(None, prompt=True, getpass_fn=eof)
