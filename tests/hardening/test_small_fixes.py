"""Issue #10, items 7 to 9: the smaller findings, each through the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Cli

SMALL = "examples/small.yaml"


def _no_crash(result: object) -> None:
    exc = getattr(result, "exception", None)
    assert exc is None or isinstance(exc, SystemExit), repr(exc)


# Options -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("--max-rps", "nan", "'nan' is not a finite number"),
        ("--max-rps", "inf", "'inf' is not a finite number"),
        ("--max-rps", "0", "'0' is below the minimum of 0.1"),
        ("--lock-timeout", "nan", "'nan' is not a finite number"),
        ("--lock-timeout", "-inf", "'-inf' is not a finite number"),
        ("--lock-timeout", "-1", "'-1' is below the minimum of 0"),
        ("--lock-timeout", "soon", "'soon' is not a number"),
    ],
)
def test_meaningless_numbers_are_bad_parameters(
    run: Cli, project: Path, option: str, value: str, words: str
) -> None:
    result = run("apply", SMALL, "--sandbox", "--auto-approve", option, value)
    assert result.exit_code == 1
    _no_crash(result)
    assert f"Invalid value for '{option}': {words}" in result.output, result.output
    assert not (project / "state/.sandbox/examples/small.json").exists()


# plan --out ------------------------------------------------------------------------------


def _special(project: Path, kind: str) -> Path:
    target = project / f"out-{kind}"
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "symlink":
        (project / "victim.txt").write_text("keep me\n")
        target.symlink_to(project / "victim.txt")
    elif kind == "directory":
        target.mkdir()
    elif kind == "device":
        return Path("/dev/null")
    return target


@pytest.mark.parametrize("kind", ["fifo", "symlink", "directory", "device"])
def test_plan_out_writes_only_to_a_regular_file(run: Cli, project: Path, kind: str) -> None:
    target = _special(project, kind)
    before = target.lstat()
    result = run("plan", SMALL, "--sandbox", "--out", str(target))
    assert result.exit_code == 1, result.output
    _no_crash(result)
    what = {"fifo": "a FIFO", "symlink": "a symbolic link", "directory": "a directory"}
    assert f"is {what.get(kind, 'a device')}" in result.output, result.output
    if kind != "directory":  # click's own check (`dir_okay=False`) words that one
        assert "nothing was written" in result.output
    after = target.lstat()
    assert (after.st_mode, after.st_ino, after.st_mtime_ns) == (
        before.st_mode,
        before.st_ino,
        before.st_mtime_ns,
    )
    if kind == "symlink":
        assert (project / "victim.txt").read_text() == "keep me\n"
    assert not (project / "state/.sandbox/examples/small.json").exists()


def test_plan_out_replaces_a_regular_file(run: Cli, project: Path) -> None:
    (project / "plan.bin").write_text("an older plan")
    result = run("plan", SMALL, "--sandbox", "--out", "plan.bin")
    assert result.exit_code == 0, result.output
    assert (project / "plan.bin").read_bytes()[:2] == b"\x1f\x8b"
    assert [p.name for p in project.iterdir() if p.name.startswith(".plan.bin")] == []


# apply summaries ---------------------------------------------------------------------------


def test_ctrl_c_says_interrupted_not_complete(project: Path) -> None:
    """Each request takes 0.5 s: Ctrl-C while the assistant is being created leaves the
    number not started, and the summary says so."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("VAPI_", "TWILIO_"))},
        "NO_COLOR": "1",
        "PROVISIONER_SANDBOX_FAULTS": "latency_ms=500",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "provisioner", "apply", SMALL, "--sandbox", "--auto-approve"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "assistant.support: creating..." in line:
            time.sleep(0.1)
            proc.send_signal(signal.SIGINT)
            break
    rest, _ = proc.communicate(timeout=60)
    out = "".join(lines) + rest
    assert proc.returncode == 1, out
    assert "Apply complete" not in out, out
    assert "Apply interrupted: 1 done, 0 failed, 0 skipped, 1 not started." in out, out
    assert "Traceback" not in out


@pytest.mark.parametrize(
    ("case", "args"),
    [
        ("bad-manifest", ["apply", "m.yaml", "--sandbox", "--auto-approve", "--json"]),
        ("bad-plan-file", ["apply", "plan.bin", "--sandbox", "--json"]),
    ],
)
def test_apply_json_ends_with_a_summary_on_early_failure(
    run: Cli, project: Path, case: str, args: list[str]
) -> None:
    (project / "m.yaml").write_text("version: 1\nassistants:\n  a: {name: [oops]}\n")
    (project / "plan.bin").write_bytes(b"\x1f\x8bnot really a plan")
    result = run(*args)
    assert result.exit_code == 1
    _no_crash(result)
    last = json.loads(result.stdout.splitlines()[-1])
    assert last["type"] == "summary" and last["ok"] is False, last
    assert last["counts"] == {"done": 0, "failed": 0, "skipped": 0, "not_started": 0}
    assert last["error"]


# state -------------------------------------------------------------------------------------


def _applied(run: Cli, project: Path) -> Path:
    result = run("apply", SMALL, "--sandbox", "--auto-approve")
    assert result.exit_code == 0, result.output
    return project / "state/.sandbox/examples/small.json"


def _edit(path: Path, address: str, **changes: object) -> None:
    doc = json.loads(path.read_text())
    doc["resources"][address].update(changes)
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"kind": "widget"}, "resource assistant.support has an unknown kind 'widget'"),
        ({"kind": "phoneNumber"}, "has kind 'phoneNumber', which does not match its address"),
        ({"id": None}, "resource assistant.support is recorded as created but has no id (null)"),
    ],
)
def test_a_hand_edited_state_entry_is_refused(
    run: Cli, project: Path, changes: dict[str, object], words: str
) -> None:
    state = _applied(run, project)
    _edit(state, "assistant.support", **changes)
    for args in (["plan", SMALL, "--sandbox"], ["apply", SMALL, "--sandbox", "--auto-approve"]):
        result = run(*args)
        assert result.exit_code == 1, result.output
        _no_crash(result)
        assert words in result.output, result.output
    assert "creating" not in result.output


def test_leftover_temporary_files_are_removed(run: Cli, project: Path) -> None:
    """A SIGKILL between writing the temporary file and renaming it leaves it behind."""
    state = _applied(run, project)
    leftovers = [
        state.with_name(f".{state.name}.k1ll3d.tmp"),
        state.with_name(f".{state.name}.backup.123.456.tmp"),
    ]
    for p in leftovers:
        p.write_text("{}")
    other = state.with_name(".other.json.x.tmp")  # another manifest's: not ours
    other.write_text("{}")
    result = run("apply", SMALL, "--sandbox", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert not any(p.exists() for p in leftovers)
    assert other.exists()


# moved -------------------------------------------------------------------------------------

MOVED = """version: 1
assistants:
  b: {name: B}
  c: {name: C}
moved:
  - {from: assistant.a, to: assistant.b}
  - from: assistant.a
    to: assistant.c
  - {from: assistant.x, to: phoneNumber.y}
"""


def test_moved_mistakes_are_reported_at_their_line(run: Cli, project: Path) -> None:
    (project / "m.yaml").write_text(MOVED)
    result = run("validate", "m.yaml")
    assert result.exit_code == 1
    assert "m.yaml:7:" in result.output
    assert "moved: assistant.a is moved twice (first at line 6)" in result.output
    assert "m.yaml:9:" in result.output
    assert "cannot move assistant.x to phoneNumber.y: a move cannot change the kind" in (
        result.output
    )


# bidi and control characters ---------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["human", "markdown"])
def test_invisible_characters_in_names_are_shown_escaped(run: Cli, project: Path, fmt: str) -> None:
    text = Path(SMALL).read_text().replace("Acme Support", "Acme \u202etroppuS\u2066 x\u200b")
    (project / "m.yaml").write_text(text)
    (project / "prompts").symlink_to(project / "examples" / "prompts")
    result = run("plan", "m.yaml", "--sandbox", "--format", fmt)
    assert result.exit_code == 0, result.output
    for ch in ("\u202e", "\u2066", "\u200b"):
        assert ch not in result.output
    assert "\\u202etroppuS\\u2066 x\\u200b" in result.output, result.output
