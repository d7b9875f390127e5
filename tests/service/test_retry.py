"""Unit tests for magedl.retry: Retry-After parsing, the no-progress budget, waits.

RetryPolicy has no sleep hook, so tenacity.Retrying is wrapped to inject a
recording ``sleep=``: nothing here sleeps for real.
"""

import email.utils
import logging
import random

import pytest

from magedl.errors import NetworkError, NotFoundError, TransientError
from magedl.service.retry import RetryPolicy, parse_retry_after

NOW = 1_700_000_000.0


class Script:
    """fn for RetryPolicy.call: raises the scripted errors, then returns 'ok'."""

    def __init__(self, *errors, progress_on=()):
        self.errors = list(errors)
        self.calls = 0
        self.progress_on = set(progress_on)  # 1-based attempt numbers that move the counter
        self.counter = 0

    def __call__(self):
        self.calls += 1
        if self.calls in self.progress_on:
            self.counter += 100
        if self.errors:
            raise self.errors.pop(0)
        return "ok"

    def progress(self):
        return self.counter


def transient(n, retry_after=None):
    return [TransientError(f"boom {i}", retry_after) for i in range(n)]


# -- parse_retry_after -----------------------------------------------------------


@pytest.mark.parametrize("value, expected", [("120", 120.0), (" 7 ", 7.0), ("0", 0.0), ("3600", 3600.0)])
def test_parse_seconds(value, expected):
    got = parse_retry_after(value)
    assert got == expected
    assert isinstance(got, float)


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5", "Tuesday", "12 monkeys", "   "])
def test_parse_garbage_is_none(value):
    assert parse_retry_after(value) is None


def test_parse_http_date_future():
    value = email.utils.formatdate(NOW + 90, usegmt=True)
    assert parse_retry_after(value, now=NOW) == 90.0


def test_parse_http_date_past_is_zero():
    value = email.utils.formatdate(NOW - 90, usegmt=True)
    assert parse_retry_after(value, now=NOW) == 0.0


def test_parse_http_date_literal():
    # 2023-11-14 22:13:20 UTC is NOW
    assert parse_retry_after("Tue, 14 Nov 2023 22:15:20 GMT", now=NOW) == 120.0


def test_parse_non_ascii_digit_is_none():
    assert parse_retry_after("\xb2") is None


# -- the attempt budget ---------------------------------------------------------------


def test_success_first_time(sleeps):
    fn = Script()
    assert RetryPolicy(attempts=3, backoff=0).call(fn, "x") == "ok"
    assert fn.calls == 1
    assert sleeps == []


def test_transient_then_success(sleeps):
    fn = Script(*transient(2))
    assert RetryPolicy(attempts=3, backoff=0).call(fn, "x") == "ok"
    assert fn.calls == 3
    assert len(sleeps) == 2


@pytest.mark.parametrize("attempts", [1, 2, 5])
def test_budget_spent_gives_network_error(sleeps, attempts):
    fn = Script(*transient(50))
    with pytest.raises(NetworkError) as info:
        RetryPolicy(attempts=attempts, backoff=0).call(fn, "info/json")
    assert fn.calls == attempts
    assert len(sleeps) == attempts - 1
    assert type(info.value) is NetworkError
    assert info.value.exit_code == 7
    assert f"boom {attempts - 1}" in str(info.value)  # the last reason
    assert f"gave up after {attempts} attempt{'' if attempts == 1 else 's'} without progress" in str(info.value)
    assert info.value.__cause__ is None


def test_zero_attempts_still_tries_once(sleeps):
    fn = Script(*transient(5))
    with pytest.raises(NetworkError):
        RetryPolicy(attempts=0, backoff=0).call(fn, "x")
    assert fn.calls == 1


def test_non_transient_errors_are_not_retried(sleeps):
    fn = Script(NotFoundError("gone"))
    with pytest.raises(NotFoundError):
        RetryPolicy(attempts=5, backoff=0).call(fn, "x")
    assert fn.calls == 1
    assert sleeps == []


def test_other_exceptions_are_not_retried(sleeps):
    fn = Script(ValueError("bug"))
    with pytest.raises(ValueError):
        RetryPolicy(attempts=5, backoff=0).call(fn, "x")
    assert fn.calls == 1


def test_progress_every_attempt_never_exhausts(sleeps):
    # 20 failures, each one moving the counter: the budget of 2 is never spent.
    fn = Script(*transient(20), progress_on=range(1, 100))
    assert RetryPolicy(attempts=2, backoff=0).call(fn, "x", progress=fn.progress) == "ok"
    assert fn.calls == 21


def test_progress_resets_the_budget(sleeps):
    # attempts=3; attempts 1-2 stall, 3 progresses, then stalls until the budget is spent.
    fn = Script(*transient(50), progress_on={3})
    with pytest.raises(NetworkError):
        RetryPolicy(attempts=3, backoff=0).call(fn, "x", progress=fn.progress)
    # Without progress at attempt 3 it would stop at 3 calls.
    assert fn.calls > 3


def test_progressing_attempt_does_not_count(sleeps):
    # attempts=3: attempt 1 progresses (free), then 3 stalled attempts -> 4 calls.
    fn = Script(*transient(50), progress_on={1})
    with pytest.raises(NetworkError):
        RetryPolicy(attempts=3, backoff=0).call(fn, "x", progress=fn.progress)
    assert fn.calls == 4


def test_attempts_one_with_progress_keeps_going(sleeps):
    fn = Script(*transient(3), progress_on={1, 2, 3})
    assert RetryPolicy(attempts=1, backoff=0).call(fn, "x", progress=fn.progress) == "ok"
    assert fn.calls == 4


# -- waits -----------------------------------------------------------------------------


def test_retry_after_wins_over_backoff(sleeps):
    fn = Script(TransientError("busy", retry_after=2.0), TransientError("busy", retry_after=0.0))
    RetryPolicy(attempts=5, backoff=50, max_backoff=60).call(fn, "x")
    assert sleeps == [2.0, 0.0]


def test_retry_after_is_capped(sleeps):
    fn = Script(TransientError("busy", retry_after=3600.0))
    RetryPolicy(attempts=5, backoff=0, max_retry_after=7.5).call(fn, "x")
    assert sleeps == [7.5]


@pytest.fixture
def full_jitter(monkeypatch):
    """Make every random draw its maximum, so waits are deterministic."""
    monkeypatch.setattr(random, "random", lambda: 1.0)
    monkeypatch.setattr(random, "uniform", lambda a, b: b)


@pytest.fixture
def no_jitter(monkeypatch):
    monkeypatch.setattr(random, "random", lambda: 0.0)
    monkeypatch.setattr(random, "uniform", lambda a, b: a)


def test_backoff_doubles(sleeps, no_jitter):
    fn = Script(*transient(4))
    RetryPolicy(attempts=6, backoff=0.5, max_backoff=60).call(fn, "x")
    assert sleeps == [0.5, 1.0, 2.0, 4.0]


def test_backoff_jitter_is_at_most_one_backoff(sleeps):
    fn = Script(*transient(3))
    RetryPolicy(attempts=5, backoff=1.0, max_backoff=60).call(fn, "x")
    assert len(sleeps) == 3
    for wait, base in zip(sleeps, (1.0, 2.0, 4.0)):
        assert base <= wait <= base + 1.0


def test_backoff_capped_without_jitter(sleeps, no_jitter):
    fn = Script(*transient(4))
    RetryPolicy(attempts=6, backoff=1.0, max_backoff=3).call(fn, "x")
    assert sleeps == [1.0, 2.0, 3.0, 3.0]


def test_max_backoff_is_a_ceiling(sleeps, full_jitter):
    fn = Script(*transient(4))
    RetryPolicy(attempts=6, backoff=1.0, max_backoff=3).call(fn, "x")
    assert max(sleeps) <= 3


def test_zero_backoff_means_no_wait(sleeps):
    fn = Script(*transient(3))
    RetryPolicy(attempts=5, backoff=0).call(fn, "x")
    assert sleeps == [0, 0, 0]


def test_retry_is_logged(sleeps, caplog):
    fn = Script(TransientError("info/json: HTTP 503", retry_after=4.0))
    with caplog.at_level(logging.WARNING, logger="magedl"):
        RetryPolicy(attempts=3, backoff=0).call(fn, "info/json")
    msgs = [r.getMessage() for r in caplog.records if r.name.startswith("magedl")]
    assert msgs == ["info/json: HTTP 503; retrying in 4.0s"]


def test_policy_defaults():
    p = RetryPolicy()
    assert (p.attempts, p.backoff, p.max_backoff, p.max_retry_after) == (5, 1.0, 60.0, 300.0)
    with pytest.raises(Exception):
        p.attempts = 2  # frozen
