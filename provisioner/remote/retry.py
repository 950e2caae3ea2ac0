"""The retry policy for calls to Vapi and Twilio, as data and pure functions.

Owns: how long to wait before attempt N+1 (exponential backoff with full jitter, capped;
`Retry-After` wins when the server sends it), parsing `Retry-After`, and the per-method
rules that decide whether a failure may be retried at all. Those rules are what keep a
create from being sent twice:

* GET, PATCH and DELETE are safe to repeat: they retry on 429/500/502/503/504, on any
  timeout and on connection errors.
* POST creates a resource and the API has no idempotency keys. It is retried only on 429
  (the server refused it before doing anything) or when the request provably never left
  this process (`ConnectError`, `ConnectTimeout`, `PoolTimeout`). Any other failure after
  sending (5xx, read timeout, dropped connection) is *ambiguous*: the caller must look for
  the resource before creating it again.
* Other 4xx answers are never retried.

Each request also has time budgets (`RetryPolicy.budget`, `connect_budget`), which the send
loop in `remote.http` keeps: a dead endpoint fails in seconds, not after every attempt.

Must not touch: the network, the clock or sleeping (the client does that), plans, state.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum

import httpx

__all__ = ["RetryPolicy", "Verdict", "parse_retry_after", "never_sent"]

RETRYABLE_STATUSES: frozenset[int] = frozenset({429, 500, 502, 503, 504})
_SAFE_METHODS: frozenset[str] = frozenset({"GET", "HEAD", "OPTIONS", "PATCH", "PUT", "DELETE"})
_SECONDS = re.compile(r"^\d+(?:\.\d+)?$")
# A `Retry-After` below this ("0", a date already past) is no real hint: retrying at once
# eight times would only burn the attempts, so the usual backoff applies instead.
MIN_RETRY_AFTER = 0.1


class Verdict(StrEnum):
    """What to do with a failed attempt."""

    RETRY = "retry"  # send it again after `RetryPolicy.delay` (if attempts are left)
    FAIL = "fail"  # give up and report the error as it is
    AMBIGUOUS = "ambiguous"  # a POST that may have created something: never resend blindly


def never_sent(exc: BaseException) -> bool:
    """True when `exc` proves the request never reached the server.

    A connection that could not be established (refused, DNS, TLS handshake, connect
    timeout) or a wait for a free pooled connection that timed out: no byte of the
    request went out.
    """
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def _transient(exc: BaseException) -> bool:
    # Timeouts, network errors (connect/read/write/close) and a peer that broke the
    # protocol (dropped connection) may go away on their own; our own bugs
    # (LocalProtocolError, UnsupportedProtocol, InvalidURL) and proxy errors will not.
    return isinstance(exc, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry a request.

    Args:
        max_attempts: total attempts per request, the first one included.
        base_delay: ceiling of the first backoff (seconds); doubles with each attempt.
        max_delay: cap on the computed backoff ceiling (seconds).
        max_retry_after: cap on a server-sent `Retry-After` (seconds); larger than
            `max_delay` because the server knows better than our guess.
        retry_statuses: statuses worth another attempt (subject to the method rules).
        budget: seconds one request may spend on failed attempts and the waits after
            them before it gives up (429 waits, ridden out, are not counted).
        connect_budget: the same for connections that could not be opened: a closed
            port or a wrong host fails fast.
    """

    max_attempts: int = 8
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 120.0
    retry_statuses: frozenset[int] = RETRYABLE_STATUSES
    budget: float = 30.0
    connect_budget: float = 3.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        delays = (self.base_delay, self.max_delay, self.max_retry_after)
        if any(d < 0 for d in (*delays, self.budget, self.connect_budget)):
            raise ValueError("delays must not be negative")

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based).

        With `retry_after` (the server's `Retry-After`, already in seconds) of at least
        `MIN_RETRY_AFTER` that value is used as is, capped at `max_retry_after`. Otherwise
        full jitter: a uniform draw from `[0, min(max_delay, base_delay * 2 ** (attempt -
        1))]`, which spreads out clients that failed together (never less than a smaller
        `retry_after`). Pure: the only randomness comes from `rng`.
        """
        if retry_after is not None and math.isfinite(retry_after):
            if retry_after >= MIN_RETRY_AFTER:
                return min(retry_after, self.max_retry_after)
            return max(retry_after, self._jitter(attempt, rng))
        return self._jitter(attempt, rng)

    def _jitter(self, attempt: int, rng: random.Random) -> float:
        # Clamp the exponent so a huge attempt number cannot overflow the float.
        exponent = min(max(attempt, 1) - 1, 64)
        ceiling = min(self.max_delay, self.base_delay * 2.0**exponent)
        return rng.uniform(0.0, ceiling)

    def can_retry(self, attempt: int) -> bool:
        """Whether another attempt may follow failed attempt number `attempt`."""
        return attempt < self.max_attempts

    def status_verdict(self, method: str, status: int) -> Verdict:
        """What to do with a non-2xx answer to `method`."""
        if status not in self.retry_statuses:
            return Verdict.FAIL
        if method.upper() in _SAFE_METHODS:
            return Verdict.RETRY
        # A create: a 429 was refused before any work; a 5xx may have been half done.
        return Verdict.RETRY if status == 429 else Verdict.AMBIGUOUS

    def error_verdict(self, method: str, exc: BaseException) -> Verdict:
        """What to do when `method` got no usable answer because of `exc`."""
        if never_sent(exc):
            return Verdict.RETRY
        if method.upper() in _SAFE_METHODS:
            return Verdict.RETRY if _transient(exc) else Verdict.FAIL
        # The request may have been sent (or partly sent) and processed.
        if isinstance(exc, httpx.TransportError | httpx.DecodingError | httpx.TooManyRedirects):
            if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
                return Verdict.FAIL  # refused locally before sending
            if isinstance(exc, httpx.ProxyError):
                return Verdict.FAIL  # the proxy refused to open a tunnel
            return Verdict.AMBIGUOUS
        return Verdict.FAIL


def parse_retry_after(value: str, now: datetime) -> float | None:
    """Seconds to wait from a `Retry-After` header, or None if it cannot be understood.

    Accepts delta-seconds (`"120"`, and leniently `"1.5"`) and an HTTP-date
    (`"Wed, 21 Oct 2015 07:28:00 GMT"`), measured from `now`. A date in the past gives 0.
    A naive `now` is taken as UTC.
    """
    text = value.strip()
    if not text:
        return None
    if _SECONDS.match(text):
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
