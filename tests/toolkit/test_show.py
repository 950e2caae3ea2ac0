"""`provisioner show PLANFILE`: a saved plan rendered again, byte for byte what `plan`
printed, in every format, without the state, the lock or the network."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import SECRET, Cli
from tests.gitops import FULL, apply_full, edit_manifest, ok

FORMATS = ("human", "json", "markdown")


@pytest.mark.parametrize("fmt", FORMATS)
def test_show_prints_what_plan_printed(run: Cli, project: Path, fmt: str) -> None:
    apply_full(run)
    edit_manifest(FULL, ("temperature: 0.3", "temperature: 0.5"))
    planned = ok(run("plan", FULL, "--sandbox", "--out", "plan.bin", "--format", fmt))
    assert "temperature" in planned
    # No state, no sandbox, no token, and a Vapi that does not answer: show needs none.
    shutil.rmtree("state")
    env = {"VAPI_BASE_URL": "http://127.0.0.1:9", "TWILIO_AUTH_TOKEN": ""}
    shown = run("show", "plan.bin", "--format", fmt, env=env)
    assert ok(shown) == planned
    assert SECRET not in shown.output
    assert not Path("state").exists()  # nothing read back, nothing written


def test_show_of_a_first_plan_with_creates(run: Cli, project: Path) -> None:
    planned = ok(run("plan", FULL, "--sandbox", "--out", "p.bin"))
    assert "<<-EOT" in planned
    assert ok(run("show", "p.bin")) == planned


def test_show_default_format_is_human(run: Cli, project: Path) -> None:
    planned = ok(run("plan", FULL, "--sandbox", "--out", "p.bin", "--format", "human"))
    assert ok(run("show", "p.bin")) == planned
    assert planned.endswith("Apply exactly it with: provisioner apply p.bin\n")


def test_show_refuses_what_is_not_a_plan(run: Cli, project: Path) -> None:
    missing = run("show", "nowhere.bin")
    assert missing.exit_code == 1
    assert "Error: nowhere.bin: cannot read the plan file" in missing.output
    assert "Traceback" not in missing.output
    bad = run("show", FULL)
    assert bad.exit_code == 1
    assert "is not a saved plan (expected a file written by `plan --out`)" in bad.output
    assert not Path("state").exists()
