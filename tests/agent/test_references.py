"""The fields that take another resource's ID, nested ones included, for the new kinds;
credentials that cannot be updated in place."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli

BASE = (
    "version: 1\n"
    "credentials:\n  c: {provider: openai, apiKey: '${env:TWILIO_AUTH_TOKEN}'}\n"
    "tools:\n  t: {type: endCall}\n"
    "assistants:\n  a: {name: A}\n"
)


def _ok(result: Any, code: int = 0) -> str:
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    return str(result.output)


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ("squads:\n  s: {members: [{assistantId: '${assistant.a.id}'}]}\n", None),
        (
            "squads:\n  s: {members: [{assistantId: '${tool.t.id}'}]}\n",
            "assistantId takes an assistant ID, but ${tool.t.id} is the ID of tool.t",
        ),
        (
            "squads:\n  s: {members: [{assistantId: '${assistant.a.id}', "
            "assistantOverrides: {credentialIds: ['${credential.c.id}']}}]}\n",
            None,
        ),
        (
            "tools:\n  h: {type: handoff, destinations: [{type: squad, "
            "squadId: '${assistant.a.id}'}]}\n",
            "squadId takes a squad ID",
        ),
        (
            "tools:\n  r: {type: apiRequest, method: GET, url: 'https://x.example', "
            "credentialId: '${tool.t.id}'}\n",
            "credentialId takes a credential ID",
        ),
        (
            "phoneNumbers:\n  n: {provider: vapi, squadId: '${tool.t.id}'}\n",
            "squadId takes a squad ID",
        ),
    ],
)
def test_reference_fields(run: Cli, project: Path, extra: str, error: str | None) -> None:
    text = BASE + extra
    # (a second `tools:` section merges into the first)
    if extra.startswith("tools:"):
        text = BASE.replace("  t: {type: endCall}\n", "  t: {type: endCall}\n" + extra[7:])
    (project / "m.yaml").write_text(text, encoding="utf-8")
    result = run("validate", "m.yaml")
    if error is None:
        _ok(result)
    else:
        assert error in _ok(result, 1)


def test_tool_refs_take_tool_ids(run: Cli, project: Path) -> None:
    (project / "m.yaml").write_text(
        BASE.replace(
            "  a: {name: A}\n",
            "  a: {name: A, model: {provider: openai, model: gpt-4o, "
            "toolRefs: [{toolId: '${assistant.b.id}'}]}}\n  b: {name: B}\n",
        ),
        encoding="utf-8",
    )
    assert "toolId takes a tool ID" in _ok(run("validate", "m.yaml"), 1)


def test_a_credential_without_an_update_endpoint_is_replaced(run: Cli, project: Path) -> None:
    body = (
        "credentials:\n"
        "  v: {{provider: tavus, name: {name}, apiKey: '${{env:TWILIO_AUTH_TOKEN}}'}}\n"
    )
    (project / "m.yaml").write_text("version: 1\n" + body.format(name="One"), encoding="utf-8")
    _ok(run("apply", "m.yaml", "--sandbox", "--auto-approve"))
    (project / "m.yaml").write_text("version: 1\n" + body.format(name="Two"), encoding="utf-8")
    plan = json.loads(_ok(run("plan", "m.yaml", "--sandbox", "--format", "json")))
    [change] = [c for c in plan["changes"] if c["action"] != "no-op"]
    assert change["action"] == "replace" and change["address"] == "credential.v"
    _ok(run("apply", "m.yaml", "--sandbox", "--auto-approve"))
    assert "No changes." in _ok(run("plan", "m.yaml", "--sandbox", "--detailed-exitcode"))
