"""The tables and JSON documents of `provisioner numbers search|pricing`. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from provisioner.numbers.rules import NUMBER_TYPES

if TYPE_CHECKING:
    from provisioner.remote.twilio import AvailableNumber, CountryPricing


def money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def price_text(price: Decimal | None, currency: str | None) -> str:
    if price is None:
        return "?"
    return f"{price} {currency}" if currency else str(price)


def criteria_text(
    country: str,
    number_type: str,
    area_code: str | None,
    contains: str | None,
    sms: bool,
    voice: bool,
) -> str:
    parts = [country, number_type]
    if area_code:
        parts.append(f"area code {area_code}")
    if contains:
        parts.append(f"containing {contains}")
    if sms:
        parts.append("SMS")
    if voice:
        parts.append("voice")
    return ", ".join(parts)


def number_json(
    number: AvailableNumber, price: Decimal | None, currency: str | None
) -> dict[str, Any]:
    caps = number.capabilities
    return {
        "phone_number": number.phone_number,
        "friendly_name": number.friendly_name,
        "iso_country": number.iso_country,
        "locality": number.locality,
        "region": number.region,
        "postal_code": number.postal_code,
        "rate_center": number.rate_center,
        "lata": number.lata,
        "latitude": number.latitude,
        "longitude": number.longitude,
        "capabilities": {"voice": caps.voice, "sms": caps.sms, "mms": caps.mms, "fax": caps.fax},
        "address_requirements": number.address_requirements,
        "beta": number.beta,
        "monthly_price": money(price),
        "currency": currency,
    }


def pricing_json(prices: CountryPricing) -> dict[str, Any]:
    by_row = {_key(row_name): name for name, (_, row_name) in NUMBER_TYPES.items()}
    return {
        "country": prices.country,
        "iso_country": prices.iso_country,
        "currency": prices.currency,
        "prices": [
            {
                "number_type": row.number_type,
                "type": by_row.get(_key(row.number_type)),
                "monthly_price": money(row.current_price),
                "base_price": money(row.base_price),
            }
            for row in prices.prices
        ],
    }


def _key(name: str) -> str:
    return " ".join(name.lower().replace("_", " ").replace("-", " ").split())


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    return [
        "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    ]
