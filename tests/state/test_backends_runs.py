"""Team state under real concurrency: `provisioner` processes as separate machines (their own
working folders) applying one manifest to one S3 or PostgreSQL state, against the sandbox
served over HTTP; killed (SIGKILL) or paused (SIGSTOP) while they hold the lock."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.reliability.harness import Sandbox, census, env_for, workdir
from tests.state.conftest import MotoServer, PgServer

EXPECTED = 14  # resources in examples/full.yaml
LOCK_EXPIRY = 2


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox()
    try:
        yield box
    finally:
        box.close()


class Team:
    """Machines sharing one remote state: each `machine()` is its own working folder."""

    def __init__(
        self,
        tmp: Path,
        sandbox: Sandbox,
        block: str,
        env: dict[str, str],
        read_state: Callable[[], dict[str, Any]],
    ) -> None:
        self.tmp, self.sandbox, self.block, self.env = tmp, sandbox, block, env
        self.read_state = read_state
        self.count = 0

    def machine(self) -> Path:
        self.count += 1
        folder = workdir(self.tmp / f"machine-{self.count}")
        manifest = folder / "examples" / "full.yaml"
        manifest.write_text(manifest.read_text() + "\n" + self.block + "\n")
        return folder

    def start(self, folder: Path, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "provisioner", *args],
            cwd=folder,
            env={**env_for(self.sandbox), **self.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def run(self, folder: Path, *args: str) -> tuple[int, str]:
        proc = self.start(folder, *args)
        out, _ = proc.communicate(timeout=300)
        return proc.returncode, out

    def apply(self, folder: Path, *extra: str) -> subprocess.Popen[str]:
        return self.start(folder, "apply", "examples/full.yaml", "--auto-approve", *extra)

    def check(self) -> dict[str, Any]:
        """No duplicate, no lost ID, no orphan: and the state as stored."""
        state = self.read_state()
        snapshot = self.tmp / "census.json"
        snapshot.write_text(json.dumps(state))
        self.sandbox.settle()
        result = census(self.sandbox, snapshot, EXPECTED)
        assert result.ok, result
        return state


@pytest.fixture
def s3_team(tmp_path: Path, sandbox: Sandbox, moto_server: MotoServer) -> Team:
    bucket = moto_server.new_bucket()
    client: Any = moto_server.client()
    block = (
        f"state: {{backend: s3, bucket: {bucket}, key: team/full.json, "
        f"endpoint: '{moto_server.endpoint}', lockExpiry: {LOCK_EXPIRY}}}"
    )

    def read() -> dict[str, Any]:
        raw = client.get_object(Bucket=bucket, Key="team/full.json")["Body"].read()
        return dict(json.loads(raw))

    return Team(tmp_path, sandbox, block, moto_server.env(), read)


@pytest.fixture
def pg_team(tmp_path: Path, sandbox: Sandbox, pg_server: PgServer) -> Team:
    url = pg_server.new_database()
    block = "state: {backend: postgres, url: '${env:PROVISIONER_PG_URL}', schema: team}"

    def read() -> dict[str, Any]:
        with psycopg.connect(url) as conn:
            row = conn.execute(
                "SELECT data FROM team.states WHERE key = 'examples/full'"
            ).fetchone()
        assert row is not None
        return dict(json.loads(row[0]))

    return Team(tmp_path, sandbox, block, {"PROVISIONER_PG_URL": url}, read)


def _wait_for_line(proc: subprocess.Popen[str], text: str) -> list[str]:
    """Read `proc`'s output until a line holds `text`; returns the lines read."""
    assert proc.stdout is not None
    lines: list[str] = []
    for line in proc.stdout:
        lines.append(line)
        if text in line:
            return lines
    raise AssertionError("".join(lines))


def _wait_held(sandbox: Sandbox, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while int(sandbox.stats().get("held", 0)) == 0:
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline
        time.sleep(0.01)


@pytest.mark.parametrize("backend", ["s3", "postgres"])
def test_two_machines_at_once_one_is_refused_with_the_holder_then_no_duplicate(
    backend: str, request: pytest.FixtureRequest
) -> None:
    team: Team = request.getfixturevalue(f"{'s3' if backend == 's3' else 'pg'}_team")
    one, two, three = team.machine(), team.machine(), team.machine()
    team.sandbox.hold(3)  # the first run stops mid-apply, holding the lock
    first = team.apply(one)
    _wait_held(team.sandbox, first)
    # Both at once (the held request times out after 10 s): one waits, one is refused.
    second = team.apply(two, "--lock-timeout", "120")
    refused = team.apply(three)
    out, _ = refused.communicate(timeout=60)
    assert refused.returncode == 1 and "is locked by" in out, out
    assert "provisioner apply examples/full.yaml" in out
    waited = _wait_for_line(second, "Waiting for the state lock held by")
    team.sandbox.release()
    out_first, _ = first.communicate(timeout=300)
    out_second, _ = second.communicate(timeout=300)
    assert first.returncode == 0, out_first
    assert second.returncode == 0, out_second
    assert "apply examples/full.yaml" in waited[-1] and "No changes" in out_second
    state = team.check()
    assert state["serial"] >= EXPECTED


@pytest.mark.parametrize("backend", ["s3", "postgres"])
def test_a_run_killed_holding_the_lock_loses_nothing(
    backend: str, request: pytest.FixtureRequest
) -> None:
    team: Team = request.getfixturevalue(f"{'s3' if backend == 's3' else 'pg'}_team")
    one, two = team.machine(), team.machine()
    team.sandbox.hold(10, "after")  # a create: the server made it; the client never hears back
    first = team.apply(one)
    _wait_held(team.sandbox, first)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    team.sandbox.release()
    team.sandbox.settle()
    serial = team.read_state()["serial"]
    if backend == "postgres":
        # The server dropped the killed session's lock: the next run gets in at once.
        code, out = team.run(two, "apply", "examples/full.yaml", "--auto-approve")
    else:
        # Its S3 lock stays until it expires; then it is taken over, naming the old holder.
        code, out = team.run(two, "apply", "examples/full.yaml", "--auto-approve")
        assert code == 1 and "is locked by" in out
        code, out = team.run(
            two, "apply", "examples/full.yaml", "--auto-approve", "--lock-timeout", "30"
        )
        assert "took over the state lock" in out
    assert code == 0, out
    state = team.check()
    assert state["serial"] > serial


def test_s3_a_paused_holder_resumed_after_a_takeover_writes_nothing_more(
    s3_team: Team,
) -> None:
    team = s3_team
    one, two = team.machine(), team.machine()
    # Slow enough that the first run spends its time between requests, holding the lock.
    first = team.apply(one, "--parallelism", "1", "--max-rps", "1")
    deadline = time.monotonic() + 60
    while True:
        try:
            if len(team.read_state()["resources"]) >= 2:
                break
        except Exception:  # noqa: BLE001 - not written yet
            pass
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    first.send_signal(signal.SIGSTOP)
    try:
        code, out = team.run(
            two, "apply", "examples/full.yaml", "--auto-approve", "--lock-timeout", "30"
        )
        assert code == 0, out
        assert "took over the state lock" in out
        team.sandbox.settle()
        requests = team.sandbox.stats()["requests"]
        stored = team.read_state()
    finally:
        first.send_signal(signal.SIGCONT)
    out_first, _ = first.communicate(timeout=60)
    assert first.returncode == 1, out_first
    assert "lost the state lock" in out_first
    team.sandbox.settle()
    # Nothing more from the first run: no request to Vapi, no state write.
    assert team.sandbox.stats()["requests"] == requests
    assert team.read_state() == stored
    team.check()
