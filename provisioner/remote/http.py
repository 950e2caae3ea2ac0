"""The one HTTP layer under the Vapi and Twilio clients.

Owns: the send-with-retry loop (rules in `remote.retry`), the hook to the shared adaptive
`RateLimiter`, the interrupt path (Ctrl-C through `HttpSession.interruptible`), request
counters, the total time budget of a request, refusing credentials that cannot be sent
as a header, and every message about an answer that is not the API's: transport
failures, redirects and HTML pages (naming the URL and the setting to check). Header
values never appear in a message. No `httpx` exception leaves `HttpSession.send`.

Must not touch: plans, state, the manifest, the environment, the terminal. What an
answer means for a given API (errors' bodies, shapes) is the wrapping client's job.
"""

from __future__ import annotations

import base64
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from enum import Enum, auto
from types import TracebackType
from typing import Literal, Self

import httpx

from provisioner import __version__
from provisioner.errors import (
    AmbiguousCreateError,
    RemoteError,
    RemoteTransportError,
    RequestInterrupted,
)
from provisioner.remote.answers import (
    HIDDEN,
    Answer,
    body_of,
    is_html,
    phrase,
    retry_after,
    transport_message,
    without_query,
)
from provisioner.remote.limiter import Cancelled, RateLimiter
from provisioner.remote.retry import RetryPolicy, Verdict, never_sent

__all__ = [
    "USER_AGENT",
    "ClientStats",
    "Count",
    "HttpSession",
    "RequestEvent",
    "SessionClient",
]

USER_AGENT = f"provisioner/{__version__}"
# Limiter waits shorter than this are routine pacing, not worth an event.
_WAIT_EVENT_MIN = 1.0

EventKind = Literal["retry", "wait"]


@dataclass(frozen=True, slots=True)
class RequestEvent:
    """Something worth telling the user while a request is held up.

    kind: "retry" before sleeping between attempts, "wait" before the shared limiter
        holds a request back for a while (e.g. a `Retry-After` pause).
    status: the HTTP status that caused a retry, None for transport failures and waits.
    reason: short words: "rate limited", "server error 503", "timeout", ...
    delay: seconds about to be waited.
    attempt: number of the attempt the wait precedes (2 for the first retry).
    """

    kind: EventKind
    method: str
    path: str
    status: int | None
    reason: str
    delay: float
    attempt: int

    def describe(self) -> str:
        """One line for people: "rate limited, retrying in 2 s (POST /assistant)",
        "rate limited, waiting 30 s (GET /assistant)"."""
        wait = f"{self.delay:.0f}" if self.delay >= 10 else f"{self.delay:.2g}"
        verb = "retrying in" if self.kind == "retry" else "waiting"
        return f"{self.reason}, {verb} {wait} s ({self.method} {self.path})"


class Count(Enum):
    """The counters behind `ClientStats` (requests by method are counted apart)."""

    RATE_LIMITED = auto()
    RETRIES = auto()
    AMBIGUOUS = auto()
    SERVER_ERRORS = auto()
    TRANSPORT_ERRORS = auto()


@dataclass(frozen=True, slots=True)
class ClientStats:
    """A snapshot of the client's counters."""

    requests: int  # HTTP requests sent (every attempt counts)
    by_method: Mapping[str, int] = field(default_factory=dict)
    rate_limited: int = 0  # 429 answers seen
    retries: int = 0  # attempts that were repeats
    ambiguous_creates: int = 0  # POSTs whose outcome is unknown
    server_errors: int = 0  # 5xx answers seen
    transport_errors: int = 0  # attempts that got no usable answer


class _VirtualClock:
    """A clock that moves when an injected fake `sleep` is called.

    Used for the default limiter when a test injects `sleep` but no limiter, so a
    `Retry-After` pause ends when the fake sleep says so instead of spinning in real time.
    """

    def __init__(self, sleep: Callable[[float], None]) -> None:
        self._inner = sleep
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return time.monotonic() + self._offset

    def sleep(self, seconds: float) -> None:
        self._inner(seconds)
        with self._lock:
            self._offset += max(0.0, seconds)


class _Attempts:
    """One request's bookkeeping across attempts."""

    def __init__(self, path: str, setting: str) -> None:
        self.path = path
        self.setting = setting  # the setting that names the origin, for hints
        self.number = 0
        self.maybe_applied = False
        self.last: str | None = None  # why the previous attempt failed
        # Seconds spent on failures the budget covers: attempts that failed and the
        # waits after them (a 429's wait and limiter pacing are not counted).
        self.spent = 0.0
        self.connect_spent = 0.0


class HttpSession:
    """One API origin (or two: Twilio's pricing lives elsewhere) with its credentials.

    Args:
        base_url: the origin (a path prefix is kept); paths are sent relative to it.
        setting: the setting that names `base_url`, for hints ("VAPI_BASE_URL").
        headers: sent with every request (Authorization included, if any).
        auth: HTTP Basic credentials, if any.
        secrets: values never to show in a message (besides header values).
        limiter: the shared rate limiter; None sends without pacing.
        on_event: called (from the requesting thread) before every retry sleep and long
            limiter wait.
        sleep: used between retries; injected by tests.
        rng: source of backoff jitter.
        describe: the API's words for an error answer (a 5xx to a POST).
        virtual_limiter: with no limiter given, make a private one (on a virtual clock
            when `sleep` is a test's fake).
    """

    def __init__(
        self,
        base_url: str,
        *,
        setting: str,
        headers: Mapping[str, str],
        auth: tuple[str, str] | None = None,
        secrets: tuple[str, ...] = (),
        transport: httpx.BaseTransport | None,
        timeout: httpx.Timeout,
        retry: RetryPolicy,
        limiter: RateLimiter | None,
        on_event: Callable[[RequestEvent], None] | None,
        sleep: Callable[[float], None],
        rng: random.Random | None,
        describe: Callable[[httpx.Response], str],
        virtual_limiter: bool = False,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.setting = setting
        self.timeout = timeout
        self._retry = retry
        self._on_event = on_event
        self._describe = describe
        self._sleep = sleep
        # A real sleep can be cut short by an interrupt; an injected one (tests) cannot.
        self._real_sleep = sleep is time.sleep
        self._interrupt: threading.Event | None = None
        if limiter is None and virtual_limiter:
            if sleep is time.sleep:
                limiter = RateLimiter()
            else:
                virtual = _VirtualClock(sleep)
                self._sleep = virtual.sleep
                limiter = RateLimiter(clock=virtual.now, sleep=virtual.sleep)
        self.limiter = limiter
        self._rng = rng if rng is not None else random.Random()
        self._lock = threading.Lock()
        self._counts: dict[Count, int] = {}
        self._by_method: dict[str, int] = {}
        hidden = [*secrets, *headers.values()]
        if auth is not None:
            hidden += [auth[1], base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()]
        self._hidden = tuple(sorted((s for s in hidden if len(s) >= 4), key=len, reverse=True))
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json", **headers},
            auth=auth,
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
        )

    @property
    def stats(self) -> ClientStats:
        with self._lock:
            c = self._counts
            return ClientStats(
                requests=sum(self._by_method.values()),
                by_method=dict(self._by_method),
                rate_limited=c.get(Count.RATE_LIMITED, 0),
                retries=c.get(Count.RETRIES, 0),
                ambiguous_creates=c.get(Count.AMBIGUOUS, 0),
                server_errors=c.get(Count.SERVER_ERRORS, 0),
                transport_errors=c.get(Count.TRANSPORT_ERRORS, 0),
            )

    def count(self, what: Count) -> None:
        with self._lock:
            self._counts[what] = self._counts.get(what, 0) + 1

    def close(self) -> None:
        self._http.close()

    @contextmanager
    def interruptible(self, event: threading.Event) -> Iterator[None]:
        """While the block runs, a set `event` (Ctrl-C) stops every request not yet sent.

        A request waiting for the limiter or about to make its first attempt raises
        `RequestInterrupted` with `sent=False` instead of going out; a wait before a
        retry ends at once and the request raises `RequestInterrupted` (`sent` says
        whether an earlier attempt may have had an effect). Requests on the wire finish.
        """
        previous, self._interrupt = self._interrupt, event
        try:
            yield
        finally:
            self._interrupt = previous

    def hide(self, text: str) -> str:
        """`text` without any credential of this session in it."""
        for secret in self._hidden:
            text = text.replace(secret, HIDDEN)
        return text

    # -- the retry loop --------------------------------------------------------------

    def send(
        self,
        method: str,
        path: str,
        *,
        base: str | None = None,
        params: Mapping[str, str | int] | None = None,
        content: bytes | None = None,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        setting: str | None = None,
    ) -> Answer:
        """Send until an answer that is final under the retry policy, and return it.

        Raises `AmbiguousCreateError` (a POST that may have been carried out),
        `RemoteTransportError` (no usable answer), `RequestInterrupted` (Ctrl-C), and
        `RemoteError` for a redirect or an HTML page (not the API at all). `base` and
        `setting` name another origin of the same API and the setting it comes from.
        """
        url = f"{(base or self.base_url).rstrip('/')}{path}"
        state = _Attempts(path, setting or self.setting)
        while True:
            state.number += 1
            self._acquire(method, path, state)
            if state.number > 1:
                self.count(Count.RETRIES)
            with self._lock:
                self._by_method[method] = self._by_method.get(method, 0) + 1
            started = time.monotonic()
            try:
                response = self._http.request(
                    method, url, params=params, content=content, data=data, headers=headers
                )
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                self._failed(method, url, exc, state, time.monotonic() - started)
                continue
            status = response.status_code
            hint = retry_after(response)
            if self.limiter is not None:
                if status == 429:
                    self.limiter.record_rate_limited(hint)
                elif status < 500:
                    self.limiter.record_success()
            if status == 429:
                self.count(Count.RATE_LIMITED)
            elif status >= 500:
                self.count(Count.SERVER_ERRORS)
            if response.is_success:
                return self._final(method, url, response, state)
            verdict = self._retry.status_verdict(method, status)
            if verdict is Verdict.AMBIGUOUS:
                self.count(Count.AMBIGUOUS)
                raise AmbiguousCreateError(
                    self._describe(response),
                    method=method,
                    path=path,
                    status=status,
                    body=body_of(response),
                )
            if verdict is Verdict.RETRY and self._retry.can_retry(state.number):
                # A 429 was turned away before any work; anything else may have run.
                rate_limited = status == 429
                state.maybe_applied = state.maybe_applied or not rate_limited
                reason = "rate limited" if rate_limited else f"server error {status}"
                delay = self._backoff(state.number, hint)
                # Rate limiting is ridden out (its waits are the server's, and bounded by
                # the attempts); other failures share the request's time budget.
                took = time.monotonic() - started
                if rate_limited or state.spent + took + delay <= self._retry.budget:
                    if not rate_limited:
                        state.spent += took + delay
                    self._pause(method, path, status, reason, delay, state)
                    continue
            return self._final(method, url, response, state)

    def _acquire(self, method: str, path: str, state: _Attempts) -> None:
        if self._interrupt is not None and self._interrupt.is_set():
            raise self._interrupted(method, path, state)
        if self.limiter is None:
            return
        try:
            self.limiter.acquire(
                on_wait=self._wait_reporter(method, path, state.number), cancel=self._interrupt
            )
        except Cancelled:
            raise self._interrupted(method, path, state) from None

    def _failed(
        self,
        method: str,
        url: str,
        exc: Exception,
        state: _Attempts,
        took: float,
    ) -> None:
        """Handle an attempt that got no answer: return to retry, else raise."""
        self.count(Count.TRANSPORT_ERRORS)
        path = state.path
        detail = self.hide(str(exc)) or type(exc).__name__
        message, reason = transport_message(method, url, exc, state.setting, self.timeout, detail)
        verdict = self._retry.error_verdict(method, exc)
        if verdict is Verdict.AMBIGUOUS:
            self.count(Count.AMBIGUOUS)
            raise AmbiguousCreateError(message, method=method, path=path) from exc
        # A server that took the request and stayed silent for a whole timeout twice
        # in a row is hung: a third wait would only multiply its cost.
        hung = isinstance(exc, httpx.ReadTimeout) and state.last == "timeout"
        if verdict is Verdict.RETRY and not hung and self._retry.can_retry(state.number):
            delay = self._backoff(state.number, None)
            connect = never_sent(exc)
            spent = state.connect_spent if connect else state.spent
            limit = self._retry.connect_budget if connect else self._retry.budget
            if spent + took + delay <= limit:
                state.maybe_applied = state.maybe_applied or not connect
                if connect:
                    state.connect_spent += took + delay
                else:
                    state.spent += took + delay
                self._pause(method, path, None, reason, delay, state)
                return
        if state.number > 1:
            message += f" (gave up after {state.number} attempts)"
        raise RemoteTransportError(
            message, method=method, path=path, sent=not never_sent(exc)
        ) from exc

    def _final(self, method: str, url: str, response: httpx.Response, state: _Attempts) -> Answer:
        """The answer, unless it is not the API's at all (a redirect, an HTML page)."""
        path = state.path
        status = response.status_code
        if response.is_redirect:
            target = without_query(response.headers.get("Location", "")) or "nowhere"
            raise RemoteError(
                f"{method} {without_query(url)} was answered with a redirect ({status}) to "
                f"{target}, which an API does not do: check {state.setting}",
                method=method,
                path=path,
                status=status,
            )
        if is_html(response):
            message = (
                f"{method} {without_query(url)} was answered {status} {phrase(status)} with "
                f"an HTML page ({len(response.content)} bytes), not the API's JSON: "
                f"check {state.setting}"
            )
            if method == "POST" and response.is_success:
                # Something accepted the create: it may have been carried out.
                self.count(Count.AMBIGUOUS)
                raise AmbiguousCreateError(message, method=method, path=path, status=status)
            raise RemoteError(message, method=method, path=path, status=status)
        return Answer(response, path, state.number, state.maybe_applied)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        with self._lock:  # random.Random is not meant to be shared across threads
            return self._retry.delay(attempt, retry_after, self._rng)

    def _pause(
        self,
        method: str,
        path: str,
        status: int | None,
        reason: str,
        delay: float,
        state: _Attempts,
    ) -> None:
        """Report and wait before a retry; `RequestInterrupted` if an interrupt came first
        or meanwhile."""
        state.last = reason
        if self._on_event is not None:
            event = RequestEvent("retry", method, path, status, reason, delay, state.number + 1)
            self._on_event(event)
        interrupt = self._interrupt
        if interrupt is not None and self._real_sleep:
            go_on = not interrupt.wait(delay) if delay > 0 else not interrupt.is_set()
        else:
            if delay > 0:
                self._sleep(delay)
            go_on = interrupt is None or not interrupt.is_set()
        if not go_on:
            raise self._interrupted(method, path, state)

    @staticmethod
    def _interrupted(method: str, path: str, state: _Attempts) -> RequestInterrupted:
        if state.last is None:
            message = f"interrupted before {method} {path} was sent"
        else:
            message = (
                f"interrupted while waiting to retry {method} {path} (last attempt: {state.last})"
            )
        return RequestInterrupted(message, method=method, path=path, sent=state.maybe_applied)

    def _wait_reporter(self, method: str, path: str, attempt: int) -> Callable[[float, str], None]:
        def report(delay: float, why: str) -> None:
            if self._on_event is None:
                return
            if why == "paused" or delay >= _WAIT_EVENT_MIN:
                reason = "rate limited" if why == "paused" else "throttled"
                self._on_event(RequestEvent("wait", method, path, None, reason, delay, attempt))

        return report


class SessionClient:
    """What every API client built on an `HttpSession` shares: closing, the `with` block
    and Ctrl-C (`interruptible`)."""

    _session: HttpSession

    def close(self) -> None:
        self._session.close()

    def interruptible(self, event: threading.Event) -> AbstractContextManager[None]:
        """While the block runs, a set `event` (Ctrl-C) stops every request not yet sent,
        and a wait before a retry ends at once (`RequestInterrupted`); requests on the
        wire finish. See `HttpSession.interruptible`."""
        return self._session.interruptible(event)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
