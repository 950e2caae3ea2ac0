"""What the phone numbers cost per month, before and after a plan. Pure: prices come in.

Only Twilio numbers have a price we can look up (Twilio's Pricing API, per country and
number type). Vapi's free numbers cost 0. Vonage, Telnyx and SIP trunks are billed by
their own providers: listed as not priced, never guessed.

The estimate is JSON-ready (it goes into the JSON plan and the saved plan as is):

    {"currency": "USD",
     "monthly_before": "2.15", "monthly_after": "3.30", "monthly_change": "+1.15",
     "incomplete": true,      # only when a Twilio price could not be read: figures are minimums
     "numbers": [{"address", "provider", "number", "country", "type", "monthly",
                  "currency", "status"}],
     "unpriced": [{"address", "provider", "why"}],
     "still_billed": [{"address", "number", "monthly", "currency"}]}

`status` is a `CostStatus`: `kept`, `new`, `removed`, `replaced` (the number a replace
gives up) or `not released` (a bought number leaving the manifest but kept at Twilio, where
it is still billed: counted before and after, and listed in `still_billed`). A pending
release (`Action.RELEASE`) is `removed`. Written for people by `provisioner.render.costs`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from provisioner.numbers.format import country_and_type
from provisioner.numbers.rules import VAPI_FREE_NUMBER_LIMIT
from provisioner.plan.model import Action, Plan, ResourceChange
from provisioner.plan.purchase import PurchaseStep, purchase_step

# Price lookups are keyed by (Twilio account SID, ISO country, number type).
PriceKey = tuple[str, str, str]
# A price and its currency, or None when Twilio has none (or could not be asked).
Price = tuple[Decimal, str] | None

_BILLED_BY = {"vonage": "Vonage", "telnyx": "Telnyx", "byo-phone-number": "your SIP provider"}


class CostStatus(StrEnum):
    """What a plan does to a number's bill (`status` in the estimate's `numbers`)."""

    KEPT = "kept"
    NEW = "new"
    REMOVED = "removed"
    REPLACED = "replaced"  # the number a replace gives up
    NOT_RELEASED = "not released"  # leaves the manifest but stays billed at Twilio

    @property
    def billed_after(self) -> bool:
        """Still on the bill once the plan is applied."""
        return self in (CostStatus.KEPT, CostStatus.NEW, CostStatus.NOT_RELEASED)


@dataclass(frozen=True, slots=True)
class PricedNumber:
    """A Twilio number to price: under which account, in which country, of which type."""

    address: str
    account_sid: str
    country: str
    number_type: str
    number: str | None

    @property
    def key(self) -> PriceKey:
        return (self.account_sid, self.country, self.number_type)


def number_to_price(change: ResourceChange) -> PricedNumber | str | None:
    """What to look up for a phone-number change: a PricedNumber, a reason it has no
    price (str), or None for a free (Vapi) number. The number after the change (the one
    deleted, for a delete)."""
    if change.kind != "phoneNumber":
        return None
    view = change.after if change.after is not None else change.before or {}
    return _to_price(change.address, view, change.purchase or {})


def _before_to_price(change: ResourceChange) -> PricedNumber | str | None:
    """The number before the change: for a replace, the old one (a bought number by
    what it was bought as)."""
    purchase: Mapping[str, Any] = change.purchase or {}
    old = purchase.get("replaces")
    if isinstance(old, Mapping):
        view = {**(change.before or change.after or {}), "number": old.get("number")}
        return _to_price(change.address, view, old)
    before = change.before if change.before is not None else change.after or {}
    if purchase_step(purchase) is PurchaseStep.BUY:
        purchase = {}  # nothing bought yet: the number before is priced by its digits
    return _to_price(change.address, before, purchase)


def _to_price(
    address: str, view: Mapping[str, Any], purchase: Mapping[str, Any]
) -> PricedNumber | str | None:
    provider = view.get("provider")
    if provider == "vapi":
        return None
    if provider != "twilio":
        label = _BILLED_BY.get(str(provider), str(provider))
        return f"billed by {label}; its price is not known here"
    account = view.get("twilioAccountSid")
    if not isinstance(account, str) or not account:
        return "no twilioAccountSid to ask Twilio for prices"
    number = view.get("number") if isinstance(view.get("number"), str) else None
    number = number or purchase.get("number")
    if purchase.get("country"):
        return PricedNumber(
            address, account, purchase["country"], purchase.get("type", "local"), number
        )
    where = country_and_type(number) if number else None
    if where is None:
        return f"cannot tell the country of {number or 'this number'}"
    return PricedNumber(address, account, where[0], where[1], number)


def needed_prices(plan: Plan) -> set[PriceKey]:
    """Every (account, country, type) the plan's phone numbers need a price for."""
    return {
        p.key
        for c in plan.changes
        for p in (number_to_price(c), _before_to_price(c) if c.kind == "phoneNumber" else None)
        if isinstance(p, PricedNumber)
    }


def estimate(
    plan: Plan,
    prices: Callable[[PriceKey], Price],
    why_no_price: Callable[[PriceKey], str | None] = lambda key: None,
) -> dict[str, Any]:
    """The monthly cost of the numbers this plan manages, before and after it.
    `why_no_price` explains a missing price (e.g. Twilio could not be reached)."""
    tally = _Tally(prices, why_no_price)
    for c in plan.changes:
        if c.kind != "phoneNumber" or c.action is Action.FORGET:
            continue  # (a forgotten number is billed on, but no longer by this manifest)
        step = c.purchase or {}
        if c.action is Action.REPLACE:
            # Two numbers: the one given up, and the one that takes its place.
            kept_at_twilio = isinstance(step.get("replaces"), Mapping) and not step.get("release")
            status = CostStatus.NOT_RELEASED if kept_at_twilio else CostStatus.REPLACED
            tally.add(c, _before_to_price(c), before=True, status=status)
            tally.add(c, number_to_price(c), before=False, status=CostStatus.NEW)
        elif c.action is Action.CREATE:
            tally.add(c, number_to_price(c), before=False, status=CostStatus.NEW)
        elif c.action is Action.RELEASE:
            # Billed until released: this plan releases it.
            tally.add(c, number_to_price(c), before=True, status=CostStatus.REMOVED)
        elif c.action is Action.DELETE:
            # A bought number that is not released stays billed by Twilio.
            kept_at_twilio = purchase_step(step) is PurchaseStep.KEEP
            status = CostStatus.NOT_RELEASED if kept_at_twilio else CostStatus.REMOVED
            tally.add(c, number_to_price(c), before=True, status=status)
        else:
            tally.add(c, number_to_price(c), before=True, status=CostStatus.KEPT)
    return tally.result()


class _Tally:
    """Sums for `estimate`, one number at a time."""

    def __init__(
        self, prices: Callable[[PriceKey], Price], why: Callable[[PriceKey], str | None]
    ) -> None:
        self.prices, self.why = prices, why
        self.before = self.after = Decimal(0)
        self.currency: str | None = None
        self.complete = True
        self.numbers: list[dict[str, Any]] = []
        self.unpriced: list[dict[str, Any]] = []
        self.still_billed: list[dict[str, Any]] = []

    def add(
        self,
        c: ResourceChange,
        what: PricedNumber | str | None,
        *,
        before: bool,
        status: CostStatus,
    ) -> None:
        after = status.billed_after
        view = (c.before if before and not after else c.after) or c.before or {}
        provider = view.get("provider")
        if isinstance(what, str):
            entry = {"address": c.address, "provider": provider, "why": what}
            if entry not in self.unpriced:  # a replace's two numbers, for one reason
                self.unpriced.append(entry)
            return
        cur: str | None
        if what is None:
            amount, cur = Decimal(0), None
            country, ntype, number = "US", "vapi", view.get("number")
        else:
            price = self.prices(what.key)
            country, ntype, number = what.country, what.number_type, what.number
            if price is None:
                self.complete = False
                why = self.why(what.key) or f"Twilio gave no {ntype} price for {country}"
                self.unpriced.append({"address": c.address, "provider": provider, "why": why})
                return
            amount, cur = price
            self.currency = self.currency or cur
            if cur != self.currency:
                self.unpriced.append(
                    {"address": c.address, "provider": provider, "why": f"priced in {cur}"}
                )
                return
        self.before += amount if before else 0
        self.after += amount if after else 0
        shown = number if isinstance(number, str) else None
        self.numbers.append(
            {
                "address": c.address,
                "provider": provider,
                "number": shown,
                "country": country,
                "type": ntype,
                "monthly": _money(amount),
                "currency": cur,
                "status": status,
            }
        )
        if status is CostStatus.NOT_RELEASED:
            self.still_billed.append(
                {"address": c.address, "number": shown, "monthly": _money(amount), "currency": cur}
            )

    def result(self) -> dict[str, Any]:
        change = self.after - self.before
        out: dict[str, Any] = {
            "currency": self.currency or "USD",
            "monthly_before": _money(self.before),
            "monthly_after": _money(self.after),
            "monthly_change": f"{'+' if change >= 0 else '-'}{_money(abs(change))}",
            "numbers": self.numbers,
            "unpriced": self.unpriced,
        }
        if not self.complete:
            out["incomplete"] = True
        if self.still_billed:
            out["still_billed"] = self.still_billed
        return out


def free_number_warnings(plan: Plan) -> tuple[str, ...]:
    """A warning when the manifest would hold more free Vapi numbers than an account may
    have: apply would fail on the extra ones (the org may hold others besides)."""
    vapi = [
        c.address
        for c in plan.changes
        if c.kind == "phoneNumber"
        and c.action is not Action.DELETE
        and (c.after or {}).get("provider") == "vapi"
    ]
    if len(vapi) <= VAPI_FREE_NUMBER_LIMIT:
        return ()
    return (
        f"this plan leaves {len(vapi)} free Vapi numbers, and Vapi allows "
        f"{VAPI_FREE_NUMBER_LIMIT} per account: creating the others will fail "
        f"({', '.join(vapi[VAPI_FREE_NUMBER_LIMIT:])} and any beyond the limit)",
    )


def _money(amount: Decimal) -> str:
    """Two decimals at least (`0.00`, `1.15`), more only if the price has them."""
    exponent = amount.as_tuple().exponent
    precise = isinstance(exponent, int) and exponent < -2
    return str(amount if precise else amount.quantize(Decimal("0.01")))


def with_purchase_prices(plan: Plan, prices: Callable[[PriceKey], Price]) -> Plan:
    """The plan with each number to buy carrying its monthly price (for the plan text)."""
    import dataclasses

    changes = []
    for c in plan.changes:
        what = number_to_price(c)
        if c.purchase and isinstance(what, PricedNumber):
            price = prices(what.key)
            if price is not None:
                c = dataclasses.replace(
                    c, purchase={**c.purchase, "monthly": str(price[0]), "currency": price[1]}
                )
        changes.append(c)
    return dataclasses.replace(plan, changes=tuple(changes))
