"""Adopting what already exists: `import MANIFEST ADDRESS ID` records one object, after
which plan shows no changes; `import --generate` writes a manifest for a whole org that
plans and applies as "no changes" without creating anything."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import SECRET, Cli
from tests.gitops import (
    FULL,
    SANDBOX_DATA,
    Snapshot,
    apply_full,
    ids,
    ok,
    read_state,
    sandbox_objects,
)

SMALL = "examples/small.yaml"
SMALL_STATE = Path("state/.sandbox/examples/small.json")


def _dashboard_create(path: str, body: dict[str, Any]) -> str:
    """Create an object as a dashboard user would (no ownership marker)."""
    from provisioner.emulator import make_sandbox_transport

    SANDBOX_DATA.parent.mkdir(parents=True, exist_ok=True)
    with httpx.Client(
        transport=make_sandbox_transport(SANDBOX_DATA), base_url="http://sandbox"
    ) as http:
        r = http.post(path, json=body, headers={"Authorization": "Bearer dashboard-user"})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


def _small_in_dashboard() -> tuple[str, str]:
    prompt = Path("examples/prompts/support.md").read_text()
    assistant = _dashboard_create(
        "/assistant",
        {
            "name": "Acme Support",
            "firstMessage": "Hi, thanks for calling Acme. How can I help?",
            "model": {
                "provider": "openai",
                "model": "gpt-4o",
                "messages": [{"role": "system", "content": prompt}],
            },
            "voice": {"provider": "11labs", "voiceId": "burt"},
        },
    )
    number = _dashboard_create(
        "/phone-number",
        {
            "provider": "vapi",
            "name": "Acme test line",
            "numberDesiredAreaCode": "415",
            "assistantId": assistant,
        },
    )
    return assistant, number


def test_import_then_plan_shows_no_changes(run: Cli, project: Path) -> None:
    assistant, number = _small_in_dashboard()
    out = ok(run("import", SMALL, "assistant.support", assistant, "--sandbox"))
    assert f"Imported assistant.support (Acme Support): {assistant}." in out
    ok(run("import", SMALL, "phoneNumber.test-line", number, "--sandbox"))
    assert ids(read_state(SMALL_STATE)) == {
        "assistant.support": assistant,
        "phoneNumber.test-line": number,
    }

    plan = ok(run("plan", SMALL, "--sandbox", "--detailed-exitcode"))
    assert "No changes." in plan
    snap = Snapshot(SMALL_STATE)
    applied = ok(run("apply", SMALL, "--sandbox", "--auto-approve"))
    assert "No changes." in applied
    assert snap.unchanged()
    assert len(sandbox_objects()) == 2


def test_import_shows_real_differences_only(run: Cli, project: Path) -> None:
    assistant, _ = _small_in_dashboard()
    ok(run("import", SMALL, "assistant.support", assistant, "--sandbox"))
    # The number is not imported: it is to be created; the assistant differs in nothing.
    result = run("plan", SMALL, "--sandbox", "--detailed-exitcode")
    assert result.exit_code == 2
    assert "+ phoneNumber.test-line" in result.output
    assert "assistant.support" not in result.output.split("Planned actions")[1].split("+ ")[0]
    assert "Plan: 1 to create, 0 to update, 0 to replace, 0 to delete." in result.output


@pytest.mark.parametrize(
    ("address", "rid", "message"),
    [
        ("assistant.nope", None, "assistant.nope is not declared in examples/small.yaml"),
        ("assistant.support", "no-such-id", "no-such-id is not a valid assistant ID"),
        (
            "assistant.support",
            "00000000-0000-4000-8000-000000000000",
            "there is no assistant with ID 00000000-0000-4000-8000-000000000000 in Vapi",
        ),
    ],
)
def test_import_refusals(
    run: Cli, project: Path, address: str, rid: str | None, message: str
) -> None:
    assistant, _ = _small_in_dashboard()
    result = run("import", SMALL, address, rid or assistant, "--sandbox")
    assert result.exit_code == 1
    assert message in result.output
    assert not SMALL_STATE.exists() or read_state(SMALL_STATE)["resources"] == {}


def test_import_refuses_an_address_already_managed(run: Cli, project: Path) -> None:
    assistant, _ = _small_in_dashboard()
    ok(run("import", SMALL, "assistant.support", assistant, "--sandbox"))
    again = run("import", SMALL, "assistant.support", assistant, "--sandbox")
    assert again.exit_code == 1
    assert "assistant.support is already managed" in again.output


def test_import_every_resource_of_another_deployment(run: Cli, project: Path) -> None:
    """Objects made by another state (their ownership marker names its lineage) are
    adopted on purpose by `import`: the lineage check then accepts them."""
    ok(run("apply", FULL, "--sandbox", "--auto-approve", "--state", "other.json"))
    other = read_state(Path("other.json"))
    for address, rid in ids(other).items():
        out = ok(run("import", FULL, address, rid, "--sandbox"))
        if address.startswith("assistant."):  # the kind that carries an ownership marker
            assert f"another provisioner state (lineage {other['lineage']}) created it" in out
    entry = read_state()["resources"]["assistant.support"]
    assert entry["extra"] == {"adopted_from_lineage": other["lineage"]}

    result = run("plan", FULL, "--sandbox", "--detailed-exitcode")
    # A Twilio auth token cannot be read back from the API: the first apply sends it once.
    assert result.exit_code == 2, result.output
    assert "Plan: 0 to create, 1 to update, 0 to replace, 0 to delete." in result.output
    assert "~ phoneNumber.main-line" in result.output
    assert "+ twilioAuthToken: (sensitive)" in result.output
    assert SECRET not in result.output
    ok(run("apply", FULL, "--sandbox", "--auto-approve"))
    assert "No changes." in ok(run("plan", FULL, "--sandbox", "--detailed-exitcode"))
    assert len(sandbox_objects()) == 14


def test_generate_round_trips_the_full_example(
    run: Cli, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    apply_full(run)
    # A fresh folder, with no manifest and no state: only the org (the sandbox's data).
    fresh = project / "adopt"
    (fresh / SANDBOX_DATA.parent).mkdir(parents=True)
    shutil.copy(SANDBOX_DATA, fresh / SANDBOX_DATA)
    monkeypatch.chdir(fresh)
    # Its state goes where the project's repository keeps that manifest's.
    adopted_state = project / "state/.sandbox/adopt/adopted.json"
    before = Snapshot(adopted_state)

    out = ok(run("import", "--generate", "adopted.yaml", "--sandbox"))
    # The 14 of the example, and the SIP trunk credential the sandbox starts with.
    assert "Wrote adopted.yaml with 15 resources and 2 prompt files." in out
    assert "twilioAuthToken" in out  # the note on what cannot be read back
    assert ok(run("validate", "adopted.yaml")).startswith("adopted.yaml is valid: 15 resources")
    prompts = {p.read_text() for p in Path("prompts").iterdir()}
    assert prompts == {
        (project / "examples/prompts" / n).read_text() for n in ("support.md", "sales.md")
    }
    assert len(read_state(adopted_state)["resources"]) == 15

    plan = run("plan", "adopted.yaml", "--sandbox", "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output
    assert "No changes." in plan.output
    applied = ok(run("apply", "adopted.yaml", "--sandbox", "--auto-approve"))
    assert "No changes." in applied
    # Nothing was created or changed remotely.
    assert before.paths[1].read_bytes() == before.before[1]
    assert len(sandbox_objects()) == 14

    # It never overwrites a manifest.
    again = run("import", "--generate", "adopted.yaml", "--sandbox")
    assert again.exit_code == 1
    assert "adopted.yaml already exists" in again.output


def test_without_the_import_record_another_deployments_object_is_refused(
    run: Cli, project: Path
) -> None:
    """The lineage check still guards against a state mixed up by hand: only a deliberate
    `import` makes another deployment's object acceptable."""
    ok(run("apply", SMALL, "--sandbox", "--auto-approve", "--state", "other.json"))
    rid = ids(read_state(Path("other.json")))["assistant.support"]
    ok(run("import", SMALL, "assistant.support", rid, "--sandbox"))
    ok(run("plan", SMALL, "--sandbox"))

    doc = read_state(SMALL_STATE)
    del doc["resources"]["assistant.support"]["extra"]
    SMALL_STATE.write_text(json.dumps(doc))
    result = run("plan", SMALL, "--sandbox")
    assert result.exit_code == 1
    assert "belongs to another deployment" in result.output


def _without_assistants(doc: dict[str, Any]) -> dict[str, Any]:
    doc["resources"] = {a: r for a, r in doc["resources"].items() if not a.startswith("assistant.")}
    return doc


def test_foreign_state_without_assistant_entries_is_refused(run: Cli, project: Path) -> None:
    """No entry carries an ownership marker, but the phone numbers it holds point at the
    assistants another lineage marks under the addresses they were applied with."""
    from tests.gitops import FULL_STATE

    state = apply_full(run)
    foreign = _without_assistants(json.loads(FULL_STATE.read_text()))
    foreign["lineage"] = "00000000-0000-4000-8000-000000000000"
    FULL_STATE.write_text(json.dumps(foreign))
    snap = Snapshot()
    for command in (("plan", FULL), ("apply", FULL, "--auto-approve")):
        result = run(*command, "--sandbox")
        assert result.exit_code == 1, result.output
        out = " ".join(result.output.split())
        assert f"{FULL_STATE} belongs to another deployment" in out
        assert f"which is managed by state lineage {state['lineage']}" in out
        assert "phoneNumber." in out and "points at assistant." in out
        assert f"its previous version (one write older) is in {FULL_STATE}.backup" in out
        assert "Traceback" not in result.output
    assert snap.unchanged(), "a foreign state must change neither the state nor the remote"


def test_own_state_without_assistant_entries_is_not_refused(run: Cli, project: Path) -> None:
    """The same state under its own lineage is this deployment's: plan goes on, and adopts
    the assistants it no longer knows about (their markers name this lineage there)."""
    from tests.gitops import FULL_STATE

    apply_full(run)
    FULL_STATE.write_text(json.dumps(_without_assistants(json.loads(FULL_STATE.read_text()))))
    planned = ok(run("plan", FULL, "--sandbox"))
    assert "No changes." in planned
    assert "Warning: assistant.support: adopted assistant " in planned


def test_generate_writes_echoed_secrets_as_env_references(run: Cli, project: Path) -> None:
    """A secret the API echoes (a webhook's Authorization header) is written to the
    generated manifest as `${env:NAME}` and to state as its keyed hash, never in clear; with
    the variable set, the adopted setup plans as no changes."""
    hook_secret = "Bearer dashboard-hook-s3cret"
    _dashboard_create(
        "/assistant",
        {
            "name": "Hooked",
            "server": {
                "url": "https://example.com/hook",
                "headers": {"Authorization": hook_secret},
            },
        },
    )
    out = ok(run("import", "--generate", "adopted.yaml", "--sandbox"))
    var = "ASSISTANT_HOOKED_SERVER_HEADERS_AUTHORIZATION"
    assert f"set {var} to its value" in out
    manifest = Path("adopted.yaml").read_text()
    assert "${env:" + var + "}" in manifest
    state_text = Path("state/.sandbox/adopted.json").read_text()
    assert hook_secret not in manifest + state_text + out

    missing = run("plan", "adopted.yaml", "--sandbox")
    assert missing.exit_code == 1 and var in missing.output, missing.output
    plan = run("plan", "adopted.yaml", "--sandbox", "--detailed-exitcode", env={var: hook_secret})
    assert plan.exit_code == 0, plan.output
    assert hook_secret not in plan.output
