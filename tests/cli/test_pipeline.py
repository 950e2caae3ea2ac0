"""The whole pipeline through the CLI against the sandbox: validate -> plan -> apply -> plan."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import SECRET, Cli

FULL = "examples/full.yaml"


def apply_full(run: Cli) -> str:
    result = run("apply", FULL, "--sandbox", "--auto-approve")
    assert result.exit_code == 0, result.output
    return result.output


def test_validate_examples(run: Cli) -> None:
    for name in ("examples/full.yaml", "examples/small.yaml"):
        result = run("validate", name)
        assert result.exit_code == 0, result.output
        assert "is valid" in result.output


def test_apply_full_then_plan_is_empty(run: Cli, project: Path) -> None:
    first = run("plan", FULL, "--sandbox", "--detailed-exitcode")
    assert first.exit_code == 2, first.output
    assert "Plan: 14 to create, 0 to update, 0 to replace, 0 to delete." in first.output

    out = apply_full(run)
    assert "Apply complete: 14 done, 0 failed, 0 skipped." in out
    assert "call +1 415-555-0100 to talk to Acme Support" in out
    assert "https://dashboard.vapi.ai/assistants/" in out

    again = run("plan", FULL, "--sandbox", "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    assert "No changes." in again.output

    state = json.loads((project / "state/.sandbox/examples/full.json").read_text())
    assert len(state["resources"]) == 14
    assert all(r["id"] for r in state["resources"].values())


def test_changing_one_field_plans_exactly_one_update(run: Cli, project: Path) -> None:
    apply_full(run)
    manifest = project / FULL
    manifest.write_text(manifest.read_text().replace("temperature: 0.3", "temperature: 0.5"))
    result = run("plan", FULL, "--sandbox", "--detailed-exitcode")
    assert result.exit_code == 2
    assert "Plan: 0 to create, 1 to update, 0 to replace, 0 to delete." in result.output
    assert "~ model.temperature: 0.3 -> 0.5" in result.output
    assert "~ assistant.support" in result.output


def test_prompt_change_shows_a_line_diff(run: Cli, project: Path) -> None:
    apply_full(run)
    prompt = project / "examples/prompts/support.md"
    prompt.write_text(prompt.read_text().replace("orders, shipping", "orders, invoices"))
    result = run("plan", FULL, "--sandbox")
    assert "-- Answer questions about orders, shipping and returns." in result.output
    assert "+- Answer questions about orders, invoices and returns." in result.output


def test_removing_a_resource_plans_its_delete(run: Cli, project: Path) -> None:
    apply_full(run)
    manifest = project / FULL
    text = manifest.read_text()
    start = text.index("    ended-reasons:")
    end = text.index("    average-duration:")
    text = text[:start] + text[end:]
    # The board must stop referencing it too.
    text = text.replace(
        """        - type: insight
          insightId: ${insight.ended-reasons.id}
          position: {x: 3, y: 2}
          size: {width: 3, height: 2}
""",
        "",
    )
    manifest.write_text(text)
    result = run("plan", FULL, "--sandbox")
    assert "- insight.ended-reasons" in result.output
    assert "Plan: 0 to create, 1 to update, 0 to replace, 1 to delete." in result.output
    applied = run("apply", FULL, "--sandbox", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert run("plan", FULL, "--sandbox", "--detailed-exitcode").exit_code == 0


def test_remote_edit_is_reported_as_drift(run: Cli, project: Path) -> None:
    from provisioner.emulator import EmulatorStore

    apply_full(run)
    state = json.loads((project / "state/.sandbox/examples/full.json").read_text())
    assistant_id = state["resources"]["assistant.sales"]["id"]
    _edit_in_sandbox(project, "assistant", assistant_id, {"firstMessage": "Edited in dashboard"})
    result = run("plan", FULL, "--sandbox", "--detailed-exitcode")
    assert result.exit_code == 2
    assert "Changed outside the manifest (drift):" in result.output
    assert "changed outside the manifest" in result.output
    assert '"Edited in dashboard" -> "Hello from Acme sales!' in result.output
    assert EmulatorStore  # imported for the helper below


def _edit_in_sandbox(project: Path, kind: str, resource_id: str, patch: dict[str, object]) -> None:
    """Change an object as a dashboard user would: through the API, not our tool."""
    import httpx

    from provisioner.emulator import make_sandbox_transport
    from provisioner.kinds import KINDS

    transport = make_sandbox_transport(project / "state/.sandbox/emulator/vapi.json")
    with httpx.Client(transport=transport, base_url="http://sandbox") as http:
        r = http.patch(
            KINDS[kind].item_path(resource_id),
            json=patch,
            headers={"Authorization": "Bearer dashboard-user"},
        )
        assert r.status_code == 200, r.text


def test_secret_never_written_or_printed(run: Cli, project: Path) -> None:
    outputs = [
        run("plan", FULL, "--sandbox").output,
        apply_full(run),
        run("plan", FULL, "--sandbox").output,
        run("output", FULL, "--sandbox", "--json").output,
        run("state", "show", FULL, "phoneNumber.main-line", "--sandbox").output,
    ]
    # Rotate the secret: the change is detected (from the keyed hash) but never shown.
    rotated = run("plan", FULL, "--sandbox", env={"TWILIO_AUTH_TOKEN": "rotated-" + SECRET})
    assert "~ twilioAuthToken: (sensitive) -> (sensitive)" in rotated.output
    outputs.append(rotated.output)
    for text in outputs:
        assert SECRET not in text
    # Not even the emulator's data: Vapi never returns a Twilio token, so it keeps a digest.
    for path in project.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert (project / "state/.sandbox/emulator/.gitignore").read_text().endswith("*\n")


HOOK_SECRET = "HookSecret-XYZ-987"
ECHOED = """version: 1
assistants:
  a:
    name: A
    firstMessage: "Your code is ${env:HOOK_TOKEN}"
    server: {url: "https://example.com/hook", headers: {Authorization: "${env:HOOK_TOKEN}"}}
"""


def _files_holding(project: Path, secret: str) -> list[Path]:
    """Files under the working dir holding `secret`, apart from the emulator's own data
    (it plays Vapi's servers, which do keep what they echo)."""
    emulator = project / "state/.sandbox/emulator"
    return [
        p
        for p in project.rglob("*")
        if p.is_file() and emulator not in p.parents and secret.encode() in p.read_bytes()
    ]


def test_echoed_secret_converges_and_never_shows(run: Cli, project: Path) -> None:
    """The API echoes a header and a message back: a secret in them (whole, or inside a
    longer string) compares by its keyed hash, so the next plan is empty, and a remote
    edit of it is drift shown as (sensitive) only."""
    (project / "echo.yaml").write_text(ECHOED)
    env = {"HOOK_TOKEN": HOOK_SECRET}
    outputs = [run("apply", "echo.yaml", "--sandbox", "--auto-approve", env=env).output]
    again = run("plan", "echo.yaml", "--sandbox", "--detailed-exitcode", env=env)
    assert again.exit_code == 0, again.output
    outputs.append(again.output)

    state = json.loads((project / "state/.sandbox/echo.json").read_text())
    assistant_id = state["resources"]["assistant.a"]["id"]
    other = "Edited-Secret-4242"
    server = {"url": "https://example.com/hook", "headers": {"Authorization": other}}
    _edit_in_sandbox(project, "assistant", assistant_id, {"server": server})

    drifted = run("plan", "echo.yaml", "--sandbox", "--detailed-exitcode", env=env)
    assert drifted.exit_code == 2, drifted.output
    line = "~ server.headers.Authorization: (sensitive) -> (sensitive)  # changed outside"
    assert line in drifted.output
    assert "firstMessage" not in drifted.output
    outputs.append(drifted.output)
    for fmt in ("json", "markdown", "human"):
        report = run("drift", "echo.yaml", "--sandbox", "--format", fmt, env=env)
        assert report.exit_code == 2, report.output
        assert "(sensitive)" in report.output
        outputs.append(report.output)
    saved = run("plan", "echo.yaml", "--sandbox", "--out", "echo.plan", env=env)
    assert saved.exit_code == 0, saved.output
    outputs.append(saved.output)

    accepted = run("drift", "echo.yaml", "--sandbox", "--accept", env=env)
    assert accepted.exit_code == 0, accepted.output
    assert run("drift", "echo.yaml", "--sandbox", env=env).exit_code == 0
    state = json.loads((project / "state/.sandbox/echo.json").read_text())
    header = state["resources"]["assistant.a"]["applied"]["server"]["headers"]["Authorization"]
    assert header.startswith("hmac-sha256:")

    # Removing it from the manifest plans a delete that shows the secrets as such.
    (project / "echo.yaml").write_text("version: 1\n")
    removed = run("plan", "echo.yaml", "--sandbox", "--format", "json", env=env)
    (change,) = json.loads(removed.output)["changes"]
    assert change["action"] == "delete"
    assert change["before"]["firstMessage"] == "(sensitive)"
    assert change["before"]["server"]["headers"]["Authorization"] == "(sensitive)"
    outputs.append(removed.output)

    for text in outputs:
        assert HOOK_SECRET not in text
        assert other not in text
    assert _files_holding(project, HOOK_SECRET) == []
    assert _files_holding(project, other) == []


def test_destroy_removes_everything(run: Cli, project: Path) -> None:
    apply_full(run)
    result = run("destroy", FULL, "--sandbox", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert "14 done" in result.output
    state = json.loads((project / "state/.sandbox/examples/full.json").read_text())
    assert state["resources"] == {}


def test_apply_without_tty_or_auto_approve_refuses(run: Cli, project: Path) -> None:
    result = run("apply", FULL, "--sandbox")
    assert result.exit_code == 1
    assert "--auto-approve" in result.output
    assert not (project / "state/.sandbox/examples/full.json").exists()


def test_no_request_is_rejected_by_the_spec_validation(run: Cli, project: Path) -> None:
    """Every body the tool sends for the full example (creates, updates of every kind,
    deletes) passes the sandbox's validation against Vapi's OpenAPI schemas."""
    from provisioner.emulator.app import VapiEmulator
    from provisioner.emulator.server import running_server, with_twilio
    from provisioner.emulator.store import EmulatorStore

    app = VapiEmulator(EmulatorStore(path=None))
    with running_server(with_twilio(app, None)) as url:
        env = {
            "VAPI_BASE_URL": url,
            "VAPI_TOKEN": "token",
            "TWILIO_BASE_URL": url,
            "TWILIO_PRICING_BASE_URL": url,
        }
        assert run("apply", FULL, "--auto-approve", env=env).exit_code == 0
        manifest = project / FULL
        text = manifest.read_text()
        for old, new in (
            ("name: Acme Support\n", "name: Acme Support desk\n"),
            ("name: Acme test line", "name: Acme test line 2"),
            ("name: Call summary", "name: Call summary v2"),
            ("name: Calls per day", "name: Calls each day"),
            ("name: Support overview", "name: Support overview v2"),
        ):
            assert text.count(old) == 1, old
            text = text.replace(old, new)
        manifest.write_text(text)
        updated = run("apply", FULL, "--auto-approve", env=env)
        assert updated.exit_code == 0, updated.output
        assert "5 done" in updated.output
        assert run("destroy", FULL, "--auto-approve", env=env).exit_code == 0
        by_status = app.stats()["by_status"]
    rejected = {s: n for s, n in by_status.items() if s.startswith("4")}
    assert rejected == {}, rejected


def test_corrupt_sandbox_data_is_one_clear_error(run: Cli, project: Path) -> None:
    """No traceback and no retrying of 500s: the file is named, with how to reset it."""
    apply_full(run)
    data = project / "state/.sandbox/emulator/vapi.json"
    data.write_text("{bad")
    result = run("plan", FULL, "--sandbox")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.output.count("is not a usable sandbox data file") == 1
    assert "state/.sandbox/emulator/vapi.json" in result.output
    assert "delete it to reset the sandbox" in result.output
    assert "retrying" not in result.output


def test_system_errors_are_clear_errors(run: Cli, project: Path) -> None:
    """An OSError (here: the sandbox's folder is taken by a file) names what failed."""
    (project / "state/.sandbox").mkdir(parents=True)
    (project / "state/.sandbox/emulator").write_text("not a folder")
    result = run("apply", "examples/small.yaml", "--sandbox", "--auto-approve")
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Error: File exists: state/.sandbox/emulator" in result.output


STATE_KEY = "k3y-0123456789abcdef-0123456789abcdef"


def test_external_state_key_is_never_stored(run: Cli, project: Path) -> None:
    """With PROVISIONER_STATE_KEY the hashes' key is derived from it: the state file keeps
    only a short check of it, plans converge, and a wrong or missing key is refused
    (rather than a plan that would send every secret again)."""
    env = {"PROVISIONER_STATE_KEY": STATE_KEY}
    assert run("apply", FULL, "--sandbox", "--auto-approve", env=env).exit_code == 0
    again = run("plan", FULL, "--sandbox", "--detailed-exitcode", env=env)
    assert again.exit_code == 0, again.output

    path = project / "state/.sandbox/examples/full.json"
    state = json.loads(path.read_text())
    assert "hash_key" not in state and len(state["key_check"]) == 16
    assert STATE_KEY not in path.read_text()
    token_hash = state["resources"]["phoneNumber.main-line"]["applied"]["twilioAuthToken"]
    assert token_hash.startswith("hmac-sha256:")

    # The secret rotated: seen from its hash, as with a stored key.
    rotated = run("plan", FULL, "--sandbox", env={**env, "TWILIO_AUTH_TOKEN": "rotated-" + SECRET})
    assert "~ twilioAuthToken: (sensitive) -> (sensitive)" in rotated.output

    wrong = run("plan", FULL, "--sandbox", env={"PROVISIONER_STATE_KEY": "x" * 32})
    assert wrong.exit_code == 1
    where = "state/.sandbox/examples/full.json"
    assert f"PROVISIONER_STATE_KEY is not the key {where} was written with" in wrong.output
    missing = run("plan", FULL, "--sandbox")
    assert missing.exit_code == 1
    assert "written with an external hash key: set PROVISIONER_STATE_KEY" in missing.output
    # CI expands a secret nobody defined to "": that is "missing", not a key.
    empty = run("plan", FULL, "--sandbox", env={"PROVISIONER_STATE_KEY": ""})
    assert empty.exit_code == 1
    assert "written with an external hash key: set PROVISIONER_STATE_KEY" in empty.output
    short = run("plan", FULL, "--sandbox", env={"PROVISIONER_STATE_KEY": "short"})
    assert short.exit_code == 1 and "PROVISIONER_STATE_KEY is too short" in short.output
    for result in (again, rotated, wrong, missing, empty, short):
        assert STATE_KEY not in result.output


def test_external_state_key_on_a_state_with_its_own_key(run: Cli, project: Path) -> None:
    """Refused, naming the way to move: drop `hash_key`, and one apply re-sends secrets."""
    apply_full(run)
    # An empty variable (a CI secret nobody defined) is no key: the state's own is used.
    empty = run("plan", FULL, "--sandbox", "--detailed-exitcode", env={"PROVISIONER_STATE_KEY": ""})
    assert empty.exit_code == 0, empty.output
    env = {"PROVISIONER_STATE_KEY": STATE_KEY}
    refused = run("plan", FULL, "--sandbox", env=env)
    assert refused.exit_code == 1
    assert "keeps its own hash key, but PROVISIONER_STATE_KEY is set" in refused.output

    path = project / "state/.sandbox/examples/full.json"
    state = json.loads(path.read_text())
    del state["hash_key"]
    path.write_text(json.dumps(state))
    moved = run("apply", FULL, "--sandbox", "--auto-approve", env=env)
    assert moved.exit_code == 0, moved.output
    assert "Apply complete: 1 done," in moved.output  # the Twilio token, sent once more
    assert run("plan", FULL, "--sandbox", "--detailed-exitcode", env=env).exit_code == 0
    assert "key_check" in json.loads(path.read_text())


def test_a_wrong_api_key_fails_the_first_plan(run: Cli, project: Path) -> None:
    """With no state yet, refresh reads nothing; one cheap read still proves the key, so a
    pull request's plan fails on a wrong key instead of the merge's apply."""
    from provisioner.emulator import VapiEmulator, running_server
    from provisioner.emulator.store import EmulatorStore

    app = VapiEmulator(EmulatorStore(project / "org.json"), token="the-right-key")
    with running_server(app) as url:
        env = {"VAPI_BASE_URL": url, "VAPI_TOKEN": "a-wrong-key"}
        wrong = run("plan", "examples/small.yaml", env=env)
        assert wrong.exit_code == 1
        assert "401" in wrong.output and "Invalid Key" in wrong.output
        right = run("plan", "examples/small.yaml", env={**env, "VAPI_TOKEN": "the-right-key"})
        assert right.exit_code == 0, right.output
    assert not Path("state/examples/small.json").exists()
