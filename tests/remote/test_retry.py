"""RetryPolicy: backoff arithmetic, Retry-After parsing and the per-method retry rules."""

from __future__ import annotations

import random
import statistics
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from provisioner.remote.retry import RetryPolicy, Verdict, never_sent, parse_retry_after

REQ = httpx.Request("GET", "https://api.test/assistant")


@pytest.mark.parametrize("attempt", range(1, 12))
def test_delay_stays_within_the_full_jitter_bounds(attempt: int) -> None:
    policy = RetryPolicy()
    rng = random.Random(attempt)
    ceiling = min(30.0, 0.5 * 2 ** (attempt - 1))
    samples = [policy.delay(attempt, None, rng) for _ in range(500)]
    assert all(0.0 <= s <= ceiling for s in samples)
    # Full jitter uses the whole range, not just the top of it.
    assert min(samples) < ceiling * 0.1
    assert max(samples) > ceiling * 0.9


def test_delay_is_capped_and_survives_huge_attempt_numbers() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=4.0)
    rng = random.Random(0)
    assert max(policy.delay(50, None, rng) for _ in range(200)) <= 4.0
    assert 0.0 <= policy.delay(10**9, None, rng) <= 4.0


def test_jitter_is_uniform_and_reproducible_with_a_seed() -> None:
    policy = RetryPolicy()
    samples = [policy.delay(3, None, random.Random(42)) for _ in range(3)]
    assert len(set(samples)) == 1  # same seed, same draw
    rng = random.Random(1234)
    draws = [policy.delay(3, None, rng) for _ in range(20_000)]  # uniform on [0, 2]
    assert statistics.fmean(draws) == pytest.approx(1.0, abs=0.03)
    below_half = sum(1 for d in draws if d < 1.0) / len(draws)
    assert below_half == pytest.approx(0.5, abs=0.02)
    quartiles = statistics.quantiles(draws, n=4)
    assert quartiles == pytest.approx([0.5, 1.0, 1.5], abs=0.05)


def test_retry_after_wins_and_has_its_own_larger_cap() -> None:
    policy = RetryPolicy(max_delay=30.0, max_retry_after=120.0)
    rng = random.Random(0)
    assert policy.delay(1, 7.0, rng) == 7.0
    assert policy.delay(1, 45.0, rng) == 45.0  # above max_delay, below its own cap
    assert policy.delay(1, 0.1, rng) == 0.1
    assert policy.delay(1, 3600.0, rng) == 120.0


@pytest.mark.parametrize("retry_after", [0.0, 0.05, -5.0])
def test_a_retry_after_of_about_zero_gets_the_usual_backoff(retry_after: float) -> None:
    # `Retry-After: 0`, or an HTTP date already past (parsed as 0): not 8 retries at once.
    policy = RetryPolicy()
    for attempt in range(1, 9):
        ceiling = min(30.0, 0.5 * 2 ** (attempt - 1))
        draws = [policy.delay(attempt, retry_after, random.Random(n)) for n in range(200)]
        backoff = [policy.delay(attempt, None, random.Random(n)) for n in range(200)]
        assert draws == [max(retry_after, b) for b in backoff]  # never below either
        assert statistics.mean(draws) > ceiling / 4  # spread over the range, not ~0


def test_delay_is_pure() -> None:
    policy = RetryPolicy()
    a, b = random.Random(9), random.Random(9)
    assert [policy.delay(n, None, a) for n in range(1, 9)] == [
        policy.delay(n, None, b) for n in range(1, 9)
    ]


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(base_delay=-1)


def test_can_retry_counts_the_first_attempt() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert [policy.can_retry(n) for n in (1, 2, 3)] == [True, True, False]


NOW = datetime(2015, 10, 21, 7, 27, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 3 ", 3.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 60.0),
        ("Wed, 21 Oct 2015 07:26:00 GMT", 0.0),  # in the past: go now
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1e9", None),
        ("Wed, 32 Oct 2015 07:28:00 GMT", None),
    ],
)
def test_parse_retry_after(value: str, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_parse_retry_after_date_against_other_timezones() -> None:
    plus_two = NOW.astimezone(timezone(timedelta(hours=2)))
    assert parse_retry_after("Wed, 21 Oct 2015 07:27:30 GMT", plus_two) == 30.0
    naive = NOW.replace(tzinfo=None)  # taken as UTC
    assert parse_retry_after("Wed, 21 Oct 2015 07:27:30 GMT", naive) == 30.0


@pytest.mark.parametrize(
    ("method", "status", "verdict"),
    [
        ("GET", 429, Verdict.RETRY),
        ("GET", 500, Verdict.RETRY),
        ("GET", 502, Verdict.RETRY),
        ("GET", 503, Verdict.RETRY),
        ("GET", 504, Verdict.RETRY),
        ("PATCH", 503, Verdict.RETRY),
        ("DELETE", 500, Verdict.RETRY),
        ("DELETE", 429, Verdict.RETRY),
        ("POST", 429, Verdict.RETRY),
        ("POST", 500, Verdict.AMBIGUOUS),
        ("POST", 502, Verdict.AMBIGUOUS),
        ("POST", 503, Verdict.AMBIGUOUS),
        ("POST", 504, Verdict.AMBIGUOUS),
        ("GET", 400, Verdict.FAIL),
        ("GET", 401, Verdict.FAIL),
        ("GET", 404, Verdict.FAIL),
        ("PATCH", 409, Verdict.FAIL),
        ("POST", 400, Verdict.FAIL),
        ("POST", 409, Verdict.FAIL),
        ("GET", 501, Verdict.FAIL),
    ],
)
def test_status_verdicts(method: str, status: int, verdict: Verdict) -> None:
    assert RetryPolicy().status_verdict(method, status) is verdict


def _exc(cls: type[Exception]) -> Exception:
    return cls("boom", request=REQ)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("method", "error", "verdict"),
    [
        # Provably never sent: retry even a create.
        ("POST", httpx.ConnectError, Verdict.RETRY),
        ("POST", httpx.ConnectTimeout, Verdict.RETRY),
        ("POST", httpx.PoolTimeout, Verdict.RETRY),
        # A create that may have reached the server.
        ("POST", httpx.ReadTimeout, Verdict.AMBIGUOUS),
        ("POST", httpx.WriteTimeout, Verdict.AMBIGUOUS),
        ("POST", httpx.ReadError, Verdict.AMBIGUOUS),
        ("POST", httpx.WriteError, Verdict.AMBIGUOUS),
        ("POST", httpx.RemoteProtocolError, Verdict.AMBIGUOUS),
        # Refused locally before anything went out.
        ("POST", httpx.LocalProtocolError, Verdict.FAIL),
        ("POST", httpx.UnsupportedProtocol, Verdict.FAIL),
        # Safe methods retry every transient failure.
        ("GET", httpx.ReadTimeout, Verdict.RETRY),
        ("GET", httpx.ConnectError, Verdict.RETRY),
        ("GET", httpx.RemoteProtocolError, Verdict.RETRY),
        ("PATCH", httpx.ReadError, Verdict.RETRY),
        ("DELETE", httpx.WriteTimeout, Verdict.RETRY),
        ("GET", httpx.LocalProtocolError, Verdict.FAIL),
        ("GET", httpx.UnsupportedProtocol, Verdict.FAIL),
    ],
)
def test_error_verdicts(method: str, error: type[Exception], verdict: Verdict) -> None:
    assert RetryPolicy().error_verdict(method, _exc(error)) is verdict


def test_never_sent_only_for_connection_setup_failures() -> None:
    assert never_sent(_exc(httpx.ConnectError))
    assert never_sent(_exc(httpx.ConnectTimeout))
    assert not never_sent(_exc(httpx.ReadTimeout))
    assert not never_sent(_exc(httpx.RemoteProtocolError))
