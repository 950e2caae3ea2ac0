"""The apply engine: runs a Plan against the remote, recording every step in state.

- Walks the plan's dependency graph concurrently (`parallelism` workers): a change starts
  as soon as the changes it depends on are done; dependents of a failure are skipped,
  independent work still completes.
- Every single remote change is made durable before the run goes on (`recorder.py`: a
  journal record, group-committed, folded into the state file at the end). Before a
  create, the intent (what identifies the object) is saved; after it, the ID, at once. A
  kill at any instant therefore loses no ID, and the next run adopts instead of duplicating.
- A create whose answer was lost (AmbiguousCreateError) is looked for before being sent
  again.
- An interrupt (Ctrl-C) stops starting new work; requests in flight finish. It reaches
  the client too: a change whose first request has not left yet (waiting for the rate
  limiter, say) is abandoned and reported "not started"; one cut short while waiting to
  retry fails, with state as the requests sent left it.

Never prints: progress goes to `ApplyEvents`. Always returns the (partially) updated state.
"""

from __future__ import annotations

import dataclasses
import heapq
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from provisioner.apply.events import ApplyEvents, ChangeOutcome, NullEvents, Outcome
from provisioner.apply.hooks import ChangeHook, Effects, NoHook
from provisioner.apply.recorder import Recorder, StateWriter
from provisioner.errors import (
    AmbiguousCreateError,
    ProvisionerError,
    RemoteError,
    RemoteTransportError,
    RequestInterrupted,
    StalePlanError,
    StateError,
)
from provisioner.kinds import KINDS, OWNER_MARKER_KEY, ResourceKind
from provisioner.plan.model import Action, Plan, ResourceChange
from provisioner.refresh import ReadClient, creation_intent, find_created, owner_marker
from provisioner.removals import clear_marker
from provisioner.resolve import bind
from provisioner.state.model import (
    ResourceState,
    ResourceStatus,
    StateFile,
)
from provisioner.values import Unknown, contains, hash_secrets

# How many times a create whose outcome was unknown (and not found) is sent again.
_CREATE_ATTEMPTS = 3


class WriteClient(ReadClient, Protocol):
    def create(self, kind: ResourceKind, body: Mapping[str, Any]) -> dict[str, Any]: ...
    def update(
        self, kind: ResourceKind, resource_id: str, body: Mapping[str, Any]
    ) -> dict[str, Any]: ...
    def delete(self, kind: ResourceKind, resource_id: str) -> bool: ...
    def interruptible(self, event: threading.Event) -> AbstractContextManager[None]: ...


@dataclass(frozen=True, slots=True)
class ApplyResult:
    state: StateFile
    outcomes: tuple[ChangeOutcome, ...]
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(o.status is Outcome.DONE for o in self.outcomes)

    def by_status(self, status: Outcome) -> list[ChangeOutcome]:
        return [o for o in self.outcomes if o.status is status]


def apply_plan(
    plan: Plan,
    *,
    client: WriteClient,
    store: StateWriter,
    state: StateFile,
    events: ApplyEvents | None = None,
    parallelism: int = 10,
    interrupt: threading.Event | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    hook: ChangeHook | None = None,
) -> ApplyResult:
    """Execute `plan`. Raises StalePlanError if `state` is not the state it was made from.

    `hook` does the kind-specific work outside Vapi (buying and releasing the Twilio
    numbers of `purchase:` entries: `provisioner.apply.purchases.Purchases`)."""
    if plan.lineage and (plan.lineage != state.lineage or plan.serial != state.serial):
        raise StalePlanError(
            f"the plan was made against state serial {plan.serial} but the state is now at "
            f"serial {state.serial}: plan again"
        )
    events = events or NullEvents()
    interrupt = interrupt or threading.Event()
    recorder = Recorder(store, state)
    runner = _Runner(client, recorder, events, now, hook or NoHook())

    pending = {c.key: c for c in plan.pending()}
    outcomes: dict[str, ChangeOutcome] = {}
    try:
        _run_graph(runner, recorder, events, interrupt, parallelism, client, pending, outcomes)
    finally:
        final = recorder.close()
    ordered = tuple(outcomes[c.key] for c in plan.pending())
    return ApplyResult(final, ordered, interrupted=interrupt.is_set())


def _run_graph(
    runner: _Runner,
    recorder: Recorder,
    events: ApplyEvents,
    interrupt: threading.Event,
    parallelism: int,
    client: WriteClient,
    pending: dict[str, ResourceChange],
    outcomes: dict[str, ChangeOutcome],
) -> None:
    """Run the pending changes, as their dependencies allow; fills `outcomes`.

    O(1) bookkeeping per change (a dependents index and a heap of the ready ones, in plan
    order), so that thousands of changes cost no more each than a few."""
    order = {a: i for i, a in enumerate(pending)}
    waiting_on = {a: {d for d in c.depends_on if d in pending} for a, c in pending.items()}
    dependents: dict[str, list[str]] = {a: [] for a in pending}
    for addr, deps in waiting_on.items():
        for dep in deps:
            dependents[dep].append(addr)
    ready = [order[a] for a, deps in waiting_on.items() if not deps]
    heapq.heapify(ready)
    keys = list(pending)
    running: dict[Future[ChangeOutcome], str] = {}

    def skip_dependents(failed: str) -> None:
        for addr in dependents[failed]:
            # (one already running, after its dependency's result could not be saved,
            # ends by itself)
            if addr not in outcomes and addr not in running.values():
                outcomes[addr] = ChangeOutcome(
                    pending[addr], Outcome.SKIPPED, message=f"{failed} did not complete"
                )
                events.change_finished(outcomes[addr])
                skip_dependents(addr)

    unsaved: list[str] = []  # why the state could not be saved, once it could not

    def start_ready(pool: ThreadPoolExecutor) -> None:
        while not interrupt.is_set() and not unsaved and ready and len(running) < parallelism:
            addr = keys[heapq.heappop(ready)]
            events.change_started(pending[addr])
            running[pool.submit(runner.run, pending[addr])] = addr

    with client.interruptible(interrupt), ThreadPoolExecutor(max(1, parallelism)) as pool:
        while True:
            start_ready(pool)
            if not running:
                break
            done, _ = wait(list(running), timeout=0.2, return_when=FIRST_COMPLETED)
            finished: list[tuple[str, ChangeOutcome]] = []
            for fut in done:
                addr = running.pop(fut)
                outcome = fut.result()
                outcomes[addr] = outcome
                finished.append((addr, outcome))
                if outcome.status is Outcome.DONE:
                    for dependent in dependents[addr]:
                        deps = waiting_on[dependent]
                        deps.discard(addr)
                        if not deps and dependent not in outcomes:
                            heapq.heappush(ready, order[dependent])
            # A result is durable (one group commit for all that finished) before it is
            # reported and before what depends on it starts: a dependent never starts
            # before its dependency is reported done.
            try:
                recorder.sync()
            except StateError as exc:
                # Not durable, so not done; nothing new starts (as when a change's own
                # save fails).
                unsaved.append(str(exc))
            if unsaved:
                finished = [
                    (a, _unsaved(o, unsaved[0]) if o.status is Outcome.DONE else o)
                    for a, o in finished
                ]
                outcomes.update(finished)
            for addr, outcome in finished:
                events.change_finished(outcome)
                if outcome.status not in (Outcome.DONE, Outcome.NOT_STARTED):
                    skip_dependents(addr)  # (dependents of what never began are not started)
    for addr, change in pending.items():
        if addr not in outcomes:
            outcomes[addr] = ChangeOutcome(change, Outcome.NOT_STARTED)


def _unsaved(outcome: ChangeOutcome, why: str) -> ChangeOutcome:
    return dataclasses.replace(outcome, status=Outcome.FAILED, message=why, live=None)


class _Runner:
    def __init__(
        self,
        client: WriteClient,
        recorder: Recorder,
        events: ApplyEvents,
        now: Callable[[], datetime],
        hook: ChangeHook,
    ) -> None:
        self.client = client
        self.recorder = recorder
        self.events = events
        self.now = now
        self.hook = hook
        # Per change (each runs on one thread): whether a request of it already had an
        # effect, so that an interrupt before the next one cannot count as "not started".
        self._local = threading.local()
        self.fx = Effects(
            state=lambda: recorder.state,
            mutate=recorder.mutate,
            note=events.note,
            began=lambda: setattr(self._local, "begun", True),
        )

    def run(self, change: ResourceChange) -> ChangeOutcome:
        start = time.monotonic()
        self._local.begun = False
        try:
            live = self._dispatch(change)
        except RequestInterrupted as exc:
            status = Outcome.FAILED if exc.sent or self._local.begun else Outcome.NOT_STARTED
            message = str(exc) if status is Outcome.FAILED else "interrupted before it was sent"
            return ChangeOutcome(change, status, message=message, elapsed=time.monotonic() - start)
        except ProvisionerError as exc:
            return ChangeOutcome(
                change, Outcome.FAILED, message=str(exc), elapsed=time.monotonic() - start
            )
        rid = str(live["id"]) if live and "id" in live else change.id
        return ChangeOutcome(
            change, Outcome.DONE, id=rid, elapsed=time.monotonic() - start, live=live
        )

    def _dispatch(self, change: ResourceChange) -> dict[str, Any] | None:
        if self.hook.run(self.fx, change):
            return None
        kind = KINDS[change.kind]
        if change.action is Action.CREATE:
            return self._create(change, kind)
        if change.action is Action.UPDATE:
            return self._update(change, kind)
        if change.action is Action.DELETE:
            self._delete(change, kind)
            return None
        if change.action is Action.FORGET:
            self._forget(change, kind)
            return None
        if change.action is Action.REPLACE:
            # (e.g. another number bought while the old one still answers in Vapi)
            self.hook.before_replace(self.fx, change, self._bound(change))
            # Delete first: a phone number's digits (and similar identities) can be owned
            # by one object at a time. The old ID leaves state only once it is gone.
            self._delete(change, kind)
            return self._create(change, kind)
        # (a hook's own action, such as a release, with no hook to run it)
        raise ProvisionerError(f"{change.label}: this run cannot {change.action.value} it")

    def _bound(self, change: ResourceChange) -> dict[str, Any]:
        body = bind(change.body or {}, self.recorder.ids())
        if contains(body, Unknown):
            raise ProvisionerError(f"{change.address}: a referenced resource has no ID yet")
        return dict(body)

    def _create(self, change: ResourceChange, kind: ResourceKind) -> dict[str, Any]:
        body = self.hook.create_body(self.fx, change, self._bound(change))
        lineage = self.recorder.state.lineage
        send = (
            _with_marker(body, change.address, self.recorder.state) if kind.owner_marker else body
        )
        intent = creation_intent(
            kind,
            send,
            change.address,
            lineage,
            self.now(),
            applied=hash_secrets(body, self.recorder.state.hash_key),
            depends_on=change.references,
        )

        # What the hook keeps (a bought number) stays whatever happens to the Vapi side.
        kept = self.hook.carried(self.fx, change.address)

        def record_intent(state: StateFile) -> None:
            state.resources[change.address] = ResourceState(
                kind=kind.name,
                id=None,
                status=ResourceStatus.CREATING,
                intent=intent,
                extra=dict(kept),
            )

        self.recorder.mutate(record_intent)
        try:
            created = self._send_create(change, kind, send, intent)
        except RemoteError as exc:
            if definitely_not_created(exc):
                # The API refused it: no object can exist, so the intent goes too.
                def forget_intent(state: StateFile) -> None:
                    if kept:
                        state.resources[change.address] = ResourceState(
                            kind=kind.name, id=None, status=ResourceStatus.CREATING, extra=kept
                        )
                    else:
                        state.resources.pop(change.address, None)

                self.recorder.mutate(forget_intent, wait=False)
            raise

        def record_created(state: StateFile) -> None:
            state.resources[change.address] = ResourceState(
                kind=kind.name,
                id=str(created["id"]),
                status=ResourceStatus.CREATED,
                applied=hash_secrets(body, state.hash_key),
                depends_on=list(change.references),
                remote_updated_at=created.get("updatedAt"),
                extra={**kept, **_outputs(created)},
            )
            if state.org_id is None and isinstance(created.get("orgId"), str):
                state.org_id = created["orgId"]  # the wrong-org guard's reference (#12)

        self.recorder.mutate(record_created, wait=False)
        self.hook.after_create(self.fx, change)
        return created

    def _send_create(
        self,
        change: ResourceChange,
        kind: ResourceKind,
        send: dict[str, Any],
        intent: Mapping[str, Any],
    ) -> dict[str, Any]:
        """POST, and after an ambiguous outcome look for the object before sending again.

        Once one attempt was ambiguous the object may exist whatever happens next, so any
        later failure (the lookup failing or cut short, a POST refused after "not found")
        is raised as AmbiguousCreateError: the intent stays in state and the next run's
        refresh looks for the object before anything is created again.
        """
        unknown: AmbiguousCreateError | None = None
        for attempt in range(1, _CREATE_ATTEMPTS + 1):
            try:
                return self.client.create(kind, send)
            except AmbiguousCreateError as exc:
                unknown = exc
            except RemoteError as exc:
                if unknown is None:
                    raise  # the first POST: its answer is the whole truth
                raise _still_unknown(unknown, f"sending it again failed: {exc.message}") from exc
            self.events.note(
                change.address,
                f"create outcome unknown ({unknown.message}); looking for it before retrying",
            )
            try:
                listed = self.client.list_all(kind)
            except RemoteError as exc:
                raise _still_unknown(unknown, f"looking for it failed: {exc.message}") from exc
            found = find_created(kind, intent, listed.items, self.recorder.owned_ids())
            if found is not None:
                self.events.note(change.address, f"found it ({found['id']}); adopting")
                return found
            if not listed.complete:
                why = f"the list of {kind.label}s stopped before its end, so it may exist unseen"
                raise _still_unknown(unknown, why)
            if attempt == _CREATE_ATTEMPTS:
                raise _still_unknown(unknown, f"it was not found after {attempt} attempts")
            self.events.note(change.address, "not found; creating again")
        raise AssertionError("unreachable")

    def _update(self, change: ResourceChange, kind: ResourceKind) -> dict[str, Any]:
        # (a deferred update's object was made by this run's create of the same address)
        rid = change.id or self.recorder.ids().get(change.address)
        if rid is None:
            raise ProvisionerError(f"{change.address}: its create did not complete")
        body = self._bound(change)
        # PATCH replaces nested objects whole, so send each changed top-level field entire.
        keys = {str(f.path[0]) for f in change.fields if f.path}
        if kind.discriminator and kind.discriminator in body:
            keys.add(kind.discriminator)
        keys |= kind.update_whole_fields  # (the Update DTO requires them: a squad's members)
        patch = {k: body[k] for k in body if k in keys}
        if kind.owner_marker and "metadata" in patch:
            patch = _with_marker(patch, change.address, self.recorder.state)
        obj = self.client.update(kind, rid, patch)

        def record(state: StateFile) -> None:
            prev = state.resources.get(change.address)
            state.resources[change.address] = ResourceState(
                kind=kind.name,
                id=rid,
                status=ResourceStatus.CREATED,
                applied=hash_secrets(body, state.hash_key),
                depends_on=list(change.references),
                remote_updated_at=obj.get("updatedAt"),
                extra={**(prev.extra if prev else {}), **_outputs(obj)},
            )

        self.recorder.mutate(record, wait=False)
        return obj

    def _forget(self, change: ResourceChange, kind: ResourceKind) -> None:
        """`removed:`: the marker off the live object first (a run that dies after it
        still holds the entry, and does it again), then the entry out of the state."""
        if change.id is not None and clear_marker(self.client, kind, change.id):
            self._local.begun = True
            self.fx.note(change.address, "cleared its ownership marker")

        def forget(state: StateFile) -> None:
            state.resources.pop(change.address, None)

        self.recorder.mutate(forget)

    def _delete(self, change: ResourceChange, kind: ResourceKind) -> None:
        if change.id is not None:
            try:
                self.client.delete(kind, change.id)
            except RemoteError as exc:
                if exc.status == 409:
                    # (`tool_pinned`, `assistant_pinned`): kept in state, so nothing is lost
                    raise ProvisionerError(
                        f"{change.address}: Vapi refused to delete {kind.label} {change.id} "
                        f"because something still pins it ({exc.message}); remove that "
                        "reference (an assistant's model.toolRefs, say) and apply again; "
                        "it stays in state until then"
                    ) from exc
                raise
            self._local.begun = True
        kept = self.hook.after_delete(self.fx, change)

        def forget(state: StateFile) -> None:
            if kept:
                # (a replace's bought number, kept for the new object)
                state.resources[change.address] = ResourceState(
                    kind=kind.name, id=None, status=ResourceStatus.CREATING, extra=kept
                )
            else:
                state.resources.pop(change.address, None)

        self.recorder.mutate(forget, wait=False)


def definitely_not_created(exc: RemoteError) -> bool:
    """The API answered a create with a client error (not 429), or it never got it."""
    if isinstance(exc, AmbiguousCreateError):
        return False
    if isinstance(exc, RemoteTransportError):
        return not exc.sent
    return exc.status is not None and 400 <= exc.status < 500 and exc.status != 429


def _still_unknown(first: AmbiguousCreateError, why: str) -> AmbiguousCreateError:
    return AmbiguousCreateError(
        f"create outcome unknown ({first.message}) and {why}; its intent stays in state, "
        "so the next apply looks for it before creating it",
        method=first.method,
        path=first.path,
        status=first.status,
    )


def _with_marker(body: Mapping[str, Any], address: str, state: StateFile) -> dict[str, Any]:
    meta = dict(body.get("metadata") or {})
    meta[OWNER_MARKER_KEY] = owner_marker(address, state.lineage, state.owner)
    return {**body, "metadata": meta}


def _outputs(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What the API assigned that a person needs later (a Vapi number's digits, SIP URI)."""
    outputs = {k: obj[k] for k in ("number", "sipUri") if obj.get(k)}
    return {"outputs": outputs} if outputs else {}
