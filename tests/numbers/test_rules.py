"""The phone-number rules (`provisioner.numbers.rules`) at their bounds, as the manifest,
the Twilio client and the CLI apply them, and numbers read and written with libphonenumber
(`provisioner.numbers.format`): country (Canada from the US by area code), type, display."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import phonenumbers
import pytest

from provisioner.emulator.twilio import TwilioEmulator
from provisioner.numbers.format import country_and_type, format_number
from provisioner.numbers.rules import (
    ACCOUNT_SID,
    AREA_CODE,
    CONTAINS,
    COUNTRY,
    COUNTRY_ANY_CASE,
    E164,
    NANP_TOLL_FREE,
    NUMBER_SID,
    SCHEMA_RULES,
    SIP_URI,
    NumberType,
)
from provisioner.remote.twilio import TwilioClient
from tests.conftest import REPO, Cli

TWILIO_ENTRY = (
    "version: 1\nphoneNumbers:\n  line:\n    provider: twilio\n    number: '{number}'\n"
    "    twilioAccountSid: AC0123456789abcdef0123456789abcdef\n    twilioAuthToken: t\n"
)


# -- E.164: the one rule, at the bounds the Vapi spec's E.164 sets ------------------------


@pytest.mark.parametrize(
    "number",
    [
        "+14155551234",  # the spec's own example
        "+12",  # E.164 sets no lower bound: a calling code and one digit
        "+123456789012345",  # 15 digits, E.164's most
        "+442079460000",
    ],
)
def test_e164_accepts(number: str) -> None:
    assert E164.match(number)


@pytest.mark.parametrize(
    "number",
    [
        "+1",  # a calling code alone
        "+1234567890123456",  # 16 digits
        "+001234567890",  # the spec's example of a number that is not E.164
        "14155551234",  # no +
        "+1 415 555 1234",
        "+1415555123a",
        "+1415555\u0661234",  # an Arabic-Indic digit: Python's \d would take it
        "+14155551234\n",
        "",
    ],
)
def test_e164_refuses(number: str) -> None:
    assert not E164.match(number)


@pytest.mark.parametrize(
    ("number", "valid"),
    [("+123456789012345", True), ("+12", True), ("+1234567890123456", False)],
)
def test_the_manifest_checks_e164_at_the_same_bounds(
    run: Cli, project: Path, number: str, valid: bool
) -> None:
    (project / "m.yaml").write_text(TWILIO_ENTRY.format(number=number))
    result = run("validate", "m.yaml")
    if valid:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code == 1
        assert (
            f"m.yaml:5:5: phoneNumbers.line.number: '{number}' is not an E.164 phone number "
            "(a + then the country code"
        ) in result.output
        assert "Traceback" not in result.output


def _patterns(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                yield value
            else:
                yield from _patterns(value)
    elif isinstance(node, list):
        for item in node:
            yield from _patterns(item)


def test_the_manifest_schema_carries_each_rule_and_no_other_e164() -> None:
    schema = json.loads((REPO / "schemas" / "manifest.schema.json").read_text("utf-8"))
    patterns = set(_patterns(schema))
    assert set(SCHEMA_RULES) <= patterns
    assert COUNTRY.pattern in patterns
    # Any other pattern that looks like a phone number's would be a second E.164 rule.
    assert [p for p in patterns if p.startswith(r"^\+[1-9]") and p != E164.pattern] == []


def test_the_twilio_client_refuses_a_number_that_is_not_e164() -> None:
    client = TwilioClient(
        "AC" + "0" * 32,
        "sandbox",
        base_url="http://twilio.test",
        pricing_base_url="http://twilio.test",
        transport=httpx.WSGITransport(app=TwilioEmulator()),
    )
    with client, pytest.raises(ValueError, match="is not an E.164 number"):
        client.buy(phone_number="+1234567890123456")


# -- Twilio identifiers, area codes, countries, Contains --------------------------------


def test_twilio_sids() -> None:
    assert ACCOUNT_SID.match("AC" + "0123456789abcdefABCDEF0123456789")
    assert not ACCOUNT_SID.match("AC" + "0" * 31)
    assert not ACCOUNT_SID.match("SK" + "0" * 32)
    assert not ACCOUNT_SID.match("AC" + "g" * 32)
    assert NUMBER_SID.match("PN" + "a" * 32) and not NUMBER_SID.match("PN" + "a" * 33)


@pytest.mark.parametrize(("code", "ok"), [("415", True), ("800", True), ("015", False),
                                          ("115", False), ("41", False), ("4155", False),
                                          ("41a", False), (" 415", False)])  # fmt: skip
def test_area_codes(code: str, ok: bool) -> None:
    assert AREA_CODE.match(code) is ok


def test_countries_and_contains() -> None:
    assert COUNTRY.match("GB") and not COUNTRY.match("gb") and not COUNTRY.match("GBR")
    assert COUNTRY_ANY_CASE.match("gb") and not COUNTRY_ANY_CASE.match("g1")
    for pattern in ("555", "415***0000", "+1415", "1234$", "%555%", "CALLME"):
        assert CONTAINS.match(pattern), pattern
    for pattern in ("5", "4" * 17, "41-5", "555$$"):
        assert not CONTAINS.match(pattern), pattern


def test_sip_uris() -> None:
    assert SIP_URI.match("sip:support@example.sip.vapi.ai")
    assert SIP_URI.match("SIPS:a@b")
    assert not SIP_URI.match("support@example.sip.vapi.ai")
    assert not SIP_URI.match("sip:support")


@pytest.mark.parametrize("code", NANP_TOLL_FREE)
def test_toll_free_codes_are_libphonenumbers(code: str) -> None:
    """Our list of NANP toll-free area codes (the schema's enum) agrees with libphonenumber."""
    number = phonenumbers.parse(f"+1{code}2345678")
    assert phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.TOLL_FREE
    assert country_and_type(f"+1{code}2345678") == ("US", NumberType.TOLL_FREE)


# -- a number's country and type ----------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("+14155550100", ("US", "local")),
        ("+12125550123", ("US", "local")),
        ("+14165550100", ("CA", "local")),  # Toronto
        ("+16045550100", ("CA", "local")),  # Vancouver
        ("+12045550123", ("CA", "local")),  # Manitoba
        ("+13685550123", ("CA", "local")),  # an Alberta overlay of 2021
        ("+18005550100", ("US", "toll-free")),
        ("+442079460000", ("GB", "local")),
        ("+447400123456", ("GB", "mobile")),
        ("+61412345678", ("AU", "mobile")),
        ("+33612345678", ("FR", "mobile")),
        ("+4930123456", ("DE", "local")),
        # libphonenumber knows no such number (Ofcom's range for drama): its calling
        # code's main country, priced as local.
        ("+447700900123", ("GB", "local")),
        ("+999123", None),  # no such calling code
        ("+80012345678", None),  # international freephone: no country
        ("4155550100", None),
        ("1001", None),
    ],
)
def test_country_and_type_of_a_number(number: str, expected: tuple[str, str] | None) -> None:
    assert country_and_type(number) == expected


# -- numbers written for people -----------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "shown"),
    [
        ("+14155550100", "+1 415-555-0100"),
        ("+18005550100", "+1 800-555-0100"),
        ("+14165550100", "+1 416-555-0100"),
        ("+442079460000", "+44 20 7946 0000"),
        ("+447400123456", "+44 7400 123456"),
        ("+441134960000", "+44 113 496 0000"),
        ("+441632960000", "+44 1632 960000"),
        ("+61298765432", "+61 2 9876 5432"),
        ("+61412345678", "+61 412 345 678"),
        ("+4930123456", "+49 30 123456"),
        ("+33612345678", "+33 6 12 34 56 78"),
        # Left as they are: not E.164, or a calling code that does not exist.
        ("+999123", "+999123"),
        ("+001234567890", "+001234567890"),
        ("1001", "1001"),
        ("sip:support@example.sip.vapi.ai", "sip:support@example.sip.vapi.ai"),
        ("", ""),
    ],
)
def test_numbers_are_written_for_people(number: str, shown: str) -> None:
    assert format_number(number) == shown
