"""Output for machines and logs: `apply --json` writes only JSON lines of progress events
to stdout; `NO_COLOR`, `--no-color` or a stdout that is not a terminal give plain text."""

from __future__ import annotations

import json
import os
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
    # stdout: only the summary line an early failure still ends with (issue #10)
    [line] = result.stdout.splitlines()
    assert json.loads(line)["type"] == "summary" and json.loads(line)["ok"] is False
    assert "nope" in result.stderr


def test_apply_json_needs_auto_approve_or_a_saved_plan(run: Cli, project: Path) -> None:
    """JSON mode prints no plan, so there is nothing a person could approve: refused before
    anything is read or changed, even at a terminal."""
    code, text = run_in_terminal(["apply", FULL, "--sandbox", "--json"], answer="yes\n")
    assert code == 1
    assert "--json shows no plan to approve" in text
    assert not Path("state").exists() or not list(Path("state").glob("*.json"))
    # A reviewed plan file needs no approval.
    ok(run("plan", FULL, "--sandbox", "--out", "reviewed.plan"))
    events = [
        json.loads(x) for x in ok(run("apply", "reviewed.plan", "--sandbox", "--json")).splitlines()
    ]
    assert events[-1]["type"] == "summary" and events[-1]["ok"] is True


def test_a_closed_pipe_ends_quietly(project: Path) -> None:
    """`provisioner plan ... | head -1`: the reader leaves early; no traceback, no error."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "provisioner", "plan", FULL, "--sandbox"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "TWILIO_AUTH_TOKEN": SECRET, "NO_COLOR": "1"},
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()  # as `head -1` does
    err = proc.stderr.read().decode()
    proc.stderr.close()
    proc.wait(timeout=60)
    assert "Traceback" not in err and "Error" not in err, err


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
    # The flag after the subcommand works the same.
    code, out = run_in_terminal(["plan", FULL, "--sandbox", "--no-color"], env=env)
    assert code == 0 and "Plan: 14 to create" in out
    assert not ANSI.search(out), out
    code, out = run_in_terminal(["plan", "missing.yaml", "--sandbox", "--no-color"], env=env)
    assert code == 1 and "manifest file not found" in out
    assert not ANSI.search(out), out
    # Errors too, whichever way they are reported.
    missing_address = ["state", "show", FULL, "nope", "--sandbox"]
    code, out = run_in_terminal(missing_address, env=env)
    assert code == 1 and ANSI.search(out)
    code, out = run_in_terminal(["--no-color", *missing_address], env=env)
    assert code == 1 and "nope is not in the state" in out
    assert not ANSI.search(out), out
    code, out = run_in_terminal([*missing_address, "--no-color"], env=env)
    assert code == 1 and "nope is not in the state" in out
    assert not ANSI.search(out), out
    code, out = run_in_terminal(missing_address, env={**env, "NO_COLOR": "1"})
    assert code == 1 and not ANSI.search(out), out
    code, out = run_in_terminal(["plan", "missing.yaml", "--sandbox"], env={**env, "NO_COLOR": "1"})
    assert code == 1 and "manifest file not found" in out
    assert not ANSI.search(out), out


# The keys of each event type: the README documents them, and 1.x only ever adds keys.
EVENT_KEYS = {
    "change_started": "type timestamp address kind action id",
    "change_finished": "type timestamp address kind action status id elapsed message done total",
    "summary": "type timestamp ok interrupted counts failed skipped not_started",
    "note": "type timestamp address message",
}


def test_apply_json_events_have_the_documented_keys(run: Cli, project: Path) -> None:
    """The same stream whether apply is given a manifest or a saved plan."""
    from_manifest = ok(run("apply", FULL, "--sandbox", "--auto-approve", "--json"))
    edit_manifest(FULL, ("temperature: 0.3", "temperature: 0.5"))
    ok(run("plan", FULL, "--sandbox", "--out", "plan.bin"))
    from_plan = ok(run("apply", "plan.bin", "--sandbox", "--json"))
    for stream in (from_manifest, from_plan):
        events = [json.loads(line) for line in stream.splitlines()]
        assert {e["type"] for e in events} >= {"change_started", "change_finished", "summary"}
        for e in events:
            assert set(e) == set(EVENT_KEYS[e["type"]].split()), e
        assert events[-1]["type"] == "summary" and events[-1]["ok"] is True
    finished = [json.loads(x) for x in from_plan.splitlines() if '"change_finished"' in x]
    assert [(e["address"], e["action"], e["status"]) for e in finished] == [
        ("assistant.support", "update", "done")
    ]
    assert set(json.loads(from_plan.splitlines()[-1])["counts"]) == {
        "done",
        "failed",
        "skipped",
        "not_started",
    }
