"""Phone numbers written for people: `+14155550100` -> `+1 415 555 0100`. Pure.

Covers the numbering plans a user of this tool meets most (North America, the UK,
Australia) group by group; the other countries of `CALLING_CODES` (the one table of
calling codes: pricing reads countries from it too) get their calling code split off, and
anything else (a SIP extension such as `1001`) is left as it is.
"""

from __future__ import annotations

import re

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
# Calling code -> ISO country, for the countries this tool knows (pricing uses it too).
CALLING_CODES = {
    "1": "US",
    "31": "NL",
    "33": "FR",
    "34": "ES",
    "39": "IT",
    "44": "GB",
    "46": "SE",
    "49": "DE",
    "61": "AU",
    "64": "NZ",
    "353": "IE",
}
# UK geographic codes with a 2-digit area code (020 London, 029 Cardiff, ...).
_UK_TWO_DIGIT = ("20", "23", "24", "28", "29")


def format_number(number: str) -> str:
    """E.164 in the groups people dial; other strings unchanged."""
    if not _E164.match(number):
        return number
    digits = number[1:]
    if digits.startswith("1") and len(digits) == 11:
        return f"+1 {digits[1:4]} {digits[4:7]} {digits[7:]}"
    if digits.startswith("44") and len(digits) == 12:
        return "+44 " + _uk(digits[2:])
    if digits.startswith("61") and len(digits) == 11:
        nsn = digits[2:]
        if nsn.startswith("4"):  # mobiles: 4xx xxx xxx
            return f"+61 {nsn[:3]} {nsn[3:6]} {nsn[6:]}"
        return f"+61 {nsn[0]} {nsn[1:5]} {nsn[5:]}"
    code = calling_code(number)
    return f"+{code} {digits[len(code) :]}" if code else number


def calling_code(number: str) -> str | None:
    """The calling code (`44`) of an E.164 number, if it is one of `CALLING_CODES`."""
    for code in sorted(CALLING_CODES, key=len, reverse=True):
        if number.startswith(f"+{code}"):
            return code
    return None


def _uk(nsn: str) -> str:
    """A UK national number (10 digits after +44) in its usual groups."""
    if nsn.startswith(_UK_TWO_DIGIT):
        return f"{nsn[:2]} {nsn[2:6]} {nsn[6:]}"
    if nsn.startswith("7"):
        return f"{nsn[:4]} {nsn[4:]}"
    if nsn[:3] in ("113", "114", "115", "116", "117", "118") or (
        nsn.startswith("1") and nsn[2] == "1"
    ):
        return f"{nsn[:3]} {nsn[3:6]} {nsn[6:]}"  # 0113 Leeds, 0121 Birmingham, ...
    if nsn.startswith(("3", "8", "9")):
        return f"{nsn[:3]} {nsn[3:6]} {nsn[6:]}"  # 0300, 0800, 0845, 09xx
    return f"{nsn[:4]} {nsn[4:]}"
