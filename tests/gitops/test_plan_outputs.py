"""`plan --format json` and `plan --format markdown` for the full example, in a situation
holding every kind of change at once: a create, an update, a replace, a delete, and drift.

Compared with golden files in tests/gitops/golden/ after replacing the run's IDs with
placeholders; regenerate with `UPDATE_GOLDEN=1 python -m pytest tests/gitops`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SECRET, Cli
from tests.gitops import (
    FULL,
    apply_full,
    check_golden,
    cut,
    edit_manifest,
    edit_remote,
    ids,
    normalise,
    ok,
)

NEW_INSIGHT = """    calls-by-line:
      type: bar
      name: Calls by line
      groupBy: phoneNumberId
      queries:
        - {type: vapiql-json, table: call, column: id, operation: count, name: calls}

  boards:
"""


@pytest.fixture
def everything(run: Cli, project: Path) -> dict[str, Any]:
    """The full example applied, then: one update, one replace, one delete, one create in
    the manifest, and one edit in the dashboard. Returns the state as applied."""
    state = apply_full(run)
    edit_manifest(
        FULL,
        ("temperature: 0.3", "temperature: 0.5"),  # update assistant.support
        ('number: "+13125550199"', 'number: "+13125550100"'),  # replace phoneNumber.sales-line
        ("  boards:\n", NEW_INSIGHT),  # create insight.calls-by-line
    )
    cut(FULL, "    lead-score:", "  insights:")  # delete structuredOutput.lead-score
    edit_remote("assistant", ids(state)["assistant.sales"], {"firstMessage": "Edited in dashboard"})
    return state


def test_json_plan_matches_golden(run: Cli, everything: dict[str, Any]) -> None:
    result = run("plan", FULL, "--sandbox", "--format", "json", "--detailed-exitcode")
    assert result.exit_code == 2, result.output
    doc = json.loads(result.stdout)
    assert doc["format_version"] == "1.2"
    assert doc["summary"] == {
        "create": 1,
        "update": 2,
        "replace": 1,
        "delete": 1,
        "release": 0,
        "no-op": 10,
    }
    actions = {c["address"]: (c["action"], c["reason"]) for c in doc["changes"]}
    assert actions["assistant.support"] == ("update", "manifest_changed")
    assert actions["assistant.sales"] == ("update", "drift")
    assert actions["phoneNumber.sales-line"] == ("replace", "cannot_update")
    assert actions["structuredOutput.lead-score"] == ("delete", "removed")
    assert actions["insight.calls-by-line"] == ("create", "new")
    assert [d["address"] for d in doc["drift"]] == ["assistant.sales"]
    assert doc["lineage"] == everything["lineage"]
    # The serial depends on how the apply's writes interleaved: not part of the golden.
    doc["serial"] = 0
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    assert SECRET not in result.output
    check_golden("plan.json", normalise(text, everything))


def test_markdown_plan_matches_golden(run: Cli, everything: dict[str, Any]) -> None:
    result = run("plan", FULL, "--sandbox", "--format", "markdown")
    text = ok(result)
    assert "**Plan:** 1 to create, 2 to update, 1 to replace, 1 to delete." in text
    assert "#### Changed outside the manifest" in text
    assert SECRET not in text
    check_golden("plan.md", normalise(result.stdout, everything))


def test_human_plan_reports_every_kind_of_change(run: Cli, everything: dict[str, Any]) -> None:
    text = ok(run("plan", FULL, "--sandbox"))
    assert "Plan: 1 to create, 2 to update, 1 to replace, 1 to delete." in text
    for line in (
        "+ insight.calls-by-line",
        "~ assistant.support",
        "-/+ phoneNumber.sales-line",
        "- structuredOutput.lead-score",
        "Changed outside the manifest (drift):",
    ):
        assert line in text
    assert SECRET not in text
