"""The shared bandwidth budget (``--limit-rate``)."""

import pytest

from magedl.transfer.ratelimit import RateLimiter, parse_rate


@pytest.mark.parametrize("text, rate", [("20M", 20 << 20), ("500k", 500 << 10), ("1G", 1 << 30),
                                        ("1.5M", int(1.5 * (1 << 20))), ("800", 800), ("20MB/s", 20 << 20)])
def test_parse_rate(text, rate):
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["", "fast", "0", "-1M", "20X"])
def test_parse_rate_refuses(text):
    with pytest.raises(ValueError):
        parse_rate(text)


def test_rate_limiter_books_every_byte_against_one_budget(monkeypatch):
    clock = [100.0]
    slept = []
    monkeypatch.setattr("magedl.transfer.ratelimit.time.monotonic", lambda: clock[0])

    def sleep(seconds):
        slept.append(seconds)
        clock[0] += seconds

    monkeypatch.setattr("magedl.transfer.ratelimit.time.sleep", sleep)
    limiter = RateLimiter(1000, burst=0)
    for _ in range(10):  # 10 x 500 bytes at 1000 B/s: 5 seconds in all
        limiter.take(500)
    assert sum(slept) == pytest.approx(5.0)
    clock[0] += 1000  # a long idle spell earns at most the burst capacity, not 1000 seconds' worth
    slept.clear()
    limiter.take(limiter.capacity + 1000)
    assert sum(slept) == pytest.approx(1.0)
