"""Phone numbers read and written with libphonenumber (the `phonenumbers` package). Pure.

`format_number` writes an E.164 number as libphonenumber's INTERNATIONAL format does
(`+1 415-555-0100`, `+44 20 7946 0000`) and leaves anything else (a SIP extension such as
`1001`, a SIP URI) as it is. `country_and_type` tells a number's country, a Canadian area
code from a US one included, and its type, for pricing.

`phonenumbers` is imported on first use: it costs a CLI start ~40 ms, and most commands
show no number.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from provisioner.numbers.rules import E164, NumberType

if TYPE_CHECKING:
    from phonenumbers import PhoneNumber

# libphonenumber's region for a calling code it cannot place (and "001", non-geographic).
_NO_REGION = ("ZZ", "001")


def format_number(number: str) -> str:
    """An E.164 number in libphonenumber's INTERNATIONAL format; other strings unchanged."""
    parsed = _parse(number)
    if parsed is None:
        return number
    import phonenumbers

    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def country_and_type(number: str) -> tuple[str, NumberType] | None:
    """(ISO country, number type) of an E.164 number, for pricing; None if unknown.

    A number libphonenumber knows is placed by its metadata (`+1 416` is Canada, `+1 800`
    toll-free, `+44 7` a mobile); one it does not (a fictional range, a new area code) is
    a local number of its calling code's main country.
    """
    parsed = _parse(number)
    if parsed is None:
        return None
    import phonenumbers

    if phonenumbers.is_valid_number(parsed):
        region = phonenumbers.region_code_for_number(parsed)
        priced_as = _priced_as().get(phonenumbers.number_type(parsed), NumberType.LOCAL)
    else:
        region = phonenumbers.region_code_for_country_code(parsed.country_code or 0)
        priced_as = NumberType.LOCAL
    if not region or region in _NO_REGION:
        return None
    return region, priced_as


def _parse(number: str) -> PhoneNumber | None:
    """The number, if it is E.164 and libphonenumber can read it (a known calling code)."""
    if not E164.match(number):
        return None
    import phonenumbers

    try:
        return phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None


def _priced_as() -> Mapping[int, NumberType]:
    """libphonenumber's number types Twilio prices apart; every other one is local."""
    from phonenumbers import PhoneNumberType

    return {
        PhoneNumberType.TOLL_FREE: NumberType.TOLL_FREE,
        PhoneNumberType.MOBILE: NumberType.MOBILE,
    }
