"""Shell completion (click's `_PROVISIONER_COMPLETE`) for bash, zsh and fish, run as the
shells run it: the installed command in a subprocess, with the shell's variables set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES

FULL_ADDRESSES = {
    "assistant.support",
    "assistant.sales",
    "phoneNumber.main-line",
    "phoneNumber.test-line",
    "board.overview",
}


def _complete(shell: str, words: list[str], env: dict[str, str] | None = None) -> list[str]:
    """The completions `shell` would offer for the last word of `words`."""
    line = " ".join(["provisioner", *words])
    variables = {"_PROVISIONER_COMPLETE": f"{shell}_complete", "COMP_WORDS": line}
    if shell == "fish":
        variables["COMP_CWORD"] = words[-1]
    else:
        variables["COMP_CWORD"] = str(len(words))
    result = subprocess.run(
        [sys.executable, "-m", "provisioner"],
        env={**os.environ, **variables, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=EXAMPLES.parent,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    if shell == "zsh":  # type, value, help: three lines each
        return result.stdout.splitlines()[1::3]
    # bash: "type,value"; fish: "type,value" and a tab before any help
    return [line.split(",", 1)[1].split("\t")[0] for line in result.stdout.splitlines() if line]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_state_show_completes_the_manifests_addresses(shell: str) -> None:
    found = _complete(shell, ["state", "show", "examples/full.yaml", ""])
    assert FULL_ADDRESSES <= set(found)
    assert len(found) == 14
    assert _complete(shell, ["state", "show", "examples/full.yaml", "phoneNumber.m"]) == [
        "phoneNumber.main-line"
    ]


def test_import_completes_addresses_in_manifest_order() -> None:
    found = _complete("bash", ["import", "examples/small.yaml", ""])
    assert found == ["assistant.support", "phoneNumber.test-line"]


def test_a_broken_manifest_completes_nothing_quietly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("assistants: [unclosed\n")
    assert _complete("bash", ["state", "show", str(bad), ""]) == []
    assert _complete("bash", ["state", "show", str(tmp_path / "missing.yaml"), ""]) == []


def test_commands_complete_too() -> None:
    found = _complete("bash", ["sh"])
    assert found == ["show"]
    assert {"graph", "show", "plan"} <= set(_complete("zsh", [""]))


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(shell: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "provisioner"],
        env={**os.environ, "_PROVISIONER_COMPLETE": f"{shell}_source"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert "_PROVISIONER_COMPLETE" in result.stdout and f"{shell}_complete" in result.stdout


@pytest.mark.parametrize(
    "words",
    [
        ["plan", "examples/small.yaml", "--target", "ph"],
        ["plan", "examples/small.yaml", "--replace", "ph"],
        ["apply", "examples/small.yaml", "--target", "ph"],
        ["apply", "examples/small.yaml", "--replace", "ph"],
        ["destroy", "examples/small.yaml", "--target", "ph"],
        ["state", "rm", "examples/small.yaml", "ph"],
    ],
)
def test_target_replace_and_state_rm_complete_addresses(words: list[str]) -> None:
    assert _complete("bash", words) == ["phoneNumber.test-line"]
