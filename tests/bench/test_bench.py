"""bench/bench.py: its manifests, bounds and verdicts (no timing is asserted here)."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from provisioner.validation import validate

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("provisioner_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


bench = _load()


@pytest.mark.parametrize("n", [1, 10, 37, 100])
def test_generated_manifests_are_valid_and_exactly_n(tmp_path: Path, n: int) -> None:
    manifest = bench.generate_manifest(n)
    assert manifest.size == n
    path = tmp_path / "m.yaml"
    path.write_text(manifest.text, encoding="utf-8")
    validated, diags = validate(path, {})
    assert validated is not None, diags
    assert len(validated.resolved.resources) == n
    kinds = {r.kind.name for r in validated.resolved.resources.values()}
    assert kinds == {k for k, c in manifest.counts.items() if c}


def test_mixed_proportions_and_depth() -> None:
    manifest = bench.generate_manifest(1000)
    assert manifest.counts == {
        "assistant": 400,
        "phoneNumber": 300,
        "structuredOutput": 100,
        "insight": 150,
        "board": 50,
    }
    assert manifest.depth == 2
    assert manifest.list_pages() == 1
    assert manifest.list_calls() == 5


def test_assistants_only(tmp_path: Path) -> None:
    manifest = bench.generate_manifest(100, assistants_only=True)
    assert manifest.counts["assistant"] == 100 and manifest.size == 100
    assert manifest.depth == 1
    path = tmp_path / "a.yaml"
    path.write_text(manifest.text, encoding="utf-8")
    assert validate(path, {})[0] is not None


def test_bounds() -> None:
    cfg = bench.Config(latency=0.05, parallelism=10, startup=0.1)
    m = bench.generate_manifest(300)
    # Creates: 30 waves of 10 at 50 ms, or (300 - 20) / 20 s under a limit of 20.
    assert bench.bound_for("create", m, None, cfg) == pytest.approx(1.5 + 0.1)
    assert bench.bound_for("limited", m, 20.0, cfg) == pytest.approx(14.0 + 0.1)
    # No-change runs: one page per kind, all kinds at once.
    assert bench.bound_for("plan0", m, None, cfg) == pytest.approx(0.05 + 0.1)


def test_failed_changes_are_read_from_the_summary() -> None:
    assert bench.failed_changes("Apply complete: 10 done, 2 failed, 3 skipped.") == 5
    assert bench.failed_changes("No changes.") == 0


def test_limited_and_sizes_parsing() -> None:
    assert bench.parse_limited("300@20") == (300, 20.0)
    assert bench.parse_limited("none") is None
    assert bench.parse_sizes("10, 100,1000") == [10, 100, 1000]
    with pytest.raises(argparse.ArgumentTypeError):
        bench.parse_limited("300")
    with pytest.raises(argparse.ArgumentTypeError):
        bench.parse_sizes("ten")


def _row(label: str, step: str, wall: float, **kw: object) -> object:
    return bench.Row(label, step, 0, wall, **kw)


def test_verdicts_pass_and_fail() -> None:
    rows = [
        _row("--help", "--help", 0.05),
        _row("validate", "validate", 0.4),  # too slow
        _row("100 mixed", "plan0", 0.5, requests=5, bound=0.15),
        _row("100 mixed", "apply0", 0.6, requests=5, writes=1, bound=0.15),  # a write
        _row("100 asst", "asst", 2.0, requests=100, writes=100),
        _row("300@20rps", "limited", 15.1, requests=310, writes=310, r429=10, created=300),
    ]
    verdicts = {
        v.target.split(":")[0].split(" <=")[0]: v
        for v in bench.judge(rows, latency=0.05, startup=0.05, assistants=100, limited=(300, 20.0))
    }
    assert verdicts["--help"].passed is True
    assert verdicts["validate examples/full.yaml"].passed is False
    assert verdicts["create 100 assistants"].passed is True
    assert verdicts["plan of 100 unchanged"].passed is True
    assert verdicts["no-change runs send no write"].passed is False
    assert verdicts["no-change runs send no write"].timing is False
    assert verdicts["plan of 1000 unchanged"].passed is None  # not run
    limited = [
        v
        for v in bench.judge(rows, latency=0.05, startup=0.05, assistants=100, limited=(300, 20.0))
        if "at 20 req/s" in v.target
    ]
    # 300 accepted in 15.05 s against a bucket of 20 + 20/s: 300 / 321 = 93% < 95%.
    assert limited[0].passed is False
    assert "93%" in limited[0].measured


def test_verdicts_against_bounds() -> None:
    rows = [
        _row("100 mixed", "create", 0.9, bound=0.63),  # 1.43 x
        _row("1000 mixed", "create", 8.0, bound=5.13),  # 1.56 x
        _row("1000 mixed", "plan0", 0.55, bound=0.18),  # <= 1.5 x 0.18 + 0.3 = 0.57
        _row("1000 mixed", "apply0", 0.6, bound=0.18),
        _row("5000 mixed", "create", 40.0, bound=25.1, peak_mb=260.0),
    ]
    verdicts = {
        v.target.split(" <=")[0].split(":")[0] + (":mem" if "memory" in v.target else ""): v
        for v in bench.judge(rows, latency=0.05, startup=0.13, assistants=0, limited=None)
    }
    assert verdicts["create 100 mixed"].passed is True
    assert verdicts["create 1000 mixed"].passed is False
    assert "1.56 x" in verdicts["create 1000 mixed"].measured
    assert verdicts["plan of 1000 unchanged"].passed is True
    assert verdicts["apply of 1000 unchanged"].passed is False
    assert verdicts["create 5000 mixed"].passed is True  # 1.59 x <= 2 x
    assert verdicts["create 5000 mixed:mem"].passed is False


def test_bound_counts_the_clients_ceiling() -> None:
    m = bench.generate_manifest(1000)
    fast = bench.Config(latency=0.05, parallelism=10, startup=0.1, max_rps=1000.0)
    # 100 waves of 50 ms, more than 1000 requests at 1000/s.
    assert bench.bound_for("create", m, None, fast) == pytest.approx(5.0 + 0.1)
    # At the default ceiling of 100 requests/s: 10 s.
    assert bench.bound_for("default", m, None, fast) == pytest.approx(10.0 + 0.1)
