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
import http
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import httpx

from provisioner import __version__
from provisioner.errors import (
    AmbiguousCreateError,
    ProvisionerError,
    RemoteError,
    RemoteTransportError,
    RequestInterrupted,
)
from provisioner.remote.limiter import Cancelled, RateLimiter
from provisioner.remote.retry import RetryPolicy, Verdict, never_sent, parse_retry_after

__all__ = [
    "USER_AGENT",
    "Answer",
    "ClientStats",
    "CredentialError",
    "HttpSession",
    "RequestEvent",
    "check_credential",
    "clip",
    "decode",
    "phrase",
    "shape_error",
    "snippet",
]

USER_AGENT = f"provisioner/{__version__}"
# Limiter waits shorter than this are routine pacing, not worth an event.
_WAIT_EVENT_MIN = 1.0
# How much of a non-JSON body goes into a message.
_SNIPPET = 200
_HIDDEN = "(not shown)"

EventKind = Literal["retry", "wait"]


class CredentialError(ProvisionerError, ValueError):
    """A key or token that cannot be sent as it is (whitespace, control or non-ASCII
    characters). The message names the credential, never its value."""


def check_credential(value: str, what: str) -> None:
    """Refuse a credential HTTP cannot carry, before anything is sent.

    A trailing newline is the usual cause (a secret stored from `echo`); it is refused
    rather than stripped, so the key in use is exactly the one configured.
    """
    if not value:
        raise CredentialError(f"{what} is empty")
    if value != value.strip():
        raise CredentialError(
            f"{what} starts or ends with whitespace (a trailing newline?); "
            f"remove it (the value is {_HIDDEN})"
        )
    if not value.isascii() or not value.isprintable():
        raise CredentialError(
            f"{what} holds characters a key cannot have (control or non-ASCII); "
            f"check it (the value is {_HIDDEN})"
        )


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


@dataclass(frozen=True, slots=True)
class Answer:
    """The final answer to a request (any status: callers decide what 404 means)."""

    response: httpx.Response
    path: str
    attempts: int
    # An earlier attempt may have been carried out by the server although its answer
    # was lost or an error (so a DELETE answered 404 now may be our own doing).
    maybe_applied: bool


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

    def __init__(self) -> None:
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
        self._counts: dict[str, int] = {}
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
                rate_limited=c.get("rate_limited", 0),
                retries=c.get("retries", 0),
                ambiguous_creates=c.get("ambiguous", 0),
                server_errors=c.get("server_errors", 0),
                transport_errors=c.get("transport_errors", 0),
            )

    def count(self, what: str) -> None:
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
            text = text.replace(secret, _HIDDEN)
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
    ) -> Answer:
        """Send until an answer that is final under the retry policy, and return it.

        Raises `AmbiguousCreateError` (a POST that may have been carried out),
        `RemoteTransportError` (no usable answer), `RequestInterrupted` (Ctrl-C), and
        `RemoteError` for a redirect or an HTML page (not the API at all).
        """
        url = f"{(base or self.base_url).rstrip('/')}{path}"
        state = _Attempts()
        while True:
            state.number += 1
            self._acquire(method, path, state)
            if state.number > 1:
                self.count("retries")
            with self._lock:
                self._by_method[method] = self._by_method.get(method, 0) + 1
            started = time.monotonic()
            try:
                response = self._http.request(
                    method, url, params=params, content=content, data=data, headers=headers
                )
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                self._failed(method, path, url, exc, state, time.monotonic() - started)
                continue
            status = response.status_code
            retry_after = _retry_after(response)
            if self.limiter is not None:
                if status == 429:
                    self.limiter.record_rate_limited(retry_after)
                elif status < 500:
                    self.limiter.record_success()
            if status == 429:
                self.count("rate_limited")
            elif status >= 500:
                self.count("server_errors")
            if response.is_success:
                return self._final(method, url, response, state)
            verdict = self._retry.status_verdict(method, status)
            if verdict is Verdict.AMBIGUOUS:
                self.count("ambiguous")
                raise AmbiguousCreateError(
                    self._describe(response),
                    method=method,
                    path=path,
                    status=status,
                    body=_body(response),
                )
            if verdict is Verdict.RETRY and self._retry.can_retry(state.number):
                # A 429 was turned away before any work; anything else may have run.
                rate_limited = status == 429
                state.maybe_applied = state.maybe_applied or not rate_limited
                reason = "rate limited" if rate_limited else f"server error {status}"
                delay = self._backoff(state.number, retry_after)
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
        path: str,
        url: str,
        exc: Exception,
        state: _Attempts,
        took: float,
    ) -> None:
        """Handle an attempt that got no answer: return to retry, else raise."""
        self.count("transport_errors")
        message, reason = self._transport_message(method, url, exc)
        verdict = self._retry.error_verdict(method, exc)
        if verdict is Verdict.AMBIGUOUS:
            self.count("ambiguous")
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
        path = url[len(self.base_url) :] if url.startswith(self.base_url) else url
        status = response.status_code
        if response.is_redirect:
            target = _without_query(response.headers.get("Location", "")) or "nowhere"
            raise RemoteError(
                f"{method} {_without_query(url)} was answered with a redirect ({status}) to "
                f"{target}, which an API does not do: check {self.setting}",
                method=method,
                path=path,
                status=status,
            )
        if is_html(response):
            message = (
                f"{method} {_without_query(url)} was answered {status} {phrase(status)} with "
                f"an HTML page ({len(response.content)} bytes), not the API's JSON: "
                f"check {self.setting}"
            )
            if method == "POST" and response.is_success:
                # Something accepted the create: it may have been carried out.
                self.count("ambiguous")
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
    ) -> bool:
        """Report and wait before a retry; False if an interrupt came first or meanwhile."""
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
        return True

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

    def _transport_message(self, method: str, url: str, exc: Exception) -> tuple[str, str]:
        """(message, short reason) for a request that got no usable answer."""
        url = _without_query(_url_of(exc, url))
        origin = _origin(url)
        hint = f"; check {self.setting}"
        t = self.timeout
        detail = self.hide(str(exc)) or type(exc).__name__
        if isinstance(exc, httpx.ConnectTimeout):
            return (
                f"cannot connect to {origin}: timed out after {_seconds(t.connect)}{hint}",
                "timeout",
            )
        if isinstance(exc, httpx.PoolTimeout):
            return (
                f"timed out after {_seconds(t.pool)} waiting for a free connection: {method} {url}",
                "timeout",
            )
        if isinstance(exc, httpx.WriteTimeout):
            return f"timed out after {_seconds(t.write)} sending: {method} {url}", "timeout"
        if isinstance(exc, httpx.TimeoutException):
            return f"timed out after {_seconds(t.read)}: {method} {url}{hint}", "timeout"
        if isinstance(exc, httpx.ConnectError):
            reason = _connect_reason(detail)
            return f"cannot connect to {origin}: {reason}{hint}", "cannot connect"
        if isinstance(exc, httpx.RemoteProtocolError):
            return (
                f"connection dropped before a complete answer: {method} {url} ({detail})",
                "connection dropped",
            )
        if isinstance(exc, httpx.LocalProtocolError):
            # httpx quotes the offending header value here: never show it.
            return f"the request could not be written: {method} {url}", "request failed"
        if isinstance(exc, httpx.NetworkError):
            return f"connection error: {method} {url} ({detail})", "connection error"
        if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
            return f"invalid URL {url}: {detail}{hint}", "invalid URL"
        return f"request failed: {method} {url} ({detail})", "request failed"


# -- helpers (pure) ----------------------------------------------------------------------


def decode(response: httpx.Response) -> Any:
    """The JSON body, None when empty; ValueError when it is not JSON."""
    if not response.content.strip():
        return None
    return json.loads(response.content)


def _body(response: httpx.Response) -> Any:
    try:
        return decode(response)
    except ValueError:
        return response.text


def is_html(response: httpx.Response) -> bool:
    kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if kind in ("text/html", "application/xhtml+xml"):
        return True
    head = response.content[:64].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html"))


def snippet(response: httpx.Response) -> str:
    """A short quote of a non-JSON body (markup is only named)."""
    text = response.text.strip()
    if not text:
        return "(empty body)"
    if text.startswith("<"):
        kind = response.headers.get("Content-Type", "markup").split(";")[0]
        return f"({kind} page of {len(response.content)} bytes)"
    return clip(text)


def clip(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= _SNIPPET else text[: _SNIPPET - 3] + "..."


def phrase(status: int, fallback: str = "") -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return fallback


def shape_error(method: str, answer: Answer, expected: str, who: str = "") -> RemoteError:
    """An answer that is not what the API promises (`who`: "Twilio's " or "")."""
    response = answer.response
    return RemoteError(
        f"{who}{response.status_code} answer is not {expected}: {snippet(response)}",
        method=method,
        path=answer.path,
        status=response.status_code,
        body=response.text,
    )


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    return parse_retry_after(value, datetime.now(UTC)) if value is not None else None


def _url_of(exc: Exception, url: str) -> str:
    if isinstance(exc, httpx.RequestError):
        try:
            return str(exc.request.url)
        except RuntimeError:  # the error was raised without a request attached
            pass
    return url


def _without_query(url: str) -> str:
    return url.split("?", 1)[0]


def _origin(url: str) -> str:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return url
    if not parsed.scheme or not parsed.host:
        return url
    port = f":{parsed.port}" if parsed.port is not None else ""
    return f"{parsed.scheme}://{parsed.host}{port}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "no limit"
    return f"{value:g} s"


_CONNECT_REASONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("refused",), "connection refused"),
    (
        (
            "name or service not known",
            "nodename nor servname",
            "getaddrinfo",
            "name resolution",
            "no address associated",
        ),
        "host not found",
    ),
    (("network is unreachable",), "network unreachable"),
    (("no route to host",), "no route to host"),
    (("timed out",), "timed out"),
    (("reset by peer",), "connection reset"),
)


def _connect_reason(text: str) -> str:
    low = text.lower()
    for needles, reason in _CONNECT_REASONS:
        if any(n in low for n in needles):
            return reason
    if "ssl" in low or "certificate" in low or "tls" in low:
        return f"TLS error ({text})"
    return text or "connection failed"
