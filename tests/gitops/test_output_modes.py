"""Output for machines and logs: `apply --json` writes only JSON lines of progress events
to stdout; `NO_COLOR`, `--no-color` or a stdout that is not a terminal give plain text."""

from __future__ import annotations

import json
from pathlib import Path

from provisioner.cli.main import cli
from tests.conftest import SECRET, Cli
from tests.gitops import ANSI, FULL, apply_full, edit_manifest, ok, run_in_terminal

EVENT_TYPES = {"change_started", "change_finished", "note", "summary"}


def test_apply_json_emits_only_json_lines(run: Cli, project: Path) -> None:
    result = run("apply", FULL, "--sandbox", "--auto-approve", "--json")
    ok(result)
    lines = result.stdout.splitlines()
    events = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all(isinstance(e, dict) and e["type"] in EVENT_TYPES for e in events)
    assert all(e["timestamp"].endswith("Z") for e in events)
    started = [e for e in events if e["type"] == "change_started"]
    finished = [e for e in events if e["type"] == "change_finished"]
    assert len(started) == len(finished) == 14
    assert sorted(e["done"] for e in finished) == list(range(1, 15))
    assert {e["total"] for e in finished} == {14}
    assert all(e["status"] == "done" and e["id"] and e["action"] == "create" for e in finished)
    summary = events[-1]
    assert summary["type"] == "summary" and summary["ok"] is True
    assert summary["counts"] == {"done": 14, "failed": 0, "skipped": 0, "not_started": 0}
    assert SECRET not in result.output

    # An update: one change, and the addresses/IDs say which.
    edit_manifest(FULL, ("temperature: 0.3", "temperature: 0.5"))
    events = [
        json.loads(x)
        for x in ok(run("apply", FULL, "--sandbox", "--auto-approve", "--json")).splitlines()
    ]
    assert [(e["type"], e.get("address"), e.get("action")) for e in events[:-1]] == [
        ("change_started", "assistant.support", "update"),
        ("change_finished", "assistant.support", "update"),
    ]


def test_apply_json_with_nothing_to_do_still_answers(run: Cli, project: Path) -> None:
    apply_full(run)
    result = run("apply", FULL, "--sandbox", "--auto-approve", "--json")
    events = [json.loads(line) for line in ok(result).splitlines()]
    assert len(events) == 1
    assert events[0]["type"] == "summary" and events[0]["ok"] is True
    assert events[0]["counts"] == {"done": 0, "failed": 0, "skipped": 0, "not_started": 0}


def test_apply_json_errors_go_to_stderr(run: Cli, project: Path) -> None:
    Path("bad.yaml").write_text("version: 1\nassistants:\n  a: {name: A, nope: 1}\n")
    result = run("apply", "bad.yaml", "--sandbox", "--auto-approve", "--json")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "nope" in result.stderr


def test_not_a_terminal_means_no_colour(project: Path) -> None:
    """CliRunner's stdout is not a terminal: plain text even without NO_COLOR."""
    from click.testing import CliRunner

    runner = CliRunner()
    env = {"TWILIO_AUTH_TOKEN": SECRET, "NO_COLOR": None}
    outputs = [
        runner.invoke(cli, ["plan", FULL, "--sandbox"], env=env).output,
        runner.invoke(cli, ["apply", FULL, "--sandbox", "--auto-approve"], env=env).output,
        runner.invoke(cli, ["plan", FULL, "--sandbox"], env=env).output,
        runner.invoke(cli, ["plan", "missing.yaml", "--sandbox"], env=env).output,
        runner.invoke(cli, ["plan", FULL, "--bogus"], env=env).output,
    ]
    for text in outputs:
        assert not ANSI.search(text), text


def test_no_color_in_a_terminal(project: Path) -> None:
    env = {"TWILIO_AUTH_TOKEN": SECRET, "NO_COLOR": ""}
    # In a terminal, colour is on by default (so the checks below mean something) ...
    code, out = run_in_terminal(["plan", FULL, "--sandbox"], env=env)
    assert code == 0, out
    assert ANSI.search(out)
    # ... and off with NO_COLOR or --no-color.
    code, out = run_in_terminal(["plan", FULL, "--sandbox"], env={**env, "NO_COLOR": "1"})
    assert code == 0 and "Plan: 14 to create" in out
    assert not ANSI.search(out), out
    code, out = run_in_terminal(["--no-color", "plan", FULL, "--sandbox"], env=env)
    assert code == 0 and "Plan: 14 to create" in out
    assert not ANSI.search(out), out
    # Errors too, whichever way they are reported.
    missing_address = ["state", "show", FULL, "nope", "--sandbox"]
    code, out = run_in_terminal(missing_address, env=env)
    assert code == 1 and ANSI.search(out)
    code, out = run_in_terminal(["--no-color", *missing_address], env=env)
    assert code == 1 and "nope is not in the state" in out
    assert not ANSI.search(out), out
    code, out = run_in_terminal(missing_address, env={**env, "NO_COLOR": "1"})
    assert code == 1 and not ANSI.search(out), out
    code, out = run_in_terminal(["plan", "missing.yaml", "--sandbox"], env={**env, "NO_COLOR": "1"})
    assert code == 1 and "manifest file not found" in out
    assert not ANSI.search(out), out
