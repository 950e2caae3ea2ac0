"""Tools, squads, credentials, `data:` lookups and handoff cycles, through the CLI on the
sandbox (in process): examples/voice-agent.yaml end to end, and the rules around it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from provisioner.emulator import EmulatorStore
from tests.conftest import Cli

MANIFEST = "examples/voice-agent.yaml"
STATE = Path("state/.sandbox/examples/voice-agent.json")
DATA = Path("state/.sandbox/emulator/vapi.json")
CRM_TOKEN = "crm-token-5e4d3c2b1a"
ENV = {"CRM_API_TOKEN": CRM_TOKEN}


def _ok(result: Any, code: int = 0) -> str:
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    return str(result.output)


def _objects(kind: str) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = json.loads(DATA.read_text())["objects"][kind]
    return objects


def _plan(run: Cli, manifest: str = MANIFEST) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(
        _ok(run("plan", manifest, "--sandbox", "--format", "json", env=ENV))
    )
    return doc


def test_voice_agent_applies_with_its_cycle_broken_and_destroys_all_but_the_lookup(
    run: Cli, project: Path
) -> None:
    _ok(run("validate", MANIFEST, env=ENV))
    plan = _plan(run)
    assert plan["format_version"] == "1.2"
    [read] = plan["reads"]
    assert read["address"] == "data.credential.sip-trunk" and read["name"] == "Acme SIP trunk"
    changes = [(c["address"], c["action"], c.get("deferred", False)) for c in plan["changes"]]
    # The handoff tools are created without destinations, then updated once the assistants exist.
    for tool in ("tool.to-specialist", "tool.back-to-triage"):
        i = changes.index((tool, "create", False))
        assert changes[i + 1] == (tool, "update", True)
        later = plan["changes"][i + 1]
        assert later["reason"] == "cycle_broken" and tool in later["depends_on"]
        assert "destinations" not in (plan["changes"][i]["after"] or {})

    markdown = _ok(run("plan", MANIFEST, "--sandbox", "--format", "markdown", env=ENV))
    assert "- `data.credential.sip-trunk` (Acme SIP trunk) read:" in markdown
    out = _ok(run("apply", MANIFEST, "--sandbox", "--auto-approve", env=ENV))
    assert CRM_TOKEN not in out
    assert "<= data.credential.sip-trunk (Acme SIP trunk) read:" in out
    assert "call +1 415-555-0123: routes to squad Acme front desk (squad.front-desk)" in out
    handoffs = [t for t in _objects("tool") if t["type"] == "handoff"]
    assert len(handoffs) == 2 and all(t.get("destinations") for t in handoffs)
    sip = next(n for n in _objects("phoneNumber") if n["provider"] == "byo-phone-number")
    trunk = next(c for c in _objects("credential") if c["name"] == "Acme SIP trunk")
    assert sip["credentialId"] == trunk["id"]
    squad = _objects("squad")[0]
    assert all(n["squadId"] == squad["id"] for n in _objects("phoneNumber"))
    assert "No changes." in _ok(run("plan", MANIFEST, "--sandbox", "--detailed-exitcode", env=ENV))
    # No secret in any file written: state, sandbox data, plan.
    for path in project.rglob("*"):
        if path.is_file():
            assert CRM_TOKEN not in path.read_text(errors="replace"), path

    _ok(run("destroy", MANIFEST, "--sandbox", "--auto-approve", env=ENV))
    left = {k: len(v) for k, v in json.loads(DATA.read_text())["objects"].items() if v}
    assert left == {"credential": 1}
    assert _objects("credential")[0]["id"] == trunk["id"]


def test_a_run_that_died_between_create_and_deferred_update_is_completed(
    run: Cli, project: Path
) -> None:
    """The state a kill between the two leaves: the tool made, its destinations not set."""
    _ok(run("apply", MANIFEST, "--sandbox", "--auto-approve", env=ENV))
    state = json.loads(STATE.read_text())
    entry = state["resources"]["tool.back-to-triage"]
    del entry["applied"]["destinations"]
    STATE.write_text(json.dumps(state))
    store = EmulatorStore(path=DATA)
    tool = store.get("tool", entry["id"])
    assert tool is not None
    del tool["destinations"]
    with store.transaction() as tx:
        tx.put("tool", tool)

    plan = _plan(run)
    pending = [(c["address"], c["action"]) for c in plan["changes"] if c["action"] != "no-op"]
    assert pending == [("tool.back-to-triage", "update")]
    _ok(run("apply", MANIFEST, "--sandbox", "--auto-approve", env=ENV))
    assert store.get("tool", entry["id"])["destinations"]  # type: ignore[index]
    assert "No changes." in _ok(run("plan", MANIFEST, "--sandbox", "--detailed-exitcode", env=ENV))


def _write(project: Path, text: str) -> str:
    (project / "m.yaml").write_text("version: 1\n" + text, encoding="utf-8")
    return "m.yaml"


def test_a_lookup_that_matches_nothing_names_the_candidates(run: Cli, project: Path) -> None:
    name = _write(
        project,
        "data: {credentials: {trunk: {name: Nope}}}\n"
        "phoneNumbers:\n  line: {provider: byo-phone-number, number: '3001', "
        "numberE164CheckEnabled: false, credentialId: '${data.credential.trunk.id}'}\n",
    )
    out = _ok(run("plan", name, "--sandbox"), 1)
    assert "m.yaml:2:" in out
    assert "data.credential.trunk: no credential is named 'Nope'" in out
    assert "'Acme SIP trunk'" in out
    assert "Traceback" not in out


def test_an_undeclared_lookup_is_a_validation_error(run: Cli, project: Path) -> None:
    name = _write(
        project,
        "phoneNumbers:\n  line: {provider: byo-phone-number, number: '3001', "
        "numberE164CheckEnabled: false, credentialId: '${data.credential.trunk.id}'}\n",
    )
    out = _ok(run("validate", name), 1)
    assert "names no lookup of the data: section" in out


def test_a_credential_secret_must_come_from_the_environment(run: Cli, project: Path) -> None:
    name = _write(project, "credentials:\n  ai: {provider: openai, apiKey: sk-literal}\n")
    out = _ok(run("validate", name), 1)
    assert "m.yaml:3:" in out and "apiKey is a secret: give it as ${env:NAME}" in out


def test_assistant_names_of_destinations_must_name_a_squad_member(run: Cli, project: Path) -> None:
    name = _write(
        project,
        "assistants:\n  a: {name: Alpha}\n  b: {name: Beta}\n"
        "squads:\n  s:\n    members:\n"
        "      - assistantId: ${assistant.a.id}\n"
        "        assistantDestinations: [{type: assistant, assistantName: Gamma}]\n"
        "      - {assistantId: '${assistant.b.id}', assistantOverrides: {name: Bravo}}\n",
    )
    out = _ok(run("validate", name), 1)
    assert "m.yaml:9:" in out
    assert "assistantName 'Gamma' is not the name of any squad member" in out
    assert "Alpha, Bravo" in out


def test_workflow_ids_get_a_warning(run: Cli, project: Path) -> None:
    name = _write(
        project,
        "phoneNumbers:\n  l: {provider: vapi, workflowId: 7d8e9f0a-1b2c-4d3e-9f4a-5b6c7d8e9f0a}\n",
    )
    out = _ok(run("validate", name))
    assert "workflows were retired on 2026-08-18" in out


def test_a_cycle_no_handoff_tool_breaks_is_a_validation_error(run: Cli, project: Path) -> None:
    name = _write(
        project,
        "tools:\n  t: {type: apiRequest, method: POST, url: 'https://x.example/${assistant.a.id}'}\n"
        "assistants:\n  a: {name: A, model: {provider: openai, model: gpt-4o, "
        "toolIds: ['${tool.t.id}']}}\n",
    )
    out = _ok(run("validate", name), 1)
    assert "dependency cycle no handoff tool breaks:" in out
    assert "tool.t" in out and "assistant.a" in out


def test_a_squad_update_sends_members_whole(run: Cli, project: Path) -> None:
    squad = (
        "squads:\n  s:\n    name: {name}\n    members: [{{assistantId: '${{assistant.a.id}}'}}]\n"
    )
    name = _write(project, "assistants:\n  a: {name: A}\n" + squad.format(name="One"))
    _ok(run("apply", name, "--sandbox", "--auto-approve"))
    _write(project, "assistants:\n  a: {name: A}\n" + squad.format(name="Two"))
    _ok(run("apply", name, "--sandbox", "--auto-approve"))  # the sandbox requires members
    [stored] = _objects("squad")
    assert stored["name"] == "Two" and len(stored["members"]) == 1
    assert "No changes." in _ok(run("plan", name, "--sandbox", "--detailed-exitcode"))


def test_a_pinned_tool_is_kept_in_state_with_a_clear_message(run: Cli, project: Path) -> None:
    name = _write(project, "tools:\n  end: {type: endCall}\n")
    _ok(run("apply", name, "--sandbox", "--auto-approve"))
    tool_id = json.loads(Path("state/.sandbox/m.json").read_text())["resources"]["tool.end"]["id"]
    # An assistant made elsewhere pins a version of it.
    EmulatorStore(path=DATA).insert(
        "assistant", {"name": "Pinner", "model": {"toolRefs": [{"toolId": tool_id}]}}
    )
    _write(project, "assistants: {}\n")
    out = _ok(run("apply", name, "--sandbox", "--auto-approve"), 1)
    assert "pins it" in out and "Traceback" not in out
    assert "tool.end" in json.loads(Path("state/.sandbox/m.json").read_text())["resources"]


def test_a_credential_secret_is_never_read_back(run: Cli, project: Path) -> None:
    _ok(run("apply", MANIFEST, "--sandbox", "--auto-approve", env=ENV))
    crm = next(c for c in _objects("credential") if c["name"] == "Acme CRM")
    assert crm["authenticationPlan"]["token"].startswith("sha256:")  # a digest only
    shown = _ok(run("state", "show", MANIFEST, "credential.crm", "--sandbox", env=ENV))
    assert "(sensitive)" in shown
    assert CRM_TOKEN not in shown


def test_generate_imports_tools_squads_and_credentials_without_a_secret(
    run: Cli, project: Path, monkeypatch: Any
) -> None:
    _ok(run("apply", MANIFEST, "--sandbox", "--auto-approve", env=ENV))
    fresh = project / "adopt"
    (fresh / DATA.parent).mkdir(parents=True)
    (fresh / DATA).write_bytes(DATA.read_bytes())
    monkeypatch.chdir(fresh)
    out = _ok(run("import", "--generate", "adopted.yaml", "--sandbox"))
    var = "CREDENTIAL_ACME_CRM_AUTHENTICATIONPLAN_TOKEN"
    assert var in out
    doc = yaml.safe_load(Path("adopted.yaml").read_text())
    assert set(doc["tools"]) >= {"end-call", "transfer-call", "lookup-order", "create-ticket"}
    assert doc["tools"]["create-ticket"]["credentialId"] == "${credential.acme-crm.id}"
    assert doc["credentials"]["acme-crm"]["authenticationPlan"] == {
        "type": "bearer",
        "token": "${env:" + var + "}",
    }
    members = doc["squads"]["acme-front-desk"]["members"]
    assert members[0]["assistantId"] == "${assistant.acme-front-desk.id}"
    assert "acme-sip-trunk" in doc["credentials"]  # the dashboard's, now managed

    env = {var: CRM_TOKEN, "PHONENUMBER_ACME_MAIN_LINE_TWILIOAUTHTOKEN": "unused"}
    _ok(run("validate", "adopted.yaml", env=env))
    said = "authenticationPlan cannot be read back from Vapi"
    planned = _ok(run("plan", "adopted.yaml", "--sandbox", "--detailed-exitcode", env=env))
    assert "No changes." in planned and said in planned
    writes = _ok(run("apply", "adopted.yaml", "--sandbox", "--auto-approve", env=env))
    assert "recorded the hash of the manifest's value" in writes
    again = _ok(run("plan", "adopted.yaml", "--sandbox", "--detailed-exitcode", env=env))
    assert "No changes." in again and said not in again  # said once
    for path in fresh.rglob("*"):
        if path.is_file():
            assert CRM_TOKEN not in path.read_text(errors="replace"), path
    # A new secret is detected from the recorded hash, and sent.
    rotated = {**env, var: "rotated-token-1"}
    assert "~ credential.acme-crm" in _ok(run("plan", "adopted.yaml", "--sandbox", env=rotated))


def test_import_of_a_credential_takes_its_secret_without_sending_it(
    run: Cli, project: Path
) -> None:
    name = _write(
        project,
        "credentials:\n  ai: {provider: openai, name: AI, apiKey: '${env:OPENAI_KEY}'}\n",
    )
    _ok(run("plan", name, "--sandbox", env={"OPENAI_KEY": "x"}))  # (makes the sandbox's data)
    rid = EmulatorStore(path=DATA).insert(
        "credential", {"provider": "openai", "name": "AI", "apiKey": "sha256:00"}
    )["id"]
    env = {"OPENAI_KEY": "sk-test-123456"}
    _ok(run("import", name, "credential.ai", rid, "--sandbox", env=env))
    assert "No changes." in _ok(run("plan", name, "--sandbox", "--detailed-exitcode", env=env))


def test_a_run_that_died_after_the_tools_and_before_the_assistants_is_completed(
    run: Cli, project: Path
) -> None:
    """The handoff tools exist without destinations and no assistant does: the tools'
    updates wait for the assistants, and the assistants do not wait for those updates."""
    _ok(run("apply", MANIFEST, "--sandbox", "--auto-approve", env=ENV))
    state = json.loads(STATE.read_text())
    store = EmulatorStore(path=DATA)
    with store.transaction() as tx:
        for addr, entry in list(state["resources"].items()):
            kind = entry["kind"]
            if kind in ("assistant", "squad", "phoneNumber", "structuredOutput"):
                tx.delete(kind, entry["id"])
                del state["resources"][addr]
            elif entry["applied"].get("type") == "handoff":
                del entry["applied"]["destinations"]
                tool = dict(tx.get("tool", entry["id"]) or {})
                del tool["destinations"]
                tx.put("tool", tool)
    STATE.write_text(json.dumps(state))

    out = _ok(run("apply", MANIFEST, "--sandbox", "--auto-approve", env=ENV))
    assert "0 failed, 0 skipped" in out and "not started" not in out
    assert "No changes." in _ok(run("plan", MANIFEST, "--sandbox", "--detailed-exitcode", env=ENV))


def test_a_saved_plan_of_the_voice_agent_applies_as_made(run: Cli, project: Path) -> None:
    """A saved plan keeps its lookups' IDs and the create/update pairs of its cycle."""
    _ok(run("plan", MANIFEST, "--sandbox", "--out", "agent.plan", env=ENV))
    _ok(run("apply", "agent.plan", "--sandbox", env=ENV))
    assert all(t.get("destinations") for t in _objects("tool") if t["type"] == "handoff")
    assert "No changes." in _ok(run("plan", MANIFEST, "--sandbox", "--detailed-exitcode", env=ENV))
