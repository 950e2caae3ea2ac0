"""Machine-readable output: the plan as one JSON document, and `apply --json` progress lines.

Presentation only: takes plain data (Plan, ResourceChange, ChangeOutcome) and returns
dicts or strings; never prints, never reads the clock (timestamps are passed in).

Values arrive already redacted (`before`, `after`, `fields`): secrets are `"(sensitive)"`,
values known only after apply are `"(known after apply)"`. `ResourceChange.body` (raw
desired values, secrets included) is never read here.

Absent values: a field that does not exist on one side of a change (the `MISSING`
sentinel) is an *absent key* (`"before"` or `"after"` left out of the field entry);
`null` always means an explicit JSON null. At the change level, `"before"` is null for a
create and `"after"` is null for a delete (the whole object does not exist on that side).

Plan document (`format_version` "1.2"; additive changes keep "1.x")::

    {
      "format_version": "1.2",
      "environment": str | null,   (the manifest's environment, #12)
      "mode": "normal" | "destroy",
      "lineage": str, "serial": int,
      "has_changes": bool,
      "summary": {"create": n, "update": n, "replace": n, "delete": n, "release": n,
                  "no-op": n},
      "changes": [{
        "address", "kind", "name" (str|null),
        "action" (create|update|replace|delete|release|no-op),
        "reason" (stable code, see REASON_CODES), "reason_text" (for people),
        "id" (str|null), "before" (obj|null), "after" (obj|null),
        "fields": [{"path": "model.temperature", "path_parts": ["model", "temperature"],
                    "before"?, "after"?, "drift": bool, "forces_replace": bool}],
        "depends_on": [address], "warnings": [str],
        "deferred"?: true   (since 1.2: an update completing this plan's create of the
                             same address, listed right after it: the fields the create
                             left out to break a reference cycle; reason `cycle_broken`)
        "origins": [{"path": "maxDurationSeconds", "origin": "var.max (prod), vapi.yaml:5"}],
        "purchase"?: {"action" (buy|bought|release|keep), "country", "type", "areaCode"?,
                      "contains"?, "release", "number"?, "sid"?, "account"?, "monthly"?,
                      "currency"?}
      }],
      "drift": [{"address", "kind", "name", "deleted": bool, "fields": [...]}],
      "moved": [{"from": address, "to": address}],   (state entries re-keyed by `moved`)
      "reads": [{"address": "data.KIND.KEY", "kind", "id", "name"}],   (since 1.2: what
               the `data:` lookups found; read only, never changed)
      "partial": bool, "targets": [address],   (`--target`: the addresses asked for)
      "excluded": [address],   (changes a partial plan left out: still pending)
      "warnings": [str],
      "cost": {"currency", "monthly_before", "monthly_after", "monthly_change" ("+1.15"),
               "numbers": [{"address", "provider", "number", "country", "type",
                            "monthly", "currency",
                            "status" (kept|new|removed|replaced|not released)}],
               "unpriced": [{"address", "provider", "why"}],
               "still_billed": [...]?, "incomplete": true?}
               (amounts are decimal strings; present when the plan was priced;
               `incomplete` when a price could not be read, so totals are a floor)
    }

Apply events (`apply --json`): one compact JSON object per line, each with `"type"` and
`"timestamp"` (ISO 8601); see the `*_event` functions for the shapes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from provisioner.apply.events import ChangeOutcome, Outcome
from provisioner.plan.model import MISSING, ActionReason, FieldChange, Plan, ResourceChange
from provisioner.values import KNOWN_AFTER_APPLY, SENSITIVE_TEXT, Sensitive, Unknown

__all__ = [
    "FORMAT_VERSION",
    "REASON_CODES",
    "STATUS_CODES",
    "JsonApplyEvents",
    "apply_event_json",
    "change_finished_event",
    "change_started_event",
    "change_to_json",
    "dumps_plan",
    "field_to_json",
    "note_event",
    "plan_to_json",
    "summary_event",
]

# 1.1 (additive): the `release` action, a number an entry replaced whose release at Twilio
# failed; its `address` is the entry's (it may also have a change of its own), its
# `purchase` names the number, and `depends_on` the entry's change it runs after.
# 1.2 (additive, this release): `reads` (`data:` lookups), `deferred` updates (a handoff
# cycle broken), `partial`, `targets` and `excluded` (a `--target` plan), the action
# `forget` (`removed:`) and the reasons `cycle_broken` and `replace_requested`.
# 1.2 (additive, #12): `environment` (the manifest's environment the plan is for, null
# without environments) and per change `origins`: the fields that environment set itself.
FORMAT_VERSION = "1.2"

# Stable machine codes for ActionReason: the enum member names, lower-cased.
REASON_CODES: Mapping[ActionReason, str] = {r: r.name.lower() for r in ActionReason}

# Stable machine codes for apply outcomes (no spaces: "not started" -> "not_started").
STATUS_CODES: Mapping[Outcome, str] = {o: o.name.lower() for o in Outcome}


# Plans ---------------------------------------------------------------------------------


def plan_to_json(plan: Plan, *, cost: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The plan as a JSON-ready dict (see the module docstring for the shape).

    Args:
        plan: the plan to render; every change is listed, no-ops included.
        cost: an optional cost estimate, copied under `"cost"` as given.
    """
    out: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "environment": plan.environment,
        "mode": plan.mode.value,
        "lineage": plan.lineage,
        "serial": plan.serial,
        "has_changes": plan.has_changes,
        "summary": plan.counts(),
        "changes": [change_to_json(c) for c in plan.changes],
        "drift": [_drift_to_json(c) for c in plan.drifted()],
        "moved": [_move_to_json(m) for m in plan.moved],
        "reads": [
            {"address": r.address, "kind": r.kind, "id": r.id, "name": r.name} for r in plan.reads
        ],
        "partial": plan.partial,
        "targets": list(plan.targets),
        "excluded": list(plan.excluded),
        "warnings": list(plan.warnings),
    }
    if cost is not None:
        out["cost"] = as_json_data(cost)
    return out


def dumps_plan(plan: Plan, *, cost: Mapping[str, Any] | None = None) -> str:
    """`plan_to_json` as indented, deterministic JSON text (no trailing newline)."""
    return json.dumps(plan_to_json(plan, cost=cost), indent=2, ensure_ascii=False)


def change_to_json(change: ResourceChange) -> dict[str, Any]:
    """One `ResourceChange` as a JSON-ready dict. Never includes `body`."""
    return {
        "address": change.address,
        "kind": change.kind,
        "name": change.name,
        "action": change.action.value,
        "reason": REASON_CODES[change.reason],
        "reason_text": change.reason.value,
        "id": change.id,
        "before": None if change.before is None else as_json_data(change.before),
        "after": None if change.after is None else as_json_data(change.after),
        "fields": [field_to_json(f) for f in change.fields],
        "depends_on": list(change.depends_on),
        "warnings": list(change.warnings),
        "origins": [{"path": p, "origin": o} for p, o in change.origins],
        **({} if change.purchase is None else {"purchase": as_json_data(change.purchase)}),
        **({"deferred": True} if change.deferred else {}),
    }


def field_to_json(f: FieldChange) -> dict[str, Any]:
    """One `FieldChange`; a side that does not exist (MISSING) is left out."""
    out: dict[str, Any] = {"path": f.dotted, "path_parts": list(f.path)}
    if f.before is not MISSING:
        out["before"] = as_json_data(f.before)
    if f.after is not MISSING:
        out["after"] = as_json_data(f.after)
    out["drift"] = f.drift
    out["forces_replace"] = f.forces_replace
    return out


def _drift_to_json(change: ResourceChange) -> dict[str, Any]:
    return {
        "address": change.address,
        "kind": change.kind,
        "name": change.name,
        "deleted": change.reason is ActionReason.DELETED_REMOTELY and not change.drift,
        "fields": [field_to_json(f) for f in change.drift],
    }


def _move_to_json(move: str) -> dict[str, str]:
    source, _, target = move.partition(" -> ")
    return {"from": source, "to": target}


def as_json_data(value: Any) -> Any:
    """A displayable value as JSON data. Anything unexpected is refused, never repr'd."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): as_json_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [as_json_data(v) for v in value]
    if isinstance(value, Unknown):
        return KNOWN_AFTER_APPLY
    if isinstance(value, Sensitive):
        # Display values are redacted upstream; this is only a second line of defence.
        return SENSITIVE_TEXT
    if value is MISSING:
        raise TypeError("MISSING inside a value: only a whole field side may be absent")
    raise TypeError(f"cannot render a {type(value).__name__} as JSON")


# Apply events --------------------------------------------------------------------------


def _timestamp(now: datetime) -> str:
    text = now.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.removesuffix("+00:00") + "Z"


def change_started_event(change: ResourceChange, *, now: datetime) -> dict[str, Any]:
    """`{"type": "change_started", "timestamp", "address", "kind", "action", "id"}`."""
    return {
        "type": "change_started",
        "timestamp": _timestamp(now),
        "address": change.address,
        "kind": change.kind,
        "action": change.action.value,
        "id": change.id,
    }


def change_finished_event(
    outcome: ChangeOutcome,
    *,
    now: datetime,
    done: int | None = None,
    total: int | None = None,
) -> dict[str, Any]:
    """`{"type": "change_finished", "timestamp", "address", "kind", "action", "status",
    "id", "elapsed", "message"}`, plus `"done"`/`"total"` counters when given.

    `status` is one of `STATUS_CODES` (done, failed, skipped, not_started); `elapsed` is
    in seconds; `message` is null on success.
    """
    change = outcome.change
    out: dict[str, Any] = {
        "type": "change_finished",
        "timestamp": _timestamp(now),
        "address": change.address,
        "kind": change.kind,
        "action": change.action.value,
        "status": STATUS_CODES[outcome.status],
        "id": outcome.id,
        "elapsed": round(outcome.elapsed, 3),
        "message": outcome.message,
    }
    if done is not None:
        out["done"] = done
    if total is not None:
        out["total"] = total
    return out


def note_event(address: str | None, message: str, *, now: datetime) -> dict[str, Any]:
    """`{"type": "note", "timestamp", "address" (str|null), "message"}`."""
    return {"type": "note", "timestamp": _timestamp(now), "address": address, "message": message}


def summary_event(
    outcomes: Sequence[ChangeOutcome], *, interrupted: bool, now: datetime
) -> dict[str, Any]:
    """`{"type": "summary", "timestamp", "ok", "interrupted", "counts": {status: n},
    "failed": [{"address", "message"}], "skipped": [...], "not_started": [address]}`."""
    counts = {code: 0 for code in STATUS_CODES.values()}
    for o in outcomes:
        counts[STATUS_CODES[o.status]] += 1
    return {
        "type": "summary",
        "timestamp": _timestamp(now),
        "ok": not interrupted and all(o.status is Outcome.DONE for o in outcomes),
        "interrupted": interrupted,
        "counts": counts,
        "failed": [
            {"address": o.change.address, "message": o.message}
            for o in outcomes
            if o.status is Outcome.FAILED
        ],
        "skipped": [
            {"address": o.change.address, "message": o.message}
            for o in outcomes
            if o.status is Outcome.SKIPPED
        ],
        "not_started": [o.change.address for o in outcomes if o.status is Outcome.NOT_STARTED],
    }


def apply_event_json(event: Mapping[str, Any]) -> str:
    """One event as a single line of compact JSON (no newline)."""
    return json.dumps(as_json_data(event), ensure_ascii=False, separators=(",", ":"))


class JsonApplyEvents:
    """An `ApplyEvents` sink writing one JSON line per event through `write`.

    `write` receives each line without its newline (e.g. `click.echo`); `now` is the
    clock. Calls are serialised, since the engine reports notes from worker threads.
    """

    def __init__(
        self,
        write: Callable[[str], None],
        *,
        total: int | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._write = write
        self._now = now
        self._total = total
        self._done = 0
        self._lock = threading.Lock()

    def change_started(self, change: ResourceChange) -> None:
        self._emit(change_started_event(change, now=self._now()))

    def change_finished(self, outcome: ChangeOutcome) -> None:
        with self._lock:
            self._done += 1
            event = change_finished_event(
                outcome, now=self._now(), done=self._done, total=self._total
            )
            self._write(apply_event_json(event))

    def note(self, address: str | None, message: str) -> None:
        self._emit(note_event(address, message, now=self._now()))

    def summary(self, outcomes: Sequence[ChangeOutcome], interrupted: bool) -> None:
        self._emit(summary_event(outcomes, interrupted=interrupted, now=self._now()))

    def _emit(self, event: Mapping[str, Any]) -> None:
        with self._lock:
            self._write(apply_event_json(event))
