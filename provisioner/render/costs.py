"""Phone-number costs and purchases written for people: the plan's `$` lines, the cost
lines at its end, and the prices beside `outputs`. Presentation only: the figures come
from `provisioner.costs.estimate` (pure), the steps from the plan.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from provisioner.costs import CostStatus
from provisioner.plan.purchase import PurchaseStep, purchase_step


def describe_purchase(step: Mapping[str, Any], *, pending: bool = False) -> str:
    """One line for people: what apply will buy or release, at what price. `pending`: a
    number given up earlier (already out of Vapi) whose release at Twilio failed."""
    action = purchase_step(step)
    if pending:
        return (
            f"will release {step.get('number')} at Twilio: it left Vapi when it was "
            "replaced, and releasing it failed then"
        )
    price = ""
    if step.get("monthly") is not None:
        price = f" at {step['monthly']} {step.get('currency', '')}/month".replace(" /", "/")
    if action is PurchaseStep.BUY:
        kind = str(step.get("type", "local"))
        where = (
            f"in area code {step['areaCode']}"
            if step.get("areaCode")
            else f"in {step.get('country', 'US')}"
        )
        contains = f" containing {step['contains']}" if step.get("contains") else ""
        if not price:
            price = (
                " (price not known: Twilio's prices could not be read, and apply buys "
                "nothing until a plan shows the price)"
            )
        then = (
            "it is released at Twilio on destroy"
            if step.get("release")
            else "destroy keeps it in your Twilio account (purchase.release is not set)"
        )
        old = step.get("replaces")
        if isinstance(old, Mapping):
            then = f"{old.get('number')} is then " + (
                "released at Twilio"
                if step.get("release")
                else "kept in your Twilio account, and billed there (purchase.release is not set)"
            )
        article = "an" if kind[0] in "aeiou" else "a"
        return (
            f"will buy {article} {kind} number {where}{contains}{price} from Twilio, then "
            f"import it into Vapi; {then}"
        )
    if action is PurchaseStep.BOUGHT:
        return f"uses {step.get('number')}, bought from Twilio earlier ({step.get('sid')})"
    if action is PurchaseStep.RELEASE:
        return f"will remove {step.get('number')} from Vapi, then release it at Twilio"
    if action is PurchaseStep.KEEP:
        return (
            f"will remove {step.get('number')} from Vapi; it stays in your Twilio account "
            "(and is billed there) because purchase.release is not set"
        )
    return ""


def format_cost(cost: Mapping[str, Any]) -> list[str]:
    """Lines for the end of a plan: the monthly total and this plan's change. When a
    Twilio price could not be read the total is a minimum and the change is not known."""
    cur = cost.get("currency", "USD")
    change = str(cost.get("monthly_change", "+0"))
    if not cost.get("incomplete"):
        lines = [
            f"Phone numbers: {cost.get('monthly_after')} {cur}/month after this plan "
            f"({change} {cur}/month)."
        ]
    else:
        lines = [
            f"Phone numbers: at least {cost.get('monthly_after')} {cur}/month after this "
            "plan (the change is not known: some Twilio prices could not be read)."
        ]
    billed: Iterable[Mapping[str, Any]] = cost.get("still_billed") or ()
    for b in billed:
        lines.append(
            f"  still billed by Twilio: {b.get('address')} ({b.get('number')}): "
            f"+{b.get('monthly')} {b.get('currency') or cur}/month, not released "
            "(purchase.release is not set)"
        )
    unpriced: Iterable[Mapping[str, Any]] = cost.get("unpriced") or ()
    for u in unpriced:
        lines.append(f"  not priced: {u.get('address')}: {u.get('why')}")
    return lines


def monthly_prices(cost: Mapping[str, Any] | None) -> dict[str, str]:
    """Address -> "1.15 USD/month" (or "free", a Vapi number) for each number the plan
    leaves in place whose price is known."""
    out: dict[str, str] = {}
    for n in (cost or {}).get("numbers") or ():
        if n.get("status") not in (CostStatus.KEPT, CostStatus.NEW):
            continue
        if n.get("provider") == "vapi":
            out[str(n["address"])] = "free"
        else:
            out[str(n["address"])] = f"{n['monthly']} {n.get('currency') or 'USD'}/month"
    return out
