"""Drift (changes made outside the manifest): `drift` exits 2 and names the changed fields;
`drift --accept` takes the remote into the state so the next check exits 0; `plan
--refresh-only` reports the same; a normal plan lists drift apart from its own changes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli
from tests.gitops import (
    FULL,
    Snapshot,
    apply_full,
    delete_remote,
    edit_manifest,
    edit_remote,
    ids,
    ok,
    read_state,
)


@pytest.fixture
def drifted(run: Cli, project: Path) -> dict[str, Any]:
    """The full example applied, then two fields of assistant.sales edited in the dashboard
    (drift is about the fields the manifest manages: others are the API's business)."""
    state = apply_full(run)
    edit_remote(
        "assistant",
        ids(state)["assistant.sales"],
        {"firstMessage": "Edited in dashboard", "voice": {"provider": "vapi", "voiceId": "Harry"}},
    )
    return state


def test_no_drift_exits_0(run: Cli, project: Path) -> None:
    apply_full(run)
    out = ok(run("drift", FULL, "--sandbox"))
    assert "No drift" in out
    ok(run("plan", FULL, "--sandbox", "--refresh-only", "--detailed-exitcode"))
    md = ok(run("drift", FULL, "--sandbox", "--format", "markdown"))
    assert "**No drift.** The remote matches what was last applied." in md
    assert json.loads(run("drift", FULL, "--sandbox", "--format", "json").stdout)["drift"] == []


def test_drift_exits_2_and_lists_the_fields(run: Cli, drifted: dict[str, Any]) -> None:
    snap = Snapshot()
    result = run("drift", FULL, "--sandbox")
    assert result.exit_code == 2, result.output
    assert "~ assistant.sales (Acme Sales): 2 field(s) changed remotely" in result.output
    assert '~ firstMessage: "Hello from Acme sales! What are you looking for today?" -> ' in (
        result.output
    )
    assert '"Edited in dashboard"' in result.output
    assert '~ voice.voiceId: "Elliot" -> "Harry"' in result.output
    assert "1 resource(s) drifted." in result.output
    assert snap.unchanged(), "a drift check writes nothing"

    doc = json.loads(run("drift", FULL, "--sandbox", "--format", "json").stdout)
    assert [d["address"] for d in doc["drift"]] == ["assistant.sales"]
    fields = {f["path"]: f for f in doc["drift"][0]["fields"]}
    assert fields["firstMessage"]["after"] == "Edited in dashboard"
    assert fields["voice.voiceId"] == {
        "path": "voice.voiceId",
        "path_parts": ["voice", "voiceId"],
        "before": "Elliot",
        "after": "Harry",
        "drift": True,
        "forces_replace": False,
    }

    md = run("drift", FULL, "--sandbox", "--format", "markdown")
    assert md.exit_code == 2
    assert "#### Changed outside the manifest" in md.output
    assert "<code>~ assistant.sales</code>" in md.output


def test_refresh_only_reports_drift_alone(run: Cli, drifted: dict[str, Any]) -> None:
    edit_manifest(FULL, ("temperature: 0.3", "temperature: 0.5"))  # a manifest change too
    result = run("plan", FULL, "--sandbox", "--refresh-only", "--detailed-exitcode")
    assert result.exit_code == 2
    assert "assistant.sales" in result.output and "firstMessage" in result.output
    assert "assistant.support" not in result.output  # its change is not drift
    assert "temperature" not in result.output
    # Without --detailed-exitcode a report is a success.
    ok(run("plan", FULL, "--sandbox", "--refresh-only"))


def test_accept_then_drift_exits_0_and_manifest_wins(
    run: Cli, drifted: dict[str, Any], project: Path
) -> None:
    out = ok(run("drift", FULL, "--sandbox", "--accept"))
    assert "Accepted the remote state of 1 resource(s) into the state file." in out
    applied = read_state()["resources"]["assistant.sales"]["applied"]
    assert applied["firstMessage"] == "Edited in dashboard"
    assert applied["voice"] == {"provider": "vapi", "voiceId": "Harry"}

    assert "No drift" in ok(run("drift", FULL, "--sandbox"))
    ok(run("plan", FULL, "--sandbox", "--refresh-only", "--detailed-exitcode"))
    # The manifest is unchanged, so a plan now shows an ordinary update, not drift.
    result = run("plan", FULL, "--sandbox", "--format", "json", "--detailed-exitcode")
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    assert doc["drift"] == []
    sales = next(c for c in doc["changes"] if c["address"] == "assistant.sales")
    assert (sales["action"], sales["reason"]) == ("update", "manifest_changed")
    ok(run("apply", FULL, "--sandbox", "--auto-approve"))
    ok(run("drift", FULL, "--sandbox"))
    ok(run("plan", FULL, "--sandbox", "--detailed-exitcode"))


def test_plan_reports_drift_apart_from_its_own_changes(run: Cli, drifted: dict[str, Any]) -> None:
    edit_manifest(FULL, ("temperature: 0.3", "temperature: 0.5"))
    result = run("plan", FULL, "--sandbox", "--detailed-exitcode")
    assert result.exit_code == 2
    text = result.output
    drift_part, _, changes_part = text.partition("Planned actions")
    assert "Changed outside the manifest (drift):" in drift_part
    assert "assistant.sales" in drift_part and "assistant.support" not in drift_part
    assert "~ assistant.support" in changes_part
    assert "~ model.temperature: 0.3 -> 0.5" in changes_part
    # The plan puts the drifted fields back to what the manifest says.
    assert "# changed outside the manifest" in changes_part

    doc = json.loads(run("plan", FULL, "--sandbox", "--format", "json").stdout)
    assert [d["address"] for d in doc["drift"]] == ["assistant.sales"]
    by = {c["address"]: c for c in doc["changes"]}
    assert by["assistant.support"]["reason"] == "manifest_changed"
    assert not any(f["drift"] for f in by["assistant.support"]["fields"])
    assert by["assistant.sales"]["reason"] == "drift"


def test_deleted_remotely_is_drift(run: Cli, project: Path) -> None:
    state = apply_full(run)
    delete_remote("insight", ids(state)["insight.ended-reasons"])
    result = run("drift", FULL, "--sandbox", "--format", "json")
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    assert doc["drift"] == [
        {
            "address": "insight.ended-reasons",
            "kind": "insight",
            "name": "Why calls ended",
            "deleted": True,
            "fields": [],
        }
    ]
    human = run("drift", FULL, "--sandbox")
    assert "insight.ended-reasons (Why calls ended): deleted outside the manifest" in human.output
    # Accepting forgets it; the manifest still has it, so the next plan creates it again.
    ok(run("drift", FULL, "--sandbox", "--accept"))
    assert "insight.ended-reasons" not in read_state()["resources"]
    ok(run("drift", FULL, "--sandbox"))
    plan = run("plan", FULL, "--sandbox", "--detailed-exitcode")
    assert plan.exit_code == 2
    assert "+ insight.ended-reasons" in plan.output


def test_accept_with_json_keeps_stdout_one_document(run: Cli, drifted: dict[str, Any]) -> None:
    result = run("drift", FULL, "--sandbox", "--accept", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [d["address"] for d in doc["drift"]] == ["assistant.sales"]
    assert "Accepted the remote state of 1 resource(s)" in result.stderr
    ok(run("drift", FULL, "--sandbox"))
