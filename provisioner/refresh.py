"""Refresh: read the live objects behind the state, with the fewest round trips.

List calls per kind, all kinds at once (lists are capped and may be incomplete, so a
missing ID is confirmed with a GET before anything is called deleted; a kind whose list
is cut short once few IDs are left unseen reads those by ID instead).
Creates whose outcome was never recorded (status CREATING) are looked for and adopted,
so a crash between sending a create and saving its ID never leads to a duplicate.

Read-only: sends GETs only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from provisioner.errors import ProvisionerError
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
    def list_all(
        self,
        kind: ResourceKind,
        *,
        until: Callable[[Mapping[str, dict[str, Any]]], bool] | None = None,
    ) -> ListResultLike: ...
    def get(self, kind: ResourceKind, resource_id: str) -> dict[str, Any] | None: ...


def refresh_state(client: ReadClient, state: StateFile, *, parallelism: int = 8) -> LiveSnapshot:
    """Live object (or None when gone) for every state entry; adopted in-flight creates.

    Every kind in the state is listed at once (`parallelism` requests in flight at most);
    as soon as a kind's list is in, its missing IDs are read one by one. Paging a kind
    stops early once at most `parallelism` of its IDs are still unseen (those are read
    by ID instead, in one round trip), unless an interrupted create of that kind must be
    looked for, which needs the whole list.
    """
    entries: dict[str, list[tuple[str, ResourceState]]] = {}
    for addr, rs in state.resources.items():
        entries.setdefault(rs.kind, []).append((addr, rs))
    if not entries:
        return LiveSnapshot()
    kinds = sorted(entries, key=list(KINDS).index)
    workers = max(1, parallelism)
    listed: dict[str, ListResultLike] = {}
    read: dict[str, dict[str, Any] | None] = {}
    pool = ThreadPoolExecutor(max_workers=workers)
    futures: list[Future[Any]] = []
    try:
        lists = {pool.submit(_list_kind, client, KINDS[k], entries[k], workers): k for k in kinds}
        futures.extend(lists)
        gets: dict[Future[dict[str, Any] | None], str] = {}
        for done in as_completed(lists):
            name = lists[done]
            result = listed[name] = done.result()
            by_id = {str(o.get("id")): o for o in result.items}
            for addr, rs in entries[name]:
                if rs.status is ResourceStatus.CREATING or rs.id is None:
                    continue
                if rs.id in by_id:
                    read[addr] = by_id[rs.id]
                else:
                    # Never conclude "deleted" from a list: it may be capped, cut short
                    # or eventually consistent. A GET's 404 is the answer.
                    fut = pool.submit(client.get, KINDS[name], rs.id)
                    gets[fut] = addr
                    futures.append(fut)
        for fut, addr in gets.items():
            read[addr] = fut.result()
    except BaseException:
        for fut in futures:
            fut.cancel()
        raise
    finally:
        pool.shutdown(wait=True)

    objects: dict[str, dict[str, Any] | None] = {}
    adopted: dict[str, dict[str, Any]] = {}
    owned: set[str | None] = {rs.id for rs in state.resources.values() if rs.id}
    for addr, rs in state.resources.items():
        if rs.status is ResourceStatus.CREATING:
            kind = KINDS[rs.kind]
            listing = listed[rs.kind]
            found = find_created(kind, rs.intent or {}, listing.items, owned)
            if found is not None:
                adopted[addr] = found
                owned.add(str(found["id"]))
            elif not listing.complete:
                # Not in a listing that stopped early is no proof it was never made:
                # planning a create now could duplicate it.
                raise ProvisionerError(
                    f"{addr}: an earlier run was interrupted while creating it, and the "
                    f"{kind.label} list could not be read in full to look for what it made "
                    f"({len(listing.items)} objects read). Nothing was changed: run "
                    "again, or adopt the object with `provisioner import MANIFEST ADDRESS ID`."
                )
        elif addr in read:
            objects[addr] = read[addr]
    return LiveSnapshot(objects=objects, adopted=adopted)


def _list_kind(
    client: ReadClient,
    kind: ResourceKind,
    entries: list[tuple[str, ResourceState]],
    parallelism: int,
) -> ListResultLike:
    if any(rs.status is ResourceStatus.CREATING for _, rs in entries):
        return client.list_all(kind)  # an interrupted create may be anywhere in the list
    wanted = {rs.id for _, rs in entries if rs.id}

    def enough(found: Mapping[str, dict[str, Any]]) -> bool:
        # Another page costs a round trip; this many GETs in parallel cost one too.
        return sum(1 for rid in wanted if rid not in found) <= parallelism

    return client.list_all(kind, until=enough)


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


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


Clock = Callable[[], datetime]
