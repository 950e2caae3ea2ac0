"""Which planned values an environment set itself (#12): the plan's changes marked with the
override or per-environment variable behind their fields. A list an override replaced is
shown whole (before and after), never item by item: lists replace, they do not merge.
Pure."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from provisioner.kinds import KINDS
from provisioner.manifest.loader import format_path
from provisioner.manifest.origins import OriginKind, Origins
from provisioner.plan.model import MISSING, Action, FieldChange, Plan, ResourceChange


def with_origins(plan: Plan, origins: Origins, environment: str | None) -> Plan:
    """`plan` naming its environment, each change carrying the origins of its fields that
    this environment set (an override, or a variable's own value for it; a variable's
    default is the same everywhere and not marked)."""
    if environment is None:
        return plan
    own = {
        p: o
        for p, o in origins.items()
        if o.per_environment and o.kind is not OriginKind.LIMITED  # (whole resources)
    }
    changes = tuple(_marked(c, own) for c in plan.changes)
    return dataclasses.replace(plan, changes=changes, environment=environment)


def _marked(change: ResourceChange, origins: Origins) -> ResourceChange:
    if change.action in (Action.NO_OP, Action.DELETE, Action.RELEASE) or not origins:
        return change
    kind = KINDS.get(change.kind)
    if kind is None:
        return change
    key = change.address.partition(".")[2]
    prefix = (*kind.section, key)
    found: list[tuple[str, str]] = []
    for path, origin in origins.items():
        if path[: len(prefix)] != prefix:
            continue
        rel = path[len(prefix) :]
        if any(_overlaps(rel, f.path) for f in change.fields):
            found.append((format_path(rel), origin.describe()))
            if origin.kind is OriginKind.OVERRIDE:
                change = _whole_list(change, rel)
    if not found:
        return change
    order = [f.dotted for f in change.fields]

    def first_field(item: tuple[str, str]) -> int:
        """Listed in the order of the plan's fields."""
        hits = [i for i, d in enumerate(order) if _within(item[0], d) or _within(d, item[0])]
        return min(hits, default=len(order))

    return dataclasses.replace(change, origins=tuple(sorted(found, key=first_field)))


def _within(path: str, outer: str) -> bool:
    return path == outer or path.startswith((outer + ".", outer + "["))


def _whole_list(change: ResourceChange, path: tuple[str | int, ...]) -> ResourceChange:
    """The field changes inside the list at `path` (an override replaced it) as one change
    of the whole list."""
    inside = [f for f in change.fields if len(f.path) > len(path) and f.path[: len(path)] == path]
    after = _at(change.after, path)
    if not inside or not isinstance(after, list):
        return change
    whole = FieldChange(
        path,
        _at(change.before, path),
        after,
        drift=any(f.drift for f in inside),
        forces_replace=any(f.forces_replace for f in inside),
    )
    fields: list[FieldChange] = []
    for f in change.fields:
        if f in inside:
            if whole not in fields:
                fields.append(whole)
        else:
            fields.append(f)
    return dataclasses.replace(change, fields=tuple(fields))


def _at(value: object, path: tuple[str | int, ...]) -> object:
    for part in path:
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and isinstance(part, int) and part < len(value):
            value = value[part]
        else:
            return MISSING
    return value


def _overlaps(a: tuple[str | int, ...], b: tuple[str | int, ...]) -> bool:
    n = min(len(a), len(b))
    return n > 0 and a[:n] == b[:n]
