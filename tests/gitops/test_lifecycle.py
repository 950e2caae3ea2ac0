"""Lifecycle rules, destroy, delete ordering and renames:

- `lifecycle.preventDestroy` fails a plan that would delete or replace the resource, before
  anything is touched; `lifecycle.ignoreChanges` hides drift and changes in those fields;
- `destroy` lists what it deletes and asks (refusing without a terminal unless
  `--auto-approve`);
- a deleted resource's dependents move off it first, so nothing points at a deleted ID;
- `moved: [{from, to}]` re-keys the state with no remote write.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import SECRET, Cli
from tests.gitops import (
    FULL,
    Snapshot,
    apply_full,
    cut,
    edit_manifest,
    edit_remote,
    ids,
    json_lines,
    ok,
    read_state,
    run_in_terminal,
    sandbox_objects,
)
from tests.gitops.conftest import LiveApi

PREVENT = (
    "    name: Acme sales line\n",
    "    name: Acme sales line\n    lifecycle: {preventDestroy: true}\n",
)


def _refused(run: Cli, *args: str) -> str:
    snap = Snapshot()
    result = run(*args)
    assert result.exit_code == 1, result.output
    assert snap.unchanged(), "nothing may be touched"
    return str(result.output)


def test_prevent_destroy_blocks_a_replace(run: Cli, project: Path) -> None:
    edit_manifest(FULL, PREVENT)
    apply_full(run)
    edit_manifest(FULL, ('number: "+13125550199"', 'number: "+13125550100"'))
    message = (
        "phoneNumber.sales-line has lifecycle.preventDestroy set, but this plan would replace it"
    )
    out = _refused(run, "plan", FULL, "--sandbox", "--detailed-exitcode")
    assert message in out and "examples/full.yaml:" in out
    out = _refused(run, "apply", FULL, "--sandbox", "--auto-approve")
    assert message in out and "Nothing was changed." in out
    out = _refused(run, "plan", FULL, "--sandbox", "--out", "plan.bin")
    assert not Path("plan.bin").exists()


def test_prevent_destroy_blocks_a_delete(run: Cli, project: Path) -> None:
    edit_manifest(FULL, PREVENT)
    apply_full(run)
    message = (
        "phoneNumber.sales-line has lifecycle.preventDestroy set, but this plan would delete it"
    )
    assert message in _refused(run, "destroy", FULL, "--sandbox", "--auto-approve")
    assert message in _refused(run, "plan", FULL, "--sandbox", "--destroy")
    assert len(read_state()["resources"]) == 14 and len(sandbox_objects()) == 14
    # Lifting the protection in the manifest lets it go.
    edit_manifest(FULL, ("    lifecycle: {preventDestroy: true}\n", ""))
    ok(run("destroy", FULL, "--sandbox", "--auto-approve"))
    assert sandbox_objects() == []


def test_ignore_changes_hides_drift_and_changes(run: Cli, project: Path) -> None:
    edit_manifest(
        FULL,
        (
            "    name: Acme Sales\n",
            "    name: Acme Sales\n"
            "    lifecycle:\n"
            "      ignoreChanges: [firstMessage, voice.voiceId]\n",
        ),
    )
    state = apply_full(run)
    sales = ids(state)["assistant.sales"]
    edit_remote(
        "assistant",
        sales,
        {"firstMessage": "Set in the dashboard", "voice": {"provider": "vapi", "voiceId": "Harry"}},
    )
    assert "No changes." in ok(run("plan", FULL, "--sandbox", "--detailed-exitcode"))
    assert "No drift" in ok(run("drift", FULL, "--sandbox"))
    # A manifest edit of an ignored field is not applied either.
    edit_manifest(FULL, ("Hello from Acme sales!", "Welcome to Acme sales!"))
    assert "No changes." in ok(run("plan", FULL, "--sandbox", "--detailed-exitcode"))
    # Fields not listed still count.
    edit_remote("assistant", sales, {"name": "Renamed in the dashboard"})
    drift = run("drift", FULL, "--sandbox")
    assert drift.exit_code == 2
    assert "name" in drift.output and "firstMessage" not in drift.output
    assert "voiceId" not in drift.output


def test_destroy_lists_and_refuses_without_a_terminal(run: Cli, project: Path) -> None:
    apply_full(run)
    snap = Snapshot()
    result = run("destroy", FULL, "--sandbox")
    assert result.exit_code == 1
    for address in ids(read_state()):
        assert f"- {address}" in result.output
    assert "will be deleted" in result.output
    assert "Plan: 0 to create, 0 to update, 0 to replace, 14 to delete." in result.output
    assert "destroy needs confirmation" in result.output and "--auto-approve" in result.output
    assert snap.unchanged()


def test_destroy_asks_in_a_terminal(run: Cli, project: Path) -> None:
    apply_full(run)
    env = {"TWILIO_AUTH_TOKEN": SECRET, "NO_COLOR": "1"}
    snap = Snapshot()
    code, out = run_in_terminal(["destroy", FULL, "--sandbox"], answer="no\n", env=env)
    assert code == 1, out
    assert "Do you want to delete these resources? Only 'yes' will be accepted" in out
    assert "destroy cancelled; nothing was changed" in out
    assert snap.unchanged()

    code, out = run_in_terminal(["destroy", FULL, "--sandbox"], answer="yes\n", env=env)
    assert code == 0, out
    assert "14 done" in out
    assert sandbox_objects() == [] and read_state()["resources"] == {}


def _order(events: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """address -> (index of change_started, index of change_finished)."""
    out: dict[str, list[int]] = {}
    for i, e in enumerate(events):
        if e["type"] in ("change_started", "change_finished"):
            out.setdefault(e["address"], []).append(i)
    return {a: (v[0], v[-1]) for a, v in out.items()}


def test_dependents_move_off_a_deleted_resource_first(run: Cli, project: Path) -> None:
    state = apply_full(run)
    sales = ids(state)["assistant.sales"]
    cut(FULL, "  sales:\n    name: Acme Sales", "phoneNumbers:")
    Path(FULL).write_text(
        Path(FULL)
        .read_text()
        .replace("${assistant.sales.id}", "${assistant.support.id}")
        .replace(
            "        - ${assistant.support.id}\n        - ${assistant.support.id}\n",
            "        - ${assistant.support.id}\n",
        )
    )
    result = run("apply", FULL, "--sandbox", "--auto-approve", "--json")
    events = json_lines(ok(result))
    order = _order(events)
    deleted_at = order["assistant.sales"][0]
    for dependent in (
        "phoneNumber.uk-line",
        "phoneNumber.sales-line",
        "structuredOutput.call-summary",
        "structuredOutput.lead-score",
    ):
        assert order[dependent][1] < deleted_at, dependent
    assert events[-1]["type"] == "summary" and events[-1]["ok"] is True
    # Nothing left anywhere points at the deleted assistant.
    assert all(sales not in str(o) for o in sandbox_objects())
    ok(run("plan", FULL, "--sandbox", "--detailed-exitcode"))


def test_destroy_deletes_dependents_first(run: Cli, project: Path) -> None:
    apply_full(run)
    ok(run("plan", FULL, "--sandbox", "--destroy", "--out", "destroy.bin"))
    order = _order(json_lines(ok(run("apply", "destroy.bin", "--sandbox", "--json"))))
    assert len(order) == 14
    for dependent, target in (
        ("phoneNumber.main-line", "assistant.support"),
        ("phoneNumber.uk-line", "assistant.sales"),
        ("structuredOutput.call-summary", "assistant.sales"),
        ("structuredOutput.call-summary", "assistant.support"),
        ("board.overview", "insight.calls-per-day"),
    ):
        assert order[dependent][1] < order[target][0], (dependent, target)
    assert sandbox_objects() == []


def test_moved_rekeys_state_without_remote_writes(
    run: Cli, project: Path, live_api: LiveApi
) -> None:
    env = live_api.env
    ok(run("apply", FULL, "--auto-approve", env=env))
    before = read_state(Path("state/examples/full.json"))
    text = Path(FULL).read_text()
    text = text.replace("  support:\n    name: Acme Support", "  helpdesk:\n    name: Acme Support")
    text = text.replace("${assistant.support.id}", "${assistant.helpdesk.id}")
    text += "\nmoved:\n  - {from: assistant.support, to: assistant.helpdesk}\n"
    Path(FULL).write_text(text)

    requests = live_api.requests()
    # Only a move: still pending (2), since applying it rewrites the state.
    planned = ok(run("plan", FULL, "--detailed-exitcode", env=env), 2)
    assert "assistant.support has moved to assistant.helpdesk" in planned
    assert "No changes." in planned
    assert read_state(Path("state/examples/full.json")) == before  # a plan writes nothing
    applied = ok(run("apply", FULL, "--auto-approve", env=env))
    assert "No changes." in applied
    after = live_api.requests()
    writes = {m: after.get(m, 0) - requests.get(m, 0) for m in ("POST", "PATCH", "DELETE")}
    assert writes == {"POST": 0, "PATCH": 0, "DELETE": 0}
    assert after.get("GET", 0) > requests.get("GET", 0)

    state = read_state(Path("state/examples/full.json"))
    assert "assistant.support" not in state["resources"]
    assert (
        state["resources"]["assistant.helpdesk"]["id"]
        == before["resources"]["assistant.support"]["id"]
    )
    assert "assistant.helpdesk" in state["resources"]["phoneNumber.main-line"]["depends_on"]
    # Once moved, the entry stays moved: the next plan has nothing to do.
    again = ok(run("plan", FULL, "--detailed-exitcode", env=env))
    assert "has moved" not in again and "No changes." in again


def test_prevent_destroy_survives_removing_the_entry(run: Cli, project: Path) -> None:
    """Deleting a protected entry from the manifest does not delete the resource: the
    protection was recorded in state when it was applied."""
    edit_manifest(FULL, PREVENT)
    apply_full(run)
    original = Path(FULL).read_text()
    cut(FULL, "  sales-line:\n", "  # Your own SIP trunk")
    out = _refused(run, "plan", FULL, "--sandbox")
    assert "phoneNumber.sales-line was removed from the manifest, but it is protected" in out
    _refused(run, "apply", FULL, "--sandbox", "--auto-approve")
    assert len(sandbox_objects()) == 14
    # Turning the protection off, applying, then removing the entry deletes it.
    Path(FULL).write_text(original.replace("lifecycle: {preventDestroy: true}", "lifecycle: {}"))
    ok(run("apply", FULL, "--sandbox", "--auto-approve"))
    cut(FULL, "  sales-line:\n", "  # Your own SIP trunk")
    ok(run("apply", FULL, "--sandbox", "--auto-approve"))
    assert len(sandbox_objects()) == 13


def test_moved_to_an_undeclared_address_is_an_error(run: Cli, project: Path) -> None:
    """A typo in `to` would re-key the entry to nothing, then delete and recreate it."""
    apply_full(run)
    text = (
        Path(FULL).read_text() + "\nmoved:\n  - {from: assistant.support, to: assistant.helpdsk}\n"
    )
    Path(FULL).write_text(text)
    line = text.splitlines().index("  - {from: assistant.support, to: assistant.helpdsk}") + 1
    snap = Snapshot()
    for args in (
        ("validate", FULL),
        ("plan", FULL, "--sandbox"),
        ("apply", FULL, "--sandbox", "--auto-approve"),
    ):
        result = run(*args)
        assert result.exit_code == 1, result.output
        assert f"{FULL}:{line}:" in result.output
        assert "moved: assistant.helpdsk is not declared in the manifest" in result.output
    assert snap.unchanged()


def test_moved_from_an_address_still_declared_is_an_error(run: Cli, project: Path) -> None:
    """Moving an entry that the manifest still declares would create it again after the
    move: refused at the `from`, before anything happens."""
    apply_full(run)
    entry = "  - {from: assistant.sales, to: assistant.support}"
    text = Path(FULL).read_text() + "\nmoved:\n" + entry + "\n"
    Path(FULL).write_text(text)
    line = text.splitlines().index(entry) + 1
    snap = Snapshot()
    for args in (("validate", FULL), ("plan", FULL, "--sandbox")):
        result = run(*args)
        assert result.exit_code == 1, result.output
        assert f"{FULL}:{line}:" in result.output
        assert "moved: assistant.sales is still declared in the manifest" in result.output
    assert snap.unchanged()
