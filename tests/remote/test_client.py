"""VapiClient against `httpx.MockTransport` handlers: retries, fault cases, paging, errors."""

from __future__ import annotations

import json
import random
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from provisioner import __version__
from provisioner.errors import AmbiguousCreateError, RemoteError, RemoteTransportError
from provisioner.kinds import ASSISTANT, BOARD, INSIGHT, PHONE_NUMBER, STRUCTURED_OUTPUT
from provisioner.remote.client import ListResult, RequestEvent, VapiClient
from provisioner.remote.limiter import RateLimiter
from provisioner.remote.retry import RetryPolicy
from provisioner.values import Sensitive

BASE = "https://api.test"
Handler = Callable[[httpx.Request], httpx.Response]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Harness:
    """A client on a MockTransport, a fake clock, and what was sent and reported."""

    def __init__(self, handler: Handler, *, retry: RetryPolicy | None = None) -> None:
        self.clock = FakeClock()
        self.events: list[RequestEvent] = []
        self.requests: list[httpx.Request] = []
        self.limiter = RateLimiter(
            initial_rps=1000.0, max_rps=1000.0, clock=self.clock, sleep=self.clock.sleep
        )

        def record(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return handler(request)

        self.client = VapiClient(
            BASE,
            "tok-123",
            transport=httpx.MockTransport(record),
            retry=retry or RetryPolicy(),
            limiter=self.limiter,
            on_event=self.events.append,
            sleep=self.clock.sleep,
            rng=random.Random(7),
        )

    @property
    def sleeps(self) -> list[float]:
        return self.clock.sleeps


def sequence(*steps: httpx.Response | type[Exception]) -> Handler:
    """A handler answering with each step in turn (exception classes are raised)."""
    queue: Iterator[httpx.Response | type[Exception]] = iter(steps)

    def handler(request: httpx.Request) -> httpx.Response:
        step = next(queue)
        if isinstance(step, type):
            raise step("simulated", request=request)  # type: ignore[call-arg]
        return step

    return handler


def ok(body: Any = None, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body if body is not None else {"id": "a1"}, headers=headers)


def err(status: int, body: Any = None, **headers: str) -> httpx.Response:
    if body is None:
        return httpx.Response(status, headers=headers)
    if isinstance(body, str):
        return httpx.Response(status, text=body, headers=headers)
    return httpx.Response(status, json=body, headers=headers)


def nest(status: int, error: str, message: str | list[str]) -> httpx.Response:
    return err(status, {"message": message, "error": error, "statusCode": status})


# -- requests on the wire ---------------------------------------------------------------


def test_sends_auth_user_agent_and_json() -> None:
    h = Harness(sequence(ok({"id": "a1", "name": "x"}, 201)))
    created = h.client.create(ASSISTANT, {"name": "x"})
    assert created == {"id": "a1", "name": "x"}
    (req,) = h.requests
    assert req.method == "POST"
    assert str(req.url) == f"{BASE}/assistant"
    assert req.headers["Authorization"] == "Bearer tok-123"
    assert req.headers["User-Agent"] == f"provisioner/{__version__}"
    assert req.headers["Content-Type"] == "application/json"
    assert json.loads(req.content) == {"name": "x"}


def test_secrets_are_unwrapped_on_the_wire_only() -> None:
    h = Harness(sequence(ok({"id": "p1"}, 201)))
    body = {
        "provider": "twilio",
        "twilioAuthToken": Sensitive("s3cret"),
        "hooks": [{"headers": {"X-Key": Sensitive("k")}}],
    }
    h.client.create(PHONE_NUMBER, body)
    sent = json.loads(h.requests[0].content)
    assert sent["twilioAuthToken"] == "s3cret"
    assert sent["hooks"] == [{"headers": {"X-Key": "k"}}]
    assert isinstance(body["twilioAuthToken"], Sensitive)  # the caller's body is untouched


def test_crud_paths_and_results() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        if method == "GET" and path == "/assistant/a1":
            return ok({"id": "a1"})
        if method == "GET" and path == "/assistant/gone":
            return nest(404, "Not Found", "Assistant not found")
        if method == "PATCH":
            return ok({"id": "s1", **json.loads(request.content)})
        if method == "DELETE" and path == "/reporting/board/b1":
            return ok({"id": "b1"})
        if method == "DELETE":
            return nest(404, "Not Found", "Board not found")
        raise AssertionError(f"unexpected {method} {path}")

    h = Harness(handler)
    assert h.client.get(ASSISTANT, "a1") == {"id": "a1"}
    assert h.client.get(ASSISTANT, "gone") is None
    assert h.client.update(STRUCTURED_OUTPUT, "s1", {"name": "n"}) == {"id": "s1", "name": "n"}
    assert h.client.delete(BOARD, "b1") is True
    assert h.client.delete(BOARD, "b2") is False
    patch = h.requests[2]
    assert patch.url.path == "/structured-output/s1"
    assert patch.url.query == b""  # no schemaOverride
    assert h.sleeps == []  # a 404 is an answer, not a reason to retry


def test_ids_are_escaped_into_the_path() -> None:
    h = Harness(sequence(ok({"id": "x"})))
    h.client.get(ASSISTANT, "../phone-number/x?y")
    assert h.requests[0].url.raw_path == b"/assistant/..%2Fphone-number%2Fx%3Fy"


# -- retries ----------------------------------------------------------------------------


def test_get_rides_out_429_503_and_timeouts() -> None:
    h = Harness(
        sequence(
            err(429, {"message": "Rate limit exceeded"}),
            err(503),
            httpx.ReadTimeout,
            httpx.ConnectError,
            httpx.RemoteProtocolError,
            ok({"id": "a1"}),
        )
    )
    assert h.client.get(ASSISTANT, "a1") == {"id": "a1"}
    assert [e.kind for e in h.events] == ["retry"] * 5
    assert [e.reason for e in h.events] == [
        "rate limited",
        "server error 503",
        "timeout",
        "cannot connect",
        "connection dropped",
    ]
    assert [e.status for e in h.events] == [429, 503, None, None, None]
    assert [e.attempt for e in h.events] == [2, 3, 4, 5, 6]
    assert [e.delay for e in h.events] == h.sleeps[: len(h.events)]
    stats = h.client.stats
    assert stats.requests == 6
    assert stats.by_method == {"GET": 6}
    assert stats.retries == 5
    assert stats.rate_limited == 1
    assert stats.server_errors == 1
    assert stats.transport_errors == 3
    assert h.limiter.stats.rate_limited == 1


def test_backoff_grows_with_full_jitter() -> None:
    h = Harness(sequence(*[err(502)] * 5, ok()), retry=RetryPolicy(base_delay=1.0))
    h.client.get(ASSISTANT, "a1")
    for attempt, slept in enumerate(h.sleeps, start=1):
        assert 0.0 <= slept <= 2.0 ** (attempt - 1)


def test_get_gives_up_after_max_attempts() -> None:
    h = Harness(sequence(*[err(503, "upstream down")] * 3), retry=RetryPolicy(max_attempts=3))
    with pytest.raises(RemoteError) as info:
        h.client.get(ASSISTANT, "a1")
    exc = info.value
    assert exc.status == 503
    assert exc.method == "GET"
    assert exc.path == "/assistant/a1"
    assert exc.message == "503 Service Unavailable: upstream down (gave up after 3 attempts)"
    assert len(h.requests) == 3


@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
def test_updates_and_deletes_are_retried_like_gets(method: str) -> None:
    h = Harness(sequence(httpx.ReadTimeout, err(500), ok({"id": "a1"})))
    if method == "PATCH":
        assert h.client.update(ASSISTANT, "a1", {"name": "n"}) == {"id": "a1"}
    else:
        assert h.client.delete(ASSISTANT, "a1") is True
    assert len(h.requests) == 3


def test_delete_answered_404_after_a_retry_counts_as_done() -> None:
    h = Harness(sequence(err(503), nest(404, "Not Found", "Assistant not found")))
    assert h.client.delete(ASSISTANT, "a1") is True  # the first attempt did it
    h2 = Harness(sequence(err(429), nest(404, "Not Found", "Assistant not found")))
    assert h2.client.delete(ASSISTANT, "a1") is False  # a 429 did nothing: it was gone


def test_4xx_is_never_retried() -> None:
    h = Harness(sequence(nest(409, "Conflict", "in use")))
    with pytest.raises(RemoteError):
        h.client.update(ASSISTANT, "a1", {})
    assert len(h.requests) == 1
    assert h.sleeps == []


# -- creates: crash and duplicate safety ------------------------------------------------


def test_post_502_is_ambiguous_and_not_retried() -> None:
    h = Harness(sequence(nest(502, "Bad Gateway", "upstream reset")))
    with pytest.raises(AmbiguousCreateError) as info:
        h.client.create(ASSISTANT, {"name": "x"})
    assert info.value.status == 502
    assert info.value.method == "POST"
    assert info.value.path == "/assistant"
    assert "502 Bad Gateway: upstream reset" in info.value.message
    assert len(h.requests) == 1
    assert h.sleeps == []
    assert h.client.stats.ambiguous_creates == 1


@pytest.mark.parametrize(
    "error",
    [httpx.ReadTimeout, httpx.WriteTimeout, httpx.RemoteProtocolError, httpx.ReadError],
)
def test_post_that_may_have_arrived_is_ambiguous(error: type[Exception]) -> None:
    h = Harness(sequence(error))
    with pytest.raises(AmbiguousCreateError) as info:
        h.client.create(ASSISTANT, {"name": "x"})
    assert isinstance(info.value.__cause__, error)
    assert len(h.requests) == 1


@pytest.mark.parametrize("status", [500, 503, 504])
def test_post_5xx_is_ambiguous(status: int) -> None:
    h = Harness(sequence(err(status)))
    with pytest.raises(AmbiguousCreateError):
        h.client.create(INSIGHT, {"type": "bar"})
    assert len(h.requests) == 1


@pytest.mark.parametrize("error", [httpx.ConnectError, httpx.ConnectTimeout])
def test_post_that_never_left_is_retried(error: type[Exception]) -> None:
    h = Harness(sequence(error, error, ok({"id": "a1"}, 201)))
    assert h.client.create(ASSISTANT, {"name": "x"}) == {"id": "a1"}
    assert len(h.requests) == 3
    assert [e.reason for e in h.events] == [
        "cannot connect" if error is httpx.ConnectError else "timeout"
    ] * 2


def test_post_connect_failure_gives_up_with_sent_false() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    h = Harness(refuse, retry=RetryPolicy(max_attempts=2))
    with pytest.raises(RemoteTransportError) as info:
        h.client.create(ASSISTANT, {"name": "x"})
    assert not isinstance(info.value, AmbiguousCreateError)
    assert info.value.sent is False
    assert info.value.message == (
        "cannot connect to https://api.test: connection refused; check VAPI_BASE_URL "
        "(gave up after 2 attempts)"
    )


def test_post_429_is_retried_honouring_retry_after() -> None:
    h = Harness(
        sequence(
            err(429, {"message": "Rate limit exceeded"}, **{"Retry-After": "2"}),
            ok({"id": "a1"}, 201),
        )
    )
    assert h.client.create(ASSISTANT, {"name": "x"}) == {"id": "a1"}
    assert h.sleeps == [2.0]  # the limiter's pause had ended by then: no second wait
    (event,) = h.events
    assert (event.kind, event.method, event.status, event.delay) == ("retry", "POST", 429, 2.0)
    assert event.describe() == "rate limited, retrying in 2 s (POST /assistant)"
    assert h.limiter.stats.pauses == 1
    assert h.client.stats.rate_limited == 1


def test_retry_after_as_http_date() -> None:
    when = (datetime.now(UTC) + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    h = Harness(sequence(err(429, **{"Retry-After": when}), ok({"id": "a1"}, 201)))
    h.client.create(ASSISTANT, {})
    assert 27.0 <= h.sleeps[0] <= 30.0


def test_429_pauses_other_requests_through_the_shared_limiter() -> None:
    h = Harness(sequence(ok({"id": "a1"})))
    h.limiter.record_rate_limited(retry_after=5.0)  # another thread was told to wait
    h.client.get(ASSISTANT, "a1")
    (event,) = h.events
    assert (event.kind, event.reason, event.delay, event.attempt) == (
        "wait",
        "rate limited",
        5.0,
        1,
    )
    assert h.clock.now >= 5.0


def test_create_answer_without_an_id_is_ambiguous() -> None:
    h = Harness(sequence(httpx.Response(201, text="<html>oops</html>")))
    with pytest.raises(AmbiguousCreateError):
        h.client.create(ASSISTANT, {})
    h2 = Harness(sequence(ok({"name": "no id"}, 201)))
    with pytest.raises(AmbiguousCreateError, match="has no id"):
        h2.client.create(ASSISTANT, {})


def test_default_limiter_follows_an_injected_sleep() -> None:
    # No limiter given, a fake sleep: the Retry-After pause must end with the fake sleep
    # rather than spin until real time catches up.
    slept: list[float] = []
    client = VapiClient(
        BASE,
        "t",
        transport=httpx.MockTransport(
            sequence(err(429, **{"Retry-After": "30"}), ok({"id": "a1"}, 201))
        ),
        sleep=slept.append,
    )
    with client:
        assert client.create(ASSISTANT, {}) == {"id": "a1"}
    assert slept == [30.0]


# -- error messages ---------------------------------------------------------------------


def test_nest_validation_errors_read_like_the_api() -> None:
    h = Harness(
        sequence(
            nest(
                400,
                "Bad Request",
                [
                    "property foo should not exist",
                    "name must be shorter than or equal to 40 characters",
                ],
            )
        )
    )
    with pytest.raises(RemoteError) as info:
        h.client.create(ASSISTANT, {"foo": 1})
    assert str(info.value) == (
        "400 Bad Request: property foo should not exist; "
        "name must be shorter than or equal to 40 characters"
    )
    assert info.value.status == 400
    assert info.value.body["statusCode"] == 400
    assert not isinstance(info.value, AmbiguousCreateError)


def test_401_says_the_token_was_rejected() -> None:
    h = Harness(
        sequence(
            nest(
                401,
                "Unauthorized",
                "Invalid Key. Hot tip, you may be using the private key instead of the public"
                " key, or vice versa.",
            )
        )
    )
    with pytest.raises(RemoteError) as info:
        h.client.list_all(ASSISTANT)
    message = info.value.message
    assert message.startswith("401 Unauthorized: the API rejected the token (Invalid Key.")
    assert message.endswith("check VAPI_TOKEN")


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (nest(404, "Not Found", "Assistant not found"), "404 Not Found: Assistant not found"),
        (
            err(409, {"error": "assistant_pinned", "message": "pinned by squad s1"}),
            "409 Conflict (assistant_pinned): pinned by squad s1",
        ),
        (err(422, "  plain\n text  "), "422 Unprocessable Entity: plain text"),
        (
            httpx.Response(
                403,
                text="<html><body>Cloudflare</body></html>",
                headers={"Content-Type": "text/html"},
            ),
            # Not the API at all (a proxy, a login page): the URL and the setting to check.
            "PATCH https://api.test/assistant/a1 was answered 403 Forbidden with an HTML "
            "page (36 bytes), not the API's JSON: check VAPI_BASE_URL",
        ),
        (err(418), "418 I'm a Teapot"),
        (err(400, {"weird": True}), '400 Bad Request: {"weird": true}'),
        (err(400, "x" * 500), "400 Bad Request: " + "x" * 197 + "..."),
    ],
)
def test_error_message_formatting(response: httpx.Response, expected: str) -> None:
    h = Harness(sequence(response))
    with pytest.raises(RemoteError) as info:
        h.client.update(ASSISTANT, "a1", {})
    assert info.value.message == expected


def test_timeout_message_names_the_request() -> None:
    h = Harness(sequence(httpx.ReadTimeout), retry=RetryPolicy(max_attempts=1))
    with pytest.raises(RemoteTransportError) as info:
        h.client.get(ASSISTANT, "a1")
    assert info.value.message == (
        "timed out after 10 s: GET https://api.test/assistant/a1; check VAPI_BASE_URL"
    )
    assert info.value.sent is True
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)


def test_no_httpx_error_escapes() -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.LocalProtocolError("bad header", request=request)

    h = Harness(broken)
    with pytest.raises(RemoteTransportError):
        h.client.get(ASSISTANT, "a1")
    assert len(h.requests) == 1  # our own bug: not retried
    with VapiClient("ftp://nowhere", "t") as bad:
        with pytest.raises(RemoteTransportError, match="invalid URL"):
            bad.get(ASSISTANT, "a1")


def test_non_json_success_is_a_remote_error() -> None:
    h = Harness(sequence(httpx.Response(200, text="not json")))
    with pytest.raises(RemoteError, match="not JSON: not json"):
        h.client.get(ASSISTANT, "a1")


# -- listing ----------------------------------------------------------------------------


def _stamp(i: int, base: datetime = datetime(2026, 1, 1, tzinfo=UTC)) -> str:
    return (base + timedelta(seconds=i)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def array_api(items: list[dict[str, Any]]) -> Handler:
    """GET /assistant as the API does it: newest first, `limit`, createdAt filters."""

    def handler(request: httpx.Request) -> httpx.Response:
        q = request.url.params
        rows = sorted(items, key=lambda o: o["createdAt"], reverse=True)
        if "createdAtLt" in q:
            bound = datetime.fromisoformat(q["createdAtLt"])
            rows = [o for o in rows if datetime.fromisoformat(o["createdAt"]) < bound]
        return httpx.Response(200, json=rows[: int(q.get("limit", "100"))])

    return handler


def test_array_list_pages_backwards_through_2500() -> None:
    items = [{"id": f"a{i}", "createdAt": _stamp(i)} for i in range(2500)]
    h = Harness(array_api(items))
    result = h.client.list_all(ASSISTANT)
    assert isinstance(result, ListResult)
    assert result.complete is True
    assert sorted(o["id"] for o in result.items) == sorted(o["id"] for o in items)
    assert len(result.items) == 2500
    assert [r.url.params.get("limit") for r in h.requests] == ["1000"] * 3
    assert "createdAtLt" not in h.requests[0].url.params
    # Page 2 starts just past the oldest object of page 1 (a1500 at 1500 s).
    assert h.requests[1].url.params["createdAtLt"] == "2026-01-01T00:25:00.001Z"
    assert h.requests[2].url.params["createdAtLt"] == "2026-01-01T00:08:21.001Z"


def test_array_list_keeps_objects_sharing_the_boundary_millisecond() -> None:
    # 40 objects created in the same millisecond straddle the first page boundary.
    items = [{"id": f"a{i}", "createdAt": _stamp(i)} for i in range(1200)]
    for i in range(180, 220):
        items[i]["createdAt"] = _stamp(200)
    h = Harness(array_api(items))
    result = h.client.list_all(ASSISTANT)
    assert result.complete
    assert len(result.items) == 1200


def test_array_list_of_exactly_1000_checks_for_more() -> None:
    items = [{"id": f"a{i}", "createdAt": _stamp(i)} for i in range(1000)]
    h = Harness(array_api(items))
    result = h.client.list_all(PHONE_NUMBER)
    assert result.complete
    assert len(result.items) == 1000
    assert len(h.requests) == 2


def test_array_list_that_does_not_move_is_incomplete() -> None:
    page = [{"id": f"a{i}", "createdAt": _stamp(i)} for i in range(1000)]
    h = Harness(lambda request: httpx.Response(200, json=page))  # ignores createdAtLt
    result = h.client.list_all(ASSISTANT)
    assert result.complete is False
    assert len(result.items) == 1000
    assert len(h.requests) == 2


def test_array_list_walks_forward_if_the_server_lists_oldest_first() -> None:
    items = [{"id": f"a{i}", "createdAt": _stamp(i)} for i in range(1500)]

    def oldest_first(request: httpx.Request) -> httpx.Response:
        q = request.url.params
        rows = items
        if "createdAtGt" in q:
            bound = datetime.fromisoformat(q["createdAtGt"])
            rows = [o for o in rows if datetime.fromisoformat(o["createdAt"]) > bound]
        return httpx.Response(200, json=rows[:1000])

    result = Harness(oldest_first).client.list_all(ASSISTANT)
    assert result.complete
    assert len(result.items) == 1500


def test_list_page_failure_raises_rather_than_returning_part() -> None:
    items = [{"id": f"a{i}", "createdAt": _stamp(i)} for i in range(1500)]
    good = array_api(items)
    calls = {"n": 0}

    def flaky(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        return good(request) if calls["n"] == 1 else err(500, "boom")

    h = Harness(flaky, retry=RetryPolicy(max_attempts=2))
    with pytest.raises(RemoteError, match="500 Internal Server Error: boom"):
        h.client.list_all(ASSISTANT)


def test_array_list_rejects_an_envelope() -> None:
    h = Harness(sequence(ok({"results": []})))
    with pytest.raises(RemoteError, match="not a JSON array"):
        h.client.list_all(ASSISTANT)


def paged_api(items: list[dict[str, Any]], *, total_pages: bool = True) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        q = request.url.params
        page, limit = int(q["page"]), int(q["limit"])
        rows = items[(page - 1) * limit : page * limit]
        meta: dict[str, Any] = {
            "itemsPerPage": limit,
            "totalItems": len(items),
            "currentPage": page,
        }
        if total_pages:
            meta["totalPages"] = -(-len(items) // limit)
        return httpx.Response(200, json={"results": rows, "metadata": meta})

    return handler


@pytest.mark.parametrize(("count", "requests"), [(2100, 3), (2000, 2), (0, 1), (999, 1)])
def test_paged_list_follows_the_envelope(count: int, requests: int) -> None:
    items = [{"id": f"i{i}"} for i in range(count)]
    h = Harness(paged_api(items))
    result = h.client.list_all(INSIGHT)
    assert result.complete
    assert [o["id"] for o in result.items] == [o["id"] for o in items]
    assert len(h.requests) == requests
    assert [r.url.params["page"] for r in h.requests] == [str(n + 1) for n in range(requests)]
    assert all(r.url.params["limit"] == "1000" for r in h.requests)


def test_paged_list_without_total_pages_uses_total_items() -> None:
    items = [{"id": f"i{i}"} for i in range(2000)]
    h = Harness(paged_api(items, total_pages=False))
    assert len(h.client.list_all(STRUCTURED_OUTPUT).items) == 2000
    assert len(h.requests) == 2


def test_paged_list_dedupes_objects_that_shift_between_pages() -> None:
    pages = {
        "1": [{"id": f"i{i}"} for i in range(1000)],
        "2": [{"id": f"i{i}"} for i in range(999, 1500)],  # one object moved down a page
    }

    def handler(request: httpx.Request) -> httpx.Response:
        page = request.url.params["page"]
        meta = {"currentPage": int(page), "totalPages": 2, "itemsPerPage": 1000}
        return httpx.Response(200, json={"results": pages[page], "metadata": meta})

    result = Harness(handler).client.list_all(BOARD)
    assert result.complete
    assert len(result.items) == 1500


# -- threads ----------------------------------------------------------------------------


def test_one_client_serves_many_threads() -> None:
    lock = threading.Lock()
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        with lock:
            seen.append(request.url.path)
        if len(seen) % 7 == 0:
            return err(503)
        return ok({"id": request.url.path.rsplit("/", 1)[1]})

    h = Harness(handler)
    results: list[dict[str, Any] | None] = []

    def worker(n: int) -> None:
        for i in range(25):
            got = h.client.get(ASSISTANT, f"t{n}-{i}")
            with lock:
                results.append(got)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 200
    assert all(r is not None for r in results)
    stats = h.client.stats
    assert stats.requests == len(seen)
    assert stats.by_method["GET"] == len(seen)
    assert stats.requests == 200 + stats.retries


@pytest.mark.parametrize(
    ("kind", "delay", "text"),
    [
        ("retry", 2.0, "rate limited, retrying in 2 s (GET /assistant)"),
        ("retry", 0.7321, "rate limited, retrying in 0.73 s (GET /assistant)"),
        ("wait", 31.4, "rate limited, waiting 31 s (GET /assistant)"),
    ],
)
def test_event_descriptions(kind: str, delay: float, text: str) -> None:
    event = RequestEvent(kind, "GET", "/assistant", 429, "rate limited", delay, 2)  # type: ignore[arg-type]
    assert event.describe() == text


def test_refused_connection_on_a_real_socket() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    slept: list[float] = []
    with VapiClient(
        f"http://127.0.0.1:{port}", "t", retry=RetryPolicy(max_attempts=2), sleep=slept.append
    ) as client:
        with pytest.raises(RemoteTransportError) as info:
            client.create(ASSISTANT, {"name": "x"})
    assert info.value.message == (
        f"cannot connect to http://127.0.0.1:{port}: connection refused; check VAPI_BASE_URL "
        "(gave up after 2 attempts)"
    )
    assert info.value.sent is False
    assert len(slept) == 1


@pytest.mark.parametrize(
    "error", [httpx.ConnectError, httpx.LocalProtocolError, httpx.ReadError, httpx.ProxyError]
)
def test_no_header_value_is_ever_echoed(error: type[Exception]) -> None:
    # httpx quotes header values in some errors ("Illegal header value b'Bearer ...'").
    token = "sk-live-0123456789"

    def leak(request: httpx.Request) -> httpx.Response:
        raise error(f"Illegal header value b'Bearer {token}'", request=request)  # type: ignore[call-arg]

    client = VapiClient(
        "https://api.test",
        token,
        transport=httpx.MockTransport(leak),
        retry=RetryPolicy(max_attempts=1),
    )
    with client, pytest.raises(RemoteError) as info:
        client.get(ASSISTANT, "a1")
    assert token not in str(info.value) and "Bearer" not in str(info.value)
