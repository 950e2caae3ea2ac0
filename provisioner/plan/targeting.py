"""`--target ADDRESS`: cut a plan down to some resources and what they need. Pure.

As Terraform: a normal plan keeps each target and what it depends on (created or updated
first); a destroy plan keeps each target and what depends on it (deleted first). What is
left out stays pending: the plan says so (`Plan.excluded`), and a later full plan shows it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from provisioner.plan.model import Plan, PlanMode, ResourceChange


@dataclass(frozen=True, slots=True)
class Selection:
    """`--target` and `--replace`: addresses, as given on the command line."""

    targets: tuple[str, ...] = ()
    replace: tuple[str, ...] = ()

    def problems(self, declared: Iterable[str], in_state: Iterable[str]) -> list[str]:
        """An address that is neither declared nor in the state (for `--replace`: not
        declared), with the known ones listed."""
        known = list(declared)
        found = (
            unknown_addresses(
                self.targets, [*known, *in_state], "--target", "the manifest or its state"
            ),
            unknown_addresses(self.replace, known, "--replace", "the manifest"),
        )
        return [p for p in found if p]


def unknown_addresses(
    asked: Iterable[str], known: Iterable[str], option: str, where: str
) -> str | None:
    """What is wrong when `option` names an address that `where` does not hold, with the
    known ones listed; None when every address is known."""
    known_list = list(dict.fromkeys(known))
    unknown = [t for t in dict.fromkeys(asked) if t not in known_list]
    if not unknown:
        return None
    listed = ", ".join(known_list) or "none"
    return f"{option} {', '.join(unknown)}: no such resource in {where} (known: {listed})"


def target_plan(plan: Plan, targets: Iterable[str]) -> Plan:
    """`plan` with only the targets and their dependencies (dependents for a destroy)."""
    wanted = tuple(dict.fromkeys(targets))
    if not wanted:
        return plan
    keep = _closure(wanted, plan.changes, dependents=plan.mode is PlanMode.DESTROY)
    kept = [c for c in plan.changes if c.address in keep]
    left = tuple(
        dict.fromkeys(
            c.address for c in plan.changes if c.address not in keep and c.action.is_change
        )
    )
    keys = {c.key for c in kept} | {c.address for c in kept}
    kept = [
        dataclasses.replace(c, depends_on=tuple(d for d in c.depends_on if d in keys)) for c in kept
    ]
    addresses = {c.address for c in kept}
    warnings = tuple(w for w in plan.warnings if not _names_other(w, plan.changes, addresses))
    return dataclasses.replace(
        plan, changes=tuple(kept), targets=wanted, excluded=left, warnings=warnings
    )


def _closure(
    targets: Iterable[str], changes: Iterable[ResourceChange], *, dependents: bool
) -> set[str]:
    """The targets and, transitively, what must happen before them: what they reference
    and (a delete's `depends_on`) the changes it waits for; for a destroy, what references
    them."""
    edges: dict[str, set[str]] = {}
    for c in changes:
        if dependents:
            for d in c.references:
                edges.setdefault(d, set()).add(c.address)
        else:
            edges.setdefault(c.address, set()).update(c.references, c.depends_on)
    seen: set[str] = set()
    todo = list(targets)
    while todo:
        a = todo.pop()
        if a in seen:
            continue
        seen.add(a)
        todo.extend(edges.get(a, ()))
    return seen


def _names_other(warning: str, changes: Iterable[ResourceChange], kept: set[str]) -> bool:
    """A change's own warning about a resource left out of the plan."""
    return any(c.address not in kept and warning in c.warnings for c in changes)
