"""What a `purchase:` asks for, and the name a number bought for it carries. Pure.

The planner compares criteria to decide whether the bought number still fits (else it is
bought again: a replace); apply names each purchase with `purchase_marker` so a run that
died after Twilio sold the number finds it instead of buying another.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from provisioner.numbers.rules import DEFAULT_COUNTRY, DEFAULT_TYPE

# What a `purchase:` asks for: a change of any of these means another number.
PURCHASE_CRITERIA = ("country", "type", "areaCode", "contains")
# Twilio's defaults, so that `{}` and `{country: US, type: local}` are the same wish.
_DEFAULTS = {"country": DEFAULT_COUNTRY, "type": DEFAULT_TYPE.value}
# Twilio's limit on an IncomingPhoneNumber's FriendlyName.
FRIENDLY_NAME_MAX = 64
_MARKER_PREFIX = "provisioner "
_MARKER = re.compile(
    r"^provisioner (?P<lineage>[0-9a-f-]{8})\.(?P<owner>[0-9a-f]{6}) [0-9a-f]{6}(?:/\S+)? "
    r"(?P<address>\S+)$"
)


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
    address: str,
    lineage: str,
    purchase: Mapping[str, Any],
    replacing: str | None = None,
    owner: str | None = None,
) -> str:
    """The FriendlyName a bought number carries: the state lineage and a short hash of its
    owner (the manifest and environment, docs/state-identity.md), a short hash of the
    criteria (a number bought for other criteria is never adopted for these), the tail of
    the SID of the number it replaces (if any), and the manifest address, shortened with a
    hash of its own when the whole would pass Twilio's 64 characters."""
    criteria = _short_hash(json.dumps(wanted_number(purchase), sort_keys=True))
    tag = f"/{replacing[-6:]}" if replacing else ""
    whose = f".{_short_hash(owner)}" if owner else ""
    head = f"{_MARKER_PREFIX}{lineage[:8]}{whose} {criteria}{tag} "
    return head + _marker_address(address, FRIENDLY_NAME_MAX - len(head))


@dataclass(frozen=True, slots=True)
class MarkerOwner:
    """Whose a bought number is, as its FriendlyName says."""

    lineage: str  # the first 8 characters of the state's lineage
    owner: str  # the short hash of the manifest and environment
    address: str  # the manifest address, shortened as `purchase_marker` shortens it


def marker_owner(friendly_name: str) -> MarkerOwner | None:
    """Who bought a number, from its FriendlyName; None for a name this tool did not give
    (or gave before markers named their manifest)."""
    found = _MARKER.match(friendly_name)
    if found is None:
        return None
    return MarkerOwner(found["lineage"], found["owner"], found["address"])


def names_address(marker: MarkerOwner, address: str, owner: str) -> bool:
    """Whether `marker` names `address` of the manifest and environment `owner`."""
    if marker.owner != _short_hash(owner):
        return False
    return marker.address in (address, _marker_address(address, len(marker.address)))


def owner_key(manifest: str | None, environment: str | None) -> str | None:
    """What a marker's owner hash is taken over; None for a state recording no manifest."""
    return None if manifest is None else f"{manifest}\0{environment or ''}"


def _marker_address(address: str, room: int) -> str:
    if len(address) > room:
        return f"{address[: room - 7]}~{_short_hash(address)}"
    return address


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:6]
