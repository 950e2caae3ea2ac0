"""`protect: true` on an environment (#12): no resource there may be deleted, by a plan or a
destroy. A replace deletes too: it passes only when the operator asked for it with
`--replace ADDRESS` (reason "replace requested"). Pure."""

from __future__ import annotations

from provisioner.diagnostics import Diagnostics
from provisioner.manifest.environments import Environment
from provisioner.plan.model import Action, ActionReason, Plan


def check_protected(plan: Plan, environment: Environment | None) -> Diagnostics:
    """An error per delete or replace the plan holds in a protected environment."""
    diags = Diagnostics()
    if environment is None or not environment.protect:
        return diags
    name = environment.name
    for c in plan.pending():
        if c.action is Action.DELETE:
            diags.error(
                f"{c.address}: environment {name} is protected (protect: true), so nothing in "
                f"it may be deleted ({c.reason.value}). Keep the resource in {name} (or limit "
                "it with `environments:` only after deleting it by hand), or lift `protect`"
            )
        elif c.action is Action.REPLACE and c.reason is not ActionReason.REPLACE_REQUESTED:
            diags.error(
                f"{c.address}: environment {name} is protected (protect: true), and replacing "
                f"deletes the object ({c.reason.value}): say so explicitly with "
                f"`--replace {c.address}`, or change the field back"
            )
    return diags
