"""Issue #10, items 3 and 7: `${file:}` reads nothing under `.git/` and nothing git ignores
(the job's token, `.env`), and a NUL byte in its path is a clear error, not a traceback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, Cli

TEXT = """version: 1
assistants:
  support:
    name: Acme Support
    firstMessage: "{value}"
"""


def _git_repo(folder: Path) -> None:
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    (folder / ".gitignore").write_text(".env\nsecrets/\n")
    (folder / ".env").write_text("TOKEN=ghs_job_token_do_not_post\n")
    (folder / "secrets").mkdir()
    (folder / "secrets" / "prompt.md").write_text("kept out of git\n")
    (folder / "prompt.md").write_text("be nice\n")


@pytest.mark.parametrize(
    ("rel", "words"),
    [
        (".git/config", "${file:.git/config} is inside a .git folder"),
        ("prompts/../.git/HEAD", "${file:prompts/../.git/HEAD} is inside a .git folder"),
        (".env", "${file:.env} is ignored by git: a file kept out of the repository"),
        ("secrets/prompt.md", "${file:secrets/prompt.md} is ignored by git"),
    ],
)
def test_git_internals_and_ignored_files_are_refused(
    run: Cli, project: Path, rel: str, words: str
) -> None:
    _git_repo(project)
    (project / "m.yaml").write_text(TEXT.format(value=f"${{file:{rel}}}"))
    for args in (["validate", "m.yaml"], ["plan", "m.yaml", "--sandbox", "--format", "markdown"]):
        result = run(*args)
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output
        assert f"m.yaml:5:5: assistants.support.firstMessage: {words}" in result.output
        assert "ghs_job_token" not in result.output and "[core]" not in result.output


def test_a_tracked_or_unignored_file_is_still_read(run: Cli, project: Path) -> None:
    _git_repo(project)
    (project / "m.yaml").write_text(TEXT.format(value="${file:prompt.md}"))
    result = run("plan", "m.yaml", "--sandbox")
    assert result.exit_code == 0, result.output
    assert "be nice" in result.output


def test_outside_a_git_repository_only_the_confinement_applies(run: Cli, project: Path) -> None:
    (project / ".env").write_text("not a repository: nothing is ignored\n")
    (project / "m.yaml").write_text(TEXT.format(value="${file:.env}"))
    result = run("validate", "m.yaml")
    assert result.exit_code == 0, result.output


def test_a_nul_byte_in_the_path(run: Cli, project: Path) -> None:
    (project / "m.yaml").write_text(TEXT.format(value="${file:prompt\\0.md}"))
    for args in (["validate", "m.yaml"], ["plan", "m.yaml", "--sandbox"]):
        result = run(*args)
        assert result.exit_code == 1, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert "m.yaml:5:5:" in result.output
        assert "${file:prompt\\0.md}: the path holds a NUL byte" in result.output


def test_the_ci_recipe_keeps_no_credentials() -> None:
    """Each checkout of the recipe says `persist-credentials: false`, and zizmor (the
    GitHub Actions security linter, run by .ci/run) finds nothing in what we ship."""
    workflows = sorted((REPO / "examples" / "ci").glob("*.yml"))
    assert workflows
    for workflow in workflows:
        doc = yaml.safe_load(workflow.read_text())
        checkouts = [
            s
            for job in doc["jobs"].values()
            for s in job.get("steps", [])
            if str(s.get("uses", "")).startswith("actions/checkout@")
        ]
        assert checkouts
        for s in checkouts:
            assert s.get("with", {}).get("persist-credentials") is False, (workflow, s)
    done = subprocess.run(
        ["zizmor", "--offline", *map(str, workflows)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
