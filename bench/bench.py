"""Benchmark: plan and apply of generated manifests against the sandbox served over HTTP.

Each run starts `provisioner sandbox serve` with the given latency (and rate limit), and
times every step in a fresh `provisioner` process, as a user would run it:

  create   apply of N new resources (assistants, phone numbers and analytics in realistic
           proportions: 40% assistants, 30% numbers, 10% structured outputs, 15% insights,
           5% boards; graph depth 3)
  plan0    plan with nothing changed (must find no change)
  apply0   apply with nothing changed (must send no write)
  asst     apply of A new assistants alone (--assistants, default 100)
  limited  apply of M new resources against a sandbox rate limit of R requests/s
           (--rate-limited M@R, default 300@20), then plan0 and apply0 of them
  default  apply of --default-ceiling N new resources at the client's default ceiling of
           100 requests/s (a policy against Vapi's undocumented limit, shown, not judged)
  validate `provisioner validate examples/full.yaml` (no network)
  help     `provisioner --help` (the start-up cost every step pays)

Every step but `default` runs with `--max-rps` (default 1000), so that latency, not the
client's ceiling, is the limit. It prints one table (wall time, time spent in the state
store, requests the sandbox received, writes among them, 429s it answered, peak memory of
the provisioner process, the lower bound of the wall time and the ratio of the two), then
one PASS/FAIL line per target of the performance issues.
Exit status 1 if any step failed (a non-zero exit, a change that failed, a write in a
no-change run, a plan that is not clean after apply); with --strict also if a timing
target was missed.

The lower bound of a step is max(requests it needs / rate limit, requests / the client's
ceiling, round trips it needs x latency) + start-up, where the requests are N for creates
and the list pages for a no-change run (less the one second's worth the sandbox's full
bucket lets through at once), the round trips are the graph depth for creates (or N /
parallelism waves when that is more) and the list pages of the largest kind for a
no-change run, and start-up is the `--help` time. The sustained rate of a rate-limited
run is what the sandbox accepted as a share of the most it would accept in that time
(start-up excluded).

    python bench/bench.py                                   # the full run (about 3 min)
    python bench/bench.py --sizes 10,100 --latency-ms 50 --default-ceiling 0   # CI
    python bench/bench.py --sizes 5000 --assistants 0 --rate-limited none      # on demand
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FULL_EXAMPLE = ROOT / "examples" / "full.yaml"
# The API's maximum list page (assistants and phone numbers; analytics pages alike).
LIST_PAGE = 1000
DEFAULT_PARALLELISM = 10

# The targets of the performance issues.
CREATE_ASSISTANTS_MAX_S = 3.0
NO_CHANGE_100_MAX_S = 1.0
CREATE_BOUND_FACTOR = 1.5  # create 100 and 1000 mixed
NO_CHANGE_1000_BOUND_FACTOR = 1.5  # plan and apply of 1000 unchanged...
NO_CHANGE_1000_SLACK_S = 0.3  # ...plus this
HUGE = 5000
HUGE_BOUND_FACTOR = 2.0
HUGE_PEAK_MB = 250.0
SUSTAINED_MIN_FRACTION = 0.95
VALIDATE_MAX_S = 0.3
HELP_MAX_S = 0.15
DEFAULT_MAX_RPS = 1000.0
DEFAULT_CLIENT_CEILING = 100.0  # the client's ceiling without --max-rps


# -- manifests -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Manifest:
    text: str
    counts: dict[str, int]  # resources per kind
    depth: int  # longest chain of references (1 = no references)

    @property
    def size(self) -> int:
        return sum(self.counts.values())

    def list_pages(self) -> int:
        """List calls a no-change refresh needs for the largest kind (its round trips)."""
        return max((math.ceil(c / LIST_PAGE) for c in self.counts.values() if c), default=0)

    def list_calls(self) -> int:
        """List calls a no-change refresh needs in all (one page per 1000 of each kind)."""
        return sum(math.ceil(c / LIST_PAGE) for c in self.counts.values() if c)


def generate_manifest(n: int, *, assistants_only: bool = False) -> Manifest:
    """A manifest of exactly `n` resources.

    Proportions: 40% assistants, 30% phone numbers (BYO SIP trunk numbers, which need no
    free-number quota), 10% structured outputs, 15% insights, 5% boards; or `n`
    assistants alone.
    """
    if n < 1:
        raise ValueError("a manifest needs at least one resource")
    if assistants_only:
        n_asst, n_phone, n_so, n_ins, n_board = n, 0, 0, 0, 0
    else:
        n_asst = max(1, n * 40 // 100)
        n_phone = n * 30 // 100
        n_so = n * 10 // 100
        n_board = n * 5 // 100
        n_ins = n - n_asst - n_phone - n_so - n_board
        if n_board and not n_ins:
            n_board, n_ins = 0, n_board
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
    if n_so or n_ins or n_board:
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
            f"        - {{type: insight, insightId: '${{insight.i{i % n_ins}.id}}', "
            "position: {x: 0, y: 0}, size: {width: 6, height: 2}}",
        ]
    counts = {
        "assistant": n_asst,
        "phoneNumber": n_phone,
        "structuredOutput": n_so,
        "insight": n_ins,
        "board": n_board,
    }
    # Numbers and structured outputs reference assistants; boards reference insights.
    depth = 2 if (n_phone or n_so or n_board) else 1
    return Manifest("\n".join(lines) + "\n", counts, depth)


# -- the sandbox and the processes -----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Sandbox:
    """`provisioner sandbox serve` in a child process, with a fault profile."""

    def __init__(self, latency_ms: int, rps: float | None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        faults = f"latency_ms={latency_ms}"
        if rps:
            faults += f",rps={rps:g}"
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
                self.stats()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        self.close()
        raise RuntimeError("the sandbox did not start")

    def stats(self) -> dict[str, Any]:
        req = urllib.request.Request(self.url + "/__emulator/stats")
        with urllib.request.urlopen(req, timeout=10) as r:
            data: dict[str, Any] = json.loads(r.read())
        return data

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class Run:
    """One `provisioner` process: its wall time, exit status, output and peak memory."""

    wall: float
    returncode: int
    stdout: str
    stderr: str
    peak_mb: float
    store_s: float = 0.0  # seconds in the state store (PROVISIONER_STATE_TIMINGS)


def run_provisioner(args: Sequence[str], cwd: Path, env: dict[str, str]) -> Run:
    """Run `python -m provisioner ARGS` and measure it (peak RSS from wait4, the state
    store's time from the file the process writes at exit)."""
    with (
        tempfile.TemporaryFile("w+") as out,
        tempfile.TemporaryFile("w+") as err,
        tempfile.TemporaryDirectory() as scratch,
    ):
        timings = Path(scratch) / "timings.json"
        start = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "provisioner", *args],
            cwd=cwd,
            env={**env, "PROVISIONER_STATE_TIMINGS": str(timings)},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        # ru_maxrss is in KiB on Linux, bytes on macOS.
        scale = 1024 * 1024 if sys.platform == "darwin" else 1024
        try:
            store_s = float(json.loads(timings.read_text())["seconds"])
        except (OSError, ValueError, KeyError):
            store_s = 0.0
        return Run(wall, proc.returncode, out.read(), err.read(), usage.ru_maxrss / scale, store_s)


def diff_stats(before: dict[str, Any], after: dict[str, Any]) -> tuple[int, int, int]:
    """(requests, writes, 429s) the sandbox saw between two stats snapshots."""

    def method(stats: dict[str, Any], m: str) -> int:
        return int(stats.get("by_method", {}).get(m, 0))

    def status(stats: dict[str, Any], s: str) -> int:
        return int(stats.get("by_status", {}).get(s, 0))

    writes = sum(method(after, m) - method(before, m) for m in ("POST", "PATCH", "DELETE"))
    requests = int(after.get("requests", 0)) - int(before.get("requests", 0))
    return requests, writes, status(after, "429") - status(before, "429")


_SUMMARY = re.compile(r"(\d+) done, (\d+) failed, (\d+) skipped")


def failed_changes(output: str) -> int:
    """Changes an apply reported as failed or skipped (0 when it had nothing to do)."""
    match = _SUMMARY.search(output)
    return int(match.group(2)) + int(match.group(3)) if match else 0


# -- measuring ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Row:
    label: str  # what was run, e.g. "1000 create"
    step: str
    n: int
    wall: float
    requests: int = 0
    writes: int = 0
    r429: int = 0
    peak_mb: float = 0.0
    bound: float = 0.0
    store_s: float = 0.0
    ok: bool = True
    problems: list[str] = field(default_factory=list)
    created: int = 0  # resources created (for the sustained rate)


@dataclass(frozen=True, slots=True)
class Config:
    latency: float  # seconds
    parallelism: int
    startup: float  # seconds: the `--help` time
    max_rps: float | None = None  # the client's ceiling (`--max-rps`); None: no term


def bound_for(step: str, manifest: Manifest, rps: float | None, cfg: Config) -> float:
    """The wall time no implementation could beat (see the module docstring)."""
    # The sandbox's bucket starts full: one second's worth of requests pass at once.
    ceiling = cfg.max_rps
    if step in ("create", "asst", "limited", "default"):
        if step == "default":
            ceiling = DEFAULT_CLIENT_CEILING
        waves = max(manifest.depth, math.ceil(manifest.size / cfg.parallelism))
        paced = max(0.0, manifest.size - rps) / rps if rps else 0.0
        capped = manifest.size / ceiling if ceiling else 0.0
        return max(paced, capped, waves * cfg.latency) + cfg.startup
    paced = max(0.0, manifest.list_calls() - rps) / rps if rps else 0.0
    capped = manifest.list_calls() / ceiling if ceiling else 0.0
    return max(paced, capped, manifest.list_pages() * cfg.latency) + cfg.startup


class Bench:
    def __init__(self, cfg: Config, latency_ms: int) -> None:
        self.cfg = cfg
        self.latency_ms = latency_ms
        self.rows: list[Row] = []

    def scenario(
        self,
        label: str,
        manifest: Manifest,
        steps: Sequence[str],
        *,
        rps: float | None = None,
    ) -> list[Row]:
        """Run `steps` (create/asst/limited, plan0, apply0) on one fresh sandbox."""
        rows: list[Row] = []
        workdir = Path(tempfile.mkdtemp(prefix="provisioner-bench-"))
        try:
            (workdir / "m.yaml").write_text(manifest.text, encoding="utf-8")
            with Sandbox(self.latency_ms, rps) as sandbox:
                env = {
                    **os.environ,
                    "VAPI_BASE_URL": sandbox.url,
                    "VAPI_TOKEN": "bench",
                    "NO_COLOR": "1",
                }
                par = ["--parallelism", str(self.cfg.parallelism)]
                for step in steps:
                    opts = par
                    # (a plan sends only its reads: it takes no --max-rps)
                    if step not in ("default", "plan0") and self.cfg.max_rps:
                        opts = [*par, "--max-rps", f"{self.cfg.max_rps:g}"]
                    if step == "plan0":
                        args = ["plan", "m.yaml", "--detailed-exitcode", *opts]
                    else:
                        args = ["apply", "m.yaml", "--auto-approve", *opts]
                    before = sandbox.stats()
                    run = run_provisioner(args, workdir, env)
                    requests, writes, r429 = diff_stats(before, sandbox.stats())
                    row = Row(
                        label,
                        step,
                        manifest.size,
                        run.wall,
                        requests,
                        writes,
                        r429,
                        run.peak_mb,
                        bound_for(step, manifest, rps, self.cfg),
                        run.store_s,
                    )
                    self._check(row, run, manifest)
                    rows.append(row)
                    print(_format_row(row), flush=True)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        self.rows.extend(rows)
        return rows

    @staticmethod
    def _check(row: Row, run: Run, manifest: Manifest) -> None:
        if row.step == "plan0":
            if run.returncode == 2:
                row.problems.append("the plan after apply is not clean")
            elif run.returncode != 0:
                row.problems.append(f"plan exited {run.returncode}")
        elif run.returncode != 0:
            row.problems.append(f"apply exited {run.returncode}")
        if row.step in ("plan0", "apply0") and row.writes:
            row.problems.append(f"{row.writes} writes in a run with nothing to change")
        failed = failed_changes(run.stdout)
        if failed:
            row.problems.append(f"{failed} changes failed or were skipped")
        if row.step in ("create", "asst", "limited", "default") and not row.problems:
            row.created = manifest.size
        if row.problems:
            row.ok = False
            tail = (run.stdout[-1500:] + run.stderr[-1500:]).strip()
            sys.stderr.write(f"{row.label}: {'; '.join(row.problems)}\n{tail}\n")

    def timed_command(self, label: str, args: Sequence[str], env: dict[str, str]) -> Row:
        """A command without network, best of three (start-up noise)."""
        runs = [run_provisioner(args, ROOT, env) for _ in range(3)]
        best = min(runs, key=lambda r: r.wall)
        row = Row(label, label, 0, best.wall, peak_mb=best.peak_mb)
        if any(r.returncode != 0 for r in runs):
            row.ok = False
            row.problems.append(f"exited {runs[0].returncode}")
            sys.stderr.write(f"{label}: {runs[0].stdout[-1000:]}{runs[0].stderr[-1000:]}\n")
        self.rows.append(row)
        return row


# -- targets -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    target: str
    measured: str
    passed: bool | None  # None: not measured in this run
    timing: bool = True  # a speed goal (enforced only with --strict)


def find(rows: Sequence[Row], label: str, step: str) -> Row | None:
    return next((r for r in rows if r.label == label and r.step == step), None)


def _against_bound(what: str, row: Row | None, factor: float, slack: float) -> Verdict:
    """`row`'s wall time <= factor x its bound (+ slack)."""
    plus = f" + {slack:g} s" if slack else ""
    if row is None:
        return Verdict(f"{what} <= {factor:g} x bound{plus}", "not run", None)
    limit = factor * row.bound + slack
    return Verdict(
        f"{what} <= {factor:g} x bound{plus} = {limit:.2f} s",
        f"{row.wall:.2f} s ({row.wall / row.bound:.2f} x)" if row.bound else f"{row.wall:.2f} s",
        row.ok and row.wall <= limit,
    )


def sustained_fraction(row: Row, rps: float, startup: float) -> float:
    """What the sandbox accepted, as a fraction of the most it would have accepted in the
    time the run took (start-up excluded): its bucket starts full, so that is one second's
    worth plus `rps` per second."""
    seconds = max(0.0, row.wall - startup)
    return (row.requests - row.r429) / (rps * (1.0 + seconds))


def judge(
    rows: Sequence[Row],
    *,
    latency: float,
    startup: float,
    assistants: int,
    limited: tuple[int, float] | None,
) -> list[Verdict]:
    out: list[Verdict] = []
    asst = find(rows, f"{assistants} asst", "asst")
    out.append(
        Verdict(
            f"create {assistants or 100} assistants <= {CREATE_ASSISTANTS_MAX_S:g} s",
            f"{asst.wall:.2f} s" if asst else "not run",
            (asst.ok and asst.wall <= CREATE_ASSISTANTS_MAX_S) if asst else None,
        )
    )
    for step in ("plan0", "apply0"):
        row = find(rows, "100 mixed", step)
        out.append(
            Verdict(
                f"{step[:-1]} of 100 unchanged <= {NO_CHANGE_100_MAX_S:g} s",
                f"{row.wall:.2f} s" if row else "not run",
                (row.ok and row.wall <= NO_CHANGE_100_MAX_S) if row else None,
            )
        )
    no_change = [r for r in rows if r.step in ("plan0", "apply0")]
    writes = sum(r.writes for r in no_change)
    out.append(
        Verdict(
            "no-change runs send no write",
            f"{writes} writes in {len(no_change)} runs" if no_change else "not run",
            writes == 0 if no_change else None,
            timing=False,
        )
    )
    for n in (100, 1000):
        row = find(rows, f"{n} mixed", "create")
        out.append(_against_bound(f"create {n} mixed", row, CREATE_BOUND_FACTOR, 0.0))
    for step in ("plan0", "apply0"):
        row = find(rows, "1000 mixed", step)
        out.append(
            _against_bound(
                f"{step[:-1]} of 1000 unchanged",
                row,
                NO_CHANGE_1000_BOUND_FACTOR,
                NO_CHANGE_1000_SLACK_S,
            )
        )
    huge = find(rows, f"{HUGE} mixed", "create")
    out.append(_against_bound(f"create {HUGE} mixed", huge, HUGE_BOUND_FACTOR, 0.0))
    out.append(
        Verdict(
            f"create {HUGE} mixed: peak memory <= {HUGE_PEAK_MB:g} MB",
            f"{huge.peak_mb:.0f} MB" if huge else "not run (on demand: --sizes 5000)",
            (huge.ok and huge.peak_mb <= HUGE_PEAK_MB) if huge else None,
        )
    )
    if limited is not None:
        n, rps = limited
        row = find(rows, f"{n}@{rps:g}rps", "limited")
        if row is not None:
            share = sustained_fraction(row, rps, startup)
            out.append(
                Verdict(
                    f"{n} creates at {rps:g} req/s: >= {SUSTAINED_MIN_FRACTION:.0%} of the limit",
                    f"{share:.0%} sustained, {row.r429} 429s",
                    row.ok and share >= SUSTAINED_MIN_FRACTION,
                )
            )
            out.append(
                Verdict(
                    f"{n} creates at {rps:g} req/s: 0 failed changes",
                    "; ".join(row.problems) or f"{row.created} created, 0 failed",
                    row.ok,
                    timing=False,
                )
            )
    else:
        out.append(
            Verdict(
                f"creates under a rate limit: >= {SUSTAINED_MIN_FRACTION:.0%} of the limit",
                "not run",
                None,
            )
        )
    failed = [r for r in rows if not r.ok]
    out.append(
        Verdict(
            "every step succeeded",
            ", ".join(f"{r.label} {r.step}" for r in failed) or f"{len(rows)} steps",
            not failed,
            timing=False,
        )
    )
    val = find(rows, "validate", "validate")
    out.append(
        Verdict(
            f"validate examples/full.yaml <= {VALIDATE_MAX_S:g} s",
            f"{val.wall:.2f} s" if val else "not run",
            (val.ok and val.wall <= VALIDATE_MAX_S) if val else None,
        )
    )
    hlp = find(rows, "--help", "--help")
    out.append(
        Verdict(
            f"--help <= {HELP_MAX_S:g} s",
            f"{hlp.wall:.2f} s" if hlp else "not run",
            (hlp.ok and hlp.wall <= HELP_MAX_S) if hlp else None,
        )
    )
    return out


# -- output ------------------------------------------------------------------------------------

_HEADER = (
    f"{'run':<14} {'step':<8} {'wall s':>7} {'state s':>7} {'reqs':>6} {'writes':>6} "
    f"{'429s':>5} {'peak MB':>8} {'bound s':>8} {'ratio':>6}  ok"
)


def _format_row(r: Row) -> str:
    if r.step in ("validate", "--help"):
        return (
            f"{r.label:<14} {'':<8} {r.wall:>7.2f} {'-':>7} {'-':>6} {'-':>6} {'-':>5} "
            f"{r.peak_mb:>8.1f} {'-':>8} {'-':>6}  {'yes' if r.ok else 'NO'}"
        )
    ratio = r.wall / r.bound if r.bound else math.nan
    return (
        f"{r.label:<14} {r.step:<8} {r.wall:>7.2f} {r.store_s:>7.2f} {r.requests:>6} "
        f"{r.writes:>6} {r.r429:>5} {r.peak_mb:>8.1f} {r.bound:>8.2f} {ratio:>6.2f}  "
        f"{'yes' if r.ok else 'NO'}"
    )


def machine() -> str:
    uname = os.uname()
    return (
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{uname.sysname} {uname.release}"
    )


def parse_limited(text: str) -> tuple[int, float] | None:
    """`300@20` -> (300, 20.0); `none` or `0` -> None."""
    if text.strip().lower() in ("", "0", "none", "off"):
        return None
    n, sep, rps = text.partition("@")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected N@RPS (e.g. 300@20), got {text!r}")
    try:
        parsed = int(n), float(rps)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N@RPS (e.g. 300@20), got {text!r}") from None
    if parsed[0] < 1 or parsed[1] <= 0:
        raise argparse.ArgumentTypeError(f"N and RPS must be positive, got {text!r}")
    return parsed


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 10,100,1000, got {text!r}") from None
    if any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError("sizes must be positive")
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--sizes",
        type=parse_sizes,
        default=parse_sizes("10,100,1000"),
        help="manifest sizes for create, plan0 and apply0 (default 10,100,1000)",
    )
    ap.add_argument("--latency-ms", type=int, default=50, help="sandbox latency (default 50)")
    ap.add_argument(
        "--rps",
        type=float,
        default=0,
        help="sandbox rate limit for the --sizes runs, requests/s (default 0: none)",
    )
    ap.add_argument(
        "--assistants",
        type=int,
        default=100,
        help="also create this many assistants alone (default 100; 0 skips)",
    )
    ap.add_argument(
        "--rate-limited",
        type=parse_limited,
        default=parse_limited("300@20"),
        metavar="N@RPS",
        help="also create N resources against a rate limit of RPS (default 300@20; none skips)",
    )
    ap.add_argument(
        "--max-rps",
        type=float,
        default=DEFAULT_MAX_RPS,
        help=f"the client's ceiling for every step but `default` (default {DEFAULT_MAX_RPS:g}; "
        "0: the client's own default)",
    )
    ap.add_argument(
        "--default-ceiling",
        type=int,
        default=1000,
        metavar="N",
        help="also create N resources at the client's default ceiling (default 1000; 0 skips)",
    )
    ap.add_argument("--parallelism", type=int, default=DEFAULT_PARALLELISM)
    ap.add_argument(
        "--strict", action="store_true", help="exit 1 when a timing target is missed too"
    )
    args = ap.parse_args(argv)

    # A cache of valid bodies of our own (cold at the first step), whatever other runs did.
    cache = tempfile.mkdtemp(prefix="provisioner-bench-cache-")
    env = {
        **os.environ,
        "NO_COLOR": "1",
        "TWILIO_AUTH_TOKEN": "bench-token",
        "XDG_CACHE_HOME": cache,
    }
    os.environ["XDG_CACHE_HOME"] = cache  # (the scenarios' processes too)
    help_runs = [run_provisioner(["--help"], ROOT, env) for _ in range(3)]
    startup = min(r.wall for r in help_runs)
    cfg = Config(args.latency_ms / 1000, args.parallelism, startup, args.max_rps or None)
    bench = Bench(cfg, args.latency_ms)
    rps = args.rps or None

    ceiling = f"--max-rps {args.max_rps:g}" if args.max_rps else "the default ceiling"
    print(
        f"sandbox latency {args.latency_ms} ms, rate limit {f'{rps:g} req/s' if rps else 'none'}, "
        f"parallelism {args.parallelism}, {ceiling}, start-up {startup:.2f} s; {machine()}\n"
    )
    print(_HEADER)
    print("-" * len(_HEADER))
    print(_format_row(bench.timed_command("--help", ["--help"], env)), flush=True)
    print(
        _format_row(bench.timed_command("validate", ["validate", str(FULL_EXAMPLE)], env)),
        flush=True,
    )
    for n in args.sizes:
        bench.scenario(f"{n} mixed", generate_manifest(n), ("create", "plan0", "apply0"), rps=rps)
    if args.assistants:
        manifest = generate_manifest(args.assistants, assistants_only=True)
        bench.scenario(f"{args.assistants} asst", manifest, ("asst",), rps=rps)
    if args.rate_limited is not None:
        n, limit = args.rate_limited
        bench.scenario(
            f"{n}@{limit:g}rps", generate_manifest(n), ("limited", "plan0", "apply0"), rps=limit
        )
    if args.default_ceiling:
        n = args.default_ceiling
        bench.scenario(f"{n} default", generate_manifest(n), ("default",), rps=rps)

    verdicts = judge(
        bench.rows,
        latency=cfg.latency,
        startup=startup,
        assistants=args.assistants,
        limited=args.rate_limited,
    )
    print("\ntargets")
    width = max(len(v.target) for v in verdicts)
    for v in verdicts:
        mark = "n/a " if v.passed is None else ("PASS" if v.passed else "FAIL")
        print(f"  {mark}  {v.target:<{width}}  {v.measured}")
    shutil.rmtree(cache, ignore_errors=True)
    functional = all(v.passed is not False for v in verdicts if not v.timing)
    timing = all(v.passed is not False for v in verdicts if v.timing)
    if not functional:
        return 1
    return 1 if args.strict and not timing else 0


if __name__ == "__main__":
    sys.exit(main())
