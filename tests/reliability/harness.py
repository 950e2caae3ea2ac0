"""Harness for the reliability scenarios: a sandbox served over a real socket in its own
process, `provisioner` runs as real subprocesses (so they can be SIGKILLed), and checks
that count duplicates and lost IDs. Used by tests/reliability/ and scripts/reliability_matrix.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
TOKEN = "reliability-token"
SECRET = "twilio-secret-for-reliability"
CRM_TOKEN = "crm-token-for-reliability"
PATHS = {
    "assistant": "/assistant",
    "phoneNumber": "/phone-number",
    "structuredOutput": "/structured-output",
    "insight": "/reporting/insight",
    "board": "/reporting/board",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Sandbox:
    """`provisioner sandbox serve` in a subprocess, with its admin API."""

    def __init__(self, faults: str | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "provisioner", "sandbox", "serve", "--port", str(self.port)]
        if faults:
            cmd += ["--faults", faults]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.stats()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    raise RuntimeError(f"sandbox did not start: {err}") from None
                time.sleep(0.05)

    def request(self, method: str, path: str, body: Any = None, *, admin: bool = False) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if not admin:
            req.add_header("Authorization", f"Bearer {TOKEN}")
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
        return json.loads(raw) if raw else None

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/__emulator/stats", admin=True)
        return result

    def set_faults(self, profile: dict[str, Any]) -> None:
        self.request("PUT", "/__emulator/faults", profile, admin=True)

    def hold(self, after: int, phase: str = "before") -> None:
        """Make request number `after + 1` from now wait (before or after it is processed)."""
        self.request("PUT", "/__emulator/hold", {"after": after, "phase": phase}, admin=True)

    def release(self) -> None:
        self.request("POST", "/__emulator/release", {}, admin=True)

    def settle(self, quiet: float = 0.2, timeout: float = 10.0) -> None:
        """Wait until no request is being handled, and none arrived, for `quiet` seconds.

        A killed client's last requests may still be in the server's socket (sent, not
        yet read); the server handles them after the client is gone. A rerun seconds
        later finds what they made, but a rerun at once could race them (no API has an
        idempotency key to stop that), and so could the next scenario's reset. The
        scenarios model the rerun a person makes, so they wait for the server to settle.
        """
        deadline = time.monotonic() + timeout
        last = self.stats()
        calm_since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.02)
            now = self.stats()
            if now["in_flight"] or now["requests"] != last["requests"]:
                calm_since = time.monotonic()
            elif time.monotonic() - calm_since >= quiet:
                return
            last = now

    def objects(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for kind, path in PATHS.items():
            got = self.request("GET", f"{path}?limit=1000")
            out[kind] = got if isinstance(got, list) else got["results"]
        return out

    def twilio_numbers(self, account_sid: str) -> list[dict[str, Any]]:
        """The numbers the Twilio emulator says `account_sid` owns."""
        import base64

        path = f"/2010-04-01/Accounts/{account_sid}/IncomingPhoneNumbers.json?PageSize=1000"
        req = urllib.request.Request(self.url + path)
        auth = base64.b64encode(f"{account_sid}:{SECRET}".encode()).decode()
        req.add_header("Authorization", f"Basic {auth}")
        with urllib.request.urlopen(req, timeout=30) as r:
            return list(json.loads(r.read())["incoming_phone_numbers"])

    def release_twilio_numbers(self, account_sid: str) -> None:
        """Release every number `account_sid` owns (the Twilio emulator has no reset): each
        run starts from an account with nothing bought by another state of the manifest."""
        import base64

        auth = base64.b64encode(f"{account_sid}:{SECRET}".encode()).decode()
        for number in self.twilio_numbers(account_sid):
            path = f"/2010-04-01/Accounts/{account_sid}/IncomingPhoneNumbers/{number['sid']}.json"
            req = urllib.request.Request(self.url + path, method="DELETE")
            req.add_header("Authorization", f"Basic {auth}")
            with urllib.request.urlopen(req, timeout=30):
                pass

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self.proc.stderr:
            self.proc.stderr.close()


def workdir(base: Path) -> Path:
    """A fresh project folder with the examples."""
    if base.exists():
        shutil.rmtree(base)
    base.mkdir(parents=True)
    shutil.copytree(EXAMPLES, base / "examples")
    # A git work tree, as a user's repository: states go to state/examples/<name>.json.
    subprocess.run(["git", "init", "-q", str(base)], check=True)
    return base


def env_for(sandbox: Sandbox) -> dict[str, str]:
    return {
        **os.environ,
        "VAPI_BASE_URL": sandbox.url,
        "VAPI_TOKEN": TOKEN,
        # `sandbox serve` answers Twilio's paths too.
        "TWILIO_BASE_URL": sandbox.url,
        "TWILIO_PRICING_BASE_URL": sandbox.url,
        "TWILIO_AUTH_TOKEN": SECRET,
        "CRM_API_TOKEN": CRM_TOKEN,  # (examples/voice-agent.yaml)
        "NO_COLOR": "1",
        "PYTHONUNBUFFERED": "1",
    }


def cli(
    sandbox: Sandbox, cwd: Path, *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "provisioner", *args],
        cwd=cwd,
        env=env_for(sandbox),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_cli(sandbox: Sandbox, cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "provisioner", *args],
        cwd=cwd,
        env=env_for(sandbox),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def kill_at(sandbox: Sandbox, cwd: Path, boundary: int, phase: str, *args: str) -> bool:
    """Run `provisioner *args` and SIGKILL it while request `boundary + 1` is held by the
    sandbox (before or after the server processed it). False if the run ended first."""
    base = int(sandbox.stats()["requests"])
    sandbox.hold(boundary, phase)
    proc = start_cli(sandbox, cwd, *args)
    killed = False
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if int(sandbox.stats().get("held", 0)) > 0:
                proc.send_signal(signal.SIGKILL)
                killed = True
                break
            time.sleep(0.005)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.stdout:
            proc.stdout.close()
        sandbox.release()
        sandbox.settle()
    del base
    return killed


@dataclass
class Census:
    objects: int
    duplicates: int
    state_ids: int
    lost_ids: int
    orphans: int
    expected: int
    # (kind, name, createdAt) of each orphan, for the failure message.
    orphan_objects: list[tuple[str, Any, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.duplicates == 0
            and self.lost_ids == 0
            and self.orphans == 0
            and self.objects == self.expected
        )


def census(sandbox: Sandbox, state_file: Path, expected: int) -> Census:
    """Duplicates (same name twice remotely), lost IDs (a manifest entry without an ID in
    state), and orphans (remote objects no state entry owns)."""
    objs = sandbox.objects()
    all_objs = [o for lst in objs.values() for o in lst]
    names = Counter((k, o.get("name")) for k, lst in objs.items() for o in lst)
    duplicates = sum(n - 1 for n in names.values() if n > 1)
    state = json.loads(state_file.read_text()) if state_file.exists() else {"resources": {}}
    ids = {r.get("id") for r in state["resources"].values() if r.get("id")}
    lost = sum(
        1 for r in state["resources"].values() if not r.get("id") or r.get("status") != "created"
    ) + max(0, expected - len(state["resources"]))
    strays = [
        (k, o.get("name"), o.get("createdAt"))
        for k, lst in objs.items()
        for o in lst
        if o["id"] not in ids
    ]
    return Census(len(all_objs), duplicates, len(ids), lost, len(strays), expected, strays)
