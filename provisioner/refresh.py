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
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from provisioner.errors import ProvisionerError
from provisioner.kinds import KINDS, OWNER_MARKER_KEY, ResourceKind
from provisioner.plan.differ import LiveSnapshot
from provisioner.state.identity import Owner
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
        # The marker as sent (it names the owner too), else the bare one.
        sent = read_marker(wire_body)
        intent["marker"] = sent if sent is not None else owner_marker(address, lineage)
    return intent


def owner_marker(address: str, lineage: str, owner: Owner | None = None) -> dict[str, str]:
    """The ownership marker an object gets where its kind has room (an assistant's
    `metadata`): its address, the state lineage and the state's owner (manifest and
    environment; docs/state-identity.md)."""
    marker = {"address": address, "lineage": lineage}
    if owner is not None:
        marker["manifest"] = owner.manifest
        if owner.environment is not None:
            marker["environment"] = owner.environment
    return marker


def read_marker(obj: Mapping[str, Any]) -> dict[str, str] | None:
    """A live object's ownership marker, if it carries a well-formed one."""
    meta = obj.get("metadata")
    marker = meta.get(OWNER_MARKER_KEY) if isinstance(meta, Mapping) else None
    if not isinstance(marker, Mapping):
        return None
    out = {str(k): v for k, v in marker.items() if isinstance(v, str)}
    return out if out.get("address") and out.get("lineage") else None


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


# -- before creating: what already exists (docs/state-identity.md) -------------------------

# For kinds with no room for a marker: the fields that say "this is the same object".
_IDENTITY_FIELDS = {
    "structuredOutput": ("name",),
    "insight": ("name",),
    "board": ("name",),
    "phoneNumber": ("number", "sipUri"),
}


@dataclass(frozen=True, slots=True)
class Existing:
    """What refresh found for addresses the state has no entry for."""

    # Objects this lineage's marker names at that very address: adopted, not created again.
    adopted: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Objects of kinds without a marker, not managed by the state, with the same identity.
    lookalikes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # Objects another lineage of the same owner marks at that address: (address, object).
    foreign: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def identity(kind: ResourceKind, body: Mapping[str, Any]) -> tuple[str, str] | None:
    """(field, value) identifying an object of a kind without a marker, from its body."""
    for name in _IDENTITY_FIELDS.get(kind.name, ()):
        value = body.get(name)
        if isinstance(value, str) and value:
            return name, value
    return None


def find_existing(
    client: ReadClient,
    state: StateFile,
    wanted: Mapping[str, tuple[ResourceKind, Mapping[str, Any]]],
    *,
    parallelism: int = 8,
) -> Existing:
    """For each address about to be created (`wanted`: address -> kind and desired body),
    the objects that already exist: one this lineage owns at that address (adopted), one
    another lineage of the same owner marks (foreign), or unmarked lookalikes. Lists each
    kind concerned once, all kinds at once."""
    kinds = {
        kind.name: kind
        for kind, body in wanted.values()
        if kind.owner_marker or identity(kind, body) is not None
    }
    if not kinds:
        return Existing()
    pool = ThreadPoolExecutor(max_workers=max(1, min(parallelism, len(kinds))))
    futures = {name: pool.submit(client.list_all, kind) for name, kind in kinds.items()}
    try:
        listed = {name: fut.result().items for name, fut in futures.items()}
    except BaseException:
        for fut in futures.values():
            fut.cancel()
        raise
    finally:
        pool.shutdown(wait=True)
    managed = {rs.id for rs in state.resources.values() if rs.id}
    found = Existing()
    for addr, (kind, body) in wanted.items():
        candidates = [o for o in listed.get(kind.name, ()) if str(o.get("id")) not in managed]
        if kind.owner_marker:
            ours, theirs = _marked_at(addr, state, candidates)
            if ours is not None:
                found.adopted[addr] = ours
                managed.add(str(ours.get("id")))
            found.foreign.extend((addr, obj) for obj in theirs)
            continue
        ident = identity(kind, body)
        same = [o for o in candidates if ident is not None and o.get(ident[0]) == ident[1]]
        if same:
            found.lookalikes[addr] = same
    return found


def _marked_at(
    address: str, state: StateFile, candidates: Iterable[Mapping[str, Any]]
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(the oldest object this lineage marks at `address`, objects another lineage of the
    same owner marks there). Markers of other owners are not this state's business."""
    ours: list[dict[str, Any]] = []
    theirs: list[dict[str, Any]] = []
    for obj in candidates:
        marker = read_marker(obj)
        if marker is None or marker["address"] != address:
            continue
        same_owner = marker.get("manifest") == state.manifest and marker.get("environment") == (
            state.environment
        )
        if marker["lineage"] == state.lineage and (same_owner or "manifest" not in marker):
            ours.append(dict(obj))
        elif marker["lineage"] != state.lineage and same_owner and state.manifest:
            theirs.append(dict(obj))
    oldest = min(ours, key=lambda o: str(o.get("createdAt", ""))) if ours else None
    return oldest, theirs
