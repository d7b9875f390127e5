"""ComposerRepository, constraints and the minified expander against a hostile repository's documents.

The bounds of docs/security.md section 1 (issue 19): names validated before a URL is built,
minified expansion, includes and constraints bounded in size, count and time. The property
tests hold the bounds for any input, not only the attacks found.
"""

import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from magedl.composer.repository import ComposerRepository
from magedl.errors import MagedlError, NotFoundError, UnsafeNameError

REPO = "https://repo.example/composer/"


def encode(document):
    return document if isinstance(document, bytes) else json.dumps(document).encode()


def sha256(document):
    return hashlib.sha256(encode(document)).hexdigest()


class Fake:
    """A fetch over a dict URL -> document, counting what it was asked; unknown URLs are 404."""

    def __init__(self, files):
        self.files = {url: doc if callable(doc) else encode(doc) for url, doc in files.items()}
        self.calls = []

    def __call__(self, url):
        self.calls.append(url)
        found = self.files.get(url.replace("%24", "$").split("?", 1)[0])
        if found is None:
            raise NotFoundError(f"{url}: HTTP 404")
        return encode(found(url)) if callable(found) else found


def repository(files, url=REPO, **kwargs):
    warnings = []
    repo = ComposerRepository(url, Fake(files), warn=warnings.append, **kwargs)
    return repo, warnings


@pytest.mark.parametrize("name", ["../../admin/delete?all=1&x", "evil/../../x", "a/b?c", "a/b#c", "/etc/passwd",
                                  "a/b/c", "a%2fb/c", "a/b\x00"])
def test_no_url_is_built_from_a_name_composer_would_refuse(name):
    repo, _ = repository({REPO + "packages.json": {"packages": [], "metadata-url": "/p2/%package%.json"}})
    with pytest.raises(UnsafeNameError):
        repo.versions(name)
    repo.prefetch([name, "good/name"])
    assert not [u for u in repo._fetch.calls if "good" not in u and not u.endswith("/packages.json")]


def test_a_provider_hash_that_is_not_a_sha256_is_skipped_never_put_in_a_url():
    listing = {"providers": {"a/b": {"sha256": "../../admin?x=1"}, "c/d": {"sha256": "0" * 63 + "1"}}}
    files = {REPO + "packages.json": {"packages": [], "providers-url": "/p/%package%$%hash%.json",
                                      "provider-includes": {"p/all$%hash%.json": {"sha256": sha256(listing)}}},
             REPO + f"p/all${sha256(listing)}.json": listing}
    repo, warnings = repository(files)
    assert repo.lists("a/b") is False and repo.lists("c/d") is True
    assert any("a/b has no usable sha256" in w for w in warnings)


def test_a_minified_file_that_would_expand_beyond_the_cap_is_refused_naming_the_file():
    """Issue 19 item 1: a wide first entry then many ``{}`` entries must not be expanded (nor deep-copied)."""
    from magedl.emulator.hostile import minified_bomb
    from magedl.errors import FeedError

    files = {REPO + "packages.json": {"packages": [], "metadata-url": "/p2/%package%.json"},
             "https://repo.example/p2/evil/bomb.json": minified_bomb("evil/bomb", keys=1000, entries=1500)}
    repo, _ = repository(files)
    with pytest.raises(FeedError, match=r"^https://repo.example/p2/evil/bomb.json: minified metadata that expands "
                                        r"to more than 1,000,000 values") as info:
        repo.versions("evil/bomb")
    assert "\n" not in str(info.value)


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=4) | st.just("__unset"),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner,
                                                                                  max_size=4),
                     max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.dictionaries(st.sampled_from("abcdefgh"), _JSON, max_size=6), _JSON), max_size=40),
       st.integers(min_value=0, max_value=400))
def test_minified_expansion_never_builds_more_than_its_cap(diffs, limit):
    """Whatever the document, the entries built hold at most *limit* values, or it is refused."""
    from magedl.composer.metadata import expand_minified, json_size
    from magedl.errors import FeedError

    try:
        out = expand_minified(diffs, lambda _: None, limit=limit)
    except FeedError:
        return
    assert sum(sum(1 + json_size(v) for v in entry.values()) for entry in out) <= limit


def _query(answer):
    return lambda url: answer(url.split("?", 1)[1] if "?" in url else "")


def test_includes_are_read_once_each_and_their_number_is_capped():
    """Issue 19 item 2: a packages.json including itself under new query strings is refused, not walked 2^depth."""
    from magedl.composer.includes import MAX_INCLUDE_FILES
    from magedl.emulator.hostile import self_including
    from magedl.errors import FeedError

    repo, _ = repository({REPO + "packages.json": _query(self_including(2, "/composer/packages.json"))})
    with pytest.raises(FeedError, match="more than 100 include files"):
        repo.versions("evil/pkg")
    assert len(repo._fetch.calls) <= MAX_INCLUDE_FILES + 2


def test_an_include_loop_reads_each_file_once_and_keeps_each_version_once():
    a = {"packages": {"x/y": {"1.0.0": {"name": "x/y", "version": "1.0.0"}}}, "includes": {"b.json": {}}}
    b = {"packages": {"x/y": {"2.0.0": {"name": "x/y", "version": "2.0.0"}}},
         "includes": {"packages.json": {}, "b.json": {}, "/composer/b.json": {}}}
    repo, _ = repository({REPO + "packages.json": a, REPO + "b.json": b})
    assert sorted(e["version"] for e in repo.versions("x/y")) == ["1.0.0", "2.0.0"]
    assert sorted(repo._fetch.calls) == [REPO + "b.json", REPO + "packages.json"]


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(["packages.json", "a.json", "b.json", "c.json"]),
                       st.lists(st.sampled_from(["packages.json", "a.json", "b.json", "c.json", "a.json?1",
                                                 "/composer/a.json", "d.json"]), max_size=5), min_size=1))
def test_any_include_graph_costs_at_most_one_fetch_per_file(graph):
    """Whatever the include graph (loops, self-references, query strings), each resolved URL is fetched once."""
    files = {REPO + path: {"packages": {}, "includes": {inc: {} for inc in includes}}
             for path, includes in graph.items()}
    files.setdefault(REPO + "packages.json", {"packages": {}})
    repo, _ = repository(files)
    try:
        repo.package_names()
    except MagedlError:
        pass
    assert len(repo._fetch.calls) == len(set(repo._fetch.calls))


def test_a_constraint_longer_than_1_kib_is_refused_before_any_pattern_runs():
    """Issue 19 item 3: ``"1.0 " + 120,000 spaces + "x"`` cost 13 s of CPU in the alternatives split."""
    from magedl.composer.constraints import parse_constraint
    from magedl.composer.semver import normalize
    from magedl.errors import ConstraintError

    with pytest.raises(ConstraintError, match=r": 30,005 characters, over 1,024") as info:
        parse_constraint("1.0 " + " " * 30000 + "x")
    assert len(str(info.value)) < 200
    with pytest.raises(ConstraintError, match="over 1,024"):
        normalize("1" + ".0" * 40000)
    assert parse_constraint(">=1.0 " + " " * 1000 + "<2").matches("1.5.0.0")  # up to the cap, as Composer


@settings(max_examples=400, deadline=None)
@given(st.text(st.sampled_from(" \t|,.-@~^*<>=!1x0vdeasRC#"), max_size=60))
def test_the_alternatives_split_is_composers(text):
    """The linear split cuts exactly where Composer's ``\\s*\\|\\|?\\s*`` does."""
    import re

    from magedl.composer.constraints import _split_or

    assert _split_or(text) == re.split(r"\s*\|\|?\s*", text, flags=re.ASCII)


@settings(max_examples=200, deadline=None)
@given(st.text(st.sampled_from(" |,.-1x"), min_size=1025, max_size=3000))
def test_any_constraint_over_the_cap_is_refused(text):
    from magedl.composer.constraints import parse_constraint
    from magedl.errors import ConstraintError

    with pytest.raises(ConstraintError, match="characters, over 1,024"):
        parse_constraint(text)
