"""The planner: desired (manifest) x state x live (refresh) -> Plan. Pure: no network,
files, environment or clock.

Three-way comparison per address:
- desired vs live decides whether anything must change (compared only on the fields the
  manifest sets, so server-added fields and API defaults never cause a perpetual diff);
- live vs what state says we last applied tells drift (changed outside the manifest),
  reported apart from our own changes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from provisioner import graph, unread_secrets
from provisioner.kinds import KINDS, OWNER_MARKER_KEY
from provisioner.plan.model import (
    MISSING,
    Action,
    ActionReason,
    DataRead,
    FieldChange,
    Plan,
    PlanMode,
    ResourceChange,
)
from provisioner.plan.normalize import comparable, display, live_view, project
from provisioner.plan.purchase_steps import (
    only_releases_left,
    pending_releases,
    purchase_fields,
    with_purchase,
    with_release,
)
from provisioner.removals import marker_of
from provisioner.resolve import DEFERRABLE_FIELD, ResolvedResource, bind, bind_lookups
from provisioner.state.model import ResourceStatus, StateFile
from provisioner.values import Unknown, contains, redact


@dataclass(frozen=True, slots=True)
class LiveSnapshot:
    """What refresh saw. `objects[address]` is the live object, or None if it is gone."""

    objects: Mapping[str, Mapping[str, Any] | None] = field(default_factory=dict)
    # Interrupted creates (state status CREATING) found remotely, by address.
    adopted: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # For an address about to be created: warnings naming existing objects that look the
    # same but that the state does not manage (kinds without an ownership marker).
    lookalikes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # What each `data:` lookup found, by lookup address (`data.credential.sip-trunk`).
    lookups: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def make_plan(
    desired: Mapping[str, ResolvedResource],
    state: StateFile,
    live: LiveSnapshot,
    *,
    mode: PlanMode = PlanMode.NORMAL,
    replace: frozenset[str] = frozenset(),
    forget: frozenset[str] = frozenset(),
) -> Plan:
    """Compute the plan. `desired` is keyed by address string, in manifest order.
    `replace` (`--replace`): addresses to delete and create again even if unchanged.
    `forget` (the manifest's `removed:`): state entries to drop, the remote object kept."""
    in_manifest = desired
    if mode is PlanMode.DESTROY:
        desired = {}
    ids = _known_ids(state, live)
    found = {a: str(o["id"]) for a, o in live.lookups.items()}
    # Ordering edges: a handoff tool's destinations may be set after the targets exist.
    edges = {a: set(r.depends_on - r.deferrable) for a, r in desired.items()}
    changes: dict[str, ResourceChange] = {}
    deferred: list[ResourceChange] = []
    # Topological order so a dependent sees `Unknown` for anything recreated before it.
    for addr in graph.topological_order(edges):
        res = desired[addr]
        if found:
            # Lookups are read, not made: their IDs go into the body the plan carries.
            res = dataclasses.replace(res, body=bind_lookups(res.body, found))
        change = _plan_resource(res, state, live, ids, replace=addr in replace)
        if change.action in (Action.CREATE, Action.REPLACE):
            ids.pop(addr, None)
            waits = sorted(a for a in res.deferrable if a not in ids)
            if waits:
                change, later = _defer(change, res, waits)
                deferred.append(later)
        changes[addr] = change
    for addr, rs in state.resources.items():
        if addr in desired or only_releases_left(rs):
            continue
        if addr in forget:
            changes[addr] = _plan_forget(addr, state, live)
            continue
        change = _plan_delete(addr, state, live, mode)
        config = in_manifest.get(addr)
        changes[addr] = with_release(change, state, config.purchase if config else None)
    ordered = _order(changes, desired, state)
    for later in deferred:
        ordered.insert(next(i for i, c in enumerate(ordered) if c.key == later.address) + 1, later)
    ordered.extend(pending_releases(state, in_manifest, changes))
    warnings = tuple(w for c in ordered for w in c.warnings)
    reads = tuple(
        DataRead(address=a, kind=a.split(".")[1], id=str(o["id"]), name=o.get("name"))
        for a, o in live.lookups.items()
    )
    return Plan(
        changes=tuple(ordered),
        reads=reads,
        mode=mode,
        lineage=state.lineage,
        serial=state.serial,
        warnings=warnings,
    )


def _known_ids(state: StateFile, live: LiveSnapshot) -> dict[str, str]:
    ids: dict[str, str] = {}
    for addr, rs in state.resources.items():
        if rs.status is ResourceStatus.CREATED and rs.id and live.objects.get(addr) is not None:
            ids[addr] = rs.id
    for addr, obj in live.adopted.items():
        ids[addr] = str(obj["id"])
    return ids


def _plan_resource(
    res: ResolvedResource,
    state: StateFile,
    live: LiveSnapshot,
    ids: Mapping[str, str],
    *,
    replace: bool = False,
) -> ResourceChange:
    addr = str(res.address)
    kind = res.kind
    rs = state.resources.get(addr)
    body, purchase = with_purchase(res, rs.extra if rs is not None else {})
    bound = bind(body, ids)
    name = bound.get("name") if isinstance(bound.get("name"), str) else None
    common: dict[str, Any] = {
        "address": addr,
        "kind": kind.name,
        "body": body,
        "name": name,
        "depends_on": tuple(sorted(res.depends_on)),
        "references": tuple(sorted(res.depends_on)),
        "purchase": purchase,
    }
    live_obj: Mapping[str, Any] | None
    if addr in live.adopted:
        live_obj = live.adopted[addr]
        rid: str | None = str(live_obj["id"])
    elif rs is not None and rs.status is ResourceStatus.CREATED and rs.id:
        live_obj = live.objects.get(addr)
        rid = rs.id
    else:
        live_obj, rid = None, None

    after = redact(bound)
    if live_obj is None:
        if rs is not None and rs.status is ResourceStatus.CREATED:
            reason = ActionReason.DELETED_REMOTELY
        elif rs is not None:
            reason = ActionReason.CREATE_UNFINISHED
        else:
            reason = ActionReason.NEW
        if purchase is not None and "number" not in after:
            after = {**after, "number": Unknown("number")}
        fields = tuple(FieldChange((k,), MISSING, v) for k, v in after.items())
        return ResourceChange(
            action=Action.CREATE,
            reason=reason,
            after=after,
            fields=fields,
            warnings=tuple(live.lookalikes.get(addr, ())),
            **common,
        )

    key = state.hash_key
    want = comparable(bound, key)
    applied = rs.applied if rs is not None and addr not in live.adopted else {}
    if rs is not None and applied:
        # (an imported credential's secrets: taken as what Vapi holds, not sent again)
        applied = unread_secrets.taken_as_applied(rs.extra, applied, want)
    have = live_view(kind, live_obj, want, applied, key)
    fields = _ignore(_diff(have, want), res.lifecycle.ignore_changes)
    drift: tuple[FieldChange, ...] = ()
    if applied:
        seen = live_view(kind, live_obj, applied, applied, key)
        drift = _ignore(_diff(applied, seen, drift=True), res.lifecycle.ignore_changes)
    drift_paths = {d.path for d in drift}
    marked: list[FieldChange] = []
    requested = replace
    variant = str(bound.get(kind.discriminator, "")) if kind.discriminator else ""
    # (a credential provider with no Update DTO: any change is a delete and re-create)
    no_update = kind.replaced_on_any_change(variant)
    for f in fields:
        forces = bool(f.path) and (no_update or f.path[0] in kind.replace_fields)
        replace = replace or forces
        marked.append(
            FieldChange(
                f.path, f.before, f.after, drift=f.path in drift_paths, forces_replace=forces
            )
        )
    if purchase is not None and purchase.get("replaces"):
        # `purchase:` now asks for another number than the one bought: buy it instead.
        marked.extend(purchase_fields(purchase))
        replace = True
        after = {**after, "number": Unknown("number")}
    before = display(have)
    common.update(id=rid, before=before, after=after, drift=drift)
    if not marked and not requested:
        return ResourceChange(action=Action.NO_OP, reason=ActionReason.UNCHANGED, **common)
    if replace:
        warnings: tuple[str, ...] = ()
        given_up = (purchase or {}).get("replaces")
        if isinstance(given_up, Mapping) and given_up.get("number"):
            # Another number is bought: the digits people dial change, not just the object.
            warnings = (
                f"{addr} will be replaced by a newly bought number: {given_up['number']} stops "
                "answering once it leaves Vapi, so callers need the new number",
            )
        elif kind.name == "phoneNumber":
            warnings = (f"{addr} will be replaced: calls to this number fail while it is swapped",)
        return ResourceChange(
            action=Action.REPLACE,
            reason=ActionReason.REPLACE_REQUESTED if requested else ActionReason.CANNOT_UPDATE,
            fields=tuple(marked),
            warnings=warnings,
            **common,
        )
    if contains(bound, Unknown) and all(
        isinstance(f.after, Unknown) or contains(f.after, Unknown) for f in marked
    ):
        reason = ActionReason.REFERENCE_CHANGED
    elif drift and applied and project(applied, want) == want:
        # The manifest still says what we last applied: only the remote moved.
        reason = ActionReason.DRIFT
    else:
        reason = ActionReason.MANIFEST_CHANGED
    return ResourceChange(action=Action.UPDATE, reason=reason, fields=tuple(marked), **common)


def _defer(
    change: ResourceChange, res: ResolvedResource, waits: list[str]
) -> tuple[ResourceChange, ResourceChange]:
    """A create (or replace) without the deferrable field, and the update that sets it once
    `waits` (resources this plan creates) exist: how a handoff cycle is broken."""
    body = change.body or {}
    first = {k: v for k, v in body.items() if k != DEFERRABLE_FIELD}
    shown = {k: v for k, v in (change.after or {}).items() if k != DEFERRABLE_FIELD}
    create = dataclasses.replace(
        change,
        body=first,
        after=shown,
        fields=tuple(f for f in change.fields if f.path[:1] != (DEFERRABLE_FIELD,)),
        depends_on=tuple(d for d in change.depends_on if d not in res.deferrable),
    )
    value = (change.after or {}).get(DEFERRABLE_FIELD)
    later = ResourceChange(
        address=change.address,
        kind=change.kind,
        action=Action.UPDATE,
        reason=ActionReason.CYCLE_BROKEN,
        before=shown,
        after=change.after,
        fields=(FieldChange((DEFERRABLE_FIELD,), MISSING, value),),
        depends_on=(change.address, *waits),
        references=change.references,
        body=body,
        name=change.name,
        deferred=True,
    )
    return create, later


def _plan_delete(addr: str, state: StateFile, live: LiveSnapshot, mode: PlanMode) -> ResourceChange:
    rs = state.resources[addr]
    live_obj = live.objects.get(addr) or live.adopted.get(addr)
    # Through live_view, so a secret the API echoes is shown as one.
    shown = (
        live_view(KINDS[rs.kind], live_obj, rs.applied, rs.applied, state.hash_key)
        if live_obj
        else rs.applied
    )
    before = display(shown)
    name = before.get("name") if isinstance(before.get("name"), str) else None
    reason = ActionReason.DESTROY if mode is PlanMode.DESTROY else ActionReason.REMOVED
    rid = rs.id if rs.id else (str(live_obj["id"]) if live_obj else None)
    return ResourceChange(
        address=addr,
        kind=rs.kind,
        action=Action.DELETE,
        reason=reason,
        id=rid,
        before=before,
        fields=tuple(FieldChange((k,), v, MISSING) for k, v in before.items()),
        # What it referenced, for the plan's dependency graph.
        references=tuple(sorted(rs.depends_on)),
        name=name,
    )


def _plan_forget(addr: str, state: StateFile, live: LiveSnapshot) -> ResourceChange:
    """`removed:`: the entry leaves the state; the one visible remote change is the
    ownership marker taken off the object (when its kind has one and it carries it)."""
    rs = state.resources[addr]
    live_obj = live.objects.get(addr) or live.adopted.get(addr)
    marker = marker_of(live_obj) if KINDS[rs.kind].owner_marker else None
    name = (live_obj or {}).get("name") or rs.applied.get("name")
    return ResourceChange(
        address=addr,
        kind=rs.kind,
        action=Action.FORGET,
        reason=ActionReason.FORGET_REQUESTED,
        id=rs.id,
        fields=(
            (FieldChange(("metadata", OWNER_MARKER_KEY), display(marker), MISSING),)
            if marker is not None
            else ()
        ),
        name=name if isinstance(name, str) else None,
    )


def _diff(before: Any, after: Any, *, drift: bool = False) -> tuple[FieldChange, ...]:
    """Field-level differences, as paths from the body root, values made displayable."""
    if _same(before, after):
        return ()  # the common case, and DeepDiff is slow: ~0.3 ms per call
    from deepdiff import DeepDiff  # imported here: 60 ms that a no-change run never needs

    dd = DeepDiff(before, after, view="tree", verbose_level=2)
    out: list[FieldChange] = []
    for levels in dd.tree.values():
        for item in levels:
            path = tuple(item.path(output_format="list"))
            b = MISSING if _absent(item.t1) else display(item.t1)
            a = MISSING if _absent(item.t2) else display(item.t2)
            out.append(FieldChange(path, b, a, drift=drift))
    out.sort(key=lambda f: tuple(str(p) for p in f.path))
    return tuple(out)


def _same(a: Any, b: Any) -> bool:
    """Equal, with equal types all the way down (1 == 1.0 == True are not the same)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(v, b[k]) for k, v in a.items())
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _absent(value: Any) -> bool:
    return type(value).__name__ == "NotPresent"


def _ignore(fields: Iterable[FieldChange], ignore: Iterable[str]) -> tuple[FieldChange, ...]:
    prefixes = [tuple(p.split(".")) for p in ignore]
    return tuple(
        f for f in fields if not any(tuple(map(str, f.path[: len(p)])) == p for p in prefixes)
    )


def _order(
    changes: Mapping[str, ResourceChange],
    desired: Mapping[str, ResolvedResource],
    state: StateFile,
) -> list[ResourceChange]:
    """Give every change its real dependencies and return them in a stable display order.

    A delete waits for every change of a resource that referenced the deleted one (so a
    phone number moves to its new assistant before the old assistant goes away).
    """
    pending = {a for a, c in changes.items() if c.action.is_change}
    result: list[ResourceChange] = []
    for addr, ch in changes.items():
        if ch.action is Action.DELETE:
            dependents = sorted(
                other
                for other in pending
                if other != addr
                and not _points_by_handoff(state, other)
                and (
                    addr in (state.resources[other].depends_on if other in state.resources else ())
                    or (other in desired and addr in desired[other].depends_on)
                )
            )
            deps = tuple(dependents)
        else:
            # An update does not change an ID: a handoff tool updated to point at what this
            # plan creates is not waited for by what uses it (through a cycle of handoffs,
            # that would be a deadlock).
            deps = tuple(
                d
                for d in ch.depends_on
                if d in pending
                and not (
                    changes[d].action is Action.UPDATE and d in desired and desired[d].deferrable
                )
            )
        result.append(_replace_deps(ch, deps))
    kind_order = {k: i for i, k in enumerate(KINDS)}
    result.sort(key=lambda c: (kind_order.get(c.kind, 99), c.address))
    return result


def _points_by_handoff(state: StateFile, address: str) -> bool:
    """A handoff tool: its destinations may name what is deleted before it (deleting the
    assistants it hands off to first would wait on the assistants that use it: a cycle)."""
    rs = state.resources.get(address)
    return rs is not None and rs.kind == "tool" and rs.applied.get("type") == "handoff"


def _replace_deps(ch: ResourceChange, deps: tuple[str, ...]) -> ResourceChange:
    return dataclasses.replace(ch, depends_on=deps)
