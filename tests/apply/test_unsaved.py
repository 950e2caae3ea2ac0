"""A store that stops accepting writes mid-apply (a remote backend whose lock was taken
over, say): the apply still returns and reports, the changes whose save failed are failed,
not done, and nothing new starts. Emulator in-process; the store is a whole-state store
(no journal), so its writes are group-committed."""

from __future__ import annotations

import threading
from pathlib import Path

from provisioner import operations
from provisioner.apply.engine import apply_plan
from provisioner.apply.events import Outcome
from provisioner.emulator import SandboxTransport, VapiEmulator
from provisioner.errors import StateConflictError
from provisioner.remote.client import VapiClient
from provisioner.settings import Settings
from provisioner.state.model import StateFile
from tests.conftest import SECRET

TOKEN = "apply-test-token"
MANIFEST = Path("examples/full.yaml")


class RefusingStore:
    """Keeps what it is given in memory; refuses every write after the first `accept`."""

    def __init__(self, state: StateFile, accept: int) -> None:
        self.stored = state
        self.accept = accept
        self.writes = 0
        self.lock = threading.Lock()

    def write(self, state: StateFile) -> StateFile:
        with self.lock:
            self.writes += 1
            if self.writes > self.accept:
                raise StateConflictError("the state's version changed (test)")
            self.stored = StateFile.from_dict(state.to_dict())
            self.stored.serial = state.serial + 1
            return self.stored


def test_a_save_that_fails_fails_its_changes_and_stops_new_ones(project: Path) -> None:
    settings = Settings(
        environ={"TWILIO_AUTH_TOKEN": SECRET}, state_path=project / "state" / "full.json"
    )
    app = VapiEmulator(token=TOKEN)
    client = VapiClient("http://sandbox", TOKEN, transport=SandboxTransport(app=app))
    with client:
        result, diags = operations.plan(settings, MANIFEST, client)
        assert result is not None, diags
        store = RefusingStore(result.state, accept=3)
        applied = apply_plan(
            result.plan, client=client, store=store, state=result.state, parallelism=2
        )
    failed = applied.by_status(Outcome.FAILED)
    assert failed and all("version changed" in (o.message or "") for o in failed)
    # What was reported done was saved: every done change's ID is in the stored state.
    done = applied.by_status(Outcome.DONE)
    stored_ids = {a for a, r in store.stored.resources.items() if r.id}
    assert {o.change.address for o in done} <= stored_ids
    # Nothing started once saving failed: most of the 14 changes never began, and no
    # create was sent for them.
    not_started = applied.by_status(Outcome.NOT_STARTED) + applied.by_status(Outcome.SKIPPED)
    assert len(not_started) >= 14 - len(done) - len(failed) > 0
    assert app.stats()["by_method"].get("POST", 0) <= len(done) + len(failed)
