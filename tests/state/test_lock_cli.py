"""The state lock as the CLI shows it: waiting is announced, force-unlock leaves a live
holder on this host alone (unless --force) and clears an unreadable lock file."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioner.state.lock import LockInfo
from tests.conftest import Cli

MANIFEST = "examples/small.yaml"
LOCK = Path("state/.sandbox/examples/small.json.lock")


@pytest.fixture
def live_pid() -> Iterator[int]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def plant(project: Path, pid: int) -> LockInfo:
    holder = LockInfo(
        **{
            **LockInfo.create("provisioner apply examples/small.yaml", "apply").to_dict(),
            "who": "alice@" + socket.gethostname(),
            "pid": pid,
            "created": "2026-11-25T10:00:00Z",
        }
    )
    (project / LOCK).parent.mkdir(parents=True, exist_ok=True)
    (project / LOCK).write_text(json.dumps(holder.to_dict()))
    return holder


def test_waiting_for_the_lock_is_said_once(run: Cli, project: Path, live_pid: int) -> None:
    holder = plant(project, live_pid)
    result = run("apply", MANIFEST, "--sandbox", "--auto-approve", "--lock-timeout", "0.6")
    assert result.exit_code == 1
    wait_line = f"Waiting for the state lock held by {holder.describe()} (up to 0.6 s)..."
    assert result.stderr.count(wait_line) == 1
    assert "is locked by alice@" in result.stderr and "(waited 0.6s)" in result.stderr
    # Without a timeout it fails at once, with nothing to announce.
    at_once = run("apply", MANIFEST, "--sandbox", "--auto-approve")
    assert at_once.exit_code == 1 and "Waiting for" not in at_once.stderr


def test_force_unlock_refuses_a_live_holder_here_unless_forced(
    run: Cli, project: Path, live_pid: int
) -> None:
    holder = plant(project, live_pid)
    refused = run("force-unlock", MANIFEST, holder.id, "--sandbox")
    assert refused.exit_code == 1
    assert f"(pid {live_pid})" in refused.stderr and "still running on this host" in refused.stderr
    assert "add --force" in refused.stderr and "Traceback" not in refused.output
    assert (project / LOCK).exists()

    forced = run("force-unlock", MANIFEST, holder.id, "--sandbox", "--force")
    assert forced.exit_code == 0, forced.output
    assert f"Lock {holder.id} removed" in forced.stdout
    assert not (project / LOCK).exists()


def test_force_unlock_clears_an_unreadable_lock_file(run: Cli, project: Path) -> None:
    # A run killed between creating the lock file and writing it leaves it empty.
    (project / LOCK).parent.mkdir(parents=True)
    (project / LOCK).write_text("")
    blocked = run("apply", MANIFEST, "--sandbox", "--auto-approve")
    assert blocked.exit_code == 1 and "force-unlock" in blocked.stderr

    cleared = run("force-unlock", MANIFEST, "any-id", "--sandbox")
    assert cleared.exit_code == 0, cleared.output
    assert "is empty (a run was probably killed while taking the lock): removed it." in (
        cleared.stdout
    )
    assert not (project / LOCK).exists()
    assert run("apply", MANIFEST, "--sandbox", "--auto-approve").exit_code == 0
