"""The rules a plan must pass before it is shown or applied: `lifecycle.preventDestroy`
(recorded in state too, so that removing a protected entry cannot delete it) and the Twilio
credentials a purchase or a release needs. Pure: they report into Diagnostics."""

from __future__ import annotations

import dataclasses

from provisioner.diagnostics import Diagnostics
from provisioner.manifest.model import Manifest
from provisioner.plan.model import Action, Plan
from provisioner.plan.purchase import PurchaseStep, purchase_step
from provisioner.purchasing import UNSET_FOR_DESTROY
from provisioner.state.model import StateFile
from provisioner.validation import Validated

PROTECTED_KEY = "prevent_destroy"


def record_protection(state: StateFile, manifest: Manifest) -> StateFile:
    """Note `lifecycle.preventDestroy` in state, so that removing a protected entry from the
    manifest cannot delete it either (the flag must be turned off and applied first)."""
    out: StateFile | None = None
    for addr, config in manifest.resources.items():
        rs = state.resources.get(addr)
        if rs is None or bool(rs.extra.get(PROTECTED_KEY)) == config.lifecycle.prevent_destroy:
            continue
        out = out or state.copy()
        extra = dict(out.resources[addr].extra)
        if config.lifecycle.prevent_destroy:
            extra[PROTECTED_KEY] = True
        else:
            extra.pop(PROTECTED_KEY, None)
        out.resources[addr] = dataclasses.replace(out.resources[addr], extra=extra)
    return out or state


def check_twilio_credentials(plan: Plan, validated: Validated, diags: Diagnostics) -> None:
    """A Twilio number this plan imports into Vapi needs its credentials (validate lets
    an entry without them be, for a number imported already: the token is write-only);
    one it releases at Twilio needs them too (an unset secret passes `destroy` otherwise)."""
    from provisioner.manifest.schema import TWILIO_CREDENTIALS_NEEDED

    manifest = validated.manifest
    for c in plan.changes:
        resolved = validated.resolved.resources.get(c.address)
        if purchase_step(c.purchase) is PurchaseStep.RELEASE and resolved is not None:
            entry = manifest.resources[c.address]
            for field_name in ("twilioAuthToken", "twilioApiSecret"):
                value = resolved.body.get(field_name)
                if getattr(value, "value", None) == UNSET_FOR_DESTROY:
                    raw = str(entry.body.get(field_name, ""))
                    diags.error(
                        f"releasing {(c.purchase or {}).get('number')} at Twilio needs this "
                        f"secret, and {raw} is not set",
                        **manifest.source.where((*entry.path, field_name)),
                    )
        body = c.body or {}
        if c.action not in (Action.CREATE, Action.REPLACE) or body.get("provider") != "twilio":
            continue
        has_key = body.get("twilioApiKey") and body.get("twilioApiSecret")
        if body.get("twilioAuthToken") or has_key:
            continue
        config = manifest.resources.get(c.address)
        where = manifest.source.where(config.path) if config else {"file": manifest.source.file}
        diags.error(f"this plan imports it into Vapi: {TWILIO_CREDENTIALS_NEEDED}", **where)


def check_prevent_destroy(
    plan: Plan, validated: Validated, state: StateFile, diags: Diagnostics
) -> None:
    """No plan deletes or replaces what `lifecycle.preventDestroy` protects, in the
    manifest or (for an entry removed from it) as recorded in state."""
    manifest = validated.manifest
    for c in plan.changes:
        if c.action not in (Action.DELETE, Action.REPLACE):
            continue
        config = manifest.resources.get(c.address)
        if config is not None and config.lifecycle.prevent_destroy:
            diags.error(
                f"{c.address} has lifecycle.preventDestroy set, but this plan would "
                f"{c.action.value} it ({c.reason.value})",
                **manifest.source.where((*config.path, "lifecycle", "preventDestroy")),
            )
        elif config is None and c.address in state.resources:
            if state.resources[c.address].extra.get(PROTECTED_KEY):
                diags.error(
                    f"{c.address} was removed from the manifest, but it is protected: it had "
                    "lifecycle.preventDestroy when last applied. To delete it, put it back "
                    "with preventDestroy: false, apply, then remove it",
                    file=manifest.source.file,
                )
