"""The JSON plan document and `apply --json` event lines."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from provisioner.apply.events import ChangeOutcome, Outcome
from provisioner.plan.model import Action, ActionReason, FieldChange, Plan, ResourceChange
from provisioner.render.json import (
    FORMAT_VERSION,
    REASON_CODES,
    JsonApplyEvents,
    apply_event_json,
    change_finished_event,
    change_started_event,
    dumps_plan,
    note_event,
    plan_to_json,
    summary_event,
)
from provisioner.values import Sensitive, Unknown
from tests.render import SECRETS, check_golden, sample_plan

NOW = datetime(2026, 3, 4, 5, 6, 7, 891000, tzinfo=UTC)


def change(doc: dict[str, Any], address: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [c for c in doc["changes"] if c["address"] == address]
    assert len(found) == 1
    return found[0]


def test_golden_plan_json() -> None:
    check_golden("plan.json", dumps_plan(sample_plan()) + "\n")


def test_no_secret_in_json() -> None:
    text = dumps_plan(sample_plan())
    for secret in SECRETS:
        assert secret not in text
    assert "hmac-sha256" not in text  # not even the keyed hash of one


def test_top_level_shape() -> None:
    doc = plan_to_json(sample_plan())
    assert doc["format_version"] == FORMAT_VERSION == "1.2"
    assert (doc["mode"], doc["lineage"], doc["serial"]) == ("normal", "L-0001", 7)
    assert doc["has_changes"] is True
    assert doc["summary"] == {
        "create": 1,
        "update": 2,
        "replace": 1,
        "delete": 1,
        "release": 0,
        "no-op": 1,
    }
    assert [w for w in doc["warnings"] if "calls to this number fail" in w]
    assert "cost" not in doc
    json.dumps(doc)  # plain JSON data all the way down


def test_create_fields_have_no_before_key_and_secrets_redacted() -> None:
    c = change(plan_to_json(sample_plan()), "assistant.intake")
    assert (c["action"], c["reason"], c["reason_text"]) == ("create", "new", "new in the manifest")
    assert c["before"] is None and c["id"] is None
    assert c["after"]["server"]["secret"] == "(sensitive)"
    assert all("before" not in f and "after" in f for f in c["fields"])
    assert c["name"] == "Intake `v2` | new"


def test_delete_fields_have_no_after_key() -> None:
    c = change(plan_to_json(sample_plan()), "assistant.old")
    assert (c["action"], c["reason"], c["id"]) == ("delete", "removed", "as-old")
    assert c["after"] is None
    assert all("after" not in f and "before" in f for f in c["fields"])
    assert c["depends_on"] == ["phoneNumber.main"]


def test_update_field_paths_and_flags() -> None:
    doc = plan_to_json(sample_plan())
    support = change(doc, "assistant.support")
    assert support["reason"] == "manifest_changed"
    paths = {f["path"]: f for f in support["fields"]}
    assert paths["model.temperature"] == {
        "path": "model.temperature",
        "path_parts": ["model", "temperature"],
        "before": 0.5,
        "after": 0.7,
        "drift": False,
        "forces_replace": False,
    }
    assert paths["model.messages[0].content"]["path_parts"] == ["model", "messages", 0, "content"]
    phone = change(doc, "phoneNumber.main")
    assert (phone["action"], phone["reason"]) == ("replace", "cannot_update")
    by = {f["path"]: f for f in phone["fields"]}
    assert by["number"]["forces_replace"] is True
    assert by["assistantId"]["after"] == "(known after apply)"
    assert by["twilioAuthToken"]["before"] == by["twilioAuthToken"]["after"] == "(sensitive)"
    assert phone["warnings"] and phone["depends_on"] == ["assistant.intake"]


def test_drift_reported_apart() -> None:
    doc = plan_to_json(sample_plan())
    assert doc["drift"] == [
        {
            "address": "assistant.sales",
            "kind": "assistant",
            "name": "Sales",
            "deleted": False,
            "fields": [
                {
                    "path": "firstMessage",
                    "path_parts": ["firstMessage"],
                    "before": "Hi from sales",
                    "after": "Hi (edited)",
                    "drift": True,
                    "forces_replace": False,
                }
            ],
        }
    ]
    sales = change(doc, "assistant.sales")
    assert sales["reason"] == "drift" and sales["fields"][0]["drift"] is True


def test_deleted_remotely_is_drift_with_no_fields() -> None:
    gone = ResourceChange(
        "assistant.a", "assistant", Action.CREATE, ActionReason.DELETED_REMOTELY, after={}
    )
    [entry] = plan_to_json(Plan((gone,)))["drift"]
    assert entry["deleted"] is True and entry["fields"] == []


def test_no_op_listed_and_body_never_serialised() -> None:
    body = {"secret": Sensitive("plain-body-secret")}
    c = ResourceChange(
        "assistant.a", "assistant", Action.NO_OP, ActionReason.UNCHANGED, id="x", body=body
    )
    text = dumps_plan(Plan((c,)))
    assert "plain-body-secret" not in text
    doc = json.loads(text)
    assert doc["has_changes"] is False and doc["summary"]["no-op"] == 1
    assert doc["changes"][0]["action"] == "no-op"


def test_reason_codes_are_stable_and_unique() -> None:
    assert REASON_CODES[ActionReason.CANNOT_UPDATE] == "cannot_update"
    assert REASON_CODES[ActionReason.DELETED_REMOTELY] == "deleted_remotely"
    assert len(set(REASON_CODES.values())) == len(ActionReason)
    assert all(code.isidentifier() and code.islower() for code in REASON_CODES.values())


def test_cost_and_moves_included() -> None:
    plan = Plan((), moved=("assistant.a -> assistant.b",))
    doc = plan_to_json(plan, cost={"monthly_usd": 1.15})
    assert doc["cost"] == {"monthly_usd": 1.15}
    assert doc["moved"] == [{"from": "assistant.a", "to": "assistant.b"}]


def test_unexpected_values_refused_not_reprd() -> None:
    c = ResourceChange(
        "assistant.a",
        "assistant",
        Action.UPDATE,
        ActionReason.MANIFEST_CHANGED,
        fields=(FieldChange(("x",), 1, object()),),
    )
    with pytest.raises(TypeError):
        plan_to_json(Plan((c,)))


def test_unknown_and_stray_sensitive_redacted() -> None:
    c = ResourceChange(
        "assistant.a",
        "assistant",
        Action.UPDATE,
        ActionReason.MANIFEST_CHANGED,
        fields=(FieldChange(("x",), Sensitive("leak-me"), Unknown("assistant.b")),),
    )
    [f] = plan_to_json(Plan((c,)))["changes"][0]["fields"]
    assert (f["before"], f["after"]) == ("(sensitive)", "(known after apply)")


# Apply events --------------------------------------------------------------------------

CHANGE = ResourceChange("assistant.a", "assistant", Action.UPDATE, ActionReason.DRIFT, id="id1")


def test_change_started_event() -> None:
    assert change_started_event(CHANGE, now=NOW) == {
        "type": "change_started",
        "timestamp": "2026-03-04T05:06:07.891Z",
        "address": "assistant.a",
        "kind": "assistant",
        "action": "update",
        "id": "id1",
    }


def test_change_finished_event_and_line() -> None:
    outcome = ChangeOutcome(CHANGE, Outcome.DONE, id="id1", elapsed=1.23456)
    event = change_finished_event(outcome, now=NOW, done=1, total=3)
    assert event == {
        "type": "change_finished",
        "timestamp": "2026-03-04T05:06:07.891Z",
        "address": "assistant.a",
        "kind": "assistant",
        "action": "update",
        "status": "done",
        "id": "id1",
        "elapsed": 1.235,
        "message": None,
        "done": 1,
        "total": 3,
    }
    line = apply_event_json(event)
    assert "\n" not in line and json.loads(line) == event


def test_timestamps_are_utc() -> None:
    local = NOW.astimezone(timezone(timedelta(hours=2)))
    assert note_event(None, "hi", now=local)["timestamp"] == "2026-03-04T05:06:07.891Z"


def test_summary_event_counts_with_stable_status_codes() -> None:
    outcomes = [
        ChangeOutcome(CHANGE, Outcome.DONE, id="id1"),
        ChangeOutcome(CHANGE, Outcome.FAILED, message="boom"),
        ChangeOutcome(CHANGE, Outcome.SKIPPED, message="assistant.a did not complete"),
        ChangeOutcome(CHANGE, Outcome.NOT_STARTED),
    ]
    event = summary_event(outcomes, interrupted=True, now=NOW)
    assert event["counts"] == {"done": 1, "failed": 1, "skipped": 1, "not_started": 1}
    assert (event["ok"], event["interrupted"]) == (False, True)
    assert event["failed"] == [{"address": "assistant.a", "message": "boom"}]
    assert event["not_started"] == ["assistant.a"]


def test_json_apply_events_writes_one_line_per_event() -> None:
    lines: list[str] = []
    events = JsonApplyEvents(lines.append, total=1, now=lambda: NOW)
    events.change_started(CHANGE)
    events.note("assistant.a", "retrying")
    outcome = ChangeOutcome(CHANGE, Outcome.DONE, id="id1", elapsed=0.5)
    events.change_finished(outcome)
    events.summary([outcome], interrupted=False)
    docs = [json.loads(line) for line in lines]
    assert [d["type"] for d in docs] == ["change_started", "note", "change_finished", "summary"]
    assert (docs[2]["done"], docs[2]["total"]) == (1, 1)
    assert docs[3]["ok"] is True
