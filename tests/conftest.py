"""Shared fixtures: a project folder with the examples, and the CLI runner."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from provisioner.cli.main import cli

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
SECRET = "twilio-secret-9f8e7d6c5b4a"


@pytest.fixture(autouse=True)
def own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test its own cache folder (validation results): none leaks into another test
    or into the user's ~/.cache."""
    folder = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder))
    return folder


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working directory holding a copy of examples/, as a user's repository would (a
    git work tree: states are kept by the manifest's path in it, state/examples/...)."""
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    monkeypatch.chdir(tmp_path)
    yield tmp_path


class Cli:
    def __init__(self, env: dict[str, str]) -> None:
        self.runner = CliRunner()
        self.env = env

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return self.runner.invoke(cli, list(args), env={**self.env, **(env or {})})


@pytest.fixture
def run(project: Path) -> Cli:
    """Invoke the CLI in the project folder, with the example's secret in the environment."""
    return Cli({"TWILIO_AUTH_TOKEN": SECRET, "NO_COLOR": "1"})
