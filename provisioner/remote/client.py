"""The client for the Vapi REST API: a thin wrapper over `remote.http`.

Owns: what each Vapi request is and what its answer means. CRUD per resource kind and
complete listings (bare-array lists paged backwards by `createdAt`, `{results, metadata}`
lists paged by `page`), turning secrets into clear text on the wire (`values.to_wire`), and
Vapi's error bodies into readable `RemoteError`s. Retries, pacing through the shared
`RateLimiter`, Ctrl-C (`VapiClient.interruptible`) and transport failures are the HTTP
layer's (`remote.http.HttpSession`). No `httpx` exception leaves this module.

Must not touch: plans, state, the manifest, the environment, or the terminal. Progress
worth showing (waits and retries) goes to the `on_event` callback.

Safe to share between threads: `httpx.Client` is thread-safe, and the counters, the
random source and the limiter are guarded by locks.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from provisioner.errors import AmbiguousCreateError, RemoteError
from provisioner.kinds import KINDS, ListStyle, ResourceKind
from provisioner.remote.answers import (
    Answer,
    check_credential,
    clip,
    decode,
    phrase,
    shape_error,
    snippet,
)
from provisioner.remote.http import ClientStats, Count, HttpSession, RequestEvent, SessionClient
from provisioner.remote.limiter import RateLimiter
from provisioner.remote.retry import RetryPolicy
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
# How much of a non-JSON error body goes into a message.
_TOKEN_HINT = "check VAPI_TOKEN"

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


class VapiClient(SessionClient):
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
        check_credential(token, "the Vapi API key (VAPI_TOKEN or VAPI_API_KEY)")
        self._session = HttpSession(
            base_url,
            setting="VAPI_BASE_URL",
            headers={"Authorization": f"Bearer {token}"},
            secrets=(token,),
            transport=transport,
            timeout=timeout,
            retry=retry,
            limiter=limiter,
            on_event=on_event,
            sleep=sleep,
            rng=rng,
            describe=lambda response: f"server error {describe_status(response)[0]}",
            virtual_limiter=True,
        )

    @property
    def base_url(self) -> str:
        return self._session.base_url

    @property
    def limiter(self) -> RateLimiter:
        assert self._session.limiter is not None  # made in __init__ when not given
        return self._session.limiter

    @property
    def stats(self) -> ClientStats:
        return self._session.stats

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
            obj = decode(response)
            problem = (
                None if isinstance(obj, dict) and isinstance(obj.get("id"), str) else "has no id"
            )
        except ValueError:
            obj, problem = response.text, f"is not JSON: {snippet(response)}"
        if problem is not None:
            # The server accepted the create: it may exist although we cannot name it.
            self._session.count(Count.AMBIGUOUS)
            raise AmbiguousCreateError(
                f"{response.status_code} answer to the create {problem}",
                method="POST",
                path=kind.api_path,
                status=response.status_code,
                body=obj,
            )
        return dict(obj)

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
                raise shape_error("GET", answer, "a {results, metadata} page")
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
            raise shape_error("GET", answer, "a JSON array")
        return data

    # -- answers ---------------------------------------------------------------------

    def _object(self, method: str, path: str, answer: Answer) -> dict[str, Any]:
        data = self._json(method, path, answer)
        if not isinstance(data, dict):
            raise shape_error(method, answer, "a JSON object")
        return data

    def _json(self, method: str, path: str, answer: Answer) -> Any:
        response = answer.response
        if not response.is_success:
            raise self._status_error(method, path, answer)
        try:
            return decode(response)
        except ValueError as exc:
            raise RemoteError(
                f"{response.status_code} answer is not JSON: {snippet(response)}",
                method=method,
                path=path,
                status=response.status_code,
                body=response.text,
            ) from exc

    def _status_error(self, method: str, path: str, answer: Answer) -> RemoteError:
        message, body = describe_status(answer.response)
        if answer.attempts > 1:
            message += f" (gave up after {answer.attempts} attempts)"
        return RemoteError(
            message, method=method, path=path, status=answer.response.status_code, body=body
        )

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Answer:
        """Send through the shared HTTP layer (retries, limiter, interrupt); the body goes
        as JSON with its secrets in clear text."""
        if body is None:
            return self._session.send(method, path, params=params)
        wire = to_wire(body)
        content = json.dumps(wire, ensure_ascii=False, allow_nan=False).encode("utf-8")
        return self._session.send(
            method,
            path,
            params=params,
            content=content,
            headers={"Content-Type": "application/json"},
        )


# -- helpers (pure) ----------------------------------------------------------------------


def describe_status(response: httpx.Response) -> tuple[str, Any]:
    """(readable message, parsed body) for an error answer.

    NestJS bodies `{"message": str | [str, ...], "error": "Bad Request", "statusCode": 400}`
    become "400 Bad Request: first problem; second problem". A 401 says the token was
    rejected. Non-JSON bodies are quoted briefly (HTML pages are only named).
    """
    status = response.status_code
    reason = _phrase(response)
    try:
        body: Any = decode(response)
    except ValueError:
        body = response.text
    words = ""
    code = ""
    if isinstance(body, dict):
        words = _api_words(body.get("message"))
        error = body.get("error")
        if isinstance(error, str) and error and error.lower() != reason.lower():
            if " " in error or error[:1].isupper():
                reason = error  # a reason phrase of its own ("Bad Request")
            else:
                code = error  # a machine code ("assistant_pinned")
        if not words and not code and body:
            words = clip(json.dumps(body, ensure_ascii=False))
    elif isinstance(body, str):
        words = snippet(response)
    elif body is not None:
        words = clip(json.dumps(body, ensure_ascii=False))
    head = f"{status} {reason}" if reason else str(status)
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
    return clip(json.dumps(message, ensure_ascii=False))


def _phrase(response: httpx.Response) -> str:
    return phrase(response.status_code, response.reason_phrase)


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
