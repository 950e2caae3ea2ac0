"""The emulator's rules for stored objects: sealing write-only secrets as digests,
rendering an object as the API shows it, references that must exist, Vapi numbers
assigned and limited, list filters. Pure, but for the store transaction they are given."""

from __future__ import annotations

import copy
import hashlib
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from provisioner.emulator.routes import EmulatedKind
from provisioner.emulator.store import StoreTransaction
from provisioner.emulator.wsgi import Fail

E164_MESSAGE = (
    "number must be a valid phone number in the E.164 format. "
    "Hot tip, you may be missing the country code (Eg. US: +1)."
)
_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
_E164_PROVIDERS = frozenset({"twilio", "vonage", "telnyx"})
# Area code of a Vapi number created without `numberDesiredAreaCode`.
DEFAULT_AREA_CODE = "415"
_DIGEST_PREFIX = "sha256:"


def parse_time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def find_object(kind: EmulatedKind, object_id: str, tx: StoreTransaction) -> dict[str, Any]:
    obj = tx.get(kind.name, object_id)
    if obj is None:
        raise Fail(404, f"{kind.label.capitalize()} not found")
    return obj


def seal(kind: EmulatedKind, obj: Mapping[str, Any]) -> dict[str, Any]:
    """`obj` as stored: each write-only secret replaced by its digest (`sha256:<hex>`)."""
    sealed = dict(obj)
    for path in kind.secret_fields:
        if len(path) == 1 and isinstance(sealed.get(path[0]), str):
            sealed[path[0]] = digest(sealed[path[0]])
        elif len(path) == 2:
            outer = sealed.get(path[0])
            if isinstance(outer, dict) and path[1] in outer:
                sealed[path[0]] = {**outer, path[1]: digest(str(outer[path[1]]))}
    return sealed


def digest(secret: str) -> str:
    return _DIGEST_PREFIX + hashlib.sha256(secret.encode()).hexdigest()


def render(kind: EmulatedKind, obj: Mapping[str, Any]) -> dict[str, Any]:
    """What the API shows of a stored object: a copy without write-only secrets."""
    shown = copy.deepcopy(dict(obj))
    for path in kind.secret_fields:
        if len(path) == 1:
            shown.pop(path[0], None)
        else:
            outer = shown.get(path[0])
            if isinstance(outer, dict):
                outer.pop(path[1], None)
    return shown


def number_messages(
    kind: EmulatedKind, variant: str, body: Mapping[str, Any], stored: Mapping[str, Any] | None
) -> list[str]:
    """The E.164 rule for phone numbers (imports always; BYO unless switched off)."""
    if kind.name != "phoneNumber":
        return []
    if variant == "vapi":
        area = body.get("numberDesiredAreaCode")
        if isinstance(area, str) and len(area) == 3 and not re.fullmatch(r"[2-9]\d\d", area):
            return ["numberDesiredAreaCode must be a valid US area code"]
        return []
    merged = {**(stored or {}), **body}
    number = merged.get("number")
    if not isinstance(number, str):
        return []
    if variant in _E164_PROVIDERS:
        check = "number" in body
    elif variant == "byo-phone-number":
        touched = "number" in body or "numberE164CheckEnabled" in body
        check = touched and merged.get("numberE164CheckEnabled") is not False
    else:
        check = False
    return [E164_MESSAGE] if check and not _E164.match(number) else []


def check_references(kind: EmulatedKind, fields: Mapping[str, Any], tx: StoreTransaction) -> None:
    """400 unless every referenced object exists (ordering bugs must show)."""
    missing: list[str] = []
    if kind.name == "phoneNumber":
        ref = fields.get("assistantId")
        if isinstance(ref, str) and not tx.exists("assistant", ref):
            missing.append(f"assistantId: assistant {ref} does not exist")
    elif kind.name == "structuredOutput":
        for i, ref in enumerate(fields.get("assistantIds") or []):
            if isinstance(ref, str) and not tx.exists("assistant", ref):
                missing.append(f"assistantIds.{i}: assistant {ref} does not exist")
    elif kind.name == "board":
        for i, item in enumerate(fields.get("items") or []):
            ref = item.get("insightId") if isinstance(item, dict) else None
            if isinstance(ref, str) and not tx.exists("insight", ref):
                missing.append(f"items.{i}.insightId: insight {ref} does not exist")
    if missing:
        raise Fail(400, "; ".join(missing))


def assign_number(area_code: Any, tx: StoreTransaction) -> str:
    """Digits for a new Vapi number: +1, the area code, 555, four digits never reused."""
    area = area_code if isinstance(area_code, str) and area_code else DEFAULT_AREA_CODE
    taken = {o.get("number") for o in tx.objects("phoneNumber").values()}
    while True:
        candidate = f"+1{area}555{(2000 + tx.next_sequence('vapiNumber')) % 10000:04d}"
        if candidate not in taken:
            return candidate


def number_param(
    params: Mapping[str, str],
    name: str,
    default: int,
    low: int,
    high: int | None,
    messages: list[str],
) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        messages.append(f"{name} must be a number conforming to the specified constraints")
        return default
    if value < low:
        messages.append(f"{name} must not be less than {low}")
        return default
    if high is not None and value > high:
        messages.append(f"{name} must not be greater than {high}")
        return default
    return int(value)


def matches(obj: Mapping[str, Any], bounds: list[tuple[str, str, datetime]]) -> bool:
    for column, op, bound in bounds:
        moment = parse_time(str(obj.get(column, "")))
        if moment is None:
            return False
        if op == "Gt" and not moment > bound:
            return False
        if op == "Lt" and not moment < bound:
            return False
        if op == "Ge" and not moment >= bound:
            return False
        if op == "Le" and not moment <= bound:
            return False
    return True
