"""Ctrl-C during an apply held up by a rate limit: the changes already handed to the
workers but still waiting to send are abandoned ("not started"), no request is sent after
the interrupt, and state holds exactly what was done. Emulator in-process, real sleeps."""

from __future__ import annotations

import threading
from pathlib import Path

from provisioner import operations
from provisioner.apply.engine import ApplyResult, apply_plan
from provisioner.apply.events import Outcome
from provisioner.emulator import FaultProfile, SandboxTransport, VapiEmulator
from provisioner.remote.client import RequestEvent, VapiClient
from provisioner.settings import Settings
from provisioner.state.model import ResourceStatus
from tests.conftest import SECRET

TOKEN = "apply-test-token"
MANIFEST = Path("examples/full.yaml")


def apply_once(
    app: VapiEmulator,
    project: Path,
    interrupt: threading.Event | None = None,
    faults: FaultProfile | None = None,
) -> tuple[ApplyResult, VapiClient, list[int]]:
    """Plan, then apply; `faults` (aimed at the apply's requests) start after the plan."""
    settings = Settings(
        environ={"TWILIO_AUTH_TOKEN": SECRET}, state_path=project / "state" / "full.json"
    )
    store = operations.open_state(settings, MANIFEST)
    at_interrupt: list[int] = []

    def on_event(event: RequestEvent) -> None:
        # The first wait (a 429's Retry-After, or the limiter holding a request back)
        # is when the user presses Ctrl-C.
        if interrupt is not None and not interrupt.is_set():
            at_interrupt.append(int(app.stats()["requests"]))
            interrupt.set()

    client = VapiClient(
        "http://sandbox", TOKEN, transport=SandboxTransport(app=app), on_event=on_event
    )
    with client:
        result, diags = operations.plan(settings, MANIFEST, client, store=store)
        assert result is not None, diags
        if faults is not None:
            app.set_faults(faults)
        applied = apply_plan(
            result.plan, client=client, store=store, state=result.state, interrupt=interrupt
        )
        return applied, client, at_interrupt


def test_ctrl_c_abandons_changes_waiting_on_the_rate_limit(project: Path) -> None:
    # One request per 10 s: the first create passes, the others are answered 429 with
    # `Retry-After: 10` and wait; without the interrupt reaching the client they would
    # be sent again once the wait is over.
    app = VapiEmulator(token=TOKEN)
    interrupt = threading.Event()
    first, client, at_interrupt = apply_once(
        app, project, interrupt, FaultProfile(rate_limit_rps=0.1)
    )

    assert first.interrupted and at_interrupt
    stats = client.stats
    assert stats.retries == 0  # nothing refused was sent again
    assert stats.requests == app.stats()["requests"]
    done = first.by_status(Outcome.DONE)
    assert len(done) == app.stats()["by_status"].get("201", 0) >= 1
    assert first.by_status(Outcome.FAILED) == [] and first.by_status(Outcome.SKIPPED) == []
    assert len(first.by_status(Outcome.NOT_STARTED)) == 14 - len(done)
    # State holds what was done, and nothing half-begun (no intent left behind).
    assert {a for a, r in first.state.resources.items()} == {o.change.address for o in done}
    assert all(r.status is ResourceStatus.CREATED for r in first.state.resources.values())

    app.set_faults(FaultProfile())
    second, _, _ = apply_once(app, project)
    assert second.ok
    assert sum(app.store.counts().values()) == 14
