"""The installed package is self-contained: `pip install .` into a fresh virtualenv, from a
copy of the repository with no `../shared` beside it, then the README's quick start from an
unrelated directory (the sandbox validates requests against the vendored spec)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Top-level entries a clean clone does not have (or that hold local runs).
SKIP_TOP = {".venv", ".git", "state", "build", "dist", ".pytest_cache", ".mypy_cache"}


def _copy_repo(dest: Path) -> None:
    def ignore(directory: str, names: list[str]) -> set[str]:
        top = Path(directory) == REPO
        return {
            n
            for n in names
            if (top and n in SKIP_TOP)
            or n in ("__pycache__", "node_modules")  # node_modules: tests/mermaid's npm ci
            or n.endswith(".egg-info")
        }

    shutil.copytree(REPO, dest, ignore=ignore)


def test_installed_package_runs_the_quick_start_anywhere(tmp_path: Path) -> None:
    src = tmp_path / "checkout" / "provisioner"  # no ../shared next to it
    _copy_repo(src)
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    bindir = env_dir / ("Scripts" if sys.platform == "win32" else "bin")
    python = bindir / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(src)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]

    work = tmp_path / "elsewhere"
    shutil.copytree(REPO / "examples", work / "examples")
    env = {
        "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(tmp_path),
        "TWILIO_AUTH_TOKEN": "sandbox-token",
        "NO_COLOR": "1",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(bindir / "provisioner"), *args],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    validated = run("validate", "examples/full.yaml")
    assert validated.returncode == 0, validated.stderr
    planned = run("plan", "examples/full.yaml", "--sandbox")
    assert planned.returncode == 0, planned.stderr
    assert "Plan: 14 to create" in planned.stdout
    applied = run("apply", "examples/full.yaml", "--sandbox", "--auto-approve")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "Apply complete: 14 done, 0 failed, 0 skipped." in applied.stdout
    again = run("plan", "examples/full.yaml", "--sandbox", "--detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr
    # `python -m provisioner` is the same program.
    module = subprocess.run(
        [str(python), "-m", "provisioner", "--version"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert module.returncode == 0 and module.stdout.strip()
