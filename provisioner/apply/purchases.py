"""The purchase saga: the Twilio side of applying a phone number with `purchase:`.

The apply engine calls it through its `ChangeHook` at fixed points of a change and knows
nothing of Twilio. In order, for a number bought again (a replace):

1. buy the new number while the old one still answers in Vapi (whatever stops a
   purchase, no price shown, no Twilio access, nothing for sale, leaves the line up);
2. (the engine) delete the old Vapi object, import the new number;
3. only then release the old number at Twilio (`purchase.release`) or let it go. A
   failed release is a warning: the number stays recorded in state, the next plan shows
   it as a change of its own (`Action.RELEASE`), which `run` retries.

A delete removes the number from Vapi first (no call is routed to a released number),
then releases it; the state entry stays, without a Vapi ID, until Twilio confirms.

Crash safety: state records the wish (with the marker the number is bought under) before
the request and the number with its SID right after, so a run that died is resolved by
the next one, which finds the number by its marker instead of buying another.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from provisioner.apply.engine import definitely_not_created
from provisioner.apply.hooks import Effects
from provisioner.errors import AmbiguousCreateError, ProvisionerError, RemoteError
from provisioner.plan.model import Action, Plan, ResourceChange
from provisioner.plan.purchase import (
    PurchaseStep,
    owner_key,
    purchase_marker,
    purchase_step,
    same_purchase,
)
from provisioner.state.model import (
    ResourceState,
    ResourceStatus,
    StateFile,
    bought_number,
    purchase_extra,
    replaced_numbers,
    with_purchase,
    without_replaced,
)

# Keys of a plan's purchase step that are about this plan, not the number bought.
_PLAN_ONLY = ("action", "monthly", "currency", "replaces")


class BoughtNumber(Protocol):
    """A number Twilio sold (`provisioner.remote.twilio.PurchasedNumber`)."""

    @property
    def phone_number(self) -> str: ...
    @property
    def sid(self) -> str: ...


class NumberVendor(Protocol):
    """Buys and releases Twilio numbers (`provisioner.purchasing.Twilio`)."""

    def credentials(self, body: Mapping[str, Any]) -> tuple[str, str]: ...
    def client(self, account_sid: str, token: str | None = None) -> object: ...
    def find_bought(self, account_sid: str, marker: str) -> BoughtNumber | None: ...
    def buy(self, account_sid: str, purchase: Mapping[str, Any], marker: str) -> BoughtNumber: ...
    def release(self, account_sid: str, sid: str) -> bool: ...


class Purchases:
    """The engine's `ChangeHook` for numbers bought from Twilio. `numbers` None: a plan
    that buys or releases one fails those changes (the rest applies)."""

    def __init__(self, numbers: NumberVendor | None, plan: Plan) -> None:
        self._numbers = numbers
        # Numbers the plan releases by changes of their own: the saga leaves them to those.
        self._planned = frozenset(
            str((c.purchase or {}).get("sid")) for c in plan.changes if c.action is Action.RELEASE
        )

    # -- the hook ------------------------------------------------------------------------

    def before_replace(self, fx: Effects, change: ResourceChange, body: Mapping[str, Any]) -> None:
        if _buys(change):
            self._buy(fx, change, body)

    def create_body(
        self, fx: Effects, change: ResourceChange, body: dict[str, Any]
    ) -> dict[str, Any]:
        if _buys(change):
            body["number"] = self._buy(fx, change, body)  # (a replace's: bought already)
        return body

    def carried(self, fx: Effects, address: str) -> dict[str, Any]:
        entry = fx.state().resources.get(address)
        return purchase_extra(entry.extra) if entry is not None else {}

    def after_create(self, fx: Effects, change: ResourceChange) -> None:
        if change.purchase is not None:
            # The numbers this one replaced go only once it answers in Vapi.
            self._finish_replaced(fx, change, strict=False)

    def after_delete(self, fx: Effects, change: ResourceChange) -> dict[str, Any]:
        kept = self.carried(fx, change.address)
        if change.action is not Action.DELETE or not kept:
            return kept  # a replace keeps the bought number for the new object

        def vapi_gone(state: StateFile) -> None:
            state.resources[change.address] = ResourceState(
                kind=change.kind, id=None, status=ResourceStatus.CREATING, extra=kept
            )

        fx.mutate(vapi_gone)
        self._finish_replaced(fx, change, strict=True)
        bought = bought_number(kept)
        if purchase_step(change.purchase) is PurchaseStep.RELEASE and bought is not None:
            self._release(fx, change, bought)
        # Numbers released by changes of their own stay recorded until they are.
        return with_purchase({}, None, replaced_numbers(fx.state().resources[change.address].extra))

    def run(self, fx: Effects, change: ResourceChange) -> bool:
        """A pending release: the number is released now, then forgotten (with the entry,
        once nothing else of it is left)."""
        if change.action is not Action.RELEASE:
            return False
        step = change.purchase or {}
        self._release(fx, change, step)

        def forget(state: StateFile, sid: object = step.get("sid")) -> None:
            entry = state.resources.get(change.address)
            if entry is None:
                return
            extra = without_replaced(entry.extra, sid)
            if entry.id is None and entry.intent is None and not extra:
                state.resources.pop(change.address)
            else:
                state.resources[change.address] = dataclasses.replace(entry, extra=extra)

        fx.mutate(forget)
        return True

    # -- the saga ------------------------------------------------------------------------

    def _vendor(self, change: ResourceChange, doing: str) -> NumberVendor:
        if self._numbers is None:
            raise ProvisionerError(f"{change.address}: {doing} a number needs Twilio access")
        return self._numbers

    def _buy(self, fx: Effects, change: ResourceChange, body: Mapping[str, Any]) -> str:
        """Buy the number a `purchase:` entry asks for; returns it (E.164).

        The entry's Vapi ID is kept meanwhile (a replace buys before it deletes). A number
        bought earlier for other criteria joins the replaced ones, to be released (if
        `purchase.release`) or let go once the new one is in Vapi (`_finish_replaced`)."""
        from provisioner.purchasing import PurchaseError

        wanted = change.purchase or {}
        previous = fx.state().resources.get(change.address)
        extra = previous.extra if previous is not None else {}
        prior = bought_number(extra) or {}
        if prior.get("number") and same_purchase(prior, wanted):
            return str(prior["number"])
        numbers = self._vendor(change, "buying")
        replaced = replaced_numbers(extra)
        if prior.get("number"):
            replaced.append(dict(prior))
        fx.began()  # Twilio requests are not interruptible: they go out
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
            state = fx.state()
            marker = purchase_marker(
                change.address,
                state.lineage,
                wanted,
                str(last_sid) if last_sid else None,
                owner_key(state.manifest, state.environment),
            )
        record = {k: v for k, v in wanted.items() if k not in _PLAN_ONLY}
        record.update(account=account, marker=marker)

        def record_wish(state: StateFile) -> None:
            state.resources[change.address] = _recording(
                state.resources.get(change.address), change.kind, record, replaced
            )

        def forget_wish(state: StateFile) -> None:
            # Nothing was bought: the state is as it was before this purchase.
            if previous is None:
                state.resources.pop(change.address, None)
            else:
                state.resources[change.address] = previous

        fx.mutate(record_wish)
        bought = numbers.find_bought(account, marker)
        if bought is not None:
            fx.note(change.address, f"found {bought.phone_number}, bought earlier")
        else:
            if wanted.get("monthly") is None:
                # Nothing that costs money happens unless the plan showed the price.
                fx.mutate(forget_wish)
                raise PurchaseError(
                    "not buying a number: the plan could not show its price (Twilio's "
                    "pricing was not reachable); plan again when it is"
                )
            fx.note(change.address, "buying a number from Twilio")
            try:
                bought = numbers.buy(account, wanted, marker)
            except AmbiguousCreateError:
                bought = numbers.find_bought(account, marker)
                if bought is None:
                    raise
            except ProvisionerError as exc:
                if not isinstance(exc, RemoteError) or definitely_not_created(exc):
                    fx.mutate(forget_wish)
                raise
            fx.note(change.address, f"bought {bought.phone_number} ({bought.sid})")
        done = {**record, "number": bought.phone_number, "sid": bought.sid}

        def record_bought(state: StateFile) -> None:
            state.resources[change.address] = _recording(
                state.resources.get(change.address), change.kind, done, replaced
            )

        fx.mutate(record_bought)
        return str(bought.phone_number)

    def _finish_replaced(self, fx: Effects, change: ResourceChange, *, strict: bool) -> None:
        """The numbers bought before the current one are released at Twilio (with
        `purchase.release`) or left in the account, and forgotten one by one; those the
        plan releases by changes of their own are left to them. One that fails to release
        stays recorded, for the next plan to show: `strict` fails the change then, else
        it is a warning."""
        release = bool((change.purchase or {}).get("release"))
        failed: ProvisionerError | None = None
        for old in self._still_replaced(fx, change.address):
            if release:
                try:
                    self._release(fx, change, old)
                except ProvisionerError as exc:
                    if strict:
                        failed = failed or exc
                    else:
                        fx.note(
                            change.address,
                            f"warning: {old.get('number')} could not be released at Twilio "
                            f"({exc}); it stays recorded, and the next apply releases it",
                        )
                    continue
            else:
                fx.note(
                    change.address,
                    f"{old.get('number')} stays in your Twilio account "
                    "(purchase.release is not set)",
                )

            def forget_old(state: StateFile, sid: object = old.get("sid")) -> None:
                entry = state.resources[change.address]
                extra = without_replaced(entry.extra, sid)
                state.resources[change.address] = dataclasses.replace(entry, extra=extra)

            fx.mutate(forget_old)
        if failed is not None:
            raise failed

    def _still_replaced(self, fx: Effects, address: str) -> Iterable[dict[str, Any]]:
        entry = fx.state().resources.get(address)
        for old in replaced_numbers(entry.extra if entry is not None else {}):
            if str(old.get("sid")) not in self._planned:
                yield old

    def _release(self, fx: Effects, change: ResourceChange, bought: Mapping[str, Any]) -> None:
        numbers = self._vendor(change, "releasing")
        account = str(bought.get("account") or "")
        fx.began()
        numbers.client(account)
        numbers.release(account, str(bought["sid"]))
        fx.note(change.address, f"released {bought.get('number')} at Twilio")


def _buys(change: ResourceChange) -> bool:
    """The change buys a number at Twilio (its plan showed `will buy`)."""
    return purchase_step(change.purchase) is PurchaseStep.BUY


def _recording(
    entry: ResourceState | None,
    kind: str,
    purchase: Mapping[str, Any],
    replaced: list[dict[str, Any]],
) -> ResourceState:
    """`entry` with its purchase record (and the numbers it replaced) set; the rest of
    the entry, a live Vapi ID included, as it was."""
    extra = with_purchase(entry.extra if entry else {}, purchase, replaced)
    if entry is None:
        return ResourceState(kind=kind, id=None, status=ResourceStatus.CREATING, extra=extra)
    return dataclasses.replace(entry, extra=extra)
