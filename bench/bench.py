"""Benchmark: plan and apply of generated manifests against the sandbox served over HTTP.

For each size N it generates a manifest (assistants, phone numbers and analytics in realistic
proportions), starts `provisioner sandbox serve` with the given latency and rate limit, and
times, each in a fresh `provisioner` process:

  create   apply of N new resources
  plan0    plan with nothing changed
  apply0   apply with nothing changed (must send no write)

It prints one table: wall time, requests sent, writes, 429s seen, peak memory of the
provisioner process, and the ratio of the wall time to its lower bound
max(requests / rate limit, graph depth x latency) + start-up.

    python bench/bench.py --sizes 10,100,1000 --latency-ms 50 --rps 20
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def generate_manifest(n: int) -> tuple[str, int]:
    """A manifest of about `n` resources and its dependency depth.

    Proportions: 40% assistants, 30% phone numbers (BYO SIP trunk numbers, which need no
    free-number quota), 10% structured outputs, 15% insights, 5% boards.
    """
    n_asst = max(1, n * 40 // 100)
    n_phone = n * 30 // 100
    n_so = n * 10 // 100
    n_board = max(0, n * 5 // 100)
    n_ins = n - n_asst - n_phone - n_so - n_board
    lines = ["version: 1", "assistants:"]
    for i in range(n_asst):
        lines += [
            f"  a{i}:",
            f"    name: Assistant {i}",
            f"    firstMessage: Hello from assistant {i}.",
            "    model: {provider: openai, model: gpt-4o, messages: "
            f"[{{role: system, content: 'You are assistant {i}.'}}]}}",
            "    voice: {provider: 11labs, voiceId: burt}",
        ]
    if n_phone:
        lines.append("phoneNumbers:")
    for i in range(n_phone):
        lines += [
            f"  p{i}:",
            "    provider: byo-phone-number",
            f"    name: Line {i}",
            f"    number: '+1415555{i:04d}'",
            "    credentialId: 3c4d5e6f-7a8b-4c9d-8e1f-2a3b4c5d6e7f",
            f"    assistantId: ${{assistant.a{i % n_asst}.id}}",
        ]
    lines.append("analytics:")
    if n_so:
        lines.append("  structuredOutputs:")
    for i in range(n_so):
        lines += [
            f"    so{i}:",
            f"      name: Output {i}",
            "      schema: {type: string}",
            f"      assistantIds: ['${{assistant.a{i % n_asst}.id}}']",
        ]
    if n_ins:
        lines.append("  insights:")
    for i in range(n_ins):
        lines += [
            f"    i{i}:",
            "      type: line",
            f"      name: Insight {i}",
            "      queries: [{type: vapiql-json, table: call, column: id, operation: count}]",
            "      timeRange: {start: '-7d', end: now, step: day}",
        ]
    if n_board:
        lines.append("  boards:")
    for i in range(n_board):
        lines += [
            f"    b{i}:",
            f"      name: Board {i}",
            "      layout: {columns: 6}",
            "      items:",
            f"        - {{type: insight, insightId: '${{insight.i{i % max(1, n_ins)}.id}}', "
            "position: {x: 0, y: 0}, size: {width: 6, height: 2}}",
        ]
    depth = 3 if n_board and n_ins else 2
    return "\n".join(lines) + "\n", depth


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Sandbox:
    def __init__(self, latency_ms: int, rps: float | None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        faults = f"latency_ms={latency_ms}"
        if rps:
            faults += f",rps={rps}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "provisioner",
                "sandbox",
                "serve",
                "--port",
                str(self.port),
                "--faults",
                faults,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                self.admin("GET", "/__emulator/stats")
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sandbox did not start")

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
        return json.loads(raw) if raw else None

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@dataclass
class Row:
    n: int
    step: str
    wall: float
    requests: int
    writes: int
    r429: int
    peak_mb: float
    bound: float
    ok: bool


def run_step(
    sandbox: Sandbox, workdir: Path, args: list[str]
) -> tuple[float, dict[str, Any], float, bool]:
    before = sandbox.admin("GET", "/__emulator/stats")
    env = {**os.environ, "VAPI_BASE_URL": sandbox.url, "VAPI_TOKEN": "bench", "NO_COLOR": "1"}
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "provisioner", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.monotonic() - start
    after = sandbox.admin("GET", "/__emulator/stats")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    ok = proc.returncode in (0, 2)
    if not ok:
        sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-2000:])
    return wall, diff_stats(before, after), peak, ok


def diff_stats(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    def method(stats: dict[str, Any], m: str) -> int:
        return int(stats.get("by_method", {}).get(m, 0))

    def status(stats: dict[str, Any], s: str) -> int:
        return int(stats.get("by_status", {}).get(s, 0))

    writes = sum(method(after, m) - method(before, m) for m in ("POST", "PATCH", "DELETE"))
    return {
        "requests": int(after.get("requests", 0)) - int(before.get("requests", 0)),
        "writes": writes,
        "429": status(after, "429") - status(before, "429"),
    }


def startup_seconds() -> float:
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "provisioner", "--help"], capture_output=True, check=True)
    return time.monotonic() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="10,100,1000")
    ap.add_argument("--latency-ms", type=int, default=50)
    ap.add_argument("--rps", type=float, default=0, help="sandbox rate limit (0 = none)")
    ap.add_argument("--parallelism", type=int, default=10)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    startup = startup_seconds()
    rows: list[Row] = []
    latency = args.latency_ms / 1000
    for n in sizes:
        sandbox = Sandbox(args.latency_ms, args.rps or None)
        workdir = Path(tempfile.mkdtemp(prefix=f"bench{n}-"))
        try:
            text, depth = generate_manifest(n)
            (workdir / "m.yaml").write_text(text)
            common = ["--parallelism", str(args.parallelism)]
            for step, cli in (
                ("create", ["apply", "m.yaml", "--auto-approve", *common]),
                (
                    "plan0",
                    [
                        "plan",
                        "m.yaml",
                        "--detailed-exitcode",
                        "--parallelism",
                        str(args.parallelism),
                    ],
                ),
                ("apply0", ["apply", "m.yaml", "--auto-approve", *common]),
            ):
                wall, stats, peak, ok = run_step(sandbox, workdir, cli)
                rate_bound = stats["requests"] / args.rps if args.rps else 0.0
                waves = depth if step == "create" else 1
                par_bound = (stats["requests"] / args.parallelism) * latency
                bound = max(rate_bound, waves * latency, par_bound) + startup
                rows.append(
                    Row(
                        n,
                        step,
                        wall,
                        stats["requests"],
                        stats["writes"],
                        stats["429"],
                        peak,
                        bound,
                        ok,
                    )
                )
        finally:
            sandbox.close()
            shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"\nsandbox latency {args.latency_ms} ms, rate limit "
        f"{args.rps or 'none'} req/s, parallelism {args.parallelism}, start-up {startup:.2f} s, "
        f"{os.cpu_count()} CPUs"
    )
    header = (
        f"{'N':>5} {'step':<7} {'wall s':>7} {'reqs':>6} {'writes':>6} {'429s':>5} "
        f"{'peak MB':>8} {'bound s':>8} {'ratio':>6}  ok"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.n:>5} {r.step:<7} {r.wall:>7.2f} {r.requests:>6} {r.writes:>6} {r.r429:>5} "
            f"{r.peak_mb:>8.1f} {r.bound:>8.2f} {r.wall / r.bound:>6.2f}  {'yes' if r.ok else 'NO'}"
        )
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
