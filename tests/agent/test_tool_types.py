"""Every tool type of the spec's create discriminator, through the CLI on the sandbox:
create -> plan clean -> one field changed -> one update -> plan clean -> import into a
fresh state -> plan clean. Bodies are built from the generated schema (tests/kinds)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from provisioner.kinds import KINDS
from tests.conftest import Cli
from tests.kinds.minimal import Builder, check, variant_defs

TOOL = KINDS["tool"]
STATE = Path("state/.sandbox/m.json")


def _ok(result: Any, code: int = 0) -> str:
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    return str(result.output)


def _body(tool_type: str, says: str) -> dict[str, Any]:
    body = Builder(0, frozenset({TOOL.name})).value(variant_defs(TOOL)[tool_type], "")
    body["messages"] = [{"type": "request-start", "content": says}]
    assert not check(TOOL, body), check(TOOL, body)
    return dict(body)


def _write(project: Path, body: dict[str, Any]) -> str:
    doc = {"version": 1, "tools": {"t": body}}
    (project / "m.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return "m.yaml"


def _pending(run: Cli, *args: str) -> list[tuple[str, str]]:
    plan = json.loads(_ok(run("plan", "m.yaml", "--sandbox", "--format", "json", *args)))
    return [(c["address"], c["action"]) for c in plan["changes"] if c["action"] != "no-op"]


@pytest.mark.parametrize("tool_type", list(TOOL.create_schemas))
def test_tool_type_lifecycle(tool_type: str, run: Cli, project: Path) -> None:
    name = _write(project, _body(tool_type, "One moment."))
    _ok(run("apply", name, "--sandbox", "--auto-approve"))
    assert _pending(run) == []

    _write(project, _body(tool_type, "Just a second."))
    assert _pending(run) == [("tool.t", "update")]
    _ok(run("apply", name, "--sandbox", "--auto-approve"))
    assert _pending(run) == []

    rid = json.loads(STATE.read_text())["resources"]["tool.t"]["id"]
    _ok(run("import", name, "tool.t", rid, "--sandbox", "--state", "fresh.json"))
    assert _pending(run, "--state", "fresh.json") == []
