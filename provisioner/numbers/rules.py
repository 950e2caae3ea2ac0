"""The phone-number rules of the tool, each defined once. Pure: constants and regexes.

Schema generation (`scripts/gen_schemas.py`) writes the patterns into the manifest schema,
validation (`manifest/schema.py`) names a value that breaks one with its `expected`, and the
Twilio client, purchasing, costs and the `numbers` command import the rest. Patterns are
written for JSON Schema (ECMA-262) and Python's `re` alike: `[0-9]`, not `\\d`, which in
Python also matches other scripts' digits.

The emulator keeps its own copies on purpose: it is an independent witness of the APIs.
Reading a number (its country, its type) and writing it for people is libphonenumber's job:
see `provisioner.numbers.format`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import NamedTuple


class TextRule(NamedTuple):
    """A rule for a string: its regex and what a string that breaks it is not.
    (A NamedTuple: a dataclass would cost every CLI start a few milliseconds.)"""

    pattern: str
    expected: str  # completes "'x' is not ...", e.g. "a SIP URI (e.g. sip:...)"
    any_case: bool = False

    def match(self, text: str) -> bool:
        """Whether all of `text` follows the rule (a trailing newline does not)."""
        flags = re.IGNORECASE if self.any_case else re.NOFLAG
        return re.fullmatch(self.pattern, text, flags) is not None


# The Vapi spec (numberE164CheckEnabled) asks for "E164 numbers like +14155551234" and
# names `+001234567890` as not one: ITU E.164, a + then at most 15 digits, the first not 0.
# It states no lower bound, and neither does E.164 (country codes are 1 to 3 digits).
E164 = TextRule(
    r"^\+[1-9][0-9]{1,14}$",
    "an E.164 phone number (a + then the country code and number, digits only, e.g. +14155550100)",
)
# API.md: Vapi answers 400 to a Twilio, Vonage or Telnyx number that is not E.164
# (a BYO number too, unless its numberE164CheckEnabled is false).
E164_PROVIDERS = frozenset({"twilio", "vonage", "telnyx"})
SIP_URI = TextRule(
    r"^[sS][iI][pP][sS]?:[^@\s]+@[^@\s]+$",
    "a SIP URI (e.g. sip:support@example.sip.vapi.ai)",
)

# -- Twilio identifiers -----------------------------------------------------------------

ACCOUNT_SID = TextRule(
    r"^AC[0-9a-fA-F]{32}$", "a Twilio Account SID (AC followed by 32 hex digits)"
)
NUMBER_SID = TextRule(r"^PN[0-9a-fA-F]{32}$", "a phone-number SID (PN followed by 32 hex digits)")
API_KEY_SID = TextRule(
    r"^SK[0-9a-fA-F]{32}$", "a Twilio API key SID (SK followed by 32 hex digits)"
)

# -- where and what to buy ----------------------------------------------------------------

# ISO 3166-1 alpha-2, as a manifest writes it.
COUNTRY = TextRule(r"^[A-Z]{2}$", "a two-letter ISO country code (e.g. US, CA, GB)")
# As people type it on the command line or hand it to the client: upper-cased after.
COUNTRY_ANY_CASE = COUNTRY._replace(any_case=True)
# A North American (NANP) area code: three digits, the first 2 to 9 (Twilio's AreaCode,
# Vapi's numberDesiredAreaCode, which API.md says is US only).
AREA_CODE = TextRule(
    r"^[2-9][0-9]{2}$",
    "a US/Canadian area code (three digits, the first 2 to 9, e.g. 415)",
)
# Twilio takes an AreaCode only in these countries.
AREA_CODE_COUNTRIES = ("US", "CA")
# NANP toll-free area codes: the only ones a toll-free purchase can ask for.
NANP_TOLL_FREE = ("800", "833", "844", "855", "866", "877", "888")
# Twilio's `Contains` (NUMBERS.md: 2 to 16 digits or letters, `*` one character, `%` many
# at the ends, leading `+` and trailing `$` anchor).
CONTAINS = TextRule(
    r"^\+?%?[0-9A-Za-z*]{2,16}%?\$?$",
    "a Twilio number pattern: 2 to 16 digits or letters, `*` for any one digit "
    "(e.g. 555, 415***0000, +1415, 1234$)",
)


class NumberType(StrEnum):
    """A kind of number Twilio sells, as the tool names it."""

    LOCAL = "local"
    TOLL_FREE = "toll-free"
    MOBILE = "mobile"
    NATIONAL = "national"


class SearchPath(NamedTuple):
    """Where Twilio lists and prices one number type."""

    segment: str  # AvailablePhoneNumbers/{country}/{segment}.json
    pricing: str  # Pricing v1's `number_type`


NUMBER_TYPES: Mapping[str, SearchPath] = {
    NumberType.LOCAL: SearchPath("Local", "local"),
    NumberType.TOLL_FREE: SearchPath("TollFree", "toll free"),
    NumberType.MOBILE: SearchPath("Mobile", "mobile"),
    NumberType.NATIONAL: SearchPath("National", "national"),
}
# What `purchase: {type}` and `numbers search --type` offer.
PURCHASE_TYPES = (NumberType.LOCAL, NumberType.TOLL_FREE, NumberType.MOBILE)
# Twilio's defaults, so that `purchase: {}` and `{country: US, type: local}` are one wish.
DEFAULT_COUNTRY = "US"
DEFAULT_TYPE = NumberType.LOCAL

# API.md: Vapi gives 5 free numbers per account (a payment method is needed beyond that).
VAPI_FREE_NUMBER_LIMIT = 5

# The rules the manifest schema carries, by pattern: how validation names a broken value.
SCHEMA_RULES: Mapping[str, TextRule] = {
    rule.pattern: rule for rule in (E164, SIP_URI, ACCOUNT_SID, AREA_CODE, CONTAINS)
}
