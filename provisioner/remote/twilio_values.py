"""Twilio's answers as typed values: the errors, the frozen dataclasses of numbers and
prices, and parsing Twilio's loosely typed JSON into them (capability keys in any case,
latitude/longitude kept as strings as sent).

Must not touch: the network (`remote.twilio` sends), the environment, the terminal.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

import httpx

from provisioner.errors import AmbiguousCreateError, RemoteError
from provisioner.numbers.rules import AREA_CODE, COUNTRY_ANY_CASE, NUMBER_TYPES
from provisioner.remote.answers import Answer, clip, decode, phrase, shape_error, snippet

__all__ = [
    "AmbiguousPurchaseError",
    "AvailableNumber",
    "Capabilities",
    "NumberPrice",
    "PricingCountry",
    "PurchasedNumber",
    "RetryNotice",
    "TwilioError",
    "available",
    "opt_str",
    "purchased",
    "price_key",
    "price_row",
    "purchased_or_none",
    "read_twilio_error",
    "relative",
    "twilio_shape_error",
    "wire_bool",
]


# -- errors ------------------------------------------------------------------------------


class TwilioError(RemoteError):
    """Twilio answered with an error; `code` is Twilio's error code when it sent one."""

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        path: str = "",
        status: int | None = None,
        body: Any = None,
        code: int | None = None,
        more_info: str | None = None,
    ) -> None:
        super().__init__(message, method=method, path=path, status=status, body=body)
        self.code = code
        self.more_info = more_info


class AmbiguousPurchaseError(AmbiguousCreateError):
    """A purchase was sent, but whether Twilio carried it out is unknown.

    Never buy again blindly: look with `TwilioClient.list_owned(phone_number=...)` (or,
    for an area-code purchase, the numbers owned in that area code) first.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str = "",
        status: int | None = None,
        body: Any = None,
        phone_number: str | None = None,
        area_code: str | None = None,
    ) -> None:
        super().__init__(message, method="POST", path=path, status=status, body=body)
        self.phone_number = phone_number
        self.area_code = area_code


# -- values ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a number can do. `fax` is None when Twilio left the key out."""

    voice: bool
    sms: bool
    mms: bool
    fax: bool | None = None

    def labels(self) -> tuple[str, ...]:
        """("voice", "SMS", "MMS", "fax"), only those the number has."""
        pairs = (("voice", self.voice), ("SMS", self.sms), ("MMS", self.mms))
        return tuple(n for n, on in (*pairs, ("fax", bool(self.fax))) if on)


@dataclass(frozen=True, slots=True)
class AvailableNumber:
    """A number Twilio offers for sale (one AvailablePhoneNumbers item).

    Geography is None outside US/CA; latitude and longitude stay strings as sent.
    """

    phone_number: str
    friendly_name: str
    iso_country: str
    capabilities: Capabilities
    locality: str | None = None
    region: str | None = None
    postal_code: str | None = None
    rate_center: str | None = None
    lata: str | None = None
    latitude: str | None = None
    longitude: str | None = None
    address_requirements: str | None = None
    beta: bool = False


@dataclass(frozen=True, slots=True)
class NumberPrice:
    """One Pricing v1 row: monthly prices for one number type, as Twilio names it."""

    number_type: str  # "local", "toll free", "mobile", "national", ...
    base_price: Decimal
    current_price: Decimal  # what this account pays (after discounts)


@dataclass(frozen=True, slots=True)
class PricingCountry:
    """One entry of the Pricing v1 country list."""

    iso_country: str
    country: str


@dataclass(frozen=True, slots=True)
class PurchasedNumber:
    """A number the account owns (an IncomingPhoneNumber)."""

    sid: str
    account_sid: str
    phone_number: str
    friendly_name: str
    capabilities: Capabilities
    status: str | None = None
    number_type: str | None = None  # Twilio's `type`, e.g. "local"
    origin: str | None = None
    address_requirements: str | None = None
    voice_url: str | None = None
    sms_url: str | None = None
    date_created: str | None = None  # RFC 2822, as sent
    uri: str | None = None


@dataclass(frozen=True, slots=True)
class RetryNotice:
    """Told to `on_retry` before the client sleeps and sends a request again."""

    method: str
    path: str
    reason: str  # "rate limited", "server error 503", "cannot connect", ...
    delay: float
    attempt: int  # number of the attempt about to be made (2 for the first retry)

    def describe(self) -> str:
        return f"{self.reason}, retrying in {self.delay:.1f} s ({self.method} {self.path})"


# -- parsing (pure) ----------------------------------------------------------------------


def available(item: Mapping[str, Any]) -> AvailableNumber:
    number = opt_str(item.get("phone_number")) or ""
    return AvailableNumber(
        phone_number=number,
        friendly_name=opt_str(item.get("friendly_name")) or number,
        iso_country=opt_str(item.get("iso_country")) or "",
        capabilities=_capabilities(item.get("capabilities")),
        locality=opt_str(item.get("locality")),
        region=opt_str(item.get("region")),
        postal_code=opt_str(item.get("postal_code")),
        rate_center=opt_str(item.get("rate_center")),
        lata=opt_str(item.get("lata")),
        latitude=opt_str(item.get("latitude")),
        longitude=opt_str(item.get("longitude")),
        address_requirements=opt_str(item.get("address_requirements")),
        beta=_flag(item.get("beta")) is True,
    )


def purchased(item: Mapping[str, Any]) -> PurchasedNumber:
    sid = item.get("sid")
    number = item.get("phone_number")
    if not isinstance(sid, str) or not sid:
        raise ValueError("no `sid`")
    if not isinstance(number, str) or not number:
        raise ValueError("no `phone_number`")
    return PurchasedNumber(
        sid=sid,
        account_sid=opt_str(item.get("account_sid")) or "",
        phone_number=number,
        friendly_name=opt_str(item.get("friendly_name")) or number,
        capabilities=_capabilities(item.get("capabilities")),
        status=opt_str(item.get("status")),
        number_type=opt_str(item.get("type")),
        origin=opt_str(item.get("origin")),
        address_requirements=opt_str(item.get("address_requirements")),
        voice_url=opt_str(item.get("voice_url")) or None,
        sms_url=opt_str(item.get("sms_url")) or None,
        date_created=opt_str(item.get("date_created")),
        uri=opt_str(item.get("uri")),
    )


def purchased_or_none(item: Mapping[str, Any]) -> PurchasedNumber | None:
    try:
        return purchased(item)
    except ValueError:
        return None


def _capabilities(raw: Any) -> Capabilities:
    """Capability flags; keys in any case (`SMS` in search results, `sms` elsewhere)."""
    flags: dict[str, bool | None] = {}
    if isinstance(raw, Mapping):
        flags = {str(k).lower(): _flag(v) for k, v in raw.items()}
    return Capabilities(
        voice=flags.get("voice") is True,
        sms=flags.get("sms") is True,
        mms=flags.get("mms") is True,
        fax=flags.get("fax"),
    )


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def opt_str(value: Any) -> str | None:
    """Strings as sent; numbers (a latitude sent as a JSON number) as their text."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float | Decimal):
        return str(value)
    return None


def price_row(answer: Answer, row: Mapping[str, Any]) -> NumberPrice:
    number_type = opt_str(row.get("number_type"))
    if not number_type:
        raise twilio_shape_error(answer, "price rows with a `number_type`")
    base = decimal(answer, row.get("base_price"))
    current = decimal(answer, row.get("current_price"), default=base)
    if base is None:
        base = current
    if base is None or current is None:
        raise twilio_shape_error(answer, f"a price for {number_type!r}")
    return NumberPrice(number_type=number_type, base_price=base, current_price=current)


def decimal(answer: Answer, value: Any, default: Decimal | None = None) -> Decimal | None:
    """A price as Decimal: strings as written; a JSON number through its shortest text."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise twilio_shape_error(answer, "prices as numbers")
    text = repr(value) if isinstance(value, float) else str(value).strip()
    try:
        price = Decimal(text)
    except InvalidOperation:
        raise twilio_shape_error(answer, f"a price, not {value!r}") from None
    if not price.is_finite():
        raise twilio_shape_error(answer, f"a finite price, not {value!r}")
    return price


def price_key(name: str) -> str:
    return " ".join(name.lower().replace("_", " ").replace("-", " ").split())


def wire_bool(value: bool) -> str:
    return "true" if value else "false"


def relative(url: str, base: str) -> str:
    """A next-page URL as a path under `base` (credentials never go to another origin)."""
    if url.startswith(base + "/"):
        return url[len(base) :]
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def twilio_shape_error(answer: Answer, expected: str) -> RemoteError:
    return shape_error(answer.response.request.method, answer, expected, "Twilio's ")


def read_twilio_error(
    response: httpx.Response, credentials_hint: str
) -> tuple[str, Any, int | None, str | None]:
    """(message, parsed body, Twilio code, more_info) for an error answer.

    Twilio's body `{"code": 21452, "message": "...", "more_info": ..., "status": 400}`
    becomes "Twilio 21452: ..."; a 401 adds `credentials_hint`; anything else
    (a proxy's HTML page, an empty body) is named with the HTTP status.
    """
    status = response.status_code
    try:
        body: Any = decode(response)
    except ValueError:
        body = response.text
    code: int | None = None
    more_info: str | None = None
    words = ""
    if isinstance(body, dict):
        raw_code = body.get("code")
        if isinstance(raw_code, int) and not isinstance(raw_code, bool):
            code = raw_code
        elif isinstance(raw_code, str) and raw_code.strip().isdigit():
            code = int(raw_code)
        if isinstance(body.get("message"), str):
            words = str(body["message"]).strip()
        if isinstance(body.get("more_info"), str):
            more_info = str(body["more_info"])
        detail = body.get("detail") or body.get("details")
        if detail and isinstance(detail, str | dict | list):
            extra = detail if isinstance(detail, str) else json.dumps(detail)
            words = f"{words} ({clip(extra)})" if words else clip(extra)
    if code is not None or words:
        message = (
            f"Twilio {code if code is not None else status}: {words or phrase(status, 'Error')}"
        )
    else:
        message = f"Twilio API answered {status} {phrase(status, 'Error')}: {snippet(response)}"
    if status == 401:
        message += f" ({credentials_hint})"
    return message, body, code, more_info


@dataclass(frozen=True, slots=True)
class CountryPricing:
    """Monthly phone-number prices in one country."""

    iso_country: str
    country: str
    currency: str | None  # upper case, e.g. "USD"
    prices: tuple[NumberPrice, ...]

    def price_for(self, number_type: str) -> NumberPrice | None:
        """The row for a search type (`local`, `toll-free`, `mobile`, `national`) or a
        Pricing v1 name (`toll free`), compared without regard to case; None if absent."""
        wanted = price_key(NUMBER_TYPES.get(number_type.lower(), ("", number_type))[1])
        for row in self.prices:
            if price_key(row.number_type) == wanted:
                return row
        return None

    def monthly(self, number_type: str) -> Decimal | None:
        """What this account pays per month for one number of this type, if offered."""
        row = self.price_for(number_type)
        return row.current_price if row is not None else None


# Request parameters, checked before anything is sent.


def country_param(country: str) -> str:
    if not COUNTRY_ANY_CASE.match(country.strip()):
        raise ValueError(f"{country!r} is not a two-letter ISO country code")
    return country.strip().upper()


def number_type_param(number_type: str) -> tuple[str, str]:
    found = NUMBER_TYPES.get(number_type.lower())
    if found is None:
        raise ValueError(f"number type must be one of {', '.join(NUMBER_TYPES)}")
    return found


def area_code_param(area_code: str | int) -> str:
    text = str(area_code).strip()
    if not AREA_CODE.match(text):
        raise ValueError(f"{area_code!r} is not a US/CA area code (three digits, not 0 or 1 first)")
    return text
