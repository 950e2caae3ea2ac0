"""A state belongs to its manifest (docs/state-identity.md), proven through the CLI against
one shared `provisioner sandbox serve` over a real socket (one org for every run).

- two manifests named `vapi.yaml` in two folders of one repository keep two states, and
  applying one never deletes the other's objects; the same manifest finds its state from
  any folder;
- another manifest's state is refused, naming both; a state at the old default path moves;
- a copy of the repository folder (with its state) changes nothing; one without its state
  (another lineage) is refused before anything is created or bought;
- a state restored from an older copy: assistants and the bought number are adopted (no
  duplicate, no second purchase), every other kind is named in the plan with `import`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.harness import EXAMPLES, Sandbox, cli

ACCOUNT = "AC0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def served() -> Iterator[Sandbox]:
    box = Sandbox()
    yield box
    box.close()


@pytest.fixture
def sandbox(served: Sandbox) -> Sandbox:
    served.set_faults({})
    served.request("POST", "/__emulator/reset", {}, admin=True)
    return served


def repo(folder: Path) -> Path:
    """A git work tree with the example prompts."""
    folder.mkdir(parents=True)
    shutil.copytree(EXAMPLES / "prompts", folder / "prompts")
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    return folder


def assistant(key: str, name: str) -> str:
    return (
        f"  {key}:\n    name: {name}\n    firstMessage: Hello from {name}.\n"
        "    model: {provider: openai, model: gpt-4o}\n"
    )


def manifest(path: Path, assistants: str, rest: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"version: 1\nassistants:\n{assistants}{rest}")


def run(sandbox: Sandbox, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return cli(sandbox, cwd, *args, timeout=120)


def ok(done: subprocess.CompletedProcess[str], code: int = 0) -> str:
    assert done.returncode == code, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout + done.stderr


def names(sandbox: Sandbox, kind: str) -> list[str]:
    return sorted(str(o.get("name")) for o in sandbox.objects()[kind])


def bought_since(sandbox: Sandbox, earlier: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The numbers the Twilio fake sold since `earlier` was read."""
    seen = {n["sid"] for n in earlier}
    return [n for n in sandbox.twilio_numbers(ACCOUNT) if n["sid"] not in seen]


def writes(sandbox: Sandbox) -> int:
    by_method = sandbox.stats().get("by_method", {})
    return sum(int(by_method.get(m, 0)) for m in ("POST", "PATCH", "DELETE"))


def test_two_folders_holding_vapi_yaml_keep_their_own_states(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    root = repo(tmp_path / "acme")
    manifest(root / "teams/a/vapi.yaml", assistant("support", "Team A"))
    manifest(root / "teams/b/vapi.yaml", assistant("support", "Team B"))
    ok(run(sandbox, root, "apply", "teams/a/vapi.yaml", "--auto-approve"))
    ok(run(sandbox, root, "apply", "teams/b/vapi.yaml", "--auto-approve"))
    assert names(sandbox, "assistant") == ["Team A", "Team B"]
    for team in ("a", "b"):
        state = json.loads((root / f"state/teams/{team}/vapi.json").read_text())
        assert state["manifest"] == f"teams/{team}/vapi.yaml"
        assert list(state["resources"]) == ["assistant.support"]
    assert not (root / "state/vapi.json").exists()
    markers = {o["name"]: o["metadata"]["provisioner"] for o in sandbox.objects()["assistant"]}
    assert markers["Team A"]["manifest"] == "teams/a/vapi.yaml"
    assert markers["Team A"]["address"] == "assistant.support"

    # Each plans clean, and so does the same manifest run from its own folder.
    assert "No changes." in ok(run(sandbox, root, "plan", "teams/a/vapi.yaml"))
    assert "No changes." in ok(run(sandbox, root / "teams/b", "plan", "vapi.yaml"))
    assert not (root / "teams/b/state").exists()
    assert names(sandbox, "assistant") == ["Team A", "Team B"]


def test_another_manifests_state_is_refused_naming_both(sandbox: Sandbox, tmp_path: Path) -> None:
    root = repo(tmp_path / "acme")
    manifest(root / "teams/a/vapi.yaml", assistant("support", "Team A"))
    manifest(root / "teams/b/vapi.yaml", assistant("other", "Team B"))
    ok(run(sandbox, root, "apply", "teams/a/vapi.yaml", "--auto-approve"))
    state_a = root / "state/teams/a/vapi.json"
    before, sent = state_a.read_bytes(), writes(sandbox)
    for command in ("plan", "apply"):
        args = [command, "teams/b/vapi.yaml", "--state", str(state_a)]
        out = ok(run(sandbox, root, *args, *(["--auto-approve"] if command == "apply" else [])), 1)
        assert "belongs to manifest teams/a/vapi.yaml, not to manifest teams/b/vapi.yaml" in out
    assert state_a.read_bytes() == before and writes(sandbox) == sent
    assert names(sandbox, "assistant") == ["Team A"]


def test_a_state_at_the_old_default_path_is_moved_with_a_notice(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    root = repo(tmp_path / "acme")
    manifest(root / "teams/a/vapi.yaml", assistant("support", "Team A"))
    manifest(root / "teams/b/vapi.yaml", assistant("support", "Team B"))
    old = root / "state/vapi.json"  # where `state/<stem>.json` from the root put both
    ok(
        run(
            sandbox,
            root,
            "apply",
            "teams/a/vapi.yaml",
            "--state",
            "state/vapi.json",
            "--auto-approve",
        )
    )
    # Another manifest's state is left where it is: team b starts its own.
    out = ok(run(sandbox, root, "plan", "teams/b/vapi.yaml"))
    assert "Moved" not in out and "1 to create" in out and old.exists()

    out = ok(run(sandbox, root, "plan", "teams/a/vapi.yaml"))
    assert "Note: Moved the state of teams/a/vapi.yaml from state/vapi.json to " in out
    assert "state/teams/a/vapi.json" in out and "No changes." in out
    assert not old.exists() and (root / "state/teams/a/vapi.json").exists()


def test_a_copy_of_the_repository_changes_nothing_and_one_without_state_is_refused(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    earlier = bought_since(sandbox, [])
    first = repo(tmp_path / "first")
    shutil.copy(EXAMPLES / "buy-a-number.yaml", first / "vapi.yaml")
    ok(run(sandbox, first, "apply", "vapi.yaml", "--auto-approve"))
    assert len(bought_since(sandbox, earlier)) == 1

    copy = tmp_path / "copy"
    shutil.copytree(first, copy)
    assert "No changes." in ok(run(sandbox, copy, "apply", "vapi.yaml", "--auto-approve"))

    fresh = tmp_path / "fresh"  # a clone without the committed state: another lineage
    shutil.copytree(first, fresh, ignore=shutil.ignore_patterns("state"))
    sent = writes(sandbox)
    out = ok(run(sandbox, fresh, "apply", "vapi.yaml", "--auto-approve"), 1)
    # Its bought number is found first (Twilio's FriendlyName names the manifest).
    assert "another state of vapi.yaml bought at Twilio the numbers this plan would buy" in out
    assert "phoneNumber.sf-line: +1" in out and ", bought by lineage " in out
    assert writes(sandbox) == sent and len(bought_since(sandbox, earlier)) == 1
    assert not (fresh / "state/vapi.json").exists()
    assert names(sandbox, "assistant") == ["Acme Support"]


ANALYTICS = """phoneNumbers:
  sf-line:
    provider: twilio
    name: Acme San Francisco
    purchase: {country: US, areaCode: "415", type: local}
    twilioAccountSid: AC0123456789abcdef0123456789abcdef
    twilioAuthToken: ${env:TWILIO_AUTH_TOKEN}
    assistantId: ${assistant.sales.id}
  sip-line:
    provider: byo-phone-number
    name: Front desk
    number: "+14155550123"
    credentialId: 7f1c2e9a-1b2c-4d3e-8f90-0a1b2c3d4e5f
analytics:
  structuredOutputs: {call-summary: {name: Call summary, schema: {type: string}}}
  insights:
    calls-per-day:
      type: line
      name: Calls per day
      queries: [{type: vapiql-json, table: call, column: id, operation: count, name: calls}]
      timeRange: {start: "-7d", end: now, step: day}
  boards: {overview: {name: Support overview, layout: {columns: 6}, items: []}}
"""


def test_a_state_restored_from_an_older_copy_duplicates_nothing_silently(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    earlier = bought_since(sandbox, [])  # the Twilio fake keeps other tests' numbers
    root = repo(tmp_path / "acme")
    path = root / "vapi.yaml"
    manifest(path, assistant("support", "Acme Support"))
    ok(run(sandbox, root, "apply", "vapi.yaml", "--auto-approve"))
    state = root / "state/vapi.json"
    older = state.read_bytes()

    manifest(
        path, assistant("support", "Acme Support") + assistant("sales", "Acme Sales"), ANALYTICS
    )
    ok(run(sandbox, root, "apply", "vapi.yaml", "--auto-approve"))
    counts = {kind: len(objs) for kind, objs in sandbox.objects().items()}
    assert counts["assistant"] == 2 and counts["phoneNumber"] == 2
    bought = bought_since(sandbox, earlier)
    assert len(bought) == 1

    state.write_bytes(older)  # serial goes backwards: the newer entries are forgotten
    out = ok(run(sandbox, root, "plan", "vapi.yaml"))
    sales = next(o for o in sandbox.objects()["assistant"] if o["name"] == "Acme Sales")
    assert f"assistant.sales: adopted assistant {sales['id']}" in out
    assert f"phoneNumber.sf-line: found {bought[0]['phone_number']}, bought at Twilio" in out
    for address, said in (
        ("phoneNumber.sip-line", "number '+14155550123'"),
        ("structuredOutput.call-summary", "name 'Call summary'"),
        ("insight.calls-per-day", "name 'Calls per day'"),
        ("board.overview", "name 'Support overview'"),
    ):
        assert f"{address}: a" in out and said in out, address
        assert f"`provisioner import vapi.yaml {address} " in out
    assert "4 to create" in out  # the kinds without a marker; named, never silently

    doc = json.loads(ok(run(sandbox, root, "plan", "vapi.yaml", "--format", "json")))
    warned = " ".join(doc["warnings"])
    assert "structuredOutput.call-summary: a structured output with name" in warned
    markdown = ok(run(sandbox, root, "plan", "vapi.yaml", "--format", "markdown"))
    assert "provisioner import vapi.yaml board.overview" in markdown

    ok(run(sandbox, root, "apply", "vapi.yaml", "--auto-approve"))
    assert names(sandbox, "assistant") == ["Acme Sales", "Acme Support"]
    assert bought_since(sandbox, earlier) == bought  # not bought a second time
    numbers: list[dict[str, Any]] = sandbox.objects()["phoneNumber"]
    assert sum(1 for n in numbers if n.get("number") == bought[0]["phone_number"]) == 1
    recorded = json.loads(state.read_text())["resources"]
    assert recorded["assistant.sales"]["id"] == sales["id"]


def test_default_state_paths(tmp_path: Path) -> None:
    from provisioner.settings import Settings

    outside = tmp_path / "loose" / "vapi.yaml"  # no git work tree: the manifest's folder
    outside.parent.mkdir()
    assert Settings().state_file_for(outside) == tmp_path / "loose/state/vapi.json"
    root = repo(tmp_path / "acme")
    nested = root / "teams/a/vapi.yml"
    assert Settings().state_file_for(nested) == root / "state/teams/a/vapi.json"
    sandboxed = Settings(sandbox=True).state_file_for(nested)
    assert sandboxed == root / "state/.sandbox/teams/a/vapi.json"
    given = tmp_path / "mine.json"
    assert Settings(state_path=given).state_file_for(nested) == given


def test_an_unreadable_state_at_the_old_default_is_not_passed_over(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    root = repo(tmp_path / "acme")
    manifest(root / "vapi.yaml", assistant("support", "Acme Support"))
    (root / "work/state").mkdir(parents=True)
    (root / "work/state/vapi.json").write_text("{not json")
    sent = writes(sandbox)
    out = ok(run(sandbox, root / "work", "apply", "../vapi.yaml", "--auto-approve"), 1)
    assert "Error: state/vapi.json, where earlier versions kept the state of this manifest" in out
    assert writes(sandbox) == sent and not (root / "state/vapi.json").exists()
