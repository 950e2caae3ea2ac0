"""What a `purchase:` asks for, and the name a number bought for it carries. Pure.

The planner compares criteria to decide whether the bought number still fits (else it is
bought again: a replace); apply names each purchase with `purchase_marker` so a run that
died after Twilio sold the number finds it instead of buying another.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from provisioner.numbers.rules import DEFAULT_COUNTRY, DEFAULT_TYPE

# What a `purchase:` asks for: a change of any of these means another number.
PURCHASE_CRITERIA = ("country", "type", "areaCode", "contains")
# Twilio's defaults, so that `{}` and `{country: US, type: local}` are the same wish.
_DEFAULTS = {"country": DEFAULT_COUNTRY, "type": DEFAULT_TYPE.value}
# Twilio's limit on an IncomingPhoneNumber's FriendlyName.
FRIENDLY_NAME_MAX = 64


class PurchaseStep(StrEnum):
    """What a change does with a Twilio number: a plan step's `action` (its values are
    the plan formats', so saved plans and JSON plans keep reading the same)."""

    BUY = "buy"  # buys one (a create, or a replace that asks for another number)
    BOUGHT = "bought"  # uses the one bought earlier
    RELEASE = "release"  # releases it at Twilio (a delete, or a pending release)
    KEEP = "keep"  # leaves it in the Twilio account (a delete without `purchase.release`)


def purchase_step(step: Mapping[str, Any] | None) -> PurchaseStep | None:
    """The step of a change's `purchase` (None without one, or with an unknown action)."""
    if step is None:
        return None
    try:
        return PurchaseStep(str(step.get("action")))
    except ValueError:
        return None


def wanted_number(purchase: Mapping[str, Any]) -> dict[str, Any]:
    """The criteria of a purchase (a manifest's `purchase:`, a plan step or a state
    record), with Twilio's defaults filled in, for comparing two of them."""
    return {k: purchase.get(k) or _DEFAULTS.get(k) for k in PURCHASE_CRITERIA}


def same_purchase(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return wanted_number(a) == wanted_number(b)


def purchase_marker(
    address: str, lineage: str, purchase: Mapping[str, Any], replacing: str | None = None
) -> str:
    """The FriendlyName a bought number carries: the state lineage, a short hash of the
    criteria (a number bought for other criteria is never adopted for these), the tail
    of the SID of the number it replaces (if any), and the manifest address, shortened
    with a hash of its own when the whole would pass Twilio's 64 characters."""
    criteria = _short_hash(json.dumps(wanted_number(purchase), sort_keys=True))
    tag = f"/{replacing[-6:]}" if replacing else ""
    head = f"provisioner {lineage[:8]} {criteria}{tag} "
    room = FRIENDLY_NAME_MAX - len(head)
    if len(address) > room:
        address = f"{address[: room - 7]}~{_short_hash(address)}"
    return head + address


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:6]
