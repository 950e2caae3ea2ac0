"""The one HTTP client for the Vapi REST API.

Owns: every request the tool sends to Vapi. CRUD per resource kind and complete listings
(bare-array lists paged backwards by `createdAt`, `{results, metadata}` lists paged by
`page`), the retry loop (rules in `remote.retry`), pacing through the shared adaptive
`RateLimiter`, turning secrets into clear text on the wire (`values.to_wire`), and turning
every failure into a `RemoteError` with a readable message. No `httpx` exception leaves
this module.

Must not touch: plans, state, the manifest, the environment, or the terminal. Progress
worth showing (waits and retries) goes to the `on_event` callback.

Safe to share between threads: `httpx.Client` is thread-safe, and the counters, the
random source and the limiter are guarded by locks.

Interruptible (`VapiClient.interruptible`): after Ctrl-C no request that has not left
yet is sent, and waits before retries end at once; requests on the wire finish.
"""

from __future__ import annotations

import http
import json
import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote

import httpx

from provisioner import __version__
from provisioner.errors import (
    AmbiguousCreateError,
    RemoteError,
    RemoteTransportError,
    RequestInterrupted,
)
from provisioner.kinds import KINDS, ListStyle, ResourceKind
from provisioner.remote.limiter import Cancelled, RateLimiter
from provisioner.remote.retry import RetryPolicy, Verdict, never_sent, parse_retry_after
from provisioner.values import to_wire

__all__ = [
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUT",
    "LIST_LIMIT",
    "ClientStats",
    "ListResult",
    "RequestEvent",
    "StopPaging",
    "VapiClient",
    "describe_status",
]

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
DEFAULT_RETRY = RetryPolicy()
# The API's maximum `limit` for list endpoints.
LIST_LIMIT = 1000
# Safety stop for paging loops (a million objects of one kind).
_MAX_PAGES = 1000
# Limiter waits shorter than this are routine pacing, not worth an event.
_WAIT_EVENT_MIN = 1.0
# How much of a non-JSON error body goes into a message.
_SNIPPET = 200
_TOKEN_HINT = "check VAPI_TOKEN"

EventKind = Literal["retry", "wait"]
# Asked by `list_all` after each page but the last, with the objects found so far by ID:
# True stops paging.
StopPaging = Callable[[Mapping[str, dict[str, Any]]], bool]


@dataclass(frozen=True, slots=True)
class ListResult:
    """Every object of one kind, as far as the API would list them.

    `complete` is False when paging had to stop before a final short page (no progress,
    or the page cap), so an object missing from `items` may still exist.
    """

    items: list[dict[str, Any]]
    complete: bool


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
class _Answer:
    response: httpx.Response
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


class VapiClient:
    """Client for one Vapi API (one base URL and token), shared by all threads of a run.

    Args:
        base_url: e.g. `https://api.vapi.ai`; a path prefix is kept.
        token: private API key, sent as `Authorization: Bearer <token>`.
        transport: httpx transport; tests pass `httpx.MockTransport` or `WSGITransport`.
        timeout: per-request timeouts.
        retry: the retry policy.
        limiter: the shared rate limiter; a private one with default settings when None.
        on_event: called (from the requesting thread) before every retry sleep and long
            limiter wait.
        sleep: used between retries; injected by tests.
        rng: source of backoff jitter.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy = DEFAULT_RETRY,
        limiter: RateLimiter | None = None,
        on_event: Callable[[RequestEvent], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._retry = retry
        self._on_event = on_event
        self._sleep = sleep
        # A real sleep can be cut short by an interrupt; an injected one (tests) cannot.
        self._real_sleep = sleep is time.sleep
        self._interrupt: threading.Event | None = None
        if limiter is None:
            if sleep is time.sleep:
                limiter = RateLimiter()
            else:
                virtual = _VirtualClock(sleep)
                self._sleep = virtual.sleep
                limiter = RateLimiter(clock=virtual.now, sleep=virtual.sleep)
        self._limiter = limiter
        self._rng = rng if rng is not None else random.Random()
        self._lock = threading.Lock()
        self._requests = 0
        self._by_method: dict[str, int] = {}
        self._rate_limited = 0
        self._retries = 0
        self._ambiguous = 0
        self._server_errors = 0
        self._transport_errors = 0
        self._http = httpx.Client(
            base_url=self._base_url,
            headers={
                "Authorization": f"Bearer {token}",
                "User-Agent": f"provisioner/{__version__}",
                "Accept": "application/json",
            },
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
        )

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def limiter(self) -> RateLimiter:
        return self._limiter

    @property
    def stats(self) -> ClientStats:
        with self._lock:
            return ClientStats(
                requests=self._requests,
                by_method=dict(self._by_method),
                rate_limited=self._rate_limited,
                retries=self._retries,
                ambiguous_creates=self._ambiguous,
                server_errors=self._server_errors,
                transport_errors=self._transport_errors,
            )

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

    def __enter__(self) -> VapiClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- CRUD ------------------------------------------------------------------------

    def create(self, kind: ResourceKind, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST a new object and return it as the server stored it.

        Raises:
            AmbiguousCreateError: the request may have been carried out but the answer
                was lost or an error (5xx, timeout, dropped connection, no ID in the
                answer). Look for the object before creating it again.
            RemoteTransportError: the server could not be reached (nothing was created).
            RemoteError: the API refused it (4xx), or kept rate limiting.
        """
        answer = self._send("POST", kind.api_path, body=body)
        response = answer.response
        if not response.is_success:
            raise self._status_error("POST", kind.api_path, answer)
        try:
            obj = _decode(response)
        except ValueError as exc:
            self._count(ambiguous=1)
            raise AmbiguousCreateError(
                f"{response.status_code} answer to the create is not JSON: {_snippet(response)}",
                method="POST",
                path=kind.api_path,
                status=response.status_code,
                body=response.text,
            ) from exc
        if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
            self._count(ambiguous=1)
            raise AmbiguousCreateError(
                f"{response.status_code} answer to the create has no id",
                method="POST",
                path=kind.api_path,
                status=response.status_code,
                body=obj,
            )
        return obj

    def check_access(self) -> None:
        """One cheap read (the newest assistant) that fails with the API's own message
        when the key is wrong or lacks access (401/403)."""
        path = KINDS["assistant"].api_path
        self._get_list(path, {"limit": 1})

    def get(self, kind: ResourceKind, resource_id: str) -> dict[str, Any] | None:
        """The object with this ID, or None if the API says it does not exist (404)."""
        path = kind.item_path(_quote_id(resource_id))
        answer = self._send("GET", path)
        if answer.response.status_code == 404:
            return None
        return self._object("GET", path, answer)

    def update(
        self, kind: ResourceKind, resource_id: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """PATCH the fields in `body` (top-level, each sent whole) and return the object."""
        path = kind.item_path(_quote_id(resource_id))
        # The spec marks a `schemaOverride` query parameter as required on
        # PATCH /structured-output/{id} but never says what it means; we do not send it.
        answer = self._send("PATCH", path, body=body)
        return self._object("PATCH", path, answer)

    def delete(self, kind: ResourceKind, resource_id: str) -> bool:
        """DELETE the object. True if it was deleted, False if it was already gone (404).

        A 404 after an earlier attempt that may have reached the server counts as our
        own delete (True).
        """
        path = kind.item_path(_quote_id(resource_id))
        answer = self._send("DELETE", path)
        status = answer.response.status_code
        if status == 404:
            return answer.maybe_applied
        if not answer.response.is_success:
            raise self._status_error("DELETE", path, answer)
        return True

    # -- listing ---------------------------------------------------------------------

    def list_all(self, kind: ResourceKind, *, until: StopPaging | None = None) -> ListResult:
        """Every object of `kind`, paging as the kind's list endpoint requires.

        `until(found)` (objects so far, by ID) is asked after every page that is not the
        last: True stops there, with a result marked incomplete. A caller that needs only
        some objects saves the round trips of the remaining pages.

        Raises `RemoteError` if any page fails (after retries): a partial listing is
        never returned as if it were whole.
        """
        if kind.list_style is ListStyle.PAGED:
            return self._list_paged(kind, until)
        return self._list_array(kind, until)

    def _list_array(self, kind: ResourceKind, until: StopPaging | None) -> ListResult:
        # The endpoint returns at most `limit` objects, newest first, and has no cursor:
        # the next page is everything created before the oldest object seen. The bound
        # is moved 1 ms past that object (and duplicates are dropped by ID) so objects
        # sharing its millisecond are not skipped.
        found: dict[str, dict[str, Any]] = {}
        params: dict[str, str | int] = {"limit": LIST_LIMIT}
        for _ in range(_MAX_PAGES):
            page = self._get_list(kind.api_path, params)
            new = _merge(found, page)
            if len(page) < LIST_LIMIT:
                return ListResult(list(found.values()), complete=True)
            stamps = [t for t in (_created_at(item) for item in page) if t is not None]
            if new == 0 or not stamps or (until is not None and until(found)):
                break
            first, last = _created_at(page[0]), _created_at(page[-1])
            if first is not None and last is not None and first < last:
                # Oldest first after all: walk forward instead.
                bound = max(stamps) - timedelta(milliseconds=1)
                params = {"limit": LIST_LIMIT, "createdAtGt": _iso(bound)}
            else:
                bound = min(stamps) + timedelta(milliseconds=1)
                params = {"limit": LIST_LIMIT, "createdAtLt": _iso(bound)}
        return ListResult(list(found.values()), complete=False)

    def _list_paged(self, kind: ResourceKind, until: StopPaging | None) -> ListResult:
        found: dict[str, dict[str, Any]] = {}
        for number in range(1, _MAX_PAGES + 1):
            params: dict[str, str | int] = {"page": number, "limit": LIST_LIMIT}
            answer = self._send("GET", kind.api_path, params=params)
            data = self._json("GET", kind.api_path, answer)
            meta: Mapping[str, Any] = {}
            if isinstance(data, dict) and isinstance(data.get("results"), list):
                results: list[Any] = data["results"]
                raw_meta = data.get("metadata")
                meta = raw_meta if isinstance(raw_meta, dict) else {}
            elif isinstance(data, list):
                results = data
            else:
                raise _shape_error("GET", kind.api_path, answer, "a {results, metadata} page")
            new = _merge(found, results)
            if len(results) < LIST_LIMIT or meta.get("hasNextPage") is False:
                return ListResult(list(found.values()), complete=True)
            current, total = _page_numbers(meta, number)
            if total is not None and current >= total:
                return ListResult(list(found.values()), complete=True)
            if new == 0 or (until is not None and until(found)):
                break
        return ListResult(list(found.values()), complete=False)

    def _get_list(self, path: str, params: Mapping[str, str | int]) -> list[Any]:
        answer = self._send("GET", path, params=params)
        data = self._json("GET", path, answer)
        if not isinstance(data, list):
            raise _shape_error("GET", path, answer, "a JSON array")
        return data

    # -- answers ---------------------------------------------------------------------

    def _object(self, method: str, path: str, answer: _Answer) -> dict[str, Any]:
        data = self._json(method, path, answer)
        if not isinstance(data, dict):
            raise _shape_error(method, path, answer, "a JSON object")
        return data

    def _json(self, method: str, path: str, answer: _Answer) -> Any:
        response = answer.response
        if not response.is_success:
            raise self._status_error(method, path, answer)
        try:
            return _decode(response)
        except ValueError as exc:
            raise RemoteError(
                f"{response.status_code} answer is not JSON: {_snippet(response)}",
                method=method,
                path=path,
                status=response.status_code,
                body=response.text,
            ) from exc

    def _status_error(self, method: str, path: str, answer: _Answer) -> RemoteError:
        message, body = describe_status(answer.response)
        if answer.attempts > 1:
            message += f" (gave up after {answer.attempts} attempts)"
        return RemoteError(
            message, method=method, path=path, status=answer.response.status_code, body=body
        )

    # -- the retry loop --------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> _Answer:
        """Send until an answer that is final under the retry policy.

        Returns the last answer (any status; callers decide what 404 means) or raises
        `AmbiguousCreateError` / `RemoteTransportError`.
        """
        content: bytes | None = None
        headers: dict[str, str] = {}
        if body is not None:
            wire = to_wire(body)
            content = json.dumps(wire, ensure_ascii=False, allow_nan=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        maybe_applied = False
        attempt = 0
        last: str | None = None  # why the previous attempt failed
        while True:
            attempt += 1
            if self._interrupt is not None and self._interrupt.is_set():
                raise self._interrupted(method, path, maybe_applied, last)
            try:
                self._limiter.acquire(
                    on_wait=self._wait_reporter(method, path, attempt), cancel=self._interrupt
                )
            except Cancelled:
                raise self._interrupted(method, path, maybe_applied, last) from None
            if attempt > 1:
                self._count(retries=1)
            self._count_sent(method)
            try:
                response = self._http.request(
                    method, path, params=params, content=content, headers=headers
                )
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                self._count(transport_errors=1)
                message, reason = self._transport_message(method, path, exc)
                verdict = self._retry.error_verdict(method, exc)
                if verdict is Verdict.AMBIGUOUS:
                    self._count(ambiguous=1)
                    raise AmbiguousCreateError(message, method=method, path=path) from exc
                if verdict is Verdict.RETRY and self._retry.can_retry(attempt):
                    maybe_applied = maybe_applied or not never_sent(exc)
                    delay = self._backoff(attempt, None)
                    last = reason
                    if not self._pause("retry", method, path, None, reason, delay, attempt + 1):
                        raise self._interrupted(method, path, maybe_applied, last) from exc
                    continue
                if attempt > 1:
                    message += f" (gave up after {attempt} attempts)"
                raise RemoteTransportError(
                    message, method=method, path=path, sent=not never_sent(exc)
                ) from exc

            status = response.status_code
            retry_after = self._retry_after(response)
            if status == 429:
                self._count(rate_limited=1)
                self._limiter.record_rate_limited(retry_after)
            elif status >= 500:
                self._count(server_errors=1)
            else:
                self._limiter.record_success()
            if response.is_success:
                return _Answer(response, attempt, maybe_applied)
            verdict = self._retry.status_verdict(method, status)
            if verdict is Verdict.AMBIGUOUS:
                self._count(ambiguous=1)
                message, parsed = describe_status(response)
                raise AmbiguousCreateError(
                    f"server error {message}", method=method, path=path, status=status, body=parsed
                )
            if verdict is Verdict.RETRY and self._retry.can_retry(attempt):
                # A 429 was turned away before any work; anything else may have run.
                maybe_applied = maybe_applied or status != 429
                reason = "rate limited" if status == 429 else f"server error {status}"
                delay = self._backoff(attempt, retry_after)
                last = reason
                if not self._pause("retry", method, path, status, reason, delay, attempt + 1):
                    raise self._interrupted(method, path, maybe_applied, last)
                continue
            return _Answer(response, attempt, maybe_applied)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        with self._lock:  # random.Random is not meant to be shared across threads
            return self._retry.delay(attempt, retry_after, self._rng)

    def _pause(
        self,
        kind: EventKind,
        method: str,
        path: str,
        status: int | None,
        reason: str,
        delay: float,
        attempt: int,
    ) -> bool:
        """Report and wait before a retry; False if an interrupt came first or meanwhile."""
        if self._on_event is not None:
            self._on_event(RequestEvent(kind, method, path, status, reason, delay, attempt))
        event = self._interrupt
        if event is not None and self._real_sleep:
            return not event.wait(delay) if delay > 0 else not event.is_set()
        if delay > 0:
            self._sleep(delay)
        return event is None or not event.is_set()

    @staticmethod
    def _interrupted(
        method: str, path: str, maybe_applied: bool, last: str | None
    ) -> RequestInterrupted:
        if last is None:
            message = f"interrupted before {method} {path} was sent"
        else:
            message = f"interrupted while waiting to retry {method} {path} (last attempt: {last})"
        return RequestInterrupted(message, method=method, path=path, sent=maybe_applied)

    def _wait_reporter(self, method: str, path: str, attempt: int) -> Callable[[float, str], None]:
        def report(delay: float, why: str) -> None:
            if self._on_event is None:
                return
            if why == "paused" or delay >= _WAIT_EVENT_MIN:
                reason = "rate limited" if why == "paused" else "throttled"
                self._on_event(RequestEvent("wait", method, path, None, reason, delay, attempt))

        return report

    @staticmethod
    def _retry_after(response: httpx.Response) -> float | None:
        value = response.headers.get("Retry-After")
        if value is None:
            return None
        return parse_retry_after(value, datetime.now(UTC))

    def _transport_message(self, method: str, path: str, exc: Exception) -> tuple[str, str]:
        """(message, short reason) for a request that got no usable answer."""
        url = self._url_of(exc, path)
        origin = _origin(url)
        t = self._timeout
        if isinstance(exc, httpx.ConnectTimeout):
            return f"cannot connect to {origin}: timed out after {_seconds(t.connect)}", "timeout"
        if isinstance(exc, httpx.PoolTimeout):
            return (
                f"timed out after {_seconds(t.pool)} waiting for a free connection: {method} {url}",
                "timeout",
            )
        if isinstance(exc, httpx.WriteTimeout):
            return f"timed out after {_seconds(t.write)} sending: {method} {url}", "timeout"
        if isinstance(exc, httpx.TimeoutException):
            return f"timed out after {_seconds(t.read)}: {method} {url}", "timeout"
        if isinstance(exc, httpx.ConnectError):
            return f"cannot connect to {origin}: {_connect_reason(exc)}", "cannot connect"
        if isinstance(exc, httpx.RemoteProtocolError):
            return (
                f"connection dropped before a complete answer: {method} {url} ({exc})",
                "connection dropped",
            )
        if isinstance(exc, httpx.NetworkError):
            return f"connection error: {method} {url} ({exc})", "connection error"
        if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
            return f"invalid URL {url}: {exc}", "invalid URL"
        detail = str(exc) or type(exc).__name__
        return f"request failed: {method} {url} ({detail})", "request failed"

    def _url_of(self, exc: Exception, path: str) -> str:
        if isinstance(exc, httpx.RequestError):
            try:
                return str(exc.request.url)
            except RuntimeError:  # the error was raised without a request attached
                pass
        return f"{self._base_url}{path}"

    # -- counters --------------------------------------------------------------------

    def _count_sent(self, method: str) -> None:
        with self._lock:
            self._requests += 1
            self._by_method[method] = self._by_method.get(method, 0) + 1

    def _count(
        self,
        *,
        retries: int = 0,
        rate_limited: int = 0,
        ambiguous: int = 0,
        server_errors: int = 0,
        transport_errors: int = 0,
    ) -> None:
        with self._lock:
            self._retries += retries
            self._rate_limited += rate_limited
            self._ambiguous += ambiguous
            self._server_errors += server_errors
            self._transport_errors += transport_errors


# -- helpers (pure) ----------------------------------------------------------------------


def describe_status(response: httpx.Response) -> tuple[str, Any]:
    """(readable message, parsed body) for an error answer.

    NestJS bodies `{"message": str | [str, ...], "error": "Bad Request", "statusCode": 400}`
    become "400 Bad Request: first problem; second problem". A 401 says the token was
    rejected. Non-JSON bodies are quoted briefly (HTML pages are only named).
    """
    status = response.status_code
    phrase = _phrase(response)
    try:
        body: Any = _decode(response)
    except ValueError:
        body = response.text
    words = ""
    code = ""
    if isinstance(body, dict):
        words = _api_words(body.get("message"))
        error = body.get("error")
        if isinstance(error, str) and error and error.lower() != phrase.lower():
            if " " in error or error[:1].isupper():
                phrase = error  # a reason phrase of its own ("Bad Request")
            else:
                code = error  # a machine code ("assistant_pinned")
        if not words and not code and body:
            words = _clip(json.dumps(body, ensure_ascii=False))
    elif isinstance(body, str):
        words = _snippet(response)
    elif body is not None:
        words = _clip(json.dumps(body, ensure_ascii=False))
    head = f"{status} {phrase}" if phrase else str(status)
    if code:
        head += f" ({code})"
    if status == 401:
        head += ": the API rejected the token"
        return (f"{head} ({words}); {_TOKEN_HINT}" if words else f"{head}; {_TOKEN_HINT}"), body
    return (f"{head}: {words}" if words else head), body


def _api_words(message: Any) -> str:
    if isinstance(message, str):
        return message.strip()
    if isinstance(message, list):
        return "; ".join(str(m).strip() for m in message if str(m).strip())
    if message is None:
        return ""
    return _clip(json.dumps(message, ensure_ascii=False))


def _phrase(response: httpx.Response) -> str:
    try:
        return http.HTTPStatus(response.status_code).phrase
    except ValueError:
        return response.reason_phrase


def _decode(response: httpx.Response) -> Any:
    """The JSON body, None when empty; ValueError when it is not JSON."""
    if not response.content.strip():
        return None
    return json.loads(response.content)


def _snippet(response: httpx.Response) -> str:
    text = response.text.strip()
    if not text:
        return "(empty body)"
    if text.startswith("<"):
        kind = response.headers.get("Content-Type", "markup").split(";")[0]
        return f"({kind} page of {len(response.content)} bytes)"
    return _clip(text)


def _clip(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= _SNIPPET else text[: _SNIPPET - 3] + "..."


def _shape_error(method: str, path: str, answer: _Answer, expected: str) -> RemoteError:
    response = answer.response
    return RemoteError(
        f"{response.status_code} answer is not {expected}: {_snippet(response)}",
        method=method,
        path=path,
        status=response.status_code,
        body=response.text,
    )


def _merge(found: dict[str, dict[str, Any]], page: list[Any]) -> int:
    """Add the page's objects to `found` by ID; return how many were new."""
    new = 0
    for item in page:
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            if item["id"] not in found:
                new += 1
            found[item["id"]] = item
    return new


def _created_at(item: Any) -> datetime | None:
    if not isinstance(item, dict) or not isinstance(item.get("createdAt"), str):
        return None
    try:
        stamp = datetime.fromisoformat(item["createdAt"])
    except ValueError:
        return None
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


def _iso(stamp: datetime) -> str:
    """The API's timestamp form: `2026-03-17T12:56:27.099Z`."""
    return stamp.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _page_numbers(meta: Mapping[str, Any], requested: int) -> tuple[int, int | None]:
    current = meta.get("currentPage")
    current = int(current) if isinstance(current, int | float) else requested
    total = meta.get("totalPages")
    if isinstance(total, int | float):
        return current, int(total)
    items, per_page = meta.get("totalItems"), meta.get("itemsPerPage")
    if isinstance(items, int | float) and isinstance(per_page, int | float) and per_page > 0:
        return current, math.ceil(items / per_page)
    return current, None


def _quote_id(resource_id: str) -> str:
    return quote(resource_id, safe="")


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


def _connect_reason(exc: Exception) -> str:
    text = str(exc)
    low = text.lower()
    for needles, reason in _CONNECT_REASONS:
        if any(n in low for n in needles):
            return reason
    if "ssl" in low or "certificate" in low or "tls" in low:
        return f"TLS error ({text})"
    return text or "connection failed"
