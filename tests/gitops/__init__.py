"""GitOps and CI (issue 4), proven end to end through the CLI against the sandbox.

Helpers shared by the tests in this folder: the full example applied, the state and the
sandbox's data read back, edits made "in the dashboard" (through the API, not our tool),
manifest edits, and golden files with run-specific IDs replaced by placeholders.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from pathlib import Path
from typing import Any

import httpx

from provisioner.emulator.seed import DASHBOARD_OBJECTS
from tests.conftest import Cli

FULL = "examples/full.yaml"
SANDBOX_DATA = Path("state/.sandbox/emulator/vapi.json")
FULL_STATE = Path("state/.sandbox/examples/full.json")
GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE_GOLDEN = os.environ.get("UPDATE_GOLDEN") == "1"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def ok(result: Any, code: int = 0) -> str:
    """The output of a CLI run that must have exited with `code`."""
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    return str(result.output)


def apply_full(run: Cli) -> dict[str, Any]:
    """Apply examples/full.yaml to the sandbox; returns the state document."""
    ok(run("apply", FULL, "--sandbox", "--auto-approve"))
    return read_state(Path(FULL_STATE))


def read_state(path: Path = FULL_STATE) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def ids(state: dict[str, Any]) -> dict[str, str]:
    """address -> remote ID."""
    return {a: r["id"] for a, r in state["resources"].items()}


def sandbox_objects(data: Path = SANDBOX_DATA, *, seeded: bool = False) -> list[dict[str, Any]]:
    """Every object the sandbox holds, whatever its kind; those it starts with (made "in
    the dashboard", no manifest's) only with `seeded`."""
    doc = json.loads(data.read_text())
    found: list[dict[str, Any]] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("id"), str) and "orgId" in value:
                found.append(value)
                return
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(doc)
    if seeded:
        return found
    dashboard = {b.get("name") for _, b in DASHBOARD_OBJECTS}
    return [o for o in found if o.get("name") not in dashboard]


class Snapshot:
    """Bytes of the state file and the sandbox's data, to prove nothing was written."""

    def __init__(self, state: Path = FULL_STATE, data: Path = SANDBOX_DATA) -> None:
        self.paths = (state, data)
        self.before = [self._read(p) for p in self.paths]

    @staticmethod
    def _read(path: Path) -> bytes | None:
        return path.read_bytes() if path.exists() else None

    def unchanged(self) -> bool:
        return [self._read(p) for p in self.paths] == self.before


def edit_remote(kind: str, resource_id: str, patch: dict[str, Any]) -> None:
    """Change an object as a dashboard user would: through the API, not our tool."""
    from provisioner.emulator import make_sandbox_transport
    from provisioner.kinds import KINDS

    with httpx.Client(
        transport=make_sandbox_transport(SANDBOX_DATA), base_url="http://sandbox"
    ) as http:
        r = http.patch(
            KINDS[kind].item_path(resource_id),
            json=patch,
            headers={"Authorization": "Bearer dashboard-user"},
        )
        assert r.status_code == 200, r.text


def delete_remote(kind: str, resource_id: str) -> None:
    from provisioner.emulator import make_sandbox_transport
    from provisioner.kinds import KINDS

    with httpx.Client(
        transport=make_sandbox_transport(SANDBOX_DATA), base_url="http://sandbox"
    ) as http:
        r = http.delete(
            KINDS[kind].item_path(resource_id), headers={"Authorization": "Bearer dashboard-user"}
        )
        assert r.status_code == 200, r.text


def edit_manifest(path: str | Path, *replacements: tuple[str, str]) -> None:
    """Replace text in a manifest; each old text must occur exactly once."""
    p = Path(path)
    text = p.read_text()
    for old, new in replacements:
        assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {p}"
        text = text.replace(old, new)
    p.write_text(text)


def cut(path: str | Path, start: str, end: str) -> None:
    """Remove the text from `start` (included) to `end` (excluded)."""
    p = Path(path)
    text = p.read_text()
    i, j = text.index(start), text.index(end)
    p.write_text(text[:i] + text[j:])


def plan_file_text(path: Path) -> str:
    """A saved plan's content, uncompressed."""
    raw = path.read_bytes()
    return (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode()


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# Golden files ---------------------------------------------------------------------------


def normalise(text: str, state: dict[str, Any]) -> str:
    """Run-specific values replaced by stable placeholders: each remote ID by
    `<id:ADDRESS>` (from the state), the lineage by `<lineage>`, any other UUID the run
    made by `<uuid-N>` (IDs written in the manifest itself stay), timestamps by `<time>`."""
    for addr, rid in ids(state).items():
        if rid:
            text = text.replace(rid, f"<id:{addr}>")
    text = text.replace(state["lineage"], "<lineage>")
    manifest = Path(FULL).read_text()
    seen: dict[str, str] = {}

    def other(m: re.Match[str]) -> str:
        if m.group(0) in manifest:
            return m.group(0)
        return seen.setdefault(m.group(0), f"<uuid-{len(seen) + 1}>")

    text = UUID.sub(other, text)
    return re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?", "<time>", text)


def check_golden(name: str, text: str) -> None:
    """Compare with tests/gitops/golden/NAME; `UPDATE_GOLDEN=1 pytest` rewrites it."""
    path = GOLDEN / name
    if UPDATE_GOLDEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"{path} is missing: run the tests with UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8"), (
        f"{name} differs from the golden file; if the change is intended, regenerate it "
        "with UPDATE_GOLDEN=1 and review the diff"
    )


def run_in_terminal(
    args: list[str], *, answer: str = "", env: dict[str, str] | None = None
) -> tuple[int, str]:
    """Run `python -m provisioner ARGS` with a real terminal (a pty) as its standard input
    and output, typing `answer`; returns the exit code and everything it printed."""
    import pty
    import select
    import subprocess
    import sys

    master, slave = pty.openpty()
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "provisioner", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=full_env,
        close_fds=True,
    )
    os.close(slave)
    if answer:
        os.write(master, answer.encode())
    chunks: list[bytes] = []
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:  # stuck (waiting for input it will never get)
            proc.kill()
            break
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    code = proc.wait(timeout=60)
    return code, b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")
