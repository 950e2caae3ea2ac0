"""A Twilio token changed in the environment is planned from its hash and never shown; and
a real SIGKILL of `provisioner apply` after Twilio sold the number but before the tool
could record it (the reliability harness's subprocess helpers, against the emulators over
a real socket) is followed by an apply that finds the number instead of buying another."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast
from wsgiref.types import StartResponse, WSGIEnvironment

from provisioner.emulator.app import VapiEmulator
from provisioner.emulator.server import running_server
from provisioner.emulator.store import EmulatorStore
from provisioner.emulator.twilio import TwilioEmulator
from provisioner.state.store import FileStateStore
from tests.conftest import SECRET, Cli
from tests.numbers.test_purchase import BUY, FULL
from tests.reliability.harness import Sandbox, cli, start_cli, workdir

OTHER_SECRET = "rotated-twilio-token-77aa55"


def test_a_changed_token_is_planned_as_sensitive_and_never_shown(run: Cli, project: Path) -> None:
    assert run("apply", FULL, "--sandbox", "--auto-approve").exit_code == 0
    rotated = {"TWILIO_AUTH_TOKEN": OTHER_SECRET}

    plan = run("plan", FULL, "--sandbox", env=rotated)
    assert plan.exit_code == 0, plan.output
    assert "~ phoneNumber.main-line" in plan.output
    assert "twilioAuthToken: (sensitive) -> (sensitive)" in plan.output
    doc = json.loads(run("plan", FULL, "--sandbox", "--format", "json", env=rotated).stdout)
    change = next(c for c in doc["changes"] if c["address"] == "phoneNumber.main-line")
    assert change["action"] == "update"
    assert [(f["path"], f["before"], f["after"]) for f in change["fields"]] == [
        ("twilioAuthToken", "(sensitive)", "(sensitive)")
    ]
    markdown = run("plan", FULL, "--sandbox", "--format", "markdown", env=rotated).stdout

    applied = run("apply", FULL, "--sandbox", "--auto-approve", env=rotated)
    assert applied.exit_code == 0, applied.output
    again = run("plan", FULL, "--sandbox", "--detailed-exitcode", env=rotated)
    assert again.exit_code == 0, again.output

    state = (project / "state/.sandbox/examples/full.json").read_text()
    for text in (plan.output, json.dumps(doc), markdown, applied.output, again.output, state):
        assert OTHER_SECRET not in text
        assert SECRET not in text


class _HoldFirstPurchase:
    """After-purchase hook: the first purchase's answer waits until released."""

    def __init__(self) -> None:
        self.held = threading.Event()
        self.go = threading.Event()
        self.sold: list[str] = []

    def __call__(self, resource: Mapping[str, Any]) -> None:
        self.sold.append(str(resource["sid"]))
        if len(self.sold) == 1:
            self.held.set()
            self.go.wait(60)


@dataclass
class HeldSandbox:
    """Vapi's and Twilio's fakes served on one port, Twilio's purchase answers in `hook`'s
    hands, and a project folder for the CLI."""

    twilio: TwilioEmulator
    sandbox: Sandbox  # the harness's helpers need only its URL
    url: str
    cwd: Path


@contextmanager
def held_sandbox(tmp_path: Path, hook: _HoldFirstPurchase) -> Iterator[HeldSandbox]:
    twilio = TwilioEmulator(store_path=tmp_path / "twilio.json", after_purchase=hook)
    vapi = VapiEmulator(EmulatorStore(path=None))
    cwd = workdir(tmp_path / "project")
    with running_server(_one_server(vapi, twilio)) as url:
        yield HeldSandbox(twilio, cast(Sandbox, SimpleNamespace(url=url)), url, cwd)


def kill_while_held(hook: _HoldFirstPurchase, sandbox: Sandbox, cwd: Path, *args: str) -> None:
    """Run `provisioner ARGS` and SIGKILL it while `hook` holds Twilio's purchase answer:
    the number is sold, and the run never hears of it."""
    proc = start_cli(sandbox, cwd, *args)
    try:
        assert hook.held.wait(120), "the run never bought a number"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.stdout:
            proc.stdout.close()
        hook.go.set()
    assert proc.returncode == -signal.SIGKILL


def _one_server(vapi: VapiEmulator, twilio: TwilioEmulator) -> Any:
    """Vapi's and Twilio's fakes on one port, as `sandbox serve` has them."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        if path.startswith(("/2010-04-01/", "/v1/PhoneNumbers")):
            return twilio(environ, start_response)
        return cast(Iterable[bytes], vapi(environ, start_response))

    return app


def test_kill_after_twilio_sold_the_number_buys_it_once(tmp_path: Path) -> None:
    hook = _HoldFirstPurchase()
    with held_sandbox(tmp_path, hook) as box:
        twilio, sandbox, cwd = box.twilio, box.sandbox, box.cwd
        kill_while_held(hook, sandbox, cwd, "apply", BUY, "--auto-approve")
        # Twilio sold it; the state holds only the wish (with the name it was bought under),
        # in the file or in its journal (a killed run's records are folded by the next one).
        state = FileStateStore(cwd / "state/examples/buy-a-number.json").read()
        wish = state.resources["phoneNumber.sf-line"].extra["purchase"]
        assert "number" not in wish and wish["marker"].endswith("phoneNumber.sf-line")
        assert len(twilio.owned()) == 1

        second = cli(sandbox, cwd, "apply", BUY, "--auto-approve")
        assert second.returncode == 0, second.stdout + second.stderr
        assert "bought earlier" in second.stdout
        owned = twilio.owned()
        assert [o["sid"] for o in owned] == hook.sold
        state = json.loads((cwd / "state/examples/buy-a-number.json").read_text())
        record = state["resources"]["phoneNumber.sf-line"]["extra"]["purchase"]
        assert record["sid"] == owned[0]["sid"]
        assert cli(sandbox, cwd, "plan", BUY, "--detailed-exitcode").returncode == 0
