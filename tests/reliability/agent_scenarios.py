"""Reliability scenarios of a whole voice agent (examples/voice-agent.yaml: credentials,
tools, a squad, a `data:` lookup and a handoff cycle broken by a create and a deferred
update), run by tests/reliability and scripts/reliability_matrix.py."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from tests.reliability.harness import Sandbox, cli, kill_at, workdir
from tests.reliability.scenarios import Figures

AGENT = "examples/voice-agent.yaml"
STATE = Path("state/examples/voice-agent.json")
# What the manifest manages, per kind (the looked-up trunk credential is not its own).
EXPECTED = {
    "credential": 1,
    "tool": 6,
    "assistant": 3,
    "squad": 1,
    "phoneNumber": 2,
    "structuredOutput": 1,
}
PATHS = {
    "credential": "/credential",
    "tool": "/tool",
    "assistant": "/assistant",
    "squad": "/squad",
    "phoneNumber": "/phone-number",
    "structuredOutput": "/structured-output",
}
TRUNK = {
    "provider": "byo-sip-trunk",
    "name": "Acme SIP trunk",
    "gateways": [{"ip": "203.0.113.10"}],
}


def _reset(sandbox: Sandbox) -> str:
    """An empty org but for the SIP trunk made "in the dashboard"; its ID."""
    sandbox.set_faults({})
    sandbox.request("POST", "/__emulator/reset", {}, admin=True)
    trunk: dict[str, Any] = sandbox.request("POST", "/credential", TRUNK)
    return str(trunk["id"])


def _census(sandbox: Sandbox, state_file: Path, trunk: str) -> dict[str, int]:
    """Duplicates (more objects of a kind than the manifest has), lost IDs, orphans (no
    state entry owns them), a handoff tool left without destinations, a lookup touched."""
    objects: dict[str, list[dict[str, Any]]] = {}
    for kind, path in PATHS.items():
        got = sandbox.request("GET", f"{path}?limit=1000")
        listed = got if isinstance(got, list) else got["results"]
        objects[kind] = [o for o in listed if o["id"] != trunk]
    counts = Counter({k: len(v) for k, v in objects.items()})
    state = json.loads(state_file.read_text()) if state_file.exists() else {"resources": {}}
    entries = state["resources"]
    ids = {r.get("id") for r in entries.values() if r.get("id")}
    handoffs = [t for t in objects["tool"] if t.get("type") == "handoff"]
    trunks = [o for o in sandbox.request("GET", "/credential?limit=1000") if o["id"] == trunk]
    return {
        "duplicates": sum(max(0, counts[k] - n) for k, n in EXPECTED.items()),
        "lost IDs": sum(1 for r in entries.values() if not r.get("id"))
        + max(0, sum(EXPECTED.values()) - len(entries)),
        "orphans": sum(1 for lst in objects.values() for o in lst if o["id"] not in ids),
        "handoffs without destinations": sum(1 for t in handoffs if not t.get("destinations")),
        "lookup changed": int(len(trunks) != 1 or trunks[0]["name"] != TRUNK["name"]),
    }


def agent_kill_matrix(
    sandbox: Sandbox, base: Path, boundaries: int, parallelism: int = 1
) -> Figures:
    """SIGKILL an apply of the voice agent at each request boundary (before and after the
    server processed it, so also between a handoff tool's create and its deferred update),
    then apply again: one object per entry, every ID in state, an empty plan."""
    totals: Counter[str] = Counter()
    runs = killed = nonempty = 0
    failures: list[str] = []
    for boundary in range(boundaries):
        for phase in ("before", "after"):
            trunk = _reset(sandbox)
            cwd = workdir(base / f"agent-kill-{boundary}-{phase}")
            par = ["--parallelism", str(parallelism)]
            killed += kill_at(sandbox, cwd, boundary, phase, "apply", AGENT, "--auto-approve", *par)
            second = cli(sandbox, cwd, "apply", AGENT, "--auto-approve", *par)
            plan = cli(sandbox, cwd, "plan", AGENT, "--detailed-exitcode")
            found = _census(sandbox, cwd / STATE, trunk)
            totals.update(found)
            runs += 1
            nonempty += plan.returncode != 0
            if second.returncode != 0 or plan.returncode != 0 or any(found.values()):
                failures.append(
                    f"boundary {boundary} ({phase}): apply={second.returncode} "
                    f"plan={plan.returncode} {found}\n{second.stdout[-1500:]}{plan.stdout[-800:]}"
                )
    return Figures(
        f"voice agent kill matrix (parallelism {parallelism})",
        not failures,
        {"runs": runs, "killed mid-run": killed, **totals, "non-empty final plans": nonempty},
        "\n".join(failures[:3]),
    )


def agent_faulty_apply(sandbox: Sandbox, base: Path, seed: int, parallelism: int = 10) -> Figures:
    """20% 429s, 10% 5xx, 10% ambiguous POSTs against the voice agent: apply converges in
    one run, no duplicate, cycle completed."""
    trunk = _reset(sandbox)
    sandbox.set_faults({"p_429": 0.2, "p_5xx": 0.1, "p_ambiguous_post": 0.1, "seed": seed})
    cwd = workdir(base / f"agent-faults-{seed}-{parallelism}")
    first = cli(sandbox, cwd, "apply", AGENT, "--auto-approve", "--parallelism", str(parallelism))
    stats = sandbox.stats()
    sandbox.set_faults({})
    plan = cli(sandbox, cwd, "plan", AGENT, "--detailed-exitcode")
    found = _census(sandbox, cwd / STATE, trunk)
    ok = first.returncode == 0 and plan.returncode == 0 and not any(found.values())
    return Figures(
        f"voice agent under faults (seed {seed}, parallelism {parallelism})",
        ok,
        {"ambiguous POSTs": stats.get("ambiguous_posts", 0), **found},
        "" if ok else f"{found}\n{first.stdout[-1500:]}{plan.stdout[-800:]}",
    )
