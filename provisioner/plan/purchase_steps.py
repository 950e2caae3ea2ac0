"""A plan's Twilio steps for numbers this tool buys. Pure.

A number resource's purchase step (buy one, use the one bought, or buy another when
`purchase:` no longer describes it); whether a deleted number is released or kept; and a
change of its own for each replaced number whose release is still pending.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from provisioner.plan.model import MISSING, Action, ActionReason, FieldChange, ResourceChange
from provisioner.plan.purchase import (
    PURCHASE_CRITERIA,
    PurchaseStep,
    same_purchase,
    wanted_number,
)
from provisioner.resolve import ResolvedResource
from provisioner.state.model import ResourceState, StateFile, bought_number, replaced_numbers


def with_purchase(
    res: ResolvedResource, extra: Mapping[str, Any]
) -> tuple[Mapping[str, Any], dict[str, Any] | None]:
    """A number to buy: its body gets the bought number once state has one; and the
    purchase step to show (`buy`, or `bought` when state already records the number).
    A `purchase:` that no longer describes the bought number buys another (`replaces`)."""
    if res.purchase is None or res.kind.name != "phoneNumber":
        return res.body, None
    wanted = {k: v for k, v in res.purchase.items() if v is not None}
    wanted.setdefault("country", "US")
    wanted.setdefault("type", "local")
    bought = bought_number(extra)
    if bought and bought.get("number") and same_purchase(bought, wanted):
        step = {
            **wanted,
            "action": PurchaseStep.BOUGHT,
            "number": bought["number"],
            "sid": bought.get("sid"),
        }
        return {**res.body, "number": bought["number"]}, step
    # The number given up: the one bought, or, when a run died wishing for another, the
    # last one it was replacing (apply buys before the old number leaves Vapi).
    pending = replaced_numbers(extra)
    given_up = bought if bought and bought.get("number") else (pending[-1] if pending else None)
    if isinstance(given_up, Mapping) and given_up.get("number"):
        old = {k: given_up.get(k) for k in ("number", "sid", "account", *PURCHASE_CRITERIA)}
        return res.body, {**wanted, "action": PurchaseStep.BUY, "replaces": old}
    return res.body, {**wanted, "action": PurchaseStep.BUY}


def purchase_fields(step: Mapping[str, Any]) -> list[FieldChange]:
    """`purchase.areaCode: "415" -> "212"` and the like, for a number bought again."""
    old, new = wanted_number(step["replaces"]), wanted_number(step)
    return [
        FieldChange(
            ("purchase", k),
            MISSING if old[k] is None else old[k],
            MISSING if new[k] is None else new[k],
            forces_replace=True,
        )
        for k in PURCHASE_CRITERIA
        if old[k] != new[k]
    ]


def with_release(
    change: ResourceChange, state: StateFile, wanted: Mapping[str, Any] | None
) -> ResourceChange:
    """A deleted number this tool bought: say whether it is released at Twilio (per the
    manifest's `purchase.release` if it is still there, else as recorded at purchase)."""
    rs = state.resources[change.address]
    bought = bought_number(rs.extra)
    if bought is None or not bought.get("sid"):
        return change
    release = bool((wanted if wanted is not None else bought).get("release"))
    step = {
        "action": PurchaseStep.RELEASE if release else PurchaseStep.KEEP,
        "number": bought.get("number"),
        "sid": bought.get("sid"),
        "country": bought.get("country"),
        "type": bought.get("type"),
        "release": release,
    }
    return dataclasses.replace(change, purchase=step)


def only_releases_left(rs: ResourceState) -> bool:
    """An entry that is gone from Vapi and holds nothing but numbers still to release."""
    return (
        rs.id is None
        and rs.intent is None
        and bought_number(rs.extra) is None
        and bool(replaced_numbers(rs.extra))
    )


def pending_releases(
    state: StateFile,
    in_manifest: Mapping[str, ResolvedResource],
    changes: Mapping[str, ResourceChange],
) -> list[ResourceChange]:
    """A change of its own for each number an entry replaced whose release at Twilio
    failed: released after the entry's other change (if any), so its line never waits on it.
    Numbers replaced without `purchase.release` are let go by the next purchase instead."""
    out: list[ResourceChange] = []
    for addr, rs in state.resources.items():
        config = in_manifest.get(addr)
        wanted = config.purchase if config is not None else None
        main = changes.get(addr)
        after = (addr,) if main is not None and main.action.is_change else ()
        for old in replaced_numbers(rs.extra):
            release = (wanted if wanted is not None else old).get("release")
            if not old.get("sid") or not release:
                continue
            number = old.get("number")
            step = {
                "action": PurchaseStep.RELEASE,
                "number": number,
                "sid": old.get("sid"),
                "account": old.get("account"),
                "country": old.get("country"),
                "type": old.get("type"),
                "release": True,
            }
            shown = {"provider": "twilio", "number": number, "twilioAccountSid": old.get("account")}
            out.append(
                ResourceChange(
                    address=addr,
                    kind=rs.kind,
                    action=Action.RELEASE,
                    reason=ActionReason.RELEASE_PENDING,
                    before=shown,
                    depends_on=after,
                    purchase=step,
                )
            )
    return out
