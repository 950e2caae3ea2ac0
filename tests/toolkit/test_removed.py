"""Stop managing without deleting: `removed: [{from}]` in the manifest (a `forget` in the
plan, in every format) and `state rm MANIFEST ADDRESS` (at once, under the lock). The
entry leaves the state, the remote object stays, its ownership marker is cleared, and
another manifest imports it without a warning. Through the CLI against the sandbox."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from provisioner.kinds import OWNER_MARKER_KEY
from tests.conftest import Cli
from tests.gitops import ok, read_state, sandbox_objects

ONE = "examples/one.yaml"
OTHER = "examples/other.yaml"
ONE_STATE = Path("state/.sandbox/examples/one.json")
OTHER_STATE = Path("state/.sandbox/examples/other.json")


def assistant(name: str) -> str:
    return (
        f"    name: {name}\n"
        "    firstMessage: Hello.\n"
        "    model:\n"
        "      provider: openai\n"
        "      model: gpt-4o\n"
        "    metadata:\n"
        "      team: ops\n"
    )


def write(path: str, keys: dict[str, str], extra: str = "") -> None:
    body = "".join(f"  {k}:\n{assistant(v)}" for k, v in keys.items())
    Path(path).write_text(f"version: 1\nassistants:\n{body}{extra}")


def remote(rid: str) -> dict[str, Any]:
    return next(o for o in sandbox_objects() if o["id"] == rid)


def legacy_applied(run: Cli) -> str:
    write(ONE, {"support": "Support", "legacy": "Legacy line"})
    ok(run("apply", ONE, "--sandbox", "--auto-approve"))
    rid = str(read_state(ONE_STATE)["resources"]["assistant.legacy"]["id"])
    assert OWNER_MARKER_KEY in remote(rid)["metadata"]
    return rid


def imported_elsewhere_plans_clean(run: Cli, rid: str) -> None:
    write(OTHER, {"legacy": "Legacy line"})
    out = ok(run("import", OTHER, "assistant.legacy", rid, "--sandbox"))
    assert "another provisioner state" not in out
    for manifest in (ONE, OTHER):
        result = run("plan", manifest, "--sandbox", "--detailed-exitcode")
        assert result.exit_code == 0, result.output
        assert "No changes." in result.output


def test_removed_then_import_plans_clean_in_both(run: Cli, project: Path) -> None:
    rid = legacy_applied(run)
    write(ONE, {"support": "Support"}, "removed:\n  - from: assistant.legacy\n")

    human = ok(run("plan", ONE, "--sandbox", "--detailed-exitcode"), code=2)
    assert (
        "<= assistant.legacy (Legacy line) will no longer be managed: removed from management "
        "(the remote object stays)"
    ) in human
    assert f"- metadata.{OWNER_MARKER_KEY}:" in human
    assert "1 to forget." in human
    doc = json.loads(ok(run("plan", ONE, "--sandbox", "--format", "json")))
    change = next(c for c in doc["changes"] if c["address"] == "assistant.legacy")
    assert (change["action"], change["reason"]) == ("forget", "forget_requested")
    assert doc["summary"]["forget"] == 1
    md = ok(run("plan", ONE, "--sandbox", "--format", "markdown"))
    assert "| `<=` | forget | `assistant.legacy` |" in md

    applied = ok(run("apply", ONE, "--sandbox", "--auto-approve"))
    assert "assistant.legacy: forgotten (the remote object stays)" in applied
    assert "assistant.legacy" not in read_state(ONE_STATE)["resources"]
    kept = remote(rid)
    assert kept["name"] == "Legacy line"
    assert kept["metadata"] == {"team": "ops"}
    imported_elsewhere_plans_clean(run, rid)


def test_state_rm_forgets_at_once_and_clears_the_marker(run: Cli, project: Path) -> None:
    rid = legacy_applied(run)
    write(ONE, {"support": "Support"})
    out = ok(run("state", "rm", ONE, "assistant.legacy", "--sandbox"))
    assert f"Removed assistant.legacy (ID {rid}) from " in out
    assert "the remote object stays: cleared its ownership marker in Vapi." in out
    assert "assistant.legacy" not in read_state(ONE_STATE)["resources"]
    assert remote(rid)["metadata"] == {"team": "ops"}
    imported_elsewhere_plans_clean(run, rid)


def test_state_rm_says_when_the_marker_cannot_be_cleared(run: Cli, project: Path) -> None:
    write(ONE, {"support": "Support", "legacy": "Legacy line"})
    ok(run("apply", ONE, "--sandbox", "--auto-approve", "--state", "one.json"))
    rid = read_state(Path("one.json"))["resources"]["assistant.legacy"]["id"]
    out = ok(
        run(
            "state",
            "rm",
            ONE,
            "assistant.legacy",
            "--state",
            "one.json",
            env={"VAPI_TOKEN": "", "VAPI_API_KEY": ""},
        )
    )
    assert "could not clear its ownership marker in Vapi (no Vapi API key" in out
    assert "assistant.legacy" not in read_state(Path("one.json"))["resources"]
    assert OWNER_MARKER_KEY in remote(rid)["metadata"]  # untouched: nothing reached Vapi


def test_state_rm_and_removed_refuse_mistakes(run: Cli, project: Path) -> None:
    legacy_applied(run)
    missing = run("state", "rm", ONE, "assistant.nope", "--sandbox")
    assert missing.exit_code == 1
    assert "assistant.nope is not in the state" in missing.output
    assert "it holds: assistant.legacy, assistant.support)" in missing.output
    assert "Traceback" not in missing.output

    write(
        ONE,
        {"support": "Support", "legacy": "Legacy line"},
        "removed:\n  - from: assistant.legacy\n  - from: assistant.legacy\n",
    )
    bad = run("plan", ONE, "--sandbox")
    assert bad.exit_code == 1
    assert "removed: assistant.legacy is still declared in the manifest" in bad.output
    assert "removed: assistant.legacy is listed twice" in bad.output
    assert f"{ONE}:" in bad.output  # at the entry's file:line
    write(ONE, {"support": "Support"}, "removed:\n  - from: legacy\n")
    shape = run("validate", ONE)
    assert shape.exit_code == 1
    assert "is not a resource address: expected KIND.KEY" in shape.output


def test_destroy_keeps_what_removed_lists(run: Cli, project: Path) -> None:
    rid = legacy_applied(run)
    write(ONE, {"support": "Support"}, "removed:\n  - from: assistant.legacy\n")
    out = ok(run("destroy", ONE, "--sandbox", "--auto-approve"))
    assert "assistant.support: deleted" in out
    assert "assistant.legacy: forgotten (the remote object stays)" in out
    assert read_state(ONE_STATE)["resources"] == {}
    assert [o["id"] for o in sandbox_objects()] == [rid]
