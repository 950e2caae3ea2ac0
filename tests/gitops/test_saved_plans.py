"""Saved plans: `plan --out plan.bin` then `apply plan.bin` runs exactly that plan, without
a prompt; a plan made stale by anything (state, remote, manifest, prompt file, secret) is
refused with nothing changed; the file holds no secret."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import SECRET, Cli
from tests.gitops import (
    FULL,
    FULL_STATE,
    Snapshot,
    apply_full,
    edit_manifest,
    edit_remote,
    ids,
    ok,
    plan_file_text,
    read_state,
    sandbox_objects,
)

TEMPERATURE = ("temperature: 0.3", "temperature: 0.5")


def test_first_plan_saved_then_applied_exactly_without_prompt(run: Cli, project: Path) -> None:
    planned = ok(run("plan", FULL, "--sandbox", "--out", "plan.bin"))
    assert "Plan: 14 to create, 0 to update, 0 to replace, 0 to delete." in planned
    assert "provisioner apply plan.bin" in planned
    assert not Path("state/.sandbox/emulator/vapi.json").exists() or sandbox_objects() == []

    # No --auto-approve and no terminal: a manifest apply would refuse; a saved plan runs.
    applied = ok(run("apply", "plan.bin", "--sandbox"))
    assert "Do you want" not in applied
    assert "Apply complete: 14 done, 0 failed, 0 skipped." in applied
    state = read_state()
    assert len(state["resources"]) == 14 and all(ids(state).values())
    assert len(sandbox_objects()) == 14
    assert ok(run("plan", FULL, "--sandbox", "--detailed-exitcode")).count("No changes.") == 1


def test_saved_update_applies_the_planned_change_only(run: Cli, project: Path) -> None:
    apply_full(run)
    edit_manifest(FULL, TEMPERATURE)
    planned = ok(run("plan", FULL, "--sandbox", "--out", "plan.bin"))
    assert "~ model.temperature: 0.3 -> 0.5" in planned
    assert "Plan: 0 to create, 1 to update, 0 to replace, 0 to delete." in planned

    applied = ok(run("apply", "plan.bin", "--sandbox", "--json"))
    events = [line for line in applied.splitlines() if '"change_finished"' in line]
    assert len(events) == 1 and '"address":"assistant.support"' in events[0]
    support = [o for o in sandbox_objects() if o.get("name") == "Acme Support"]
    assert support[0]["model"]["temperature"] == 0.5
    ok(run("plan", FULL, "--sandbox", "--detailed-exitcode"))

    # A plan is used once: its state has moved on.
    again = run("apply", "plan.bin", "--sandbox")
    assert again.exit_code == 1
    assert "the saved plan is stale: the state has changed since the plan was made" in again.output


def test_saved_destroy_plan(run: Cli, project: Path) -> None:
    apply_full(run)
    planned = ok(run("plan", FULL, "--sandbox", "--destroy", "--out", "destroy.bin"))
    assert "Plan: 0 to create, 0 to update, 0 to replace, 14 to delete." in planned
    ok(run("apply", "destroy.bin", "--sandbox"))
    assert read_state()["resources"] == {}
    assert sandbox_objects() == []


def _stale(run: Cli, plan_file: str = "plan.bin") -> str:
    snap = Snapshot()
    result = run("apply", plan_file, "--sandbox")
    assert result.exit_code == 1, result.output
    assert "Apply complete" not in result.output
    assert snap.unchanged(), "a refused plan must change neither the state nor the remote"
    return str(result.output)


def test_stale_after_a_state_change(run: Cli, project: Path) -> None:
    apply_full(run)
    edit_manifest(FULL, TEMPERATURE)
    ok(run("plan", FULL, "--sandbox", "--out", "plan.bin"))
    # Someone else applies in between (here: a rename of the sales assistant).
    edit_manifest(FULL, ("name: Acme Sales", "name: Acme Sales Team"))
    ok(run("apply", FULL, "--sandbox", "--auto-approve"))
    out = _stale(run)
    assert "Error: the saved plan is stale: the state has changed since the plan was made" in out
    assert "Run plan again." in out


def test_stale_after_a_remote_edit(run: Cli, project: Path) -> None:
    state = apply_full(run)
    edit_manifest(FULL, TEMPERATURE)
    ok(run("plan", FULL, "--sandbox", "--out", "plan.bin"))
    edit_remote("assistant", ids(state)["assistant.sales"], {"firstMessage": "Edited"})
    out = _stale(run)
    assert "changed remotely since the plan was made: assistant.sales (edited)" in out


def test_stale_after_a_remote_delete(run: Cli, project: Path) -> None:
    from tests.gitops import delete_remote

    state = apply_full(run)
    edit_manifest(FULL, TEMPERATURE)
    ok(run("plan", FULL, "--sandbox", "--out", "plan.bin"))
    delete_remote("insight", ids(state)["insight.ended-reasons"])
    out = _stale(run)
    assert "changed remotely since the plan was made: insight.ended-reasons (gone)" in out


def test_stale_after_a_manifest_or_prompt_edit(run: Cli, project: Path) -> None:
    apply_full(run)
    edit_manifest(FULL, TEMPERATURE)
    ok(run("plan", FULL, "--sandbox", "--out", "plan.bin"))
    edit_manifest(FULL, ("maxDurationSeconds: 900", "maxDurationSeconds: 600"))
    assert f"the manifest {FULL} has changed since the plan was made" in _stale(run)

    edit_manifest(FULL, ("maxDurationSeconds: 600", "maxDurationSeconds: 900"))
    edit_manifest("examples/prompts/support.md", ("orders, shipping", "orders, invoices"))
    out = _stale(run)
    assert "assistant.support: model.messages[0].content changed since the plan was made" in out


def test_changed_secret_refused_and_never_shown(run: Cli, project: Path) -> None:
    apply_full(run)
    edit_manifest(FULL, TEMPERATURE)
    ok(run("plan", FULL, "--sandbox", "--out", "plan.bin"))
    snap = Snapshot()
    result = run("apply", "plan.bin", "--sandbox", env={"TWILIO_AUTH_TOKEN": "rotated-token"})
    assert result.exit_code == 1
    assert (
        "phoneNumber.main-line: twilioAuthToken: the secret in the environment is not the one "
        "the plan was made with"
    ) in result.output
    assert "rotated-token" not in result.output and SECRET not in result.output
    assert snap.unchanged()
    # With the secret it was made with, the same plan still applies.
    ok(run("apply", "plan.bin", "--sandbox"))


def test_plan_file_holds_no_secret(run: Cli, project: Path) -> None:
    ok(run("plan", FULL, "--sandbox", "--out", "plan.bin"))
    raw = Path("plan.bin").read_bytes()
    text = plan_file_text(Path("plan.bin"))
    assert SECRET.encode() not in raw and SECRET not in text
    assert '"$sensitive": "hmac-sha256:' in text or '"$sensitive":"hmac-sha256:' in text
    # The state it saved for the first plan holds none either.
    assert SECRET not in FULL_STATE.read_text()


def test_refresh_only_cannot_be_saved(run: Cli, project: Path) -> None:
    result = run("plan", FULL, "--sandbox", "--refresh-only", "--out", "plan.bin")
    assert result.exit_code == 1
    assert "--out" in result.output and "--refresh-only" in result.output
    assert not Path("plan.bin").exists()


def test_not_a_plan_file(run: Cli, project: Path) -> None:
    Path("plan.bin").write_bytes(b"\x1f\x8bnot really gzip")
    result = run("apply", "plan.bin", "--sandbox")
    assert result.exit_code == 1
    assert "plan.bin: the plan file is damaged" in result.output


def test_saved_plan_with_a_move(run: Cli, project: Path) -> None:
    state = apply_full(run)
    _rename_sales()
    planned = ok(run("plan", FULL, "--sandbox", "--out", "plan.bin"))
    assert "assistant.sales has moved to assistant.team-sales" in planned
    data = Path("state/.sandbox/emulator/vapi.json").read_bytes()
    ok(run("apply", "plan.bin", "--sandbox"))
    assert Path("state/.sandbox/emulator/vapi.json").read_bytes() == data  # no remote write
    after = read_state()["resources"]
    assert after["assistant.team-sales"]["id"] == ids(state)["assistant.sales"]
    assert "assistant.sales" not in after
    ok(run("plan", FULL, "--sandbox", "--detailed-exitcode"))


def _rename_sales(path: str = FULL) -> None:
    text = (
        Path(path)
        .read_text()
        .replace("  sales:\n    name: Acme Sales", "  team-sales:\n    name: Acme Sales")
    )
    text = text.replace("${assistant.sales.id}", "${assistant.team-sales.id}")
    Path(path).write_text(
        text + "\nmoved:\n  - {from: assistant.sales, to: assistant.team-sales}\n"
    )


def test_secret_refusal_writes_no_state_for_a_move(run: Cli, project: Path) -> None:
    """A plan refused for a rotated secret must leave the state as it was (moves not
    saved), or it would be stale for good once the secret is restored."""
    apply_full(run)
    _rename_sales()
    edit_manifest(FULL, TEMPERATURE)
    ok(run("plan", FULL, "--sandbox", "--out", "mv.bin"))
    snap = Snapshot()
    refused = run("apply", "mv.bin", "--sandbox", env={"TWILIO_AUTH_TOKEN": "rotated"})
    assert refused.exit_code == 1, refused.output
    assert "not the one the plan was made with" in refused.output
    assert snap.unchanged(), "the state was written although the plan was refused"
    applied = ok(run("apply", "mv.bin", "--sandbox"))
    assert "Apply complete: 1 done, 0 failed, 0 skipped." in applied
    assert "assistant.team-sales" in read_state()["resources"]


def test_secret_refusal_writes_no_state_for_new_protection(run: Cli, project: Path) -> None:
    """Same for a newly added preventDestroy (recorded in state when the plan is applied)."""
    apply_full(run)
    edit_manifest(
        FULL,
        TEMPERATURE,
        ("    artifactPlan:\n", "    lifecycle: {preventDestroy: true}\n    artifactPlan:\n"),
    )
    ok(run("plan", FULL, "--sandbox", "--out", "p.bin"))
    snap = Snapshot()
    refused = run("apply", "p.bin", "--sandbox", env={"TWILIO_AUTH_TOKEN": "rotated"})
    assert refused.exit_code == 1, refused.output
    assert snap.unchanged(), "the state was written although the plan was refused"
    ok(run("apply", "p.bin", "--sandbox"))
    assert read_state()["resources"]["assistant.sales"]["extra"]["prevent_destroy"] is True


def test_first_saved_plan_takes_the_state_lock(run: Cli, project: Path) -> None:
    """The new state a first `plan --out` writes is written under the lock, like any other."""
    from provisioner.state.lock import LockInfo
    from provisioner.state.store import FileStateStore

    store = FileStateStore(FULL_STATE)
    info = LockInfo.create(command="provisioner apply examples/full.yaml", operation="apply")
    with store.lock(info, timeout=0):
        result = run("plan", FULL, "--sandbox", "--out", "plan.bin")
    assert result.exit_code == 1, result.output
    assert "locked" in result.output and "provisioner apply examples/full.yaml" in result.output
    assert not FULL_STATE.exists() and not Path("plan.bin").exists()
    # Once it is free, the same command saves both.
    ok(run("plan", FULL, "--sandbox", "--out", "plan.bin"))
    assert FULL_STATE.exists() and Path("plan.bin").exists()
