"""The reliability scenarios, each returning figures; run by the tests and by
scripts/reliability_matrix.py (which prints them)."""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.reliability.harness import Sandbox, census, cli, kill_at, start_cli, workdir

FULL = "examples/full.yaml"
EXPECTED = 14  # resources in examples/full.yaml
STATE = Path("state/examples/full.json")
# Seeds whose faulty apply of the full example sees 429s, 5xx and ambiguous POSTs alike
# (at parallelism 1 and 10), so every fault is exercised.
FAULT_SEEDS = (3, 6, 8)


@dataclass
class Figures:
    name: str
    ok: bool
    figures: dict[str, Any] = field(default_factory=dict)
    detail: str = ""


def _reset(sandbox: Sandbox) -> None:
    sandbox.set_faults({})
    sandbox.request("POST", "/__emulator/reset", {}, admin=True)


def kill_matrix(sandbox: Sandbox, base: Path, boundaries: int, parallelism: int = 10) -> Figures:
    """SIGKILL an apply of the full example at each request boundary (before and after
    the server processed the request), then apply again: one object per entry, every ID
    in state, and an empty plan."""
    runs = dup = lost = orphans = nonempty = killed = 0
    failures: list[str] = []
    for boundary in range(boundaries):
        for phase in ("before", "after"):
            _reset(sandbox)
            cwd = workdir(base / f"kill-{boundary}-{phase}")
            par = ["--parallelism", str(parallelism)]
            killed += kill_at(sandbox, cwd, boundary, phase, "apply", FULL, "--auto-approve", *par)
            second = cli(sandbox, cwd, "apply", FULL, "--auto-approve", *par)
            plan = cli(sandbox, cwd, "plan", FULL, "--detailed-exitcode")
            c = census(sandbox, cwd / STATE, EXPECTED)
            runs += 1
            dup += c.duplicates
            lost += c.lost_ids
            orphans += c.orphans
            nonempty += plan.returncode != 0
            if second.returncode != 0 or plan.returncode != 0 or not c.ok:
                failures.append(
                    f"boundary {boundary} ({phase}): apply={second.returncode} "
                    f"plan={plan.returncode} {c}\n{second.stdout[-1500:]}{plan.stdout[-800:]}"
                )
    return Figures(
        f"kill matrix (parallelism {parallelism})",
        not failures,
        {
            "runs": runs,
            "killed mid-run": killed,
            "duplicates": dup,
            "lost IDs": lost,
            "orphans": orphans,
            "non-empty final plans": nonempty,
        },
        "\n".join(failures[:3]),
    )


def faulty_apply(sandbox: Sandbox, base: Path, seed: int, parallelism: int = 10) -> Figures:
    """20% 429s, 10% 5xx, 10% ambiguous POSTs: apply converges in one run, no duplicate."""
    _reset(sandbox)
    sandbox.set_faults({"p_429": 0.2, "p_5xx": 0.1, "p_ambiguous_post": 0.1, "seed": seed})
    cwd = workdir(base / f"faults-{seed}-{parallelism}")
    before = sandbox.stats()
    run = cli(sandbox, cwd, "apply", FULL, "--auto-approve", "--parallelism", str(parallelism))
    after = sandbox.stats()
    sandbox.set_faults({})
    plan = cli(sandbox, cwd, "plan", FULL, "--detailed-exitcode")
    c = census(sandbox, cwd / STATE, EXPECTED)
    ok = run.returncode == 0 and plan.returncode == 0 and c.ok
    return Figures(
        f"faults seed {seed} (parallelism {parallelism})",
        ok,
        {
            "requests": after["requests"] - before["requests"],
            "429s": _status(after, "429") - _status(before, "429"),
            "5xx": sum(_status(after, s) - _status(before, s) for s in ("500", "502", "503")),
            # Creates performed, then answered 502 or dropped: the case that duplicates.
            "ambiguous POSTs": int(after["ambiguous_posts"]) - int(before["ambiguous_posts"]),
            "duplicates": c.duplicates,
            "lost IDs": c.lost_ids,
        },
        "" if ok else run.stdout[-3000:] + plan.stdout[-1000:],
    )


def rate_limited_apply(sandbox: Sandbox, base: Path, rps: float = 5) -> Figures:
    """Under a limit of `rps` requests/s the apply sees no failure; count its 429s."""
    _reset(sandbox)
    sandbox.set_faults({"rate_limit_rps": rps})
    cwd = workdir(base / "ratelimit")
    before = sandbox.stats()
    start = time.monotonic()
    run = cli(sandbox, cwd, "apply", FULL, "--auto-approve")
    wall = time.monotonic() - start
    after = sandbox.stats()
    sandbox.set_faults({})
    c = census(sandbox, cwd / STATE, EXPECTED)
    requests = after["requests"] - before["requests"]
    return Figures(
        f"rate limit {rps:g} req/s",
        run.returncode == 0 and c.ok,
        {
            "requests": requests,
            "429s provoked": _status(after, "429") - _status(before, "429"),
            "wall s": round(wall, 2),
            "achieved req/s": round(requests / wall, 2) if wall else 0,
        },
        "" if run.returncode == 0 else run.stdout[-3000:],
    )


def concurrent_applies(sandbox: Sandbox, base: Path, lock_timeout: float) -> Figures:
    """Two applies on the same state at once: never interleaved, never a duplicate."""
    _reset(sandbox)
    cwd = workdir(base / f"concurrent-{lock_timeout:g}")
    args = ("apply", FULL, "--auto-approve", "--lock-timeout", str(lock_timeout))
    a = start_cli(sandbox, cwd, *args)
    b = start_cli(sandbox, cwd, *args)
    out_a, _ = a.communicate(timeout=300)
    out_b, _ = b.communicate(timeout=300)
    codes = sorted([a.returncode, b.returncode])
    c = census(sandbox, cwd / STATE, EXPECTED)
    state_ok = json.loads((cwd / STATE).read_text())["resources"] is not None
    loser = out_a if a.returncode else out_b
    if lock_timeout == 0:
        ok = codes in ([0, 0], [0, 1]) and (codes == [0, 0] or "is locked by" in loser)
    else:
        ok = codes == [0, 0]
    ok = ok and c.ok and state_ok
    return Figures(
        f"two applies at once (lock timeout {lock_timeout:g} s)",
        ok,
        {"exit codes": codes, "duplicates": c.duplicates, "lost IDs": c.lost_ids},
        "" if ok else out_a[-2000:] + "\n---\n" + out_b[-2000:],
    )


def corrupt_state(sandbox: Sandbox, base: Path) -> Figures:
    """Corrupt, truncated, newer and foreign state files are refused, and nothing remote
    is written."""
    _reset(sandbox)
    results: dict[str, Any] = {}
    ok = True
    good = workdir(base / "corrupt-source")
    assert cli(sandbox, good, "apply", FULL, "--auto-approve").returncode == 0
    text = (good / STATE).read_text()
    foreign = json.loads(text)
    foreign["lineage"] = "00000000-0000-4000-8000-000000000000"
    variants = {
        "garbage": "this is not json {",
        "truncated": text[: len(text) // 2],
        "empty": "",
        "newer format": json.dumps({**json.loads(text), "format_version": 99}),
        "foreign lineage": json.dumps(foreign),
    }
    for label, content in variants.items():
        cwd = workdir(base / f"corrupt-{label.replace(' ', '-')}")
        (cwd / STATE).parent.mkdir(parents=True)
        (cwd / STATE).write_text(content)
        before = _writes(sandbox.stats())
        run = cli(sandbox, cwd, "apply", FULL, "--auto-approve")
        written = _writes(sandbox.stats()) - before
        refused = run.returncode == 1 and "Error:" in run.stderr
        results[label] = "refused" if refused and written == 0 else f"NOT refused ({written})"
        ok = ok and refused and written == 0 and (cwd / STATE).read_text() == content
    results["objects after"] = len([o for v in sandbox.objects().values() for o in v])
    return Figures("bad state files refused", ok and results["objects after"] == EXPECTED, results)


def _writes(stats: dict[str, Any]) -> int:
    by = stats.get("by_method", {})
    return sum(int(by.get(m, 0)) for m in ("POST", "PATCH", "DELETE"))


def partial_failure(sandbox: Sandbox, base: Path) -> Figures:
    """A create rejected by the API (400): dependents skipped, independent work done,
    state keeps every success, exit 1; the next apply finishes."""
    _reset(sandbox)
    sandbox.set_faults({"reject_create_names": ["Calls per day"]})
    cwd = workdir(base / "partial")
    first = cli(sandbox, cwd, "apply", FULL, "--auto-approve")
    st = json.loads((cwd / STATE).read_text())["resources"]
    sandbox.set_faults({})
    second = cli(sandbox, cwd, "apply", FULL, "--auto-approve")
    plan = cli(sandbox, cwd, "plan", FULL, "--detailed-exitcode")
    c = census(sandbox, cwd / STATE, EXPECTED)
    ok = (
        first.returncode == 1
        and "failed:  insight.calls-per-day" in first.stdout
        and "skipped: board.overview" in first.stdout
        and len(st) == EXPECTED - 2
        and second.returncode == 0
        and plan.returncode == 0
        and c.ok
    )
    return Figures(
        "failed create mid-run",
        ok,
        {"done in first run": len(st), "second run exit": second.returncode},
        "" if ok else first.stdout[-3000:] + second.stdout[-1500:],
    )


def _status(stats: dict[str, Any], code: str) -> int:
    return int(stats.get("by_status", {}).get(code, 0))


def interrupted_apply(sandbox: Sandbox, base: Path) -> Figures:
    """Ctrl-C (SIGINT) mid-apply: requests in flight finish, nothing new starts, state is
    saved, exit 1 with a summary; the next apply finishes with no duplicate."""
    import signal

    _reset(sandbox)
    sandbox.set_faults({"latency_ms": 150})
    cwd = workdir(base / "sigint")
    proc = start_cli(sandbox, cwd, "apply", FULL, "--auto-approve", "--parallelism", "2")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if int(sandbox.stats().get("by_method", {}).get("POST", 0)) >= 3:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    sandbox.set_faults({})
    first = census(sandbox, cwd / STATE, EXPECTED)
    summary_ok = "Interrupted: no new changes were started." in out and "not started" in out
    second = cli(sandbox, cwd, "apply", FULL, "--auto-approve")
    plan = cli(sandbox, cwd, "plan", FULL, "--detailed-exitcode")
    final = census(sandbox, cwd / STATE, EXPECTED)
    ok = (
        proc.returncode == 1
        and summary_ok
        and first.orphans == 0
        and first.duplicates == 0
        and 0 < first.state_ids < EXPECTED
        and second.returncode == 0
        and plan.returncode == 0
        and final.ok
    )
    return Figures(
        "Ctrl-C mid-apply",
        ok,
        {
            "exit code": proc.returncode,
            "done before stop": first.state_ids,
            "orphans": first.orphans,
            "duplicates after rerun": final.duplicates,
        },
        "" if ok else out[-2500:] + second.stdout[-1000:],
    )


def interrupted_rate_limited_apply(sandbox: Sandbox, base: Path, parallelism: int = 10) -> Figures:
    """Ctrl-C while the apply is held up by a slow rate limit (one request per 10 s): the
    changes handed to the workers but still waiting (limiter, Retry-After) are abandoned
    as "not started", nothing is sent after the interrupt beyond what was on the wire,
    and the run exits at once; the next apply finishes."""
    import signal

    _reset(sandbox)
    # The plan's reads (it looks for what exists before creating) go at full speed: the
    # limit starts with the first create (slowed down meanwhile, so the limit finds the
    # first wave of creates on the wire and the rest to come).
    sandbox.set_faults({"latency_ms": 300})
    cwd = workdir(base / "sigint-rate-limited")
    proc = start_cli(
        sandbox, cwd, "apply", FULL, "--auto-approve", "--parallelism", str(parallelism)
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if int(sandbox.stats()["by_method"].get("POST", 0)) >= 1:
            break
        time.sleep(0.01)
    sandbox.set_faults({"rate_limit_rps": 0.1})
    while time.monotonic() < deadline and proc.poll() is None:
        if int(sandbox.stats().get("rate_limited", 0)) >= 1:
            break
        time.sleep(0.02)
    at_signal = sandbox.stats()
    proc.send_signal(signal.SIGINT)
    try:
        # Without the interrupt reaching the client, the waiting changes would go on
        # sending for over a minute; a bound far below that, so the run fails instead.
        out, _ = proc.communicate(timeout=40)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    after = sandbox.stats()
    sandbox.set_faults({})
    first = census(sandbox, cwd / STATE, EXPECTED)
    started = out.count(": creating...")
    posts = int(after["by_method"].get("POST", 0))
    late = int(after["requests"]) - int(at_signal["requests"])
    not_started = sum(1 for line in out.splitlines() if line.startswith("  not started: "))
    second = cli(sandbox, cwd, "apply", FULL, "--auto-approve")
    final = census(sandbox, cwd / STATE, EXPECTED)
    ok = (
        proc.returncode == 1
        and "Interrupted: no new changes were started." in out
        and late <= parallelism  # at most what was on the wire (one per worker)
        and posts <= started  # no change sent its create twice
        and not_started == EXPECTED - first.state_ids
        and first.orphans == 0
        and first.duplicates == 0
        and second.returncode == 0
        and final.ok
    )
    return Figures(
        "Ctrl-C while rate limited",
        ok,
        {
            "exit code": proc.returncode,
            "sent after Ctrl-C": late,
            "creates sent": posts,
            "changes begun": started,
            "not started": not_started,
            "duplicates after rerun": final.duplicates,
        },
        "" if ok else out[-2500:] + second.stdout[-1000:],
    )


def dead_lock_taken_over(sandbox: Sandbox, base: Path) -> Figures:
    """A lock left by a killed run on this host is taken over (with a warning); a lock
    held on another host is reported with its holder and cleared by force-unlock."""
    import os
    import socket
    import subprocess
    import sys

    _reset(sandbox)
    cwd = workdir(base / "dead-lock")
    (cwd / STATE).parent.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = {
        "id": "11111111-2222-4333-8444-555555555555",
        "who": "alice@" + socket.gethostname(),
        "pid": dead.pid,
        "hostname": socket.gethostname(),
        "created": "2026-11-25T10:00:00Z",
        "command": "provisioner apply examples/full.yaml",
        "operation": "apply",
    }
    lock_file = cwd / "state" / "examples" / "full.json.lock"
    lock_file.write_text(json.dumps(lock))
    taken = cli(sandbox, cwd, "apply", FULL, "--auto-approve")
    warned = "took over the state lock of a run that is no longer running" in taken.stderr
    lock_file.write_text(json.dumps({**lock, "hostname": "ci-7.elsewhere", "pid": os.getpid()}))
    refused = cli(sandbox, cwd, "plan", FULL)  # a plan takes no lock
    blocked = cli(sandbox, cwd, "apply", FULL, "--auto-approve")
    names_holder = "is locked by alice@" in blocked.stderr and lock["id"] in blocked.stderr
    unlocked = cli(sandbox, cwd, "force-unlock", FULL, lock["id"])
    after = cli(sandbox, cwd, "apply", FULL, "--auto-approve")
    ok = (
        taken.returncode == 0
        and warned
        and refused.returncode == 0
        and blocked.returncode == 1
        and names_holder
        and unlocked.returncode == 0
        and after.returncode == 0
        and not lock_file.exists()
        and census(sandbox, cwd / STATE, EXPECTED).ok
    )
    return Figures(
        "lock left by a dead run",
        ok,
        {
            "taken over": taken.returncode == 0 and warned,
            "other host refused": blocked.returncode == 1,
            "force-unlock": unlocked.returncode == 0,
        },
        "" if ok else taken.stderr + blocked.stderr + unlocked.stdout + unlocked.stderr,
    )


BUY = "examples/buy-a-number.yaml"
BUY_STATE = Path("state/examples/buy-a-number.json")
BUY_ACCOUNT = "AC0123456789abcdef0123456789abcdef"


def purchase_kill_matrix(sandbox: Sandbox, base: Path, boundaries: int = 4) -> Figures:
    """SIGKILL an apply that buys a number at each Vapi request boundary (before and after
    the server processed it; the import of the bought number is one of them), then apply
    again: exactly one number bought, one imported, an empty plan."""
    runs = bought_twice = failures_n = killed = 0
    failures: list[str] = []
    for boundary in range(boundaries):
        for phase in ("before", "after"):
            _reset(sandbox)
            # A fresh account too: a number an earlier run bought for this manifest belongs to
            # another state of it, which a new state refuses to buy again (by design).
            sandbox.release_twilio_numbers(BUY_ACCOUNT)
            cwd = workdir(base / f"buy-kill-{boundary}-{phase}")
            killed += kill_at(sandbox, cwd, boundary, phase, "apply", BUY, "--auto-approve")
            second = cli(sandbox, cwd, "apply", BUY, "--auto-approve")
            plan = cli(sandbox, cwd, "plan", BUY, "--detailed-exitcode")
            state = json.loads((cwd / BUY_STATE).read_text())
            mark = f"provisioner {state['lineage'][:8]}"
            mine = [
                n
                for n in sandbox.twilio_numbers(BUY_ACCOUNT)
                if str(n.get("friendly_name", "")).startswith(mark)
            ]
            phones = sandbox.objects()["phoneNumber"]
            runs += 1
            bought_twice += len(mine) > 1
            entry = state["resources"].get("phoneNumber.sf-line", {})
            ok = (
                second.returncode == 0
                and plan.returncode == 0
                and len(mine) == 1
                and len(phones) == 1
                and phones[0].get("number") == mine[0]["phone_number"]
                and entry.get("extra", {}).get("purchase", {}).get("sid") == mine[0]["sid"]
            )
            if not ok:
                failures_n += 1
                failures.append(
                    f"boundary {boundary} ({phase}): apply={second.returncode} "
                    f"plan={plan.returncode} bought={len(mine)} imported={len(phones)}\n"
                    f"{second.stdout[-1500:]}{second.stderr[-500:]}"
                )
    return Figures(
        "kill while buying a number",
        not failures,
        {
            "runs": runs,
            "killed mid-run": killed,
            "bought twice": bought_twice,
            "failed runs": failures_n,
        },
        "\n".join(failures[:3]),
    )


def journal_kill(sandbox: Sandbox, base: Path, boundaries: tuple[int, ...] = (8, 12)) -> Figures:
    """SIGKILL an apply between journal appends and their fold into the state file, then:
    as left (replayed from state + journal), with a torn last record added (dropped with a
    notice), and with a corrupt record in the middle (refused, nothing sent). The rerun
    finishes with no duplicate and no lost ID; the corrupt journal is refused."""
    from provisioner.state.store import FileStateStore

    runs = unfolded = torn_noted = refused = 0
    failures: list[str] = []
    for boundary in boundaries:
        for variant in ("as left", "torn tail", "corrupt middle"):
            _reset(sandbox)
            cwd = workdir(base / f"journal-{boundary}-{variant.replace(' ', '-')}")
            killed = kill_at(sandbox, cwd, boundary, "after", "apply", FULL, "--auto-approve")
            state_file = cwd / STATE
            journal = state_file.with_name(state_file.name + ".journal")
            in_file = json.loads(state_file.read_text())["resources"] if killed else {}
            replayed = FileStateStore(state_file, notify=lambda _: None).read().resources
            records = journal.read_bytes().splitlines(keepends=True) if journal.exists() else []
            # The kill came after changes were journaled and before they were folded.
            if killed and len(records) >= 2 and len(replayed) > len(in_file):
                unfolded += 1
            else:
                failures.append(f"boundary {boundary} {variant}: nothing left unfolded")
                continue
            if variant == "torn tail":
                journal.write_bytes(b"".join(records) + records[-1][: len(records[-1]) // 2])
            if variant == "corrupt middle":
                records[0] = records[0][:9] + records[0][9:].replace(b'"', b"'", 1)
                journal.write_bytes(b"".join(records))
                before = _writes(sandbox.stats())
                run = cli(sandbox, cwd, "apply", FULL, "--auto-approve")
                written = _writes(sandbox.stats()) - before
                runs += 1
                if run.returncode == 1 and "record 1" in run.stderr and written == 0:
                    refused += 1
                else:
                    failures.append(
                        f"boundary {boundary} corrupt middle not refused: {run.returncode} "
                        f"{written} writes\n{run.stderr[-800:]}"
                    )
                continue
            second = cli(sandbox, cwd, "apply", FULL, "--auto-approve")
            plan = cli(sandbox, cwd, "plan", FULL, "--detailed-exitcode")
            c = census(sandbox, state_file, EXPECTED)
            runs += 1
            noted = "is incomplete" in second.stderr
            torn_noted += noted
            if (
                second.returncode != 0
                or plan.returncode != 0
                or not c.ok
                or journal.exists()
                or noted != (variant == "torn tail")
            ):
                failures.append(
                    f"boundary {boundary} ({variant}): apply={second.returncode} "
                    f"plan={plan.returncode} {c}\n{second.stdout[-1200:]}{second.stderr[-600:]}"
                )
    return Figures(
        "kill between journal append and fold",
        not failures,
        {
            "runs": runs,
            "killed with unfolded records": unfolded,
            "torn tails noted": torn_noted,
            "corrupt journals refused": refused,
        },
        "\n".join(failures[:3]),
    )
