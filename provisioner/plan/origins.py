"""Which planned values an environment set itself (#12): the plan's changes marked with the
override or per-environment variable behind their fields. Pure."""

from __future__ import annotations

import dataclasses

from provisioner.kinds import KINDS
from provisioner.manifest.environments import OriginKind, Origins
from provisioner.manifest.loader import format_path
from provisioner.plan.model import Action, Plan, ResourceChange


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
    fields = [f.path for f in change.fields]
    found: list[tuple[str, str]] = []
    for path, origin in origins.items():
        if path[: len(prefix)] != prefix:
            continue
        rel = path[len(prefix) :]
        if any(_overlaps(rel, f) for f in fields):
            found.append((format_path(rel), origin.describe()))
    return dataclasses.replace(change, origins=tuple(found)) if found else change


def _overlaps(a: tuple[str | int, ...], b: tuple[str | int, ...]) -> bool:
    n = min(len(a), len(b))
    return n > 0 and a[:n] == b[:n]
