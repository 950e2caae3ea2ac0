"""Refresh: read the live objects behind the state, with the fewest round trips.

One list call per kind (lists are capped and may be incomplete, so a missing ID is
confirmed with a GET before anything is called deleted), run concurrently per kind.
Creates whose outcome was never recorded (status CREATING) are looked for and adopted,
so a crash between sending a create and saving its ID never leads to a duplicate.

Read-only: sends GETs only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from provisioner.kinds import KINDS, OWNER_MARKER_KEY, ResourceKind
from provisioner.plan.differ import LiveSnapshot
from provisioner.state.model import ResourceState, ResourceStatus, StateFile

# Clock skew allowed between our record of "about to create" and the server's createdAt.
_SKEW = timedelta(minutes=10)


class ListResultLike(Protocol):
    @property
    def items(self) -> list[dict[str, Any]]: ...
    @property
    def complete(self) -> bool: ...


class ReadClient(Protocol):
    def list_all(self, kind: ResourceKind) -> ListResultLike: ...
    def get(self, kind: ResourceKind, resource_id: str) -> dict[str, Any] | None: ...


def refresh_state(client: ReadClient, state: StateFile, *, parallelism: int = 8) -> LiveSnapshot:
    """Live object (or None when gone) for every state entry; adopted in-flight creates."""
    kinds = sorted({rs.kind for rs in state.resources.values()}, key=list(KINDS).index)
    if not kinds:
        return LiveSnapshot()
    with ThreadPoolExecutor(max_workers=max(1, min(parallelism, len(kinds)))) as pool:
        listed = dict(zip(kinds, pool.map(lambda k: client.list_all(KINDS[k]), kinds), strict=True))

    objects: dict[str, dict[str, Any] | None] = {}
    adopted: dict[str, dict[str, Any]] = {}
    to_get: list[tuple[str, ResourceKind, str]] = []
    owned: set[str | None] = {rs.id for rs in state.resources.values() if rs.id}
    for addr, rs in state.resources.items():
        kind = KINDS[rs.kind]
        result = listed[rs.kind]
        by_id = {str(o.get("id")): o for o in result.items}
        if rs.status is ResourceStatus.CREATING:
            found = find_created(kind, rs.intent or {}, result.items, owned)
            if found is not None:
                adopted[addr] = found
                owned.add(str(found["id"]))
            continue
        if rs.id is None:
            continue
        if rs.id in by_id:
            objects[addr] = by_id[rs.id]
        else:
            # Never conclude "deleted" from a list: it may be capped or eventually consistent.
            to_get.append((addr, kind, rs.id))
    if to_get:
        with ThreadPoolExecutor(max_workers=max(1, min(parallelism, len(to_get)))) as pool:
            got = pool.map(lambda t: client.get(t[1], t[2]), to_get)
            for (addr, _, _), obj in zip(to_get, got, strict=True):
                objects[addr] = obj
    return LiveSnapshot(objects=objects, adopted=adopted)


def adopt_found(state: StateFile, live: LiveSnapshot) -> tuple[StateFile, LiveSnapshot]:
    """Record interrupted creates that refresh found: their IDs go into state, and what
    the interrupted run was about to send counts as applied (it is in the intent)."""
    if not live.adopted:
        return state, live
    out = state.copy()
    for addr, obj in live.adopted.items():
        prev = out.resources[addr]
        intent = prev.intent or {}
        out.resources[addr] = ResourceState(
            kind=prev.kind,
            id=str(obj["id"]),
            status=ResourceStatus.CREATED,
            applied=dict(intent.get("applied") or {}),
            depends_on=list(intent.get("depends_on") or []),
            remote_updated_at=obj.get("updatedAt"),
            extra=dict(prev.extra),
        )
    objects = {**live.objects, **live.adopted}
    return out, LiveSnapshot(objects=objects)


def creation_intent(
    kind: ResourceKind,
    wire_body: Mapping[str, Any],
    address: str,
    lineage: str,
    now: datetime,
    *,
    applied: Mapping[str, Any] | None = None,
    depends_on: Iterable[str] = (),
) -> dict[str, Any]:
    """What identifies an object we are about to create, recorded in state before the POST,
    plus what we are about to apply (secrets hashed), so an adopted object's state is whole."""
    match = {
        k: v
        for k, v in wire_body.items()
        if isinstance(v, str | int | float | bool) and k not in kind.write_only_fields
    }
    intent: dict[str, Any] = {
        "started_at": now.astimezone(UTC).isoformat(),
        "match": match,
        "applied": dict(applied or {}),
        "depends_on": list(depends_on),
    }
    if kind.owner_marker:
        intent["marker"] = owner_marker(address, lineage)
    return intent


def owner_marker(address: str, lineage: str) -> dict[str, str]:
    return {"address": address, "lineage": lineage}


def find_created(
    kind: ResourceKind,
    intent: Mapping[str, Any],
    candidates: Iterable[Mapping[str, Any]],
    owned_ids: set[str | None],
) -> dict[str, Any] | None:
    """The object an interrupted create made, if it exists: by ownership marker where the
    kind has one, else by the identifying fields recorded in the intent and creation time.
    The oldest match wins, so two interrupted runs still converge on one object."""
    marker = intent.get("marker")
    match: Mapping[str, Any] = intent.get("match") or {}
    started = _parse_time(intent.get("started_at"))
    found: list[Mapping[str, Any]] = []
    for obj in candidates:
        if str(obj.get("id")) in owned_ids:
            continue
        if marker is not None:
            meta = obj.get("metadata")
            if isinstance(meta, Mapping) and meta.get(OWNER_MARKER_KEY) == marker:
                found.append(obj)
            continue
        if not match or any(obj.get(k) != v for k, v in match.items()):
            continue
        created = _parse_time(obj.get("createdAt"))
        if started is not None and created is not None and created < started - _SKEW:
            continue
        found.append(obj)
    if not found:
        return None
    oldest = min(found, key=lambda o: str(o.get("createdAt", "")))
    return dict(oldest)


def lookup_created(
    client: ReadClient, kind: ResourceKind, intent: Mapping[str, Any], owned_ids: set[str | None]
) -> dict[str, Any] | None:
    """After an ambiguous create: list and look for the object it may have made."""
    return find_created(kind, intent, client.list_all(kind).items, owned_ids)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


Clock = Callable[[], datetime]
