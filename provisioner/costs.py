"""What the phone numbers cost per month, before and after a plan. Pure: prices come in.

Only Twilio numbers have a price we can look up (Twilio's Pricing API, per country and
number type). Vapi's free numbers cost 0. Vonage, Telnyx and SIP trunks are billed by
their own providers: listed as not priced, never guessed.

The estimate is JSON-ready (it goes into the JSON plan and the saved plan as is):

    {"currency": "USD",
     "monthly_before": "2.15", "monthly_after": "3.30", "monthly_change": "+1.15",
     "numbers": [{"address", "provider", "number", "country", "type", "monthly",
                  "currency", "status"}],          # status: kept | new | removed
     "unpriced": [{"address", "provider", "why"}]}
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from provisioner.plan.model import Action, Plan, ResourceChange

# Price lookups are keyed by (Twilio account SID, ISO country, number type).
PriceKey = tuple[str, str, str]
# A price and its currency, or None when Twilio has none (or could not be asked).
Price = tuple[Decimal, str] | None

# North American toll-free area codes (NANP): priced as toll-free, not local.
_NANP_TOLL_FREE = frozenset({"800", "833", "844", "855", "866", "877", "888"})
_BILLED_BY = {"vonage": "Vonage", "telnyx": "Telnyx", "byo-phone-number": "your SIP provider"}
# Calling code -> ISO country, for pricing numbers imported with `number:` (longest first).
_CALLING_CODES = (
    ("+44", "GB"),
    ("+61", "AU"),
    ("+49", "DE"),
    ("+33", "FR"),
    ("+34", "ES"),
    ("+39", "IT"),
    ("+31", "NL"),
    ("+46", "SE"),
    ("+353", "IE"),
    ("+64", "NZ"),
    ("+1", "US"),
)


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


def country_and_type(number: str) -> tuple[str, str] | None:
    """(ISO country, number type) of an E.164 number, for pricing; None if unknown."""
    for prefix, iso in sorted(_CALLING_CODES, key=lambda p: -len(p[0])):
        if number.startswith(prefix):
            if prefix == "+1" and number[2:5] in _NANP_TOLL_FREE:
                return iso, "toll-free"
            return iso, "local"
    return None


def number_to_price(change: ResourceChange) -> PricedNumber | str | None:
    """What to look up for a phone-number change: a PricedNumber, a reason it has no
    price (str), or None for a free (Vapi) number."""
    if change.kind != "phoneNumber":
        return None
    view = change.after if change.after is not None else change.before or {}
    provider = view.get("provider")
    purchase = change.purchase or {}
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
            change.address, account, purchase["country"], purchase.get("type", "local"), number
        )
    where = country_and_type(number) if number else None
    if where is None:
        return f"cannot tell the country of {number or 'this number'}"
    return PricedNumber(change.address, account, where[0], where[1], number)


def needed_prices(plan: Plan) -> set[PriceKey]:
    """Every (account, country, type) the plan's phone numbers need a price for."""
    return {p.key for c in plan.changes if isinstance(p := number_to_price(c), PricedNumber)}


def estimate(
    plan: Plan,
    prices: Callable[[PriceKey], Price],
    why_no_price: Callable[[PriceKey], str | None] = lambda key: None,
) -> dict[str, Any]:
    """The monthly cost of the numbers this plan manages, before and after it.
    `why_no_price` explains a missing price (e.g. Twilio could not be reached)."""
    before = Decimal(0)
    after = Decimal(0)
    currency: str | None = None
    numbers: list[dict[str, Any]] = []
    unpriced: list[dict[str, Any]] = []
    for c in plan.changes:
        what = number_to_price(c)
        if c.kind != "phoneNumber":
            continue
        view = c.after if c.after is not None else c.before or {}
        provider = view.get("provider")
        exists_before = c.action is not Action.CREATE
        exists_after = c.action is not Action.DELETE
        status = "new" if not exists_before else ("removed" if not exists_after else "kept")
        if isinstance(what, str):
            unpriced.append({"address": c.address, "provider": provider, "why": what})
            continue
        cur: str | None
        if what is None:
            amount, cur = Decimal(0), None
            country, ntype, number = "US", "vapi", view.get("number")
        else:
            price = prices(what.key)
            country, ntype, number = what.country, what.number_type, what.number
            if price is None:
                unpriced.append(
                    {
                        "address": c.address,
                        "provider": provider,
                        "why": why_no_price(what.key)
                        or f"Twilio gave no {ntype} price for {country}",
                    }
                )
                continue
            amount, cur = price
            currency = currency or cur
            if cur != currency:
                unpriced.append(
                    {"address": c.address, "provider": provider, "why": f"priced in {cur}"}
                )
                continue
        before += amount if exists_before else 0
        after += amount if exists_after else 0
        numbers.append(
            {
                "address": c.address,
                "provider": provider,
                "number": number if isinstance(number, str) else None,
                "country": country,
                "type": ntype,
                "monthly": _money(amount),
                "currency": cur,
                "status": status,
            }
        )
    change = after - before
    return {
        "currency": currency or "USD",
        "monthly_before": _money(before),
        "monthly_after": _money(after),
        "monthly_change": f"{'+' if change >= 0 else '-'}{_money(abs(change))}",
        "numbers": numbers,
        "unpriced": unpriced,
    }


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


def describe_purchase(step: Mapping[str, Any]) -> str:
    """One line for people: what apply will buy or release, at what price."""
    action = step.get("action")
    price = ""
    if step.get("monthly") is not None:
        price = f" at {step['monthly']} {step.get('currency', '')}/month".replace(" /", "/")
    if action == "buy":
        kind = str(step.get("type", "local"))
        where = (
            f"in area code {step['areaCode']}"
            if step.get("areaCode")
            else f"in {step.get('country', 'US')}"
        )
        contains = f" containing {step['contains']}" if step.get("contains") else ""
        then = (
            "it is released at Twilio on destroy"
            if step.get("release")
            else "destroy keeps it in your Twilio account (purchase.release is not set)"
        )
        article = "an" if kind[0] in "aeiou" else "a"
        return (
            f"will buy {article} {kind} number {where}{contains}{price} from Twilio, then "
            f"import it into Vapi; {then}"
        )
    if action == "bought":
        return f"uses {step.get('number')}, bought from Twilio earlier ({step.get('sid')})"
    if action == "release":
        return f"will remove {step.get('number')} from Vapi, then release it at Twilio"
    if action == "keep":
        return (
            f"will remove {step.get('number')} from Vapi; it stays in your Twilio account "
            "(and is billed there) because purchase.release is not set"
        )
    return ""


def format_cost(cost: Mapping[str, Any]) -> list[str]:
    """Lines for the end of a plan: the monthly total and this plan's change."""
    cur = cost.get("currency", "USD")
    change = str(cost.get("monthly_change", "+0"))
    lines = [
        f"Phone numbers: {cost.get('monthly_after')} {cur}/month after this plan "
        f"({change} {cur}/month)."
    ]
    unpriced: Iterable[Mapping[str, Any]] = cost.get("unpriced") or ()
    for u in unpriced:
        lines.append(f"  not priced: {u.get('address')}: {u.get('why')}")
    return lines
