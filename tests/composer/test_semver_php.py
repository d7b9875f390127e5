"""magedl's Composer rules agree with the real composer/semver, run once in PHP.

A corpus of constraints x versions (Magento releases, ``-pN`` patches, every
stability, wildcards, hyphen ranges, ORs, dev branches) plus normalization,
stability, ordering and stability-flag cases goes to one ``php`` process as
JSON; each test then compares one section of PHP's answers with ours and lists
every mismatch at once.
"""

import itertools
import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from magedl.composer.constraints import parse_constraint, satisfies
from magedl.composer.semver import STABILITIES, compare, normalize, sort_versions, stability
from magedl.errors import ConstraintError

SEMVER_AUTOLOAD = Path("/usr/share/php/Composer/Semver/autoload.php")
# The whole of Composer, when installed, also answers the stability-flag cases.
COMPOSER_AUTOLOAD = Path("/usr/share/php/Composer/autoload.php")

CONSTRAINTS = [
    "2.4.7", "=2.4.7", "==2.4.7-p1", "2.4.7-p1", "v2.4.7", "2.4.7.0", "!=2.4.7", "<>2.4.7-p1",
    ">=2.4.7", ">2.4.7", "<2.4.8", "<=2.4.7-p2", "<2.4.7-p1", ">=2.4.6-p3 <2.4.7",
    ">=7.4 <8.4", ">=7.4,<8.4", ">= 7.4, < 8.4", "^2.4", "^2.4.7", "^0.3", "^0.0.3", "^103.0",
    "~2.4.7", "~2.4", "~2", "~103.0.7", "~2.4.7-p1", "2.4.*", "2.*", "2.4.x", "*", "v*",
    "2.4.7-p1 || 2.4.8", "2.4.7-p1 | 2.4.8-p1", "^7.4||~8.1.0", "^1.0 || ^2.0 || ^3.0",
    "2.4.0 - 2.4.7", "2.4 - 2.5", "1.0.0 - 2", "2.4.7-beta1 - 2.4.7-p2",
    "@dev", "^2.4@dev", "~2.4.7@beta", ">=2.4.7@RC", "2.4.8-beta1", ">=1.0-rc1",
    "dev-main", "dev-main#abc123", "main-dev", "2.4.x-dev", "2.4-dev", "dev-2.4-develop",
    "2.4.7 as 2.4.6", "2.4.x-dev as 2.4.7", "103.0.7-p3", "!=dev-main",
    # Composer rejects these; so must we.
    "", "foo", "~>2.4", ">=", "^", "2.4.7 -", "2.4.7 ||", "^2.4 foo", "2.4.7.0.1", "2.4.7@foo",
]

VERSIONS = [
    "2.4.6", "2.4.6-p3", "2.4.7-alpha1", "2.4.7-beta1", "2.4.7-beta2", "2.4.7-RC1", "2.4.7-rc2",
    "2.4.7", "2.4.7-p1", "2.4.7-p2", "2.4.7.1", "2.4.8-beta1", "2.4.8", "2.4.8-p1", "2.5.0",
    "3.0.0", "v2.4.7", "2.4.7.0-patch1", "2.4.7+build5", "2.4", "2.4.x-dev", "2.4.7-dev",
    "dev-main", "dev-2.4-develop", "dev-master", "103.0.7", "103.0.7-p3", "103.0.8", "7.4.33",
    "8.1.27", "8.3.0", "8.4.0", "0.3.5", "0.0.3", "0.0.4", "1.0.0", "1.5.0", "2.0.0", "2.0.1",
    "20240101", "2024-01-01",
    "2.4.x", "nope",
]

NORMALIZE_ONLY = [
    "1.2", "v1.0.0", "1.0.0-beta2", "1.0.0-beta.2", "1.0.0b2", "1.0.0-a1", "1.0.0.RC.1",
    "1.0.0-pl3", "1.0.0-patch.6", "1.0.0-stable", "1.0.0-STABLE", "1.0.0-beta2-dev", "1.x-dev",
    "1.0.x-dev", "2.4.*-dev", "v2.4.X-dev", "1.0.x-dev as 1.0.0", "master", "trunk", "default",
    "DEV-Feature/x", "103.0.7.1", "2024.01.01", "2024-01-01-10-30", "123456", " 2.4.7 ",
    "2.4.7@dev", "2.4.7_p1", "v2.4.7-p1-dev", "",
    "foo", "1.0.0.0.0", "1.0-foo", "x.y", "1.0.*", "^1.0", ">=1.0", "1.0@foo", "foo-dev",
    "foo as 1.0", "1.0.0 as", "2.4.7-p1 2.4.8", "99999.1", "999999.1",
]

# Distinct under version_compare, with a single dev branch: Composer's order is defined.
SORTABLE = [
    "2.4.6", "2.4.6-p3", "2.4.7-alpha1", "2.4.7-beta1", "2.4.7-RC1", "2.4.7", "2.4.7-p1",
    "2.4.7-p2", "2.4.7.1", "2.4.8-beta1", "2.4.8", "2.5.0", "3.0.0", "2.4.x-dev", "dev-main",
    "dev-master", "103.0.7-p3", "0.0.3", "1.0.0",
]

PHP_SCRIPT = r"""<?php
ini_set('display_errors', 'stderr');
require $argv[2];
use Composer\Semver\Semver;
use Composer\Semver\VersionParser;
set_error_handler(function ($no, $message) { throw new \ErrorException($message); });
$in = json_decode(file_get_contents($argv[1]), true);
$parser = new VersionParser();
// null: Composer rejects the input; "THROW:..." would be some other failure.
$try = function ($fn) {
    try {
        return $fn();
    } catch (\UnexpectedValueException $e) {
        return null;
    } catch (\Throwable $e) {
        return 'THROW:' . get_class($e) . ':' . $e->getMessage();
    }
};
$out = ['normalize' => [], 'constraints' => [], 'satisfies' => [], 'stability' => [],
        'compare' => [], 'sort' => [], 'flags' => null];
foreach ($in['normalize'] as $v) {
    $out['normalize'][] = $try(function () use ($parser, $v) { return $parser->normalize($v); });
}
foreach ($in['constraints'] as $c) {
    $out['constraints'][] = $try(function () use ($parser, $c) {
        return (string) $parser->parseConstraints($c);
    });
}
foreach ($in['satisfies'] as $pair) {
    $out['satisfies'][] = $try(function () use ($pair) {
        return Semver::satisfies($pair[0], $pair[1]);
    });
}
foreach ($in['stability'] as $v) {
    $out['stability'][] = VersionParser::parseStability($v);
}
foreach ($in['compare'] as $pair) {
    $out['compare'][] = version_compare($pair[0], $pair[1]);
}
foreach ($in['sort'] as $list) {
    $out['sort'][] = [Semver::rsort($list), Semver::sort($list)];
}
if (is_file($argv[3])) {
    require_once $argv[3];
    $out['flags'] = [];
    foreach ($in['flags'] as $case) {
        $flags = \Composer\Package\Loader\RootPackageLoader::extractStabilityFlags(
            ['a/b' => $case[0]], $case[1], []);
        $out['flags'][] = isset($flags['a/b']) ? $flags['a/b'] : null;
    }
}
echo json_encode($out, JSON_INVALID_UTF8_SUBSTITUTE);
"""


def _attempt(fn):
    try:
        return fn()
    except ConstraintError:
        return None


def _corpus():
    normalized = [n for n in (_attempt(lambda v=v: normalize(v)) for v in VERSIONS) if n]
    shuffler = random.Random(2024)
    sort_lists = []
    for size in (2, 5, 9, len(SORTABLE)):
        for _ in range(3):
            sort_lists.append(shuffler.sample(SORTABLE, size))
    return {
        "normalize": VERSIONS + NORMALIZE_ONLY,
        "constraints": CONSTRAINTS,
        "satisfies": [[v, c] for c in CONSTRAINTS for v in VERSIONS],
        "stability": VERSIONS + NORMALIZE_ONLY + CONSTRAINTS,
        "compare": [list(pair) for pair in itertools.product(normalized, repeat=2)],
        "sort": sort_lists,
        "flags": [[c, m] for c in CONSTRAINTS for m in STABILITIES
                  if _attempt(lambda c=c: parse_constraint(c))],
    }


@pytest.fixture(scope="module")
def composer(tmp_path_factory):
    """The corpus and PHP's answers to it, from a single php process."""
    php = shutil.which("php")
    if php is None:
        pytest.skip("php is not installed")
    if not SEMVER_AUTOLOAD.is_file():
        pytest.skip(f"composer/semver is not installed ({SEMVER_AUTOLOAD} is missing)")
    folder = tmp_path_factory.mktemp("semver-php")
    corpus = _corpus()
    (folder / "corpus.json").write_text(json.dumps(corpus), encoding="utf-8")
    (folder / "answer.php").write_text(PHP_SCRIPT, encoding="utf-8")
    done = subprocess.run(
        [php, str(folder / "answer.php"), str(folder / "corpus.json"), str(SEMVER_AUTOLOAD),
         str(COMPOSER_AUTOLOAD)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    return corpus, json.loads(done.stdout)


def _assert_all_agree(kind, cases, php_answers, ours):
    assert len(php_answers) == len(cases)
    mismatches = []
    for case, php_answer in zip(cases, php_answers):
        mine = ours(case)
        if mine != php_answer:
            mismatches.append(f"{kind} {case!r}: composer {php_answer!r}, magedl {mine!r}")
    assert not mismatches, f"{len(mismatches)} of {len(cases)} differ:\n" + "\n".join(mismatches)


def test_corpus_is_big_enough(composer):
    corpus, _ = composer
    assert len(corpus["satisfies"]) >= 300
    assert len(corpus["normalize"]) >= 60


def test_normalize_agrees(composer):
    corpus, php = composer
    _assert_all_agree("normalize", corpus["normalize"], php["normalize"],
                      lambda v: _attempt(lambda: normalize(v)))


def test_parsed_constraints_agree(composer):
    corpus, php = composer
    _assert_all_agree("constraint", corpus["constraints"], php["constraints"],
                      lambda c: _attempt(lambda: str(parse_constraint(c))))


def test_satisfies_agrees(composer):
    corpus, php = composer
    _assert_all_agree("satisfies", [tuple(pair) for pair in corpus["satisfies"]],
                      php["satisfies"], lambda pair: _attempt(lambda: satisfies(*pair)))
    # The corpus must exercise both answers, not only errors.
    assert php["satisfies"].count(True) > 100
    assert php["satisfies"].count(False) > 100


def test_stability_agrees(composer):
    corpus, php = composer
    _assert_all_agree("stability", corpus["stability"], php["stability"], stability)


def test_version_compare_agrees(composer):
    corpus, php = composer
    _assert_all_agree("compare", [tuple(pair) for pair in corpus["compare"]], php["compare"],
                      lambda pair: compare(*pair))


def test_sort_agrees(composer):
    corpus, php = composer
    _assert_all_agree("sort", [tuple(items) for items in corpus["sort"]], php["sort"],
                      lambda items: [sort_versions(items), sort_versions(items, newest_first=False)])


def test_stability_flags_agree(composer):
    corpus, php = composer
    if php["flags"] is None:
        pytest.skip(f"Composer itself is not installed ({COMPOSER_AUTOLOAD} is missing)")
    names = {rank: name for name, rank in STABILITIES.items()}
    php_flags = [None if rank is None else names[rank] for rank in php["flags"]]
    _assert_all_agree("stability flag", [tuple(case) for case in corpus["flags"]], php_flags,
                      lambda case: parse_constraint(case[0]).stability_flag(case[1]))
