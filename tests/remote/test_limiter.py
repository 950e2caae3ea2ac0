"""RateLimiter: pacing, AIMD adaptation and Retry-After pauses, on a fake clock."""

from __future__ import annotations

import threading
import time

import pytest

from provisioner.remote.limiter import DEFAULT_CEILING_RPS, RateLimiter


class FakeClock:
    """Time that moves only when someone sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make(clock: FakeClock, **kw: float) -> RateLimiter:
    return RateLimiter(clock=clock, sleep=clock.sleep, **kw)


def saturate(limiter: RateLimiter, clock: FakeClock, seconds: float) -> int:
    """Send as fast as the limiter allows for `seconds`, every answer a success."""
    end = clock.now + seconds
    sent = 0
    while clock.now < end:
        limiter.acquire()
        limiter.record_success()
        sent += 1
    return sent


def test_paces_requests_at_the_rate_after_a_small_burst() -> None:
    clock = FakeClock()
    limiter = make(clock, initial_rps=10.0, burst_seconds=0.2)  # bucket of 2
    for _ in range(12):
        limiter.acquire()
    assert clock.now == pytest.approx(1.0)  # 2 at once, then 10 at 10 per second
    stats = limiter.stats
    assert stats.acquired == 12
    assert stats.waits == 10
    assert stats.waited_seconds == pytest.approx(1.0)  # one after another: 0.1 s each


def test_acquire_reports_each_wait_before_sleeping() -> None:
    clock = FakeClock()
    limiter = make(clock, initial_rps=4.0, burst_seconds=0.0)
    seen: list[tuple[float, str]] = []
    limiter.acquire()
    waited = limiter.acquire(on_wait=lambda d, why: seen.append((d, why)))
    assert [why for _, why in seen] == ["throttled"]
    assert seen[0][0] == pytest.approx(0.25)
    assert waited == pytest.approx(0.25)


def test_429_halves_the_rate_once_per_window() -> None:
    clock = FakeClock()
    limiter = make(clock, initial_rps=10.0, decrease_window=1.0)
    for _ in range(5):  # a burst of 429s from requests already in flight
        limiter.record_rate_limited()
        clock.advance(0.1)
    assert limiter.rate == pytest.approx(5.0)
    assert limiter.stats.decreases == 1
    assert limiter.stats.rate_limited == 5
    clock.advance(1.0)
    limiter.record_rate_limited()
    assert limiter.rate == pytest.approx(2.5)
    assert limiter.stats.decreases == 2


def test_rate_never_falls_below_the_floor() -> None:
    clock = FakeClock()
    limiter = make(clock, initial_rps=1.0, min_rps=0.5)
    for _ in range(10):
        limiter.record_rate_limited()
        clock.advance(2.0)
    assert limiter.rate == 0.5


@pytest.mark.parametrize(("accepts", "expected"), [(30, 15.0), (40, 20.0), (5, 10.0)])
def test_cut_starts_from_the_rate_the_server_actually_accepted(
    accepts: int, expected: float
) -> None:
    # Sending at 40/s while the server takes only `accepts` per second: the remembered
    # limit is what was accepted over the last second (never below half the rate), so
    # the next plateau is not set by an inflated rate.
    clock = FakeClock()
    limiter = make(clock, initial_rps=40.0, max_rps=40.0, burst_seconds=0.0)
    accepted = 0
    while clock.now < 2.0:
        limiter.acquire()
        if accepted < accepts * clock.now:
            limiter.record_success()
            accepted += 1
    limiter.record_rate_limited()
    assert limiter.rate == pytest.approx(expected, rel=0.05)


def test_slow_start_doubles_while_the_limiter_is_the_bottleneck() -> None:
    clock = FakeClock()
    limiter = make(clock, initial_rps=10.0, slow_start_seconds=0.5)
    saturate(limiter, clock, 0.5)
    assert limiter.rate == pytest.approx(20.0, rel=0.15)
    saturate(limiter, clock, 5.0)
    assert limiter.rate == DEFAULT_CEILING_RPS


def test_refusals_after_a_cut_without_retry_after_back_off_exponentially() -> None:
    # The server keeps refusing after the cut and says nothing about when to come back:
    # each further 429 in the decrease window skips twice as many slots as the last.
    clock = FakeClock()
    limiter = make(clock, initial_rps=10.0, burst_seconds=0.0, decrease_window=10.0)
    limiter.acquire()
    limiter.record_rate_limited()  # the cut: 10 -> 5 per second
    assert limiter.rate == pytest.approx(5.0)
    gaps = []
    for _ in range(3):
        before = clock.now
        limiter.acquire()
        gaps.append(clock.now - before)
        limiter.record_rate_limited()
    assert limiter.stats.decreases == 1
    assert gaps == pytest.approx([0.2, 0.4, 0.6])
    before = clock.now
    limiter.acquire()
    assert clock.now - before == pytest.approx(1.0)  # 1 slot + 4 skipped


def test_no_growth_when_the_limiter_is_not_the_bottleneck() -> None:
    clock = FakeClock()
    limiter = make(clock, initial_rps=10.0)
    for _ in range(100):  # one request every half second: never waits
        limiter.acquire()
        limiter.record_success()
        clock.advance(0.5)
    assert limiter.rate == 10.0
    assert limiter.stats.waits == 0


def test_max_rps_caps_everything() -> None:
    clock = FakeClock()
    limiter = make(clock, initial_rps=100.0, max_rps=15.0)
    assert limiter.rate == 15.0
    saturate(limiter, clock, 10.0)
    assert limiter.rate == 15.0
    assert limiter.stats.ceiling == 15.0
    start, sent = clock.now, saturate(limiter, clock, 10.0)
    assert sent / (clock.now - start) == pytest.approx(15.0, rel=0.05)


def test_recovers_quickly_to_just_under_the_limit_then_probes_slowly() -> None:
    clock = FakeClock()
    limiter = make(clock, initial_rps=20.0, slow_start_seconds=0.5)
    saturate(limiter, clock, 2.0)  # slow start: the rate has grown past 20
    limiter.record_rate_limited()
    w_max = limiter.rate * 2
    saturate(limiter, clock, 3.0)
    # Back to about 95 % of the limited rate within a few seconds...
    assert 0.9 * w_max <= limiter.rate <= 0.97 * w_max
    saturate(limiter, clock, 5.0)
    # ...staying just under it for a while (the probe is flat right after a cut)...
    assert limiter.rate < w_max
    saturate(limiter, clock, 30.0)
    # ...before probing above it, never faster than increase_rps per second.
    assert w_max < limiter.rate <= 0.95 * w_max + 0.5 * 40


def test_additive_increase_is_bounded_by_increase_rps() -> None:
    clock = FakeClock()
    limiter = make(clock, initial_rps=10.0, increase_rps=0.5)
    limiter.record_rate_limited()  # no traffic yet: w_max is the rate itself
    saturate(limiter, clock, 10.0)
    before = limiter.rate
    saturate(limiter, clock, 100.0)  # by now the probe runs at full slope
    assert limiter.rate - before <= 0.5 * 100 + 0.1


def test_retry_after_pauses_every_acquire_until_then() -> None:
    clock = FakeClock()
    limiter = make(clock, initial_rps=100.0)
    limiter.record_rate_limited(retry_after=3.0)
    assert limiter.stats.pauses == 1
    assert limiter.stats.paused_for == 3.0
    seen: list[tuple[float, str]] = []
    limiter.acquire(on_wait=lambda d, why: seen.append((d, why)))
    assert clock.now >= 3.0
    assert seen[0] == (3.0, "paused")
    assert limiter.stats.paused_for == 0.0


def test_a_shorter_retry_after_does_not_shorten_a_pause() -> None:
    clock = FakeClock()
    limiter = make(clock)
    limiter.record_rate_limited(retry_after=5.0)
    limiter.record_rate_limited(retry_after=1.0)
    assert limiter.stats.paused_for == 5.0
    assert limiter.stats.pauses == 1
    limiter.record_rate_limited(retry_after=8.0)
    assert limiter.stats.paused_for == 8.0


def test_a_pause_ends_with_one_permit_not_a_burst() -> None:
    clock = FakeClock()
    limiter = make(clock, initial_rps=10.0, burst_seconds=1.0)  # bucket of 10
    limiter.record_rate_limited(retry_after=10.0)  # rate 5
    limiter.acquire()
    clock.sleeps.clear()
    limiter.acquire()
    assert sum(clock.sleeps) == pytest.approx(1 / limiter.rate)


def test_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        RateLimiter(max_rps=0)
    with pytest.raises(ValueError):
        RateLimiter(initial_rps=-1)
    with pytest.raises(ValueError):
        RateLimiter(decrease_factor=1.0)


def test_many_threads_share_one_budget() -> None:
    limiter = RateLimiter(initial_rps=400.0, max_rps=400.0, burst_seconds=0.0)
    stamps: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(25):
            limiter.acquire()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    assert len(stamps) == 200
    assert limiter.stats.acquired == 200
    assert elapsed >= 199 / 400 * 0.95  # no thread got around the shared bucket
    stamps.sort()
    # Nowhere did the threads together go much faster than the rate.
    for i in range(len(stamps) - 40):
        assert stamps[i + 40] - stamps[i] >= 40 / 400 * 0.8


def test_a_pause_holds_back_all_threads() -> None:
    limiter = RateLimiter(initial_rps=1000.0)
    limiter.record_rate_limited(retry_after=0.3)
    done: list[float] = []
    start = time.monotonic()

    def worker() -> None:
        limiter.acquire()
        done.append(time.monotonic() - start)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(done) == 4
    assert min(done) >= 0.29


def run_against_server(
    limiter: RateLimiter, clock: FakeClock, limit: int, seconds: float, retry_after: float | None
) -> tuple[int, int]:
    """One thread sending as fast as allowed to a server taking `limit` per fixed
    1-second window (429 beyond). Returns (accepted, rejected)."""
    accepted = rejected = 0
    window, in_window = -1, 0
    while clock.now < seconds:
        limiter.acquire()
        if int(clock.now) != window:
            window, in_window = int(clock.now), 0
        if in_window < limit:
            in_window += 1
            accepted += 1
            limiter.record_success()
        else:
            rejected += 1
            limiter.record_rate_limited(retry_after)
    return accepted, rejected


@pytest.mark.parametrize("limit", [5, 20, 45])
@pytest.mark.parametrize("retry_after", [None, 1.0])
def test_sustains_close_to_a_steady_server_limit(limit: int, retry_after: float | None) -> None:
    clock = FakeClock()
    limiter = make(clock)
    accepted, rejected = run_against_server(limiter, clock, limit, 120.0, retry_after)
    assert accepted >= 0.9 * limit * 120
    # A few per minute at most (most in the first second: slow start doubles every
    # 0.1 s, so that a latency-bound run is not held back by the limiter for long).
    assert rejected <= 16


def test_probe_gets_gentler_when_the_limit_holds_still() -> None:
    clock = FakeClock()
    limiter = make(clock)
    run_against_server(limiter, clock, 20, 30.0, None)
    early = limiter.stats.decreases
    run_against_server(limiter, clock, 20, 150.0, None)
    later = limiter.stats.decreases - early
    # The first 30 s (slow start and finding the limit) see as many cuts as the next two
    # minutes.
    assert later <= early + 1
