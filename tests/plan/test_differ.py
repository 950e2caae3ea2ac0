"""The planner as a truth table: (desired, state, live) -> action, reason, fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from provisioner.manifest.loader import parse_manifest_text
from provisioner.manifest.model import build_manifest
from provisioner.plan.differ import LiveSnapshot, make_plan
from provisioner.plan.model import Action, ActionReason, PlanMode
from provisioner.resolve import ResolvedResource, resolve_manifest
from provisioner.state.model import ResourceState, ResourceStatus, StateFile
from provisioner.values import SENSITIVE_TEXT, keyed_hash

SERVER = {"orgId": "org", "createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": "x"}


def desired(text: str, environ: dict[str, str] | None = None) -> dict[str, ResolvedResource]:
    loaded, diags = parse_manifest_text("version: 1\n" + text, "m.yaml", Path("m.yaml"))
    assert loaded is not None and not diags
    resolved, rdiags = resolve_manifest(build_manifest(loaded), environ or {})
    assert not rdiags
    return resolved.resources


def state_with(**entries: ResourceState) -> StateFile:
    st = StateFile(lineage="L", serial=3, hash_key="k")
    st.resources = {a.replace("__", "."): r for a, r in entries.items()}
    return st


def live(obj: dict[str, Any]) -> dict[str, Any]:
    return {**SERVER, **obj}


ASSISTANT = (
    "assistants:\n  a: {name: A, firstMessage: hi, model: {provider: openai, model: gpt-4o}}\n"
)
APPLIED = {"name": "A", "firstMessage": "hi", "model": {"provider": "openai", "model": "gpt-4o"}}


def only(plan: Any, address: str) -> Any:
    [change] = [c for c in plan.changes if c.address == address]
    return change


def test_new_resource_is_created() -> None:
    plan = make_plan(desired(ASSISTANT), StateFile.new(), LiveSnapshot())
    c = only(plan, "assistant.a")
    assert (c.action, c.reason) == (Action.CREATE, ActionReason.NEW)
    assert c.after == APPLIED


def test_unchanged_with_server_fields_and_defaults_is_no_op() -> None:
    st = state_with(assistant__a=ResourceState("assistant", "id1", applied=APPLIED))
    remote = live(
        {
            "id": "id1",
            **APPLIED,
            "model": {**APPLIED["model"], "temperature": 1},  # server default
            "isServerUrlSecretSet": False,
            "metadata": {"provisioner": {"address": "assistant.a", "lineage": "L"}},
        }
    )
    plan = make_plan(desired(ASSISTANT), st, LiveSnapshot({"assistant.a": remote}))
    assert only(plan, "assistant.a").action is Action.NO_OP
    assert not plan.has_changes


def test_manifest_change_is_one_update_with_field_diff() -> None:
    st = state_with(assistant__a=ResourceState("assistant", "id1", applied=APPLIED))
    remote = live({"id": "id1", **APPLIED})
    plan = make_plan(
        desired(ASSISTANT.replace("hi", "hello")), st, LiveSnapshot({"assistant.a": remote})
    )
    c = only(plan, "assistant.a")
    assert (c.action, c.reason) == (Action.UPDATE, ActionReason.MANIFEST_CHANGED)
    assert [(f.path, f.before, f.after, f.drift) for f in c.fields] == [
        (("firstMessage",), "hi", "hello", False)
    ]


def test_remote_edit_is_drift() -> None:
    st = state_with(assistant__a=ResourceState("assistant", "id1", applied=APPLIED))
    remote = live({"id": "id1", **APPLIED, "firstMessage": "edited in dashboard"})
    plan = make_plan(desired(ASSISTANT), st, LiveSnapshot({"assistant.a": remote}))
    c = only(plan, "assistant.a")
    assert (c.action, c.reason) == (Action.UPDATE, ActionReason.DRIFT)
    assert [f.path for f in c.drift] == [("firstMessage",)]
    assert c.fields[0].drift
    assert plan.drifted() == (c,)


def test_ignore_changes_hides_remote_edit() -> None:
    text = ASSISTANT.replace("}}\n", "}, lifecycle: {ignoreChanges: [firstMessage]}}\n")
    st = state_with(assistant__a=ResourceState("assistant", "id1", applied=APPLIED))
    remote = live({"id": "id1", **APPLIED, "firstMessage": "edited"})
    plan = make_plan(desired(text), st, LiveSnapshot({"assistant.a": remote}))
    assert only(plan, "assistant.a").action is Action.NO_OP


def test_deleted_remotely_is_created_again() -> None:
    st = state_with(assistant__a=ResourceState("assistant", "id1", applied=APPLIED))
    plan = make_plan(desired(ASSISTANT), st, LiveSnapshot({"assistant.a": None}))
    c = only(plan, "assistant.a")
    assert (c.action, c.reason) == (Action.CREATE, ActionReason.DELETED_REMOTELY)


def test_removed_from_manifest_is_deleted() -> None:
    st = state_with(assistant__a=ResourceState("assistant", "id1", applied=APPLIED))
    plan = make_plan({}, st, LiveSnapshot({"assistant.a": live({"id": "id1", **APPLIED})}))
    c = only(plan, "assistant.a")
    assert (c.action, c.reason, c.id) == (Action.DELETE, ActionReason.REMOVED, "id1")


def test_destroy_mode_deletes_everything() -> None:
    st = state_with(assistant__a=ResourceState("assistant", "id1", applied=APPLIED))
    plan = make_plan(desired(ASSISTANT), st, LiveSnapshot({}), mode=PlanMode.DESTROY)
    assert [c.action for c in plan.changes] == [Action.DELETE]


PHONE = (
    "phoneNumbers:\n  n: {provider: twilio, number: '+14155550100', twilioAccountSid: AC1, "
    "twilioAuthToken: '${env:TOK}'}\n"
)


def _phone_state(token: str) -> StateFile:
    applied = {
        "provider": "twilio",
        "number": "+14155550100",
        "twilioAccountSid": "AC1",
        "twilioAuthToken": keyed_hash(token, "k"),
    }
    return state_with(phoneNumber__n=ResourceState("phoneNumber", "p1", applied=applied))


PHONE_LIVE = live(
    {"id": "p1", "provider": "twilio", "number": "+14155550100", "twilioAccountSid": "AC1"}
)


def test_write_only_secret_compared_by_keyed_hash() -> None:
    same = make_plan(
        desired(PHONE, {"TOK": "tok-AAA"}),
        _phone_state("tok-AAA"),
        LiveSnapshot({"phoneNumber.n": PHONE_LIVE}),
    )
    assert not same.has_changes
    changed = make_plan(
        desired(PHONE, {"TOK": "tok-BBB"}),
        _phone_state("tok-AAA"),
        LiveSnapshot({"phoneNumber.n": PHONE_LIVE}),
    )
    c = only(changed, "phoneNumber.n")
    assert c.action is Action.UPDATE
    [f] = c.fields
    assert f.path == ("twilioAuthToken",)
    assert (f.before, f.after) == (SENSITIVE_TEXT, SENSITIVE_TEXT)
    assert "tok-AAA" not in repr(changed) and "tok-BBB" not in repr(changed)


def test_number_change_forces_replace_with_warning() -> None:
    text = PHONE.replace("+14155550100", "+14155550111")
    plan = make_plan(
        desired(text, {"TOK": "tok-AAA"}),
        _phone_state("tok-AAA"),
        LiveSnapshot({"phoneNumber.n": PHONE_LIVE}),
    )
    c = only(plan, "phoneNumber.n")
    assert (c.action, c.reason) == (Action.REPLACE, ActionReason.CANNOT_UPDATE)
    assert c.fields[0].forces_replace
    assert c.warnings and "calls to this number fail" in c.warnings[0]


CUTOVER = """assistants:
  v2: {name: V2}
phoneNumbers:
  n: {provider: vapi, assistantId: "${assistant.v2.id}"}
"""


def test_cut_over_orders_create_then_move_then_delete() -> None:
    st = state_with(
        assistant__v1=ResourceState("assistant", "old", applied={"name": "V1"}),
        phoneNumber__n=ResourceState(
            "phoneNumber",
            "p1",
            applied={"provider": "vapi", "assistantId": "old"},
            depends_on=["assistant.v1"],
        ),
    )
    lv = LiveSnapshot(
        {
            "assistant.v1": live({"id": "old", "name": "V1"}),
            "phoneNumber.n": live({"id": "p1", "provider": "vapi", "assistantId": "old"}),
        }
    )
    plan = make_plan(desired(CUTOVER), st, lv)
    create, delete, move = (
        only(plan, "assistant.v2"),
        only(plan, "assistant.v1"),
        only(plan, "phoneNumber.n"),
    )
    assert create.action is Action.CREATE
    assert move.action is Action.UPDATE and move.depends_on == ("assistant.v2",)
    assert move.reason is ActionReason.REFERENCE_CHANGED
    assert delete.action is Action.DELETE and delete.depends_on == ("phoneNumber.n",)


def test_interrupted_create_found_remotely_is_adopted() -> None:
    st = state_with(
        assistant__a=ResourceState("assistant", None, status=ResourceStatus.CREATING, intent={})
    )
    found = live({"id": "id9", **APPLIED})
    plan = make_plan(desired(ASSISTANT), st, LiveSnapshot({}, adopted={"assistant.a": found}))
    c = only(plan, "assistant.a")
    assert (c.action, c.id) == (Action.NO_OP, "id9")


def test_interrupted_create_not_found_is_created() -> None:
    st = state_with(
        assistant__a=ResourceState("assistant", None, status=ResourceStatus.CREATING, intent={})
    )
    c = only(make_plan(desired(ASSISTANT), st, LiveSnapshot({})), "assistant.a")
    assert (c.action, c.reason) == (Action.CREATE, ActionReason.CREATE_UNFINISHED)


@pytest.mark.parametrize("field", ["name", "assistantId", "fallbackDestination"])
def test_phone_in_place_fields_update(field: str) -> None:
    values = {
        "name": "x",
        "assistantId": "a-1",
        "fallbackDestination": {"type": "number", "number": "+14155550123"},
    }
    import json

    text = PHONE.replace("}\n", f", {field}: {json.dumps(values[field])}}}\n")
    plan = make_plan(
        desired(text, {"TOK": "tok-AAA"}),
        _phone_state("tok-AAA"),
        LiveSnapshot({"phoneNumber.n": PHONE_LIVE}),
    )
    assert only(plan, "phoneNumber.n").action is Action.UPDATE


PROMPTED = (
    "assistants:\n  a:\n    name: A\n    model:\n      provider: openai\n      model: gpt-4o\n"
    "      messages:\n        - {role: system, content: Be brief.}\n"
    '        - {role: user, content: "code ${env:CODE}"}\n'
)


def _prompted_state(secret: str) -> tuple[StateFile, dict[str, Any]]:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": keyed_hash(f"code {secret}", "k")},
    ]
    applied = {
        "name": "A",
        "model": {"provider": "openai", "model": "gpt-4o", "messages": messages},
    }
    return state_with(assistant__a=ResourceState("assistant", "id1", applied=applied)), applied


def _everything(plan: Any) -> str:
    from provisioner.render.json import dumps_plan

    return dumps_plan(plan)


def test_echoed_secret_moved_within_a_list_is_never_shown() -> None:
    """The remote dropped the first message: the secret one shifted to another index,
    where the manifest holds clear text. It is still recognised (by its hash)."""
    st, applied = _prompted_state("s3cr3t")
    remote = live(
        {
            "id": "id1",
            "name": "A",
            "model": {
                "provider": "openai",
                "model": "gpt-4o",
                "messages": [{"role": "user", "content": "code s3cr3t"}],
            },
        }
    )
    plan = make_plan(
        desired(PROMPTED, {"CODE": "s3cr3t"}), st, LiveSnapshot({"assistant.a": remote})
    )
    c = only(plan, "assistant.a")
    assert c.action is Action.UPDATE and c.drift
    assert "s3cr3t" not in _everything(plan)
    assert "s3cr3t" not in repr(c.before) + repr(c.fields) + repr(c.drift)


def test_secret_replaced_by_a_literal_never_shows_the_old_secret() -> None:
    st, _ = _prompted_state("old-secret")
    remote = live(
        {
            "id": "id1",
            "name": "A",
            "model": {
                "provider": "openai",
                "model": "gpt-4o",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "code old-secret"},
                ],
            },
        }
    )
    text = PROMPTED.replace("${env:CODE}", "public")
    plan = make_plan(desired(text), st, LiveSnapshot({"assistant.a": remote}))
    c = only(plan, "assistant.a")
    assert c.action is Action.UPDATE and not c.drift
    [f] = c.fields
    assert (f.before, f.after) == (SENSITIVE_TEXT, "code public")
    assert "old-secret" not in repr(c.before) + repr(c.fields)
