"""Run the reliability matrix against the sandbox over a real socket and print the figures.

    python scripts/reliability_matrix.py            # full matrix
    python scripts/reliability_matrix.py --quick    # fewer seeds (CI)

Exit 1 if any scenario fails. The scenarios themselves live in tests/reliability/.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.reliability import agent_scenarios, scenarios  # noqa: E402
from tests.reliability.harness import Sandbox  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer seeds and boundaries")
    ap.add_argument("--boundaries", type=int, default=0, help="kill points (default 14, quick 12)")
    args = ap.parse_args()
    boundaries = args.boundaries or (12 if args.quick else 14)
    seeds = scenarios.FAULT_SEEDS[:2] if args.quick else (*scenarios.FAULT_SEEDS, 1, 2, 4)
    base = Path(tempfile.mkdtemp(prefix="reliability-"))
    sandbox = Sandbox()
    results: list[scenarios.Figures] = []
    start = time.monotonic()
    try:
        for par in (1, 10):
            results.append(scenarios.kill_matrix(sandbox, base, boundaries, parallelism=par))
        for seed in seeds:
            for par in (1, 10):
                results.append(scenarios.faulty_apply(sandbox, base, seed, parallelism=par))
        results.append(scenarios.rate_limited_apply(sandbox, base, rps=5))
        for timeout in (0, 120):
            results.append(scenarios.concurrent_applies(sandbox, base, timeout))
        results.append(scenarios.corrupt_state(sandbox, base))
        results.append(scenarios.partial_failure(sandbox, base))
        results.append(scenarios.interrupted_apply(sandbox, base))
        results.append(scenarios.interrupted_rate_limited_apply(sandbox, base))
        results.append(scenarios.dead_lock_taken_over(sandbox, base))
        results.append(scenarios.purchase_kill_matrix(sandbox, base))
        results.append(scenarios.journal_kill(sandbox, base))
        for par in (1, 10):
            results.append(agent_scenarios.agent_kill_matrix(sandbox, base, 18, parallelism=par))
            for seed in seeds:
                results.append(agent_scenarios.agent_faulty_apply(sandbox, base, seed, par))
    finally:
        sandbox.close()
    width = max(len(r.name) for r in results)
    print(f"\nreliability matrix ({time.monotonic() - start:.0f} s, sandbox over 127.0.0.1)")
    for r in results:
        figures = ", ".join(f"{k}: {v}" for k, v in r.figures.items())
        print(f"  {'PASS' if r.ok else 'FAIL'}  {r.name:<{width}}  {figures}")
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(f"\n--- {r.name}\n{r.detail}")
    passed = len(results) - len(failed)
    print(f"\n{passed} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
