"""An adaptive client-side rate limiter shared by every thread that talks to one API.

Owns: pacing requests so a run goes close to the server's (undocumented) rate limit
without provoking many 429s. It is a token bucket whose refill rate adapts (AIMD with a
CUBIC-like probe):

* Slow start: it begins at `initial_rps` with a bucket of `burst_seconds` of traffic (so
  a handful of concurrent reads leave at once), and until the first 429 the rate doubles
  every `slow_start_seconds` in which the limiter was the bottleneck (threads had to
  wait), up to the ceiling.
* Multiplicative decrease: on a 429 the limiter remembers the limit it ran into (`w_max`):
  the answers per second actually accepted over the last second of unpaused traffic,
  bounded by the current rate (the current rate itself when there is too little traffic
  to measure). The rate drops to half of that, at most once per `decrease_window`, so a
  burst of 429s from requests already in flight counts once. A `Retry-After` pauses
  every thread until then, and the bucket restarts with a single permit. Without one,
  each further 429 inside the window skips 1, 2, 4... slots, so a server whose window
  is still full is not hammered at the new rate until it reopens.
* Recovery and additive increase: after a cut the rate climbs back quickly to just under
  `w_max` (exponential approach, time constant `recovery_seconds`), since the cut only had
  to drain the server's window. Above that it probes additively, flat right after the cut
  and steeper with time, up to `increase_rps` per second; each 429 that finds the same
  limit again makes the probe gentler. So at a steady server limit a run spends nearly
  all its time just under it and sees a 429 every few tens of seconds.
* The rate only grows while the limiter is the bottleneck, so an idle or latency-bound
  run does not inflate it. The ceiling is the user's `--max-rps` when given, else a
  generous default.

Must not touch: HTTP, retries, plans or state. Clock and sleep are injected so the
behaviour can be tested without waiting.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Cancelled", "LimiterStats", "RateLimiter", "DEFAULT_CEILING_RPS"]

DEFAULT_CEILING_RPS = 100.0

# After a cut the rate returns to this fraction of the last limited rate...
_PLATEAU = 0.95
# ...and the probe above it adds w_max * _PROBE * t**2 after t seconds (+5% after ~15 s).
_PROBE = 2.2e-4
# Each 429 that finds the limit where the last one did (within _SAME_LIMIT) halves the
# probe, up to _MAX_CONFIDENCE times: a steady limit is probed ever more rarely.
_SAME_LIMIT = 0.1
_MAX_CONFIDENCE = 3
# A 429 never puts w_max below this fraction of the rate it happened at.
_MIN_ESTIMATE = 0.5
# The accepted rate is measured over this much unpaused time (a shorter span would be
# skewed by the server's own burst allowance), from at least this many requests.
_MEASURE_SECONDS = 1.0
_MIN_SAMPLES = 3
_MIN_SPAN = 0.5
_HISTORY = 1024
# Tolerance for float rounding in token counts (a wait of 1e-17 s would never end).
_EPSILON = 1e-9

# Called before the limiter sleeps: (seconds, reason) with reason "paused" (Retry-After)
# or "throttled" (waiting for a token).
WaitCallback = Callable[[float, str], None]


class Cancelled(Exception):
    """`acquire` gave up without a permit: its `cancel` event was set (Ctrl-C)."""


@dataclass(frozen=True, slots=True)
class LimiterStats:
    """A snapshot of the limiter's counters."""

    rate: float  # current allowed requests per second
    ceiling: float  # the most it will ever allow
    acquired: int  # permits handed out
    waits: int  # acquires that had to wait
    waited_seconds: float  # total time threads spent waiting
    rate_limited: int  # 429s reported
    decreases: int  # times the rate was cut
    pauses: int  # times a Retry-After paused the limiter
    paused_for: float  # seconds left of the current pause (0 if none)


class RateLimiter:
    """Thread-safe adaptive token bucket (see the module docstring).

    Args:
        initial_rps: starting rate in requests per second.
        max_rps: ceiling set by the user; `DEFAULT_CEILING_RPS` when None.
        min_rps: floor the rate never falls below.
        burst_seconds: bucket size as seconds of traffic at the current rate (at least 1
            token); a small bucket keeps bursts from tripping a per-second server window.
        slow_start_seconds: before the first 429, the rate doubles every this many
            seconds while the limiter holds requests back.
        increase_rps: additive increase, in requests per second per second of clean traffic.
        decrease_factor: multiplicative decrease applied on a 429.
        decrease_window: seconds during which further 429s do not cut the rate again.
        recovery_seconds: time constant of the climb back toward the last limited rate.
        clock: monotonic clock in seconds.
        sleep: blocks the calling thread for the given seconds.
    """

    def __init__(
        self,
        *,
        initial_rps: float = 20.0,
        max_rps: float | None = None,
        min_rps: float = 0.5,
        burst_seconds: float = 0.5,
        slow_start_seconds: float = 0.1,
        increase_rps: float = 0.5,
        decrease_factor: float = 0.5,
        decrease_window: float = 1.0,
        recovery_seconds: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_rps is not None and max_rps <= 0:
            raise ValueError("max_rps must be positive")
        if initial_rps <= 0 or min_rps <= 0:
            raise ValueError("rates must be positive")
        if not 0 < decrease_factor < 1:
            raise ValueError("decrease_factor must be between 0 and 1")
        if slow_start_seconds <= 0:
            raise ValueError("slow_start_seconds must be positive")
        self._ceiling = float(max_rps) if max_rps is not None else DEFAULT_CEILING_RPS
        self._floor = min(float(min_rps), self._ceiling)
        self._rate = min(max(float(initial_rps), self._floor), self._ceiling)
        self._burst_seconds = burst_seconds
        self._doubling = slow_start_seconds
        self._increase = increase_rps
        self._factor = decrease_factor
        self._window = decrease_window
        self._tau = recovery_seconds
        self._clock = clock
        self._sleep = sleep

        self._lock = threading.Lock()
        now = clock()
        self._tokens = self._capacity()
        self._refilled_at = now
        self._paused_until = -math.inf
        self._last_decrease = -math.inf
        self._last_growth = now
        self._waited_at = -math.inf  # last time a thread had to wait for a token
        self._slow_start = True
        self._w_max: float | None = None
        self._confidence = 0  # consecutive 429s that found the same limit
        self._refusals = 0  # 429s without Retry-After since the last cut
        self._ok_times: deque[float] = deque(maxlen=_HISTORY)  # when answers arrived
        self._sent_times: deque[float] = deque(maxlen=_HISTORY)  # when permits went out
        self._pause_log: deque[tuple[float, float]] = deque(maxlen=8)  # (start, end)

        self._acquired = 0
        self._waits = 0
        self._waited_seconds = 0.0
        self._rate_limited = 0
        self._decreases = 0
        self._pauses = 0

    @property
    def rate(self) -> float:
        with self._lock:
            return self._rate

    @property
    def stats(self) -> LimiterStats:
        with self._lock:
            return LimiterStats(
                rate=self._rate,
                ceiling=self._ceiling,
                acquired=self._acquired,
                waits=self._waits,
                waited_seconds=self._waited_seconds,
                rate_limited=self._rate_limited,
                decreases=self._decreases,
                pauses=self._pauses,
                paused_for=max(0.0, self._paused_until - self._clock()),
            )

    def acquire(
        self, on_wait: WaitCallback | None = None, cancel: threading.Event | None = None
    ) -> float:
        """Block until a request may be sent; return the seconds spent waiting.

        `on_wait(seconds, reason)` is called before each sleep, from this thread. Once
        `cancel` is set, no permit is handed out: a wait in progress ends at once and
        `Cancelled` is raised (the request is not to be sent at all).
        """
        start = self._clock()
        waited = False
        while True:
            if cancel is not None and cancel.is_set():
                raise Cancelled
            with self._lock:
                now = self._clock()
                self._refill(now)
                if now >= self._paused_until and self._tokens >= 1.0 - _EPSILON:
                    self._tokens -= 1.0
                    self._acquired += 1
                    self._sent_times.append(now)
                    spent = max(0.0, now - start)
                    if waited:
                        self._waits += 1
                        self._waited_seconds += spent
                    return spent
                if now < self._paused_until:
                    delay, reason = self._paused_until - now, "paused"
                else:
                    delay, reason = (1.0 - self._tokens) / self._rate, "throttled"
                    self._waited_at = now
            waited = True
            if on_wait is not None:
                on_wait(delay, reason)
            if cancel is not None and self._sleep is time.sleep:
                cancel.wait(delay)  # the same wait, but a cancel cuts it short
            else:
                self._sleep(delay)  # an injected sleep (tests): cancel is looked at after

    def record_success(self) -> None:
        """Report an answer that was not rate limited; lets the rate grow."""
        with self._lock:
            now = self._clock()
            # Growth is paced by elapsed time, not by the number of answers, and a long
            # quiet gap counts as at most one second.
            dt = min(max(0.0, now - self._last_growth), 1.0)
            self._last_growth = now
            self._ok_times.append(now)
            if now - self._waited_at > 1.0:
                return  # the limiter is not what holds the run back: no evidence to grow on
            self._refill(now)
            if self._slow_start:
                rate = self._rate * 2.0 ** (dt / self._doubling)
            else:
                assert self._w_max is not None
                plateau = _PLATEAU * self._w_max
                rate = self._rate
                if rate < plateau:
                    # Back toward the last limited rate fast: the cut only had to drain
                    # the server's window.
                    rate = plateau - (plateau - rate) * math.exp(-dt / self._tau)
                # Additive probe: flat right after a cut, steeper with time, capped.
                since = now - self._last_decrease
                probe = _PROBE / 2**self._confidence
                rate += min(self._increase, self._w_max * 2.0 * probe * since) * dt
            self._rate = min(rate, self._ceiling)

    def record_rate_limited(self, retry_after: float | None = None) -> None:
        """Report a 429; `retry_after` (seconds) pauses every thread until then."""
        with self._lock:
            now = self._clock()
            self._rate_limited += 1
            if retry_after is not None and retry_after > 0 and math.isfinite(retry_after):
                until = now + retry_after
                if until > self._paused_until:
                    self._refill(now)
                    self._pause_log.append((max(now, self._paused_until), until))
                    self._paused_until = until
                    # The pause ends with one permit (for the request that was told to
                    # wait), not with a burst.
                    self._tokens = 1.0
                    self._pauses += 1
            if now - self._last_decrease < self._window:
                if retry_after is None and now >= self._paused_until:
                    # Still refused after the cut, with no hint how long: back off
                    # exponentially (skip 1, 2, 4... slots) until the window reopens.
                    self._refill(now)
                    self._refusals += 1
                    self._tokens = min(self._tokens, 0.0) - min(
                        2.0 ** (self._refusals - 1), self._rate
                    )
                return
            self._refill(now)
            self._refusals = 0
            self._last_decrease = now
            self._decreases += 1
            self._slow_start = False
            got = self._accepted_rate(now)
            w = self._rate if got is None else min(self._rate, max(got, self._rate * _MIN_ESTIMATE))
            if self._w_max is not None and abs(w - self._w_max) <= _SAME_LIMIT * self._w_max:
                self._confidence = min(self._confidence + 1, _MAX_CONFIDENCE)
            else:
                self._confidence = 0
            self._w_max = w
            self._rate = max(self._floor, w * self._factor)
            if now >= self._paused_until:
                self._tokens = min(self._tokens, 0.0)

    def _accepted_rate(self, now: float) -> float | None:
        """Answers per second over the most recent `_MEASURE_SECONDS` of unpaused time.

        When traffic was above the server's limit this is about the limit itself. If
        traffic began more recently, the shorter span is used down to `_MIN_SPAN`; below
        that, or with too few requests, None: too little to judge by.
        """
        start = self._active_start(now, _MEASURE_SECONDS)
        sent = self._sent_times
        if not sent:
            return None
        span = _MEASURE_SECONDS
        if sent[0] > start and len(sent) < _HISTORY:  # traffic began within the span
            start = sent[0]
            span = self._active_time(start, now)
            if span < _MIN_SPAN:
                return None
        if sum(1 for t in sent if t >= start) < _MIN_SAMPLES:
            return None
        return sum(1 for t in self._ok_times if t >= start) / span

    def _active_time(self, start: float, end: float) -> float:
        """Seconds between `start` and `end` outside Retry-After pauses."""
        active = end - start
        for p_start, p_end in self._pause_log:
            active -= max(0.0, min(p_end, end) - max(p_start, start))
        return active

    def _active_start(self, now: float, span: float) -> float:
        """The time from which `span` seconds outside Retry-After pauses lead up to `now`."""
        t, need = now, span
        for p_start, p_end in reversed(self._pause_log):
            if p_end >= t:  # `t` lies inside this pause: skip it whole
                t = min(t, p_start)
                continue
            if t - p_end >= need:
                break
            need -= t - p_end
            t = p_start
        return t - need

    def _capacity(self) -> float:
        return max(1.0, self._rate * self._burst_seconds)

    def _refill(self, now: float) -> None:
        # No tokens accumulate during a pause, so it does not end in a burst.
        start = max(self._refilled_at, self._paused_until)
        if now > start:
            self._tokens = min(self._capacity(), self._tokens + (now - start) * self._rate)
        self._refilled_at = max(self._refilled_at, now)
