"""VapiClient against the emulator over a real socket: paging, 429s, ambiguous creates, 5xx.

The emulator's fault clock and the client's sleep are one fake clock, so a `Retry-After`
is honoured without waiting in real time: the client sleeping is what refills the
emulator's rate-limit bucket.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from provisioner.emulator import FaultProfile, VapiEmulator, running_server
from provisioner.emulator.store import format_timestamp
from provisioner.errors import AmbiguousCreateError
from provisioner.kinds import ASSISTANT, INSIGHT
from provisioner.remote.client import LIST_LIMIT, RequestEvent, VapiClient
from tests.emulator.conftest import assistant_body, insight_body

TOKEN = "test-private-key"


class SharedClock:
    """Monotonic seconds that move only when the client sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += max(0.0, seconds)


@pytest.fixture
def clock() -> SharedClock:
    return SharedClock()


@pytest.fixture
def app(clock: SharedClock) -> VapiEmulator:
    return VapiEmulator(token=TOKEN, clock=clock, sleep=clock.sleep)


@pytest.fixture
def url(app: VapiEmulator) -> Iterator[str]:
    with running_server(app) as base:
        yield base


@pytest.fixture
def events() -> list[RequestEvent]:
    return []


@pytest.fixture
def client(url: str, clock: SharedClock, events: list[RequestEvent]) -> Iterator[VapiClient]:
    with VapiClient(
        url, TOKEN, sleep=clock.sleep, on_event=events.append, rng=random.Random(3)
    ) as c:
        yield c


def _stamp(base: datetime, ms: int) -> str:
    return format_timestamp(int(base.timestamp() * 1000) + ms)


def test_lists_page_back_by_created_at_beyond_the_cap(
    app: VapiEmulator, client: VapiClient
) -> None:
    total = 2 * LIST_LIMIT + 300
    base = datetime(2026, 1, 1, tzinfo=UTC)
    boundary = total - LIST_LIMIT  # index of the oldest object on the first page
    with app.store.transaction() as tx:
        for i in range(total):
            obj = tx.insert("assistant", {"name": f"A{i}"})
            # Five objects share the millisecond at the first page's lower edge.
            same = boundary - 2 <= i <= boundary + 2
            obj["createdAt"] = obj["updatedAt"] = _stamp(base, boundary if same else i)
    result = client.list_all(ASSISTANT)
    assert result.complete
    assert len(result.items) == total
    assert {o["name"] for o in result.items} == {f"A{i}" for i in range(total)}
    # Three pages of at most 1000, each bounded by createdAtLt, nothing more.
    assert client.stats.by_method == {"GET": 3}
    assert app.stats()["by_method"] == {"GET": 3}


def test_paged_kinds_list_by_page(app: VapiEmulator, client: VapiClient) -> None:
    with app.store.transaction() as tx:
        for i in range(LIST_LIMIT + 5):
            tx.insert("insight", {**insight_body(f"I{i}")})
    result = client.list_all(INSIGHT)
    assert result.complete
    assert len(result.items) == LIST_LIMIT + 5
    assert client.stats.by_method == {"GET": 2}


def test_a_429_retry_after_is_honoured(
    app: VapiEmulator, client: VapiClient, clock: SharedClock, events: list[RequestEvent]
) -> None:
    created = client.create(ASSISTANT, assistant_body("First"))
    app.set_faults(FaultProfile(rate_limit_rps=1.0))  # a bucket of one, now full
    assert client.get(ASSISTANT, created["id"]) is not None  # takes the one token
    clock.sleeps.clear()
    got = client.get(ASSISTANT, created["id"])  # 429, Retry-After: 1, then served
    assert got is not None and got["id"] == created["id"]
    stats = app.stats()
    assert stats["by_status"]["429"] == 1
    assert client.stats.rate_limited == 1
    retry = [e for e in events if e.kind == "retry"]
    assert [(e.status, e.reason, e.delay) for e in retry] == [(429, "rate limited", 1.0)]
    # The client waited the whole second the server asked for before asking again.
    assert sum(clock.sleeps) >= 1.0
    assert client.limiter.stats.pauses == 1


def test_an_ambiguous_create_raises_and_is_never_resent(
    app: VapiEmulator, client: VapiClient
) -> None:
    # Performed, then answered 502 or dropped: both modes occur over a few creates.
    app.set_faults(FaultProfile(p_ambiguous_post=1.0, seed=11))
    for i in range(6):
        with pytest.raises(AmbiguousCreateError) as info:
            client.create(ASSISTANT, assistant_body(f"Maybe {i}"))
        assert info.value.method == "POST"
        assert info.value.path == "/assistant"
    # Every create was sent once and carried out: the caller must look before resending.
    assert client.stats.by_method == {"POST": 6}
    assert client.stats.ambiguous_creates == 6
    assert len(app.store.objects("assistant")) == 6
    assert app.stats()["dropped"] > 0 and app.stats()["by_status"].get("502", 0) > 0


def test_a_get_is_retried_after_a_server_error(
    app: VapiEmulator, url: str, clock: SharedClock
) -> None:
    events: list[RequestEvent] = []

    def heal(event: RequestEvent) -> None:
        events.append(event)
        app.set_faults(FaultProfile())  # the server recovers while the client backs off

    with VapiClient(url, TOKEN, sleep=clock.sleep, on_event=heal) as client:
        created = client.create(ASSISTANT, assistant_body("Solid"))
        app.set_faults(FaultProfile(p_5xx=1.0, seed=5))
        got = client.get(ASSISTANT, created["id"])
    assert got is not None and got["name"] == "Solid"
    assert client.stats.server_errors == 1
    assert client.stats.retries == 1
    assert [e.status for e in events if e.kind == "retry"][0] in (500, 502, 503)
    assert app.stats()["by_method"]["GET"] == 2


def test_created_at_bounds_are_in_the_apis_form(app: VapiEmulator, client: VapiClient) -> None:
    # A page boundary stamp is sent as `...T12:00:00.001Z` and the emulator parses it.
    base = datetime(2026, 3, 17, 12, 0, tzinfo=UTC)
    with app.store.transaction() as tx:
        for i in range(LIST_LIMIT + 1):
            obj = tx.insert("assistant", {"name": f"B{i}"})
            stamp = base + timedelta(milliseconds=i)
            obj["createdAt"] = obj["updatedAt"] = format_timestamp(int(stamp.timestamp() * 1000))
    result = client.list_all(ASSISTANT)
    assert result.complete and len(result.items) == LIST_LIMIT + 1
    assert app.stats()["by_status"] == {"200": 2}
