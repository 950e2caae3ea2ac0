"""The apply engine: runs a Plan against the remote, recording every step in state.

- Walks the plan's dependency graph concurrently (`parallelism` workers): a change starts
  as soon as the changes it depends on are done; dependents of a failure are skipped,
  independent work still completes.
- State is saved after every single remote change. Before a create, the intent (what
  identifies the object) is saved; after it, the ID, at once. A kill at any instant
  therefore loses no ID, and the next run adopts instead of duplicating.
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
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from provisioner.apply.events import ApplyEvents, ChangeOutcome, NullEvents, Outcome
from provisioner.errors import (
    AmbiguousCreateError,
    ProvisionerError,
    RemoteError,
    RemoteTransportError,
    RequestInterrupted,
    StalePlanError,
)
from provisioner.kinds import KINDS, OWNER_MARKER_KEY, ResourceKind
from provisioner.plan.model import Action, Plan, ResourceChange
from provisioner.plan.purchase import purchase_marker, same_purchase
from provisioner.refresh import ReadClient, creation_intent, find_created, owner_marker
from provisioner.resolve import bind
from provisioner.state.model import ResourceState, ResourceStatus, StateFile
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


class StateWriter(Protocol):
    def write(self, state: StateFile) -> StateFile: ...


class NumberVendor(Protocol):
    """Buys and releases Twilio numbers (`provisioner.purchasing.Twilio`)."""

    def credentials(self, body: Mapping[str, Any]) -> tuple[str, str]: ...
    def client(self, account_sid: str, token: str | None = None) -> Any: ...
    def find_bought(self, account_sid: str, marker: str) -> Any: ...
    def buy(self, account_sid: str, purchase: Mapping[str, Any], marker: str) -> Any: ...
    def release(self, account_sid: str, sid: str) -> bool: ...


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


class _Recorder:
    """The state being applied, guarded by one lock; every mutation is persisted at once."""

    def __init__(self, store: StateWriter, state: StateFile) -> None:
        self._store = store
        self._state = state
        self._lock = threading.Lock()

    @property
    def state(self) -> StateFile:
        return self._state

    def ids(self) -> dict[str, str]:
        with self._lock:
            return {
                a: r.id
                for a, r in self._state.resources.items()
                if r.id and r.status is ResourceStatus.CREATED
            }

    def owned_ids(self) -> set[str | None]:
        with self._lock:
            return {r.id for r in self._state.resources.values() if r.id}

    def mutate(self, fn: Callable[[StateFile], None]) -> None:
        with self._lock:
            fn(self._state)
            self._state = self._store.write(self._state)


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
    numbers: NumberVendor | None = None,
) -> ApplyResult:
    """Execute `plan`. Raises StalePlanError if `state` is not the state it was made from.

    `numbers` buys the Twilio numbers of `purchase:` entries (and releases them on delete);
    a plan that buys or releases one fails those changes without it."""
    if plan.lineage and (plan.lineage != state.lineage or plan.serial != state.serial):
        raise StalePlanError(
            f"the plan was made against state serial {plan.serial} but the state is now at "
            f"serial {state.serial}: plan again"
        )
    events = events or NullEvents()
    interrupt = interrupt or threading.Event()
    recorder = _Recorder(store, state)
    runner = _Runner(client, recorder, events, now, numbers)

    pending = {c.address: c for c in plan.pending()}
    waiting_on = {a: {d for d in c.depends_on if d in pending} for a, c in pending.items()}
    outcomes: dict[str, ChangeOutcome] = {}
    running: dict[Future[ChangeOutcome], str] = {}

    def skip_dependents(failed: str) -> None:
        for addr, deps in waiting_on.items():
            if failed in deps and addr not in outcomes:
                outcomes[addr] = ChangeOutcome(
                    pending[addr], Outcome.SKIPPED, message=f"{failed} did not complete"
                )
                events.change_finished(outcomes[addr])
                skip_dependents(addr)

    with client.interruptible(interrupt), ThreadPoolExecutor(max(1, parallelism)) as pool:
        while True:
            if not interrupt.is_set():
                started = set(running.values())
                ready = [
                    a
                    for a in pending
                    if a not in outcomes and a not in started and not waiting_on[a]
                ]
                for addr in ready[: max(0, parallelism - len(running))]:
                    events.change_started(pending[addr])
                    running[pool.submit(runner.run, pending[addr])] = addr
            if not running:
                break
            done, _ = wait(list(running), timeout=0.2, return_when=FIRST_COMPLETED)
            for fut in done:
                addr = running.pop(fut)
                outcome = fut.result()
                outcomes[addr] = outcome
                events.change_finished(outcome)
                if outcome.status is Outcome.DONE:
                    for deps in waiting_on.values():
                        deps.discard(addr)
                elif outcome.status is not Outcome.NOT_STARTED:
                    skip_dependents(addr)  # (dependents of what never began are not started)
    for addr, change in pending.items():
        if addr not in outcomes:
            outcomes[addr] = ChangeOutcome(change, Outcome.NOT_STARTED)
    ordered = tuple(outcomes[c.address] for c in plan.pending())
    return ApplyResult(recorder.state, ordered, interrupted=interrupt.is_set())


class _Runner:
    def __init__(
        self,
        client: WriteClient,
        recorder: _Recorder,
        events: ApplyEvents,
        now: Callable[[], datetime],
        numbers: NumberVendor | None = None,
    ) -> None:
        self.client = client
        self.recorder = recorder
        self.events = events
        self.now = now
        self.numbers = numbers
        # Per change (each runs on one thread): whether a request of it already had an
        # effect, so that an interrupt before the next one cannot count as "not started".
        self._local = threading.local()

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
        kind = KINDS[change.kind]
        if change.action is Action.CREATE:
            return self._create(change, kind)
        if change.action is Action.UPDATE:
            return self._update(change, kind)
        if change.action is Action.DELETE:
            self._delete(change, kind)
            return None
        if change.action is Action.REPLACE:
            if _buys(change):
                # Another number: bought while the old one still answers in Vapi, so that
                # whatever can stop a purchase (no price shown, no Twilio access or
                # credentials, nothing for sale) leaves the old number working.
                self._buy(change, self._bound(change))
            # Delete first: a phone number's digits (and similar identities) can be owned
            # by one object at a time. The old ID leaves state only once it is gone.
            self._delete(change, kind)
            return self._create(change, kind)
        return None

    def _bound(self, change: ResourceChange) -> dict[str, Any]:
        body = bind(change.body or {}, self.recorder.ids())
        if contains(body, Unknown):
            raise ProvisionerError(f"{change.address}: a referenced resource has no ID yet")
        return dict(body)

    def _create(self, change: ResourceChange, kind: ResourceKind) -> dict[str, Any]:
        body = self._bound(change)
        if _buys(change):
            body["number"] = self._buy(change, body)  # (a replace's: bought already)
        if change.purchase is not None:
            # Numbers this one replaced go before the new one is imported: a failed
            # release fails the change, so the next run (a create again) retries it.
            self._finish_replaced(change)
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

        # A bought number stays recorded whatever happens to the Vapi side.
        kept = self._bought(change.address)

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
            if _definitely_not_created(exc):
                # The API refused it: no object can exist, so the intent goes too.
                def forget_intent(state: StateFile) -> None:
                    if kept:
                        state.resources[change.address] = ResourceState(
                            kind=kind.name, id=None, status=ResourceStatus.CREATING, extra=kept
                        )
                    else:
                        state.resources.pop(change.address, None)

                self.recorder.mutate(forget_intent)
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

        self.recorder.mutate(record_created)
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
        assert change.id is not None
        body = self._bound(change)
        # PATCH replaces nested objects whole, so send each changed top-level field entire.
        keys = {str(f.path[0]) for f in change.fields if f.path}
        if kind.discriminator and kind.discriminator in body:
            keys.add(kind.discriminator)
        patch = {k: body[k] for k in body if k in keys}
        if kind.owner_marker and "metadata" in patch:
            patch = _with_marker(patch, change.address, self.recorder.state)
        obj = self.client.update(kind, change.id, patch)
        rid = change.id

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

        self.recorder.mutate(record)
        return obj

    def _delete(self, change: ResourceChange, kind: ResourceKind) -> None:
        if change.id is not None:
            self.client.delete(kind, change.id)
            self._local.begun = True
        kept = self._bought(change.address)
        if change.action is Action.DELETE and kept:
            step = change.purchase or {}

            # Out of Vapi first (so no call is routed to a released number), then
            # released; the entry stays (without a Vapi ID) until Twilio confirms.
            def vapi_gone(state: StateFile) -> None:
                state.resources[change.address] = ResourceState(
                    kind=kind.name, id=None, status=ResourceStatus.CREATING, extra=kept
                )

            self.recorder.mutate(vapi_gone)
            self._finish_replaced(change)
            if step.get("action") == "release" and "purchase" in kept:
                self._release(change, kept["purchase"])
            kept = {}

        def forget(state: StateFile) -> None:
            if kept:
                # A replace keeps the bought number for the new object.
                state.resources[change.address] = ResourceState(
                    kind=kind.name, id=None, status=ResourceStatus.CREATING, extra=kept
                )
            else:
                state.resources.pop(change.address, None)

        self.recorder.mutate(forget)

    # -- numbers bought from Twilio ----------------------------------------------------

    def _bought(self, address: str) -> dict[str, Any]:
        """What state records of the numbers bought for `address`: `purchase` (the one it
        has) and `replaced` (ones it had, still to be released), each only if present."""
        rs = self.recorder.state.resources.get(address)
        extra = rs.extra if rs is not None else {}
        bought = extra.get("purchase")
        out: dict[str, Any] = {"purchase": dict(bought)} if isinstance(bought, Mapping) else {}
        if replaced := _replaced(extra):
            out["replaced"] = replaced
        return out

    def _vendor(self, change: ResourceChange, doing: str) -> NumberVendor:
        if self.numbers is None:
            raise ProvisionerError(f"{change.address}: {doing} a number needs Twilio access")
        return self.numbers

    def _buy(self, change: ResourceChange, body: Mapping[str, Any]) -> str:
        """Buy the number a `purchase:` entry asks for; returns it (E.164).

        State records the wish (with the marker the number is bought under) before the
        request and the number with its SID right after, so a crash at any point is
        resolved by the next run: it finds the number by its marker instead of buying
        another. The entry's Vapi ID is kept meanwhile (a replace buys before it deletes).
        A number bought earlier for other criteria joins `replaced`, to be released (if
        `purchase.release`) or let go once the new one is bought (`_finish_replaced`)."""
        from provisioner.purchasing import PurchaseError

        wanted = change.purchase or {}
        previous = self.recorder.state.resources.get(change.address)
        prior = self._bought(change.address).get("purchase") or {}
        if prior.get("number") and same_purchase(prior, wanted):
            return str(prior["number"])
        numbers = self._vendor(change, "buying")
        replaced = _replaced(previous.extra if previous else {})
        if prior.get("number"):
            replaced.append(dict(prior))
        self._local.begun = True  # Twilio requests are not interruptible: they go out
        account, token = numbers.credentials(body)
        numbers.client(account, token)
        died = str(prior["marker"]) if prior.get("marker") and not prior.get("number") else None
        if died and same_purchase(prior, wanted):
            marker = died  # the wish of a run that died: look under its name
        else:
            if died:
                # A run that died wishing for other criteria may have bought that number:
                # it is replaced like any other, never adopted for these criteria.
                earlier = numbers.find_bought(str(prior.get("account") or account), died)
                if earlier is not None:
                    replaced.append({**prior, "number": earlier.phone_number, "sid": earlier.sid})
            last_sid = replaced[-1].get("sid") if replaced else None
            marker = purchase_marker(
                change.address,
                self.recorder.state.lineage,
                wanted,
                str(last_sid) if last_sid else None,
            )
        record = {
            **{
                k: v
                for k, v in wanted.items()
                if k not in ("action", "monthly", "currency", "replaces")
            },
            "account": account,
            "marker": marker,
        }

        def record_wish(state: StateFile) -> None:
            state.resources[change.address] = _recording(
                state.resources.get(change.address), record, replaced
            )

        def forget_wish(state: StateFile) -> None:
            # Nothing was bought: the state is as it was before this purchase.
            if previous is None:
                state.resources.pop(change.address, None)
            else:
                state.resources[change.address] = previous

        self.recorder.mutate(record_wish)
        bought = numbers.find_bought(account, marker)
        if bought is not None:
            self.events.note(change.address, f"found {bought.phone_number}, bought earlier")
        else:
            if wanted.get("monthly") is None:
                # Nothing that costs money happens unless the plan showed the price.
                self.recorder.mutate(forget_wish)
                raise PurchaseError(
                    "not buying a number: the plan could not show its price (Twilio's "
                    "pricing was not reachable); plan again when it is"
                )
            self.events.note(change.address, "buying a number from Twilio")
            try:
                bought = numbers.buy(account, wanted, marker)
            except AmbiguousCreateError:
                bought = numbers.find_bought(account, marker)
                if bought is None:
                    raise
            except ProvisionerError as exc:
                if not isinstance(exc, RemoteError) or _definitely_not_created(exc):
                    self.recorder.mutate(forget_wish)
                raise
            self.events.note(change.address, f"bought {bought.phone_number} ({bought.sid})")
        done = {**record, "number": bought.phone_number, "sid": bought.sid}

        def record_bought(state: StateFile) -> None:
            state.resources[change.address] = _recording(
                state.resources.get(change.address), done, replaced
            )

        self.recorder.mutate(record_bought)
        return str(bought.phone_number)

    def _finish_replaced(self, change: ResourceChange) -> None:
        """The numbers bought before the current one are released at Twilio (with
        `purchase.release`) or left in the account, and forgotten one by one. One that
        fails to release stays in `replaced` (the change fails; the next run retries)."""
        release = bool((change.purchase or {}).get("release"))
        failed: ProvisionerError | None = None
        for old in self._bought(change.address).get("replaced", []):
            if release:
                try:
                    self._release(change, old)
                except ProvisionerError as exc:
                    failed = failed or exc
                    continue
            else:
                self.events.note(
                    change.address,
                    f"{old.get('number')} stays in your Twilio account "
                    "(purchase.release is not set)",
                )

            def forget_old(state: StateFile, old: Mapping[str, Any] = old) -> None:
                entry = state.resources[change.address]
                extra = {k: v for k, v in entry.extra.items() if k != "replaced"}
                if left := [r for r in _replaced(entry.extra) if r != old]:
                    extra["replaced"] = left
                state.resources[change.address] = dataclasses.replace(entry, extra=extra)

            self.recorder.mutate(forget_old)
        if failed is not None:
            raise failed

    def _release(self, change: ResourceChange, bought: Mapping[str, Any]) -> None:
        numbers = self._vendor(change, "releasing")
        account = str(bought.get("account") or "")
        self._local.begun = True
        numbers.client(account)
        numbers.release(account, str(bought["sid"]))
        self.events.note(change.address, f"released {bought.get('number')} at Twilio")


def _buys(change: ResourceChange) -> bool:
    """The change buys a number at Twilio (its plan showed `will buy`)."""
    return change.purchase is not None and change.purchase.get("action") == "buy"


def _replaced(extra: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The numbers an entry bought before its current one and has not let go yet (a
    list; one mapping in state written before there could be several)."""
    replaced = extra.get("replaced")
    if isinstance(replaced, Mapping):
        return [dict(replaced)]
    if isinstance(replaced, list):
        return [dict(r) for r in replaced if isinstance(r, Mapping)]
    return []


def _recording(
    entry: ResourceState | None, purchase: Mapping[str, Any], replaced: list[dict[str, Any]]
) -> ResourceState:
    """`entry` with its purchase record (and the numbers it replaced) set; the rest of
    the entry, a live Vapi ID included, as it was."""
    extra = {k: v for k, v in (entry.extra if entry else {}).items() if k != "replaced"}
    extra["purchase"] = dict(purchase)
    if replaced:
        extra["replaced"] = [dict(r) for r in replaced]
    if entry is None:
        return ResourceState(
            kind="phoneNumber", id=None, status=ResourceStatus.CREATING, extra=extra
        )
    return dataclasses.replace(entry, extra=extra)


def _definitely_not_created(exc: RemoteError) -> bool:
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
