"""A create whose outcome is unknown is never forgotten: whatever goes wrong after an
ambiguous POST (the lookup refused, unreachable or cut short, a second POST refused), the
intent stays in state and the next apply adopts the object instead of creating another.

The engine runs against the emulator in-process, with its fault script choosing the exact
sequence of outcomes; retry sleeps are skipped.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner import operations
from provisioner.apply.engine import ApplyResult, apply_plan
from provisioner.apply.events import Outcome
from provisioner.emulator import EmulatorStore, FaultProfile, SandboxTransport, VapiEmulator
from provisioner.errors import ProvisionerError
from provisioner.remote.client import VapiClient
from provisioner.settings import Settings
from provisioner.state.model import ResourceStatus

TOKEN = "apply-test-token"
MANIFEST = Path("examples/small.yaml")
ASSISTANT = "assistant.support"


def apply_once(app: VapiEmulator, project: Path, faults: FaultProfile | None = None) -> ApplyResult:
    """Plan, then apply; `faults` (aimed at the apply's requests) start after the plan."""
    settings = Settings(environ={}, state_path=project / "state" / "small.json")
    store = operations.open_state(settings, MANIFEST)
    client = VapiClient(
        "http://sandbox", TOKEN, transport=SandboxTransport(app=app), sleep=lambda s: None
    )
    with client:
        result, diags = operations.plan(settings, MANIFEST, client, store=store)
        assert result is not None, diags
        if faults is not None:
            app.set_faults(faults)
        return apply_plan(result.plan, client=client, store=store, state=result.state)


def ours(app: VapiEmulator) -> list[dict[str, object]]:
    return [o for o in app.store.objects("assistant") if o.get("name") == "Acme Support"]


@pytest.mark.parametrize(
    ("script", "words"),
    [
        # The create is performed but answered 502; the lookup is refused (403) ...
        (("POST:ambiguous", "GET:403"), "looking for it failed: 403"),
        # ... or cannot connect at all (every retry refused).
        (("POST:ambiguous", "GET:refuse*8"), "looking for it failed: cannot connect"),
        # The connection dropped after the create; the lookup answered 401.
        (("POST:ambiguous-drop", "GET:401"), "looking for it failed: 401"),
    ],
)
def test_a_failed_lookup_keeps_the_intent_and_the_rerun_adopts(
    project: Path, script: tuple[str, ...], words: str
) -> None:
    app = VapiEmulator(token=TOKEN)
    first = apply_once(app, project, FaultProfile(script=script))

    failed = first.by_status(Outcome.FAILED)
    assert [o.change.address for o in failed] == [ASSISTANT]
    assert words in failed[0].message and "next apply looks for it" in failed[0].message
    assert [o.change.address for o in first.by_status(Outcome.SKIPPED)] == ["phoneNumber.test-line"]
    entry = first.state.resources[ASSISTANT]
    assert entry.status is ResourceStatus.CREATING and entry.intent
    assert len(ours(app)) == 1  # the first POST did create it

    app.set_faults(FaultProfile())
    second = apply_once(app, project)
    assert second.ok
    [assistant] = ours(app)
    assert second.state.resources[ASSISTANT].id == assistant["id"]
    assert second.state.resources[ASSISTANT].status is ResourceStatus.CREATED


def test_a_second_post_refused_after_not_found_keeps_the_intent(project: Path) -> None:
    # A 502 the client cannot tell from "performed, then 502"; not found; the resend 400s.
    app = VapiEmulator(token=TOKEN)
    first = apply_once(app, project, FaultProfile(script=("POST:502", "POST:400")))
    [failed] = first.by_status(Outcome.FAILED)
    assert "sending it again failed: 400" in failed.message
    assert first.state.resources[ASSISTANT].status is ResourceStatus.CREATING

    app.set_faults(FaultProfile())
    assert apply_once(app, project).ok
    assert len(ours(app)) == 1


def test_a_lookup_listing_cut_short_is_not_taken_as_not_found(project: Path) -> None:
    # 1000 newer assistants sharing one millisecond fill every page: the listing makes no
    # progress past them, so it ends incomplete, and ours (older) is not in it.
    store = EmulatorStore()
    stamp = "2099-01-01T00:00:00.000Z"
    with store.transaction() as tx:
        for i in range(1000):
            other = {"id": f"other-{i}", "name": f"Other {i}", "orgId": store.org_id}
            tx.put("assistant", {**other, "createdAt": stamp, "updatedAt": stamp})
    app = VapiEmulator(store, token=TOKEN)
    first = apply_once(app, project, FaultProfile(script=("POST:ambiguous",)))
    [failed] = first.by_status(Outcome.FAILED)
    assert "stopped before its end" in failed.message
    assert first.state.resources[ASSISTANT].status is ResourceStatus.CREATING
    assert len(ours(app)) == 1  # not created a second time
    # The next plan's refresh meets the same cut-short listing: it refuses to plan a
    # create it cannot rule out, rather than duplicate the assistant.
    with pytest.raises(ProvisionerError, match="interrupted while creating it"):
        apply_once(app, project)
    assert len(ours(app)) == 1


def test_a_create_refused_at_once_leaves_no_intent(project: Path) -> None:
    app = VapiEmulator(token=TOKEN)
    first = apply_once(app, project, FaultProfile(script=("POST:400",)))
    [failed] = first.by_status(Outcome.FAILED)
    assert failed.message.startswith("400")
    assert ASSISTANT not in first.state.resources
    assert ours(app) == []
