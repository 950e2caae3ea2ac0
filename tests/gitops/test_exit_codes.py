"""Exit codes CI can rely on: `plan --detailed-exitcode` gives 0 for no changes, 2 for
changes pending and 1 for any error, usage errors included (click's own default is 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Cli
from tests.gitops import FULL, apply_full, edit_manifest


def test_changes_pending_then_none(run: Cli, project: Path) -> None:
    assert run("plan", FULL, "--sandbox", "--detailed-exitcode").exit_code == 2
    # Without the flag, a plan with changes is a success.
    assert run("plan", FULL, "--sandbox").exit_code == 0
    apply_full(run)
    assert run("plan", FULL, "--sandbox", "--detailed-exitcode").exit_code == 0
    for fmt in ("json", "markdown"):
        assert run("plan", FULL, "--sandbox", "--format", fmt, "--detailed-exitcode").exit_code == 0
    edit_manifest(FULL, ("temperature: 0.3", "temperature: 0.5"))
    for fmt in ("human", "json", "markdown"):
        result = run("plan", FULL, "--sandbox", "--format", fmt, "--detailed-exitcode")
        assert result.exit_code == 2, (fmt, result.output)


@pytest.mark.parametrize(
    "args",
    [
        ["plan", FULL, "--sandbox", "--detailed-exitcode", "--no-such-option"],
        ["plan", "--sandbox", "--detailed-exitcode"],  # missing MANIFEST
        ["plan", FULL, "--sandbox", "--detailed-exitcode", "--format", "yaml"],
        ["plan", FULL, "--sandbox", "--detailed-exitcode", "--parallelism", "0"],
        ["plan", FULL, FULL, "--sandbox", "--detailed-exitcode"],  # extra argument
        ["no-such-command"],
        ["drift", FULL, "--sandbox", "--no-such-option"],
        ["apply", FULL, "--sandbox", "--no-such-option"],
        ["import", FULL, "--sandbox"],  # neither ADDRESS ID nor --generate
    ],
)
def test_usage_errors_exit_1_not_2(run: Cli, args: list[str]) -> None:
    result = run(*args)
    assert result.exit_code == 1, result.output
    assert "Error:" in result.output


def test_broken_manifest_exits_1(run: Cli, project: Path) -> None:
    Path("broken.yaml").write_text("version: 1\nassistants:\n  a: {name: [unclosed\n")
    result = run("plan", "broken.yaml", "--sandbox", "--detailed-exitcode")
    assert result.exit_code == 1
    assert "broken.yaml:" in result.output and "Planning failed." in result.output

    Path("invalid.yaml").write_text("version: 1\nassistants:\n  a: {name: A, nope: 1}\n")
    result = run("plan", "invalid.yaml", "--sandbox", "--detailed-exitcode")
    assert result.exit_code == 1
    assert "nope" in result.output

    result = run("plan", "missing.yaml", "--sandbox", "--detailed-exitcode")
    assert result.exit_code == 1
    assert "manifest file not found" in result.output


def test_missing_secret_exits_1(run: Cli, project: Path) -> None:
    from provisioner.cli.main import cli

    args = ["plan", FULL, "--sandbox", "--detailed-exitcode"]
    result = run.runner.invoke(cli, args, env={"NO_COLOR": "1", "TWILIO_AUTH_TOKEN": None})
    assert result.exit_code == 1, result.output
    assert "TWILIO_AUTH_TOKEN" in result.output


def test_no_token_for_the_real_api_exits_1(run: Cli, project: Path) -> None:
    result = run("plan", FULL, "--detailed-exitcode", env={"VAPI_TOKEN": "", "VAPI_API_KEY": ""})
    assert result.exit_code == 1
    assert "no Vapi API key" in result.output


def test_help_and_version_exit_0(run: Cli) -> None:
    assert run("--help").exit_code == 0
    assert run("plan", "--help").exit_code == 0
    assert run("--version").exit_code == 0
