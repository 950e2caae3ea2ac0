"""refresh_state with the real client on the in-process emulator: which requests it sends."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from provisioner.emulator import SandboxTransport, VapiEmulator
from provisioner.emulator.store import format_timestamp
from provisioner.kinds import OWNER_MARKER_KEY
from provisioner.refresh import owner_marker, refresh_state
from provisioner.remote.client import VapiClient
from provisioner.state.model import ResourceState, ResourceStatus, StateFile

MISSING_ID = "00000000-0000-4000-8000-000000000000"


class Recording(SandboxTransport):
    def __init__(self, app: VapiEmulator) -> None:
        super().__init__(app=app)
        self.sent: list[tuple[str, str, dict[str, str]]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((request.method, request.url.path, dict(request.url.params)))
        return super().handle_request(request)


@pytest.fixture
def app() -> VapiEmulator:
    return VapiEmulator()


@pytest.fixture
def transport(app: VapiEmulator) -> Recording:
    return Recording(app)


@pytest.fixture
def client(transport: Recording) -> Iterator[VapiClient]:
    with VapiClient("http://sandbox.test", "key", transport=transport) as c:
        yield c


def seed(app: VapiEmulator, kind: str, count: int, **fields: Any) -> list[dict[str, Any]]:
    """`count` objects, oldest first, one millisecond apart."""
    out = []
    with app.store.transaction() as tx:
        for i in range(count):
            obj = tx.insert(kind, {"name": f"{kind} {i}", **fields})
            obj["createdAt"] = obj["updatedAt"] = format_timestamp(1_767_225_600_000 + i)
            out.append(dict(obj))
    return out


def state_of(entries: dict[str, ResourceState]) -> StateFile:
    state = StateFile.new()
    state.resources.update(entries)
    return state


def paths(transport: Recording) -> list[str]:
    return sorted(f"{m} {p}" for m, p, _ in transport.sent)


def test_one_list_per_kind_and_no_get_when_lists_are_complete(
    app: VapiEmulator, client: VapiClient, transport: Recording
) -> None:
    assistants = seed(app, "assistant", 30)
    insights = seed(app, "insight", 4)
    state = state_of(
        {
            **{
                f"assistant.a{i}": ResourceState("assistant", o["id"])
                for i, o in enumerate(assistants)
            },
            **{f"insight.i{i}": ResourceState("insight", o["id"]) for i, o in enumerate(insights)},
        }
    )
    live = refresh_state(client, state, parallelism=10)
    assert paths(transport) == ["GET /assistant", "GET /reporting/insight"]
    assert live.objects["assistant.a7"] is not None
    assert live.objects["assistant.a7"]["id"] == assistants[7]["id"]
    assert len(live.objects) == 34 and all(live.objects.values())
    assert list(live.objects) == list(state.resources)  # in state order


def test_missing_from_a_complete_list_is_confirmed_by_get(
    app: VapiEmulator, client: VapiClient, transport: Recording
) -> None:
    [kept] = seed(app, "assistant", 1)
    state = state_of(
        {
            "assistant.kept": ResourceState("assistant", kept["id"]),
            "assistant.gone": ResourceState("assistant", MISSING_ID),
        }
    )
    live = refresh_state(client, state)
    assert paths(transport) == ["GET /assistant", f"GET /assistant/{MISSING_ID}"]
    assert live.objects["assistant.gone"] is None
    assert live.objects["assistant.kept"] is not None


def test_paging_stops_once_few_ids_are_unseen(
    app: VapiEmulator, client: VapiClient, transport: Recording
) -> None:
    # 2500 assistants; we manage the 3 newest and 2 on the last page: after the first
    # page only 2 are unseen, which two GETs read in one round trip.
    objs = seed(app, "assistant", 2500)
    managed = [*objs[-3:], *objs[:2]]
    state = state_of(
        {f"assistant.a{i}": ResourceState("assistant", o["id"]) for i, o in enumerate(managed)}
    )
    live = refresh_state(client, state, parallelism=4)
    lists = [s for s in transport.sent if s[1] == "/assistant"]
    assert len(lists) == 1
    gets = sorted(p for m, p, _ in transport.sent if p != "/assistant")
    assert gets == sorted(f"/assistant/{o['id']}" for o in objs[:2])
    assert all(live.objects[f"assistant.a{i}"] is not None for i in range(5))


def test_paging_goes_on_while_many_ids_are_unseen(
    app: VapiEmulator, client: VapiClient, transport: Recording
) -> None:
    objs = seed(app, "assistant", 2100)
    managed = objs[:50]  # the oldest: on the last page
    state = state_of(
        {f"assistant.a{i}": ResourceState("assistant", o["id"]) for i, o in enumerate(managed)}
    )
    live = refresh_state(client, state, parallelism=10)
    lists = [params for m, p, params in transport.sent if p == "/assistant"]
    assert len(lists) == 3
    assert "createdAtLt" in lists[1] and "createdAtLt" in lists[2]
    assert len(transport.sent) == 3  # no GET by ID
    assert all(live.objects.values())


def test_an_interrupted_create_is_looked_for_in_the_whole_list(
    app: VapiEmulator, client: VapiClient, transport: Recording
) -> None:
    state = StateFile.new()
    marker = owner_marker("assistant.new", state.lineage)
    seed(app, "assistant", 1200)
    # The object the interrupted run created is old enough to be on the second page.
    with app.store.transaction() as tx:
        obj = tx.insert("assistant", {"name": "New", "metadata": {OWNER_MARKER_KEY: marker}})
        obj["createdAt"] = obj["updatedAt"] = format_timestamp(1_767_225_599_000)
    intent = {"started_at": "2026-01-01T00:00:00+00:00", "match": {"name": "New"}, "marker": marker}
    state.resources["assistant.new"] = ResourceState(
        "assistant", None, status=ResourceStatus.CREATING, intent=intent
    )
    live = refresh_state(client, state)
    assert len(transport.sent) == 2  # both pages, no early stop
    assert live.adopted["assistant.new"]["id"] == obj["id"]


def test_an_empty_state_sends_nothing(client: VapiClient, transport: Recording) -> None:
    live = refresh_state(client, StateFile.new())
    assert transport.sent == []
    assert not live.objects and not live.adopted
