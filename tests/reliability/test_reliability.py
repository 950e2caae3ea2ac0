"""Apply survives the real world: kills, faults, rate limits, concurrent runs, bad state
files and failed creates. Sandbox over a real socket, `provisioner` as real processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability import agent_scenarios, scenarios
from tests.reliability.harness import Sandbox


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox()
    yield box
    box.close()


def check(fig: scenarios.Figures) -> None:
    assert fig.ok, f"{fig.name}: {fig.figures}\n{fig.detail}"


@pytest.mark.parametrize("parallelism", [1, 10])
def test_kill_at_every_request_boundary(sandbox: Sandbox, tmp_path: Path, parallelism: int) -> None:
    fig = scenarios.kill_matrix(sandbox, tmp_path, boundaries=14, parallelism=parallelism)
    check(fig)
    assert fig.figures["killed mid-run"] >= 20


# Seeds under which the run meets every kind of fault, ambiguous creates included.
@pytest.mark.parametrize("seed", scenarios.FAULT_SEEDS)
def test_converges_under_faults(sandbox: Sandbox, tmp_path: Path, seed: int) -> None:
    fig = scenarios.faulty_apply(sandbox, tmp_path, seed)
    check(fig)
    assert fig.figures["429s"] > 0 and fig.figures["5xx"] > 0
    # A create performed and then answered 502 or dropped: without it the run would
    # not prove that no duplicate comes of one.
    assert fig.figures["ambiguous POSTs"] > 0


def test_rate_limit_causes_no_failure(sandbox: Sandbox, tmp_path: Path) -> None:
    check(scenarios.rate_limited_apply(sandbox, tmp_path, rps=5))


@pytest.mark.parametrize("lock_timeout", [0, 120])
def test_concurrent_applies_never_interleave(
    sandbox: Sandbox, tmp_path: Path, lock_timeout: float
) -> None:
    check(scenarios.concurrent_applies(sandbox, tmp_path, lock_timeout))


def test_bad_state_files_are_refused(sandbox: Sandbox, tmp_path: Path) -> None:
    check(scenarios.corrupt_state(sandbox, tmp_path))


def test_failed_create_skips_dependents_and_rerun_finishes(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    check(scenarios.partial_failure(sandbox, tmp_path))


def test_ctrl_c_finishes_in_flight_work_and_rerun_completes(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    check(scenarios.interrupted_apply(sandbox, tmp_path))


def test_ctrl_c_while_rate_limited_sends_nothing_more(sandbox: Sandbox, tmp_path: Path) -> None:
    fig = scenarios.interrupted_rate_limited_apply(sandbox, tmp_path)
    check(fig)
    assert fig.figures["not started"] > 0


def test_dead_lock_taken_over_and_foreign_lock_force_unlocked(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    check(scenarios.dead_lock_taken_over(sandbox, tmp_path))


def test_kill_while_buying_never_buys_twice(sandbox: Sandbox, tmp_path: Path) -> None:
    fig = scenarios.purchase_kill_matrix(sandbox, tmp_path)
    check(fig)
    # The assistant's create and the number's import, each before and after the server.
    assert fig.figures["killed mid-run"] >= 4


def test_voice_agent_survives_a_kill_at_every_request_boundary(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Tools, a squad, a lookup and a handoff cycle; at parallelism 1 every boundary is a
    different point of the run, the one between a handoff tool's create and its deferred
    update included (18 requests: access check, lookup, 14 creates, 2 updates)."""
    fig = agent_scenarios.agent_kill_matrix(sandbox, tmp_path, boundaries=18)
    check(fig)
    assert fig.figures["killed mid-run"] >= 30


def test_voice_agent_converges_under_faults(sandbox: Sandbox, tmp_path: Path) -> None:
    fig = agent_scenarios.agent_faulty_apply(sandbox, tmp_path, seed=scenarios.FAULT_SEEDS[0])
    check(fig)


def test_kill_between_journal_append_and_fold(sandbox: Sandbox, tmp_path: Path) -> None:
    fig = scenarios.journal_kill(sandbox, tmp_path)
    check(fig)
    assert fig.figures["killed with unfolded records"] == 6
    assert fig.figures["torn tails noted"] == 2
    assert fig.figures["corrupt journals refused"] == 2
