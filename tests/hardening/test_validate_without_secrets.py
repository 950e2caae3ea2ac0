"""Issue #10, item 5: `validate` needs no secret values (a fork's pull request has none):
an unset or empty `${env:}` is a warning naming the variable and line; `--strict`, `plan`
and `apply` still refuse."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Cli

FULL = "examples/full.yaml"


def _token_line() -> int:
    lines = Path(FULL).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if "${env:TWILIO_AUTH_TOKEN}" in line)


@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_validate_warns(run: Cli, project: Path, value: str | None) -> None:
    env = {"TWILIO_AUTH_TOKEN": value}  # None: CliRunner removes the variable
    result = run("validate", FULL, env=env)  # type: ignore[arg-type]
    assert result.exit_code == 0, result.output
    line = _token_line()
    assert f"examples/full.yaml:{line}:" in result.output
    assert "warning: " in result.output
    assert "environment variable TWILIO_AUTH_TOKEN is" in result.output
    assert "plan and apply will need it" in result.output
    assert "is valid: 14 resources" in result.output

    strict = run("validate", "--strict", FULL, env=env)  # type: ignore[arg-type]
    assert strict.exit_code == 1
    assert f"examples/full.yaml:{line}:" in strict.output
    assert "warning:" not in strict.output

    for args in (["plan", FULL, "--sandbox"], ["apply", FULL, "--sandbox", "--auto-approve"]):
        refused = run(*args, env=env)  # type: ignore[arg-type]
        assert refused.exit_code == 1, refused.output
        assert "environment variable TWILIO_AUTH_TOKEN is" in refused.output
    assert not (project / "state/.sandbox/examples/full.json").exists()


def test_other_problems_still_fail_validate(run: Cli, project: Path) -> None:
    text = Path(FULL).read_text().replace("temperature: 0.3", "temperature: hot")
    Path("m.yaml").write_text(text)
    (project / "prompts").symlink_to(project / "examples" / "prompts")
    result = run("validate", "m.yaml", env={"TWILIO_AUTH_TOKEN": None})  # type: ignore[dict-item]
    assert result.exit_code == 1
    assert "temperature" in result.output and "1 problem found" in result.output
