"""A fake Twilio phone-number API as one WSGI app: search, prices, buy, list, fetch, release.

Owns: a deterministic fake inventory of phone numbers (US, CA and GB), the numbers bought
from it (optionally persisted to one JSON file), and Twilio's wire formats for these
endpoints, quirks included, so `remote.twilio` is tested against what Twilio really sends:

    GET    /2010-04-01/Accounts/{AC}/AvailablePhoneNumbers/{CC}/{Type}.json
           Type: Local, TollFree, Mobile, National (only the types the country offers).
           Filters: AreaCode, Contains (`*` one digit, `%` many at the ends, leading `+`
           anchors the start, trailing `$` the end, letters are keypad digits),
           SmsEnabled, MmsEnabled, VoiceEnabled, FaxEnabled, Beta, InRegion, InLocality,
           PageSize. Items carry upper-case `SMS`/`MMS` capability keys and string
           latitude/longitude; an empty result is 200 with an empty list.
    POST   /2010-04-01/Accounts/{AC}/IncomingPhoneNumbers.json   (form: PhoneNumber or AreaCode)
    GET    /2010-04-01/Accounts/{AC}/IncomingPhoneNumbers.json   (PhoneNumber, FriendlyName,
           Beta, Origin filters; PageSize/Page paging with `next_page_uri`)
    GET    /2010-04-01/Accounts/{AC}/IncomingPhoneNumbers/{PN}.json
    DELETE /2010-04-01/Accounts/{AC}/IncomingPhoneNumbers/{PN}.json   (204, empty body)
    GET    /v1/PhoneNumbers/Countries            (Pricing v1; `meta` envelope)
    GET    /v1/PhoneNumbers/Countries/{ISO}      (string prices, `"toll free"` with a space)

Pricing v1 lives on the same app: its paths (`/v1/...`) cannot collide with the 2010 API's
(`/2010-04-01/...`), so one origin serves both and a client may use the same base URL for
`TWILIO_BASE_URL` and `TWILIO_PRICING_BASE_URL`. The same pricing routes are also served
under a `/pricing` prefix (`/pricing/v1/PhoneNumbers/...`) for setups that want the two
APIs told apart by path.

Twilio behaviour reproduced: HTTP Basic auth (401/20003), `.json` paths only, 404/20404 for
unknown paths and numbers, 405/20004 for other methods, the purchase errors 21421 (invalid
number), 21422 (not available, also when already bought), 21451 (invalid area code) and
21452 (no numbers in the area code), the test-credential magic values (+15005550006 always
succeeds, +15005550000 gives 21422, +15005550001 gives 21421, AreaCode 500 buys
+15005550006, AreaCode 533 has no numbers), and optional 429/20429 injection.

Choices where Twilio's behaviour is not documented (see shared NUMBERS.md): a purchase with
neither PhoneNumber nor AreaCode, and malformed query parameters, answer 400 with codes
21421 and 20001; credentials of one account (`AC…` user name) on another account's path
answer 401/20003; `AreaCode` in a search outside US/CA matches nothing; a capability filter
set to `false` keeps only numbers without that capability; the magic number +15005550006
can be bought any number of times (as with test credentials) and each purchase is kept.

Must not touch: the real network, `provisioner.remote`, state files, or any file other than
its own data file. Safe to share between threads: one lock guards all data.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import random
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode
from wsgiref.types import StartResponse, WSGIEnvironment

__all__ = [
    "MAGIC_AREA_CODE",
    "MAGIC_INVALID",
    "MAGIC_OK",
    "MAGIC_UNAVAILABLE",
    "TwilioEmulator",
    "format_friendly",
]

API_VERSION = "2010-04-01"
MAGIC_OK = "+15005550006"
MAGIC_UNAVAILABLE = "+15005550000"
MAGIC_INVALID = "+15005550001"
MAGIC_AREA_CODE = "500"
# Numbers generated per (country, type, prefix): enough that a 3-digit `Contains` finds some.
POOL_SIZE = 2000
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
_FORMAT_VERSION = 1
_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_USER_SID = re.compile(r"^(AC|SK)[0-9a-fA-F]{32}$")
_E164 = re.compile(r"^\+[1-9]\d{7,14}$")
_NPA = re.compile(r"^[2-9]\d\d$")
# Twilio's own rule, kept here (the fake imports nothing of the tool it tests); the tool's
# copy is `provisioner.numbers.rules.CONTAINS`.
_CONTAINS = re.compile(r"^\+?%?[0-9A-Za-z*]{2,16}%?\$?$")
_KEYPAD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "22233344455566677778889999")
_NUMBERS_ROUTE = re.compile(r"^/2010-04-01/Accounts/([^/]+)/(.+)$")
_SEARCH_ROUTE = re.compile(r"^AvailablePhoneNumbers/([^/]+)/([^/]+)\.json$")
_ITEM_ROUTE = re.compile(r"^IncomingPhoneNumbers/([^/]+)\.json$")
_PRICING_ROUTE = re.compile(r"^(/pricing)?/v1/PhoneNumbers/Countries(?:/([^/]+))?/?$")
# Path name -> (our kind, Pricing v1 number_type, IncomingPhoneNumber `type`).
_TYPES: Mapping[str, tuple[str, str, str]] = {
    "Local": ("local", "local", "local"),
    "TollFree": ("toll_free", "toll free", "tollfree"),
    "Mobile": ("mobile", "mobile", "mobile"),
    "National": ("national", "national", "national"),
}
_KIND_TYPE = {kind: wire for kind, _, wire in _TYPES.values()}
# Settable on purchase: form name -> resource field.
_CONFIG_FIELDS: Mapping[str, str] = {
    "ApiVersion": "api_version",
    "VoiceUrl": "voice_url",
    "VoiceMethod": "voice_method",
    "VoiceFallbackUrl": "voice_fallback_url",
    "VoiceFallbackMethod": "voice_fallback_method",
    "VoiceApplicationSid": "voice_application_sid",
    "VoiceReceiveMode": "voice_receive_mode",
    "SmsUrl": "sms_url",
    "SmsMethod": "sms_method",
    "SmsFallbackUrl": "sms_fallback_url",
    "SmsFallbackMethod": "sms_fallback_method",
    "SmsApplicationSid": "sms_application_sid",
    "StatusCallback": "status_callback",
    "StatusCallbackMethod": "status_callback_method",
    "TrunkSid": "trunk_sid",
    "AddressSid": "address_sid",
    "EmergencyAddressSid": "emergency_address_sid",
    "EmergencyStatus": "emergency_status",
    "IdentitySid": "identity_sid",
    "BundleSid": "bundle_sid",
}


# -- the fake inventory ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Place:
    """Where a NANP area code is: city, state, ZIP, rate center, LATA, micro-degrees."""

    locality: str
    region: str
    postal_code: str
    rate_center: str
    lata: str
    lat_micro: int
    long_micro: int


# Plausible, not authoritative: enough for realistic search output.
_US_PLACES: Mapping[str, _Place] = {
    "415": _Place("San Francisco", "CA", "94103", "SNFC CNTL", "722", 37774900, -122419400),
    "212": _Place("New York", "NY", "10001", "NWYRCYZN01", "132", 40712800, -74006000),
    "312": _Place("Chicago", "IL", "60601", "CHICAGO", "358", 41878100, -87629800),
    "512": _Place("Austin", "TX", "78701", "AUSTIN", "558", 30267200, -97743100),
    "213": _Place("Los Angeles", "CA", "90012", "LSAN DA 01", "730", 34052200, -118243700),
    "206": _Place("Seattle", "WA", "98101", "SEATTLE", "674", 47606200, -122332100),
    "617": _Place("Boston", "MA", "02108", "BOSTON", "128", 42360100, -71058900),
    "305": _Place("Miami", "FL", "33130", "MIAMI", "460", 25761700, -80191800),
    "404": _Place("Atlanta", "GA", "30303", "ATLANTA", "438", 33749000, -84388000),
    "303": _Place("Denver", "CO", "80202", "DENVER", "656", 39739200, -104990300),
    "808": _Place("Honolulu", "HI", "96813", "HONOLULU", "834", 21306900, -157858300),
}
_CA_PLACES: Mapping[str, _Place] = {
    "416": _Place("Toronto", "ON", "M5H", "TORONTO", "888", 43653200, -79383200),
    "647": _Place("Toronto", "ON", "M5V", "TORONTO", "888", 43653200, -79383200),
    "604": _Place("Vancouver", "BC", "V6B", "VANCOUVER", "888", 49282700, -123120700),
    "514": _Place("Montreal", "QC", "H2Y", "MONTREAL", "888", 45501700, -73567300),
    "613": _Place("Ottawa", "ON", "K1P", "OTTAWA HULL", "888", 45421500, -75697200),
    "403": _Place("Calgary", "AB", "T2P", "CALGARY", "888", 51044700, -114071900),
    "780": _Place("Edmonton", "AB", "T5J", "EDMONTON", "888", 53546100, -113493800),
    "902": _Place("Halifax", "NS", "B3J", "HALIFAX", "888", 44648800, -63575200),
}
_NANP_TOLL_FREE = ("800", "833", "844", "855", "866", "877", "888")
# Valid-looking area codes with no geographic numbers: personal-communication 5XX codes
# (533 is Twilio's magic "no numbers" code), 555, 600/700 services, premium 900-series.
_NANP_NO_INVENTORY = frozenset(
    {"500", "522", "533", "544", "566", "577", "588", "555", "600", "700", "710", "900"}
    | {"950", "958", "959", "976"}
)
# GB prefixes after +44 (national significant numbers are 10 digits), with a locality.
_GB_LOCAL: Mapping[str, str] = {
    "20": "London",
    "121": "Birmingham",
    "161": "Manchester",
    "131": "Edinburgh",
    "141": "Glasgow",
    "113": "Leeds",
    "117": "Bristol",
}
_GB_MOBILE = ("74", "75", "77", "78", "79")
_GB_NATIONAL = ("330", "333", "300")
_GB_TOLL_FREE = ("800", "808")


@dataclass(frozen=True, slots=True)
class _Country:
    iso: str
    name: str
    dial: str
    # Our kind -> the prefixes (after the country code) that have numbers.
    kinds: Mapping[str, Sequence[str]]
    # Pricing v1 rows: (number_type, monthly price as Twilio writes it).
    prices: Sequence[tuple[str, str]]


_COUNTRIES: Mapping[str, _Country] = {
    "US": _Country(
        "US",
        "United States",
        "1",
        {"local": tuple(_US_PLACES), "toll_free": _NANP_TOLL_FREE},
        (("local", "1.15"), ("toll free", "2.15")),
    ),
    "CA": _Country(
        "CA",
        "Canada",
        "1",
        {"local": tuple(_CA_PLACES), "toll_free": _NANP_TOLL_FREE},
        (("local", "1.15"), ("toll free", "2.15")),
    ),
    "GB": _Country(
        "GB",
        "United Kingdom",
        "44",
        {
            "local": tuple(_GB_LOCAL),
            "mobile": _GB_MOBILE,
            "national": _GB_NATIONAL,
            "toll_free": _GB_TOLL_FREE,
        },
        (("local", "1.00"), ("mobile", "1.00"), ("national", "1.00"), ("toll free", "2.00")),
    ),
}


@dataclass(frozen=True, slots=True)
class _Listing:
    """One number Twilio could sell."""

    phone_number: str
    iso_country: str
    kind: str
    locality: str | None
    region: str | None
    postal_code: str | None
    rate_center: str | None
    lata: str | None
    latitude: str | None
    longitude: str | None
    address_requirements: str
    beta: bool
    voice: bool
    sms: bool
    mms: bool
    fax: bool | None  # None: the key is left out, as Twilio sometimes does

    def search_item(self) -> dict[str, Any]:
        """As AvailablePhoneNumbers sends it: upper-case SMS/MMS keys, string coordinates."""
        capabilities: dict[str, bool] = {"voice": self.voice, "SMS": self.sms, "MMS": self.mms}
        if self.fax is not None:
            capabilities["fax"] = self.fax
        return {
            "friendly_name": format_friendly(self.phone_number),
            "phone_number": self.phone_number,
            "lata": self.lata,
            "locality": self.locality,
            "rate_center": self.rate_center,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "region": self.region,
            "postal_code": self.postal_code,
            "iso_country": self.iso_country,
            "address_requirements": self.address_requirements,
            "beta": self.beta,
            "capabilities": capabilities,
        }


def format_friendly(phone_number: str) -> str:
    """Twilio's default friendly name: `(415) 555-0100` in NANP, the E.164 number elsewhere."""
    if phone_number.startswith("+1") and len(phone_number) == 12:
        digits = phone_number[2:]
        return f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"
    return phone_number


def _micro(value: int) -> str:
    return str(Decimal(value).scaleb(-6))


def _generate(country: _Country, kind: str, prefix: str) -> dict[str, _Listing]:
    """The pool of numbers for one prefix: the same on every run (seeded by its key)."""
    rng = random.Random(f"twilio-emulator:{country.iso}:{kind}:{prefix}")
    place = _nanp_place(country.iso, prefix) if kind == "local" else None
    pool: dict[str, _Listing] = {}
    attempts = 0
    while len(pool) < POOL_SIZE and attempts < POOL_SIZE * 4:
        attempts += 1
        if country.dial == "1":
            exchange = f"{rng.randint(2, 9)}{rng.randint(0, 9)}{rng.randint(0, 9)}"
            if exchange[1:] == "11":
                continue  # N11 codes are service codes, never exchanges
            national = f"{prefix}{exchange}{rng.randint(0, 9999):04d}"
        else:
            # 10-digit national numbers; the subscriber part starts with 2-9.
            width = 10 - len(prefix) - 1
            national = f"{prefix}{rng.randint(2, 9)}{rng.randint(0, 10**width - 1):0{width}d}"
        number = f"+{country.dial}{national}"
        if number in pool or number in (MAGIC_OK, MAGIC_UNAVAILABLE, MAGIC_INVALID):
            continue
        pool[number] = _listing(country, kind, prefix, number, place, rng)
    return pool


def _listing(
    country: _Country,
    kind: str,
    prefix: str,
    number: str,
    place: _Place | None,
    rng: random.Random,
) -> _Listing:
    roll = rng.random()
    beta = rng.random() < 0.03
    if country.dial == "1":
        if kind == "toll_free":
            voice, sms, mms = True, True, roll < 0.9
        else:
            voice, sms, mms = True, roll < 0.92, roll < 0.8
        fax: bool | None = rng.random() < 0.3
        lat = long = None
        if place is not None:
            # Scatter numbers around the city centre by up to ~5 km.
            lat = _micro(place.lat_micro + rng.randint(-50000, 50000))
            long = _micro(place.long_micro + rng.randint(-50000, 50000))
        return _Listing(
            number,
            country.iso,
            kind,
            place.locality if place else None,
            place.region if place else None,
            place.postal_code if place else None,
            place.rate_center if place else None,
            place.lata if place else None,
            lat,
            long,
            "none",
            beta,
            voice,
            sms,
            mms,
            fax,
        )
    # GB: geography is mostly null outside US/CA; `fax` is left out.
    locality = _GB_LOCAL.get(prefix) if kind == "local" else None
    sms = kind == "mobile"
    requirements = "local" if kind == "local" else "any"
    return _Listing(
        number, country.iso, kind, locality, None, None, None, None, None, None,
        requirements, beta, True, sms, False, None,
    )  # fmt: skip


def _nanp_place(iso: str, npa: str) -> _Place | None:
    return (_CA_PLACES if iso == "CA" else _US_PLACES).get(npa)


def _nanp_has_numbers(iso: str, kind: str, npa: str) -> bool:
    """Whether a valid NANP area code has numbers of this kind in this country."""
    if kind == "toll_free":
        return npa in _NANP_TOLL_FREE
    if kind != "local" or npa in _NANP_NO_INVENTORY or npa in _NANP_TOLL_FREE:
        return False
    if iso == "CA":
        return npa in _CA_PLACES
    # Any other valid US area code has numbers, with generic (null) geography.
    return npa not in _CA_PLACES


def _valid_npa(npa: str) -> bool:
    return bool(_NPA.match(npa)) and npa[1:] != "11"


# -- errors and small helpers ------------------------------------------------------------


class _Fail(Exception):
    """A Twilio error answer: raised by handlers, turned into the JSON error body."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _error_body(status: int, code: int, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def _not_found(path: str) -> _Fail:
    return _Fail(404, 20404, f"The requested resource {path} was not found")


def _bad_param(message: str) -> _Fail:
    return _Fail(400, 20001, message)


def _bool_param(query: Mapping[str, str], name: str) -> bool | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    lowered = value.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise _bad_param(f"Invalid value for {name}: {value!r} (expected true or false)")


def _int_param(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    value = query.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise _bad_param(f"Invalid value for {name}: {value!r}") from None
    if not low <= number <= high:
        raise _bad_param(f"{name} must be between {low} and {high}")
    return number


def _contains_regex(pattern: str) -> re.Pattern[str]:
    """Twilio's `Contains` pattern as a regex over the E.164 digits (no `+`)."""
    text = pattern.strip()
    if not _CONTAINS.match(text):
        raise _bad_param(
            f"Invalid Contains pattern {pattern!r}: use 2 to 16 digits, letters or `*` "
            "(`%` only at the ends, optional leading `+` and trailing `$`)"
        )
    anchored_start = text.startswith("+")
    anchored_end = text.endswith("$")
    core = text.removeprefix("+").removesuffix("$")
    parts: list[str] = []
    for char in core.upper().translate(_KEYPAD):
        parts.append(r"\d" if char == "*" else r"\d*" if char == "%" else re.escape(char))
    return re.compile(
        ("^" if anchored_start else "") + "".join(parts) + ("$" if anchored_end else "")
    )


def _wildcard_regex(pattern: str) -> re.Pattern[str]:
    """IncomingPhoneNumbers' partial `PhoneNumber` filter: `*` is any one digit."""
    return re.compile("".join(r"\d" if c == "*" else re.escape(c) for c in pattern.strip()))


def _now_rfc2822(now: datetime) -> str:
    return format_datetime(now.astimezone(UTC).replace(microsecond=0))


def _utc_now() -> datetime:
    return datetime.now(UTC)


# -- the app -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    path: str
    query: Mapping[str, str]
    query_string: str
    form: Mapping[str, str]
    origin: str  # scheme://host of the request, for absolute URLs in Pricing answers


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: Any  # JSON-able; None for an empty body


class TwilioEmulator:
    """The fake Twilio numbers and pricing API (a WSGI app).

    Args:
        store_path: persist bought numbers to this JSON file (read at start, rewritten
            atomically after every change); None keeps them in memory only.
        credentials: accept only this (username, secret) pair; None accepts any `AC…`
            or `SK…` SID with a non-empty secret.
        rate_limit: probability (0 to 1) that a request is refused with 429/20429 before
            anything is done.
        seed: seed for the rate-limit draws, so a test's faults repeat.
        clock: current time (tz-aware) for `date_created`/`date_updated`.
        after_purchase: called with the bought number once it is recorded, before the
            answer is sent; a test holds the answer here to kill the client after Twilio
            sold the number but before the client could record it.

    Raises:
        ValueError: `store_path` exists but is not a readable emulator data file (it is
            never silently replaced by an empty store).
    """

    def __init__(
        self,
        *,
        store_path: Path | None = None,
        credentials: tuple[str, str] | None = None,
        rate_limit: float = 0.0,
        seed: int | None = None,
        clock: Callable[[], datetime] = _utc_now,
        after_purchase: Callable[[Mapping[str, Any]], None] | None = None,
    ) -> None:
        if not 0.0 <= rate_limit <= 1.0:
            raise ValueError("rate_limit must be between 0 and 1")
        self._store_path = store_path
        self._credentials = credentials
        self._rate_limit = rate_limit
        self._rng = random.Random(seed)
        self._clock = clock
        self._after_purchase = after_purchase
        # Re-entrant: a purchase picks its number and records it under one hold.
        self._lock = threading.RLock()
        self._pools: dict[tuple[str, str, str], dict[str, _Listing]] = {}
        # Bought numbers by PN sid, in purchase order.
        self._owned: dict[str, dict[str, Any]] = {}
        self._requests = 0
        if store_path is not None:
            self._owned = _load(store_path)

    # -- inspection (tests) ----------------------------------------------------------

    @property
    def request_count(self) -> int:
        """Requests received so far (every attempt, refused ones included)."""
        with self._lock:
            return self._requests

    def owned(self) -> list[dict[str, Any]]:
        """Copies of every bought number, all accounts, in purchase order."""
        with self._lock:
            return [json.loads(json.dumps(r)) for r in self._owned.values()]

    # -- WSGI ------------------------------------------------------------------------

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            request = _read_request(environ)
            answer = self._handle(request, environ.get("HTTP_AUTHORIZATION", ""))
        except _Fail as fail:
            answer = _Answer(fail.status, _error_body(fail.status, fail.code, fail.message))
        reason = {
            200: "OK",
            201: "Created",
            204: "No Content",
            400: "Bad Request",
            401: "Unauthorized",
            404: "Not Found",
            405: "Method Not Allowed",
            429: "Too Many Requests",
        }.get(answer.status, "Error")
        if answer.body is None:
            start_response(f"{answer.status} {reason}", [("Content-Length", "0")])
            return [b""]
        data = json.dumps(answer.body).encode("utf-8")
        start_response(
            f"{answer.status} {reason}",
            [
                ("Content-Type", "application/json; charset=utf-8"),
                ("Content-Length", str(len(data))),
            ],
        )
        return [data]

    def _handle(self, request: _Request, authorization: str) -> _Answer:
        with self._lock:
            self._requests += 1
        user = self._authenticate(authorization)
        pricing = _PRICING_ROUTE.match(request.path)
        if pricing is not None:
            self._maybe_throttle()
            if request.method != "GET":
                raise _Fail(405, 20004, "Method not allowed")
            prefix, iso = pricing.group(1) or "", pricing.group(2)
            if iso is None:
                return self._pricing_countries(request, prefix)
            return self._pricing_country(request, prefix, iso)
        route = _NUMBERS_ROUTE.match(request.path)
        if route is None or not request.path.endswith(".json"):
            raise _not_found(request.path)
        account_sid, rest = route.group(1), route.group(2)
        if not _ACCOUNT_SID.match(account_sid):
            raise _not_found(request.path)
        if user.startswith("AC") and user.lower() != account_sid.lower():
            raise _Fail(401, 20003, "Authenticate")
        self._maybe_throttle()
        if (search := _SEARCH_ROUTE.match(rest)) is not None:
            if request.method != "GET":
                raise _Fail(405, 20004, "Method not allowed")
            return self._search(request, search.group(1), search.group(2))
        if rest == "IncomingPhoneNumbers.json":
            if request.method == "POST":
                return self._buy(request, account_sid)
            if request.method == "GET":
                return self._list(request, account_sid)
            raise _Fail(405, 20004, "Method not allowed")
        if (item := _ITEM_ROUTE.match(rest)) is not None:
            if request.method == "GET":
                return _Answer(200, self._fetch(request.path, account_sid, item.group(1)))
            if request.method == "DELETE":
                self._release(request.path, account_sid, item.group(1))
                return _Answer(204, None)
            raise _Fail(405, 20004, "Method not allowed")
        raise _not_found(request.path)

    def _authenticate(self, authorization: str) -> str:
        """The Basic-auth user name, or a 401/20003 failure."""
        scheme, _, encoded = authorization.partition(" ")
        user = secret = ""
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            user, _, secret = decoded.partition(":")
        if self._credentials is not None:
            ok = (user, secret) == self._credentials
        else:
            ok = bool(_USER_SID.match(user)) and bool(secret)
        if not ok:
            raise _Fail(401, 20003, "Authenticate")
        return user

    def _maybe_throttle(self) -> None:
        if self._rate_limit <= 0.0:
            return
        with self._lock:
            refused = self._rng.random() < self._rate_limit
        if refused:
            raise _Fail(429, 20429, "Too Many Requests")

    # -- search ----------------------------------------------------------------------

    def _pool(self, country: _Country, kind: str, prefix: str) -> dict[str, _Listing]:
        key = (country.iso, kind, prefix)
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                pool = self._pools[key] = _generate(country, kind, prefix)
            return pool

    def _taken(self) -> set[str]:
        with self._lock:
            return {str(r["phone_number"]) for r in self._owned.values()}

    def _search(self, request: _Request, iso: str, type_name: str) -> _Answer:
        country = _COUNTRIES.get(iso.upper())
        types = _TYPES.get(type_name)
        if country is None or types is None or types[0] not in country.kinds:
            raise _not_found(request.path)
        kind = types[0]
        query = request.query
        page_size = _int_param(query, "PageSize", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
        wanted = {
            "voice": _bool_param(query, "VoiceEnabled"),
            "sms": _bool_param(query, "SmsEnabled"),
            "mms": _bool_param(query, "MmsEnabled"),
            "fax": _bool_param(query, "FaxEnabled"),
        }
        beta = _bool_param(query, "Beta")
        contains = _contains_regex(query["Contains"]) if query.get("Contains") else None
        in_region = (query.get("InRegion") or "").strip().lower() or None
        in_locality = (query.get("InLocality") or "").strip().lower() or None
        prefixes = self._search_prefixes(country, kind, (query.get("AreaCode") or "").strip())
        taken = self._taken()
        found: list[dict[str, Any]] = []
        for listing in self._interleave([self._pool(country, kind, p) for p in prefixes]):
            if listing.phone_number in taken:
                continue
            if beta is False and listing.beta:
                continue
            if any(
                want is not None and bool(getattr(listing, cap)) != want
                for cap, want in wanted.items()
            ):
                continue
            if contains is not None and not contains.search(listing.phone_number[1:]):
                continue
            if in_region is not None and (listing.region or "").lower() != in_region:
                continue
            if in_locality is not None and (listing.locality or "").lower() != in_locality:
                continue
            found.append(listing.search_item())
            if len(found) >= page_size:
                break
        uri = request.path + (f"?{request.query_string}" if request.query_string else "")
        return _Answer(200, {"available_phone_numbers": found, "uri": uri})

    @staticmethod
    def _search_prefixes(country: _Country, kind: str, area_code: str) -> Sequence[str]:
        if not area_code:
            return country.kinds[kind]
        if country.dial != "1":
            return ()  # AreaCode is a US/CA filter
        if not _valid_npa(area_code):
            raise _Fail(400, 21451, f"Invalid area code {area_code}")
        return (area_code,) if _nanp_has_numbers(country.iso, kind, area_code) else ()

    @staticmethod
    def _interleave(pools: Sequence[Mapping[str, _Listing]]) -> Iterator[_Listing]:
        """Round-robin over the pools, so a country-wide search spans its area codes."""
        iterators = [iter(p.values()) for p in pools]
        while iterators:
            alive = []
            for it in iterators:
                listing = next(it, None)
                if listing is not None:
                    alive.append(it)
                    yield listing
            iterators = alive

    # -- buy, list, fetch, release ---------------------------------------------------

    def _find_listing(self, number: str) -> _Listing | None:
        """The inventory entry for an E.164 number, wherever it is."""
        for country in _COUNTRIES.values():
            if not number.startswith(f"+{country.dial}"):
                continue
            national = number[1 + len(country.dial) :]
            for kind, prefixes in country.kinds.items():
                for prefix in prefixes:
                    if national.startswith(prefix):
                        listing = self._pool(country, kind, prefix).get(number)
                        if listing is not None:
                            return listing
            if country.dial == "1":
                npa = national[:3]
                if _valid_npa(npa) and _nanp_has_numbers(country.iso, "local", npa):
                    listing = self._pool(country, "local", npa).get(number)
                    if listing is not None:
                        return listing
        return None

    def _buy(self, request: _Request, account_sid: str) -> _Answer:
        form = request.form
        number = (form.get("PhoneNumber") or "").strip()
        area_code = (form.get("AreaCode") or "").strip()
        friendly = form.get("FriendlyName")
        if friendly is not None and len(friendly) > 64:
            raise _bad_param("FriendlyName must be at most 64 characters")
        if not number and not area_code:
            raise _Fail(400, 21421, "A 'PhoneNumber' or 'AreaCode' is required")
        with self._lock:
            if number:
                listing = self._listing_for_number(number)
            else:
                listing = self._listing_for_area_code(area_code)
            taken = {str(r["phone_number"]) for r in self._owned.values()}
            if listing.phone_number != MAGIC_OK and listing.phone_number in taken:
                # Someone (maybe this account) bought it first.
                raise _Fail(400, 21422, f"PhoneNumber {listing.phone_number} is not available")
            resource = self._resource(account_sid, listing, form)
            self._owned[str(resource["sid"])] = resource
            self._save_locked()
            answer = json.loads(json.dumps(resource))
        if self._after_purchase is not None:
            self._after_purchase(answer)  # outside the lock: other requests go on
        return _Answer(201, answer)

    def _listing_for_number(self, number: str) -> _Listing:
        if number == MAGIC_INVALID or not _E164.match(number):
            raise _Fail(400, 21421, f"PhoneNumber {number} is invalid")
        if number.startswith("+1") and len(number) != 12:
            raise _Fail(400, 21421, f"PhoneNumber {number} is invalid")
        if number == MAGIC_OK:
            return _magic_listing()
        listing = None if number == MAGIC_UNAVAILABLE else self._find_listing(number)
        if listing is None:
            raise _Fail(400, 21422, f"PhoneNumber {number} is not available")
        return listing

    def _listing_for_area_code(self, area_code: str) -> _Listing:
        if area_code == MAGIC_AREA_CODE:
            return _magic_listing()
        if not _valid_npa(area_code):
            raise _Fail(400, 21451, f"Invalid area code {area_code}")
        taken = self._taken()
        for iso in ("US", "CA"):
            if not _nanp_has_numbers(iso, "local", area_code):
                continue
            for listing in self._pool(_COUNTRIES[iso], "local", area_code).values():
                if listing.phone_number not in taken:
                    return listing
        raise _Fail(400, 21452, f"No phone numbers found for area code {area_code}")

    def _resource(
        self, account_sid: str, listing: _Listing, form: Mapping[str, str]
    ) -> dict[str, Any]:
        sid = "PN" + uuid.uuid4().hex
        stamp = _now_rfc2822(self._clock())
        resource: dict[str, Any] = {
            "account_sid": account_sid,
            "address_requirements": listing.address_requirements,
            "address_sid": None,
            "api_version": API_VERSION,
            "beta": listing.beta,
            "bundle_sid": None,
            "capabilities": {
                "voice": listing.voice,
                "sms": listing.sms,
                "mms": listing.mms,
                "fax": bool(listing.fax),
            },
            "date_created": stamp,
            "date_updated": stamp,
            "emergency_address_sid": None,
            "emergency_address_status": "unregistered",
            "emergency_status": "Inactive",
            "friendly_name": form.get("FriendlyName") or format_friendly(listing.phone_number),
            "identity_sid": None,
            "origin": "twilio",
            "phone_number": listing.phone_number,
            "sid": sid,
            "sms_application_sid": "",
            "sms_fallback_method": "POST",
            "sms_fallback_url": "",
            "sms_method": "POST",
            "sms_url": "",
            "status": "in-use",
            "status_callback": "",
            "status_callback_method": "POST",
            "trunk_sid": None,
            "type": _KIND_TYPE.get(listing.kind, listing.kind),
            "uri": f"/{API_VERSION}/Accounts/{account_sid}/IncomingPhoneNumbers/{sid}.json",
            "voice_application_sid": "",
            "voice_caller_id_lookup": False,
            "voice_fallback_method": "POST",
            "voice_fallback_url": None,
            "voice_method": "POST",
            "voice_receive_mode": "voice",
            "voice_url": None,
        }
        for name, field in _CONFIG_FIELDS.items():
            if name in form:
                resource[field] = form[name]
        return resource

    def _list(self, request: _Request, account_sid: str) -> _Answer:
        query = request.query
        page_size = _int_param(query, "PageSize", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
        page = _int_param(query, "Page", 0, 0, 10**9)
        number = query.get("PhoneNumber")
        pattern = _wildcard_regex(number) if number else None
        friendly = query.get("FriendlyName")
        beta = _bool_param(query, "Beta")
        origin = query.get("Origin")
        with self._lock:
            mine = [
                r
                for r in self._owned.values()
                if str(r["account_sid"]).lower() == account_sid.lower()
                and (pattern is None or pattern.search(str(r["phone_number"])))
                and (friendly is None or r["friendly_name"] == friendly)
                and (beta is None or bool(r["beta"]) == beta)
                and (origin is None or r["origin"] == origin)
            ]
            items = json.loads(json.dumps(mine[page * page_size : (page + 1) * page_size]))
            has_next = (page + 1) * page_size < len(mine)
        path = request.path
        filters = {
            k: v for k, v in query.items() if k in ("PhoneNumber", "FriendlyName", "Beta", "Origin")
        }

        def page_uri(n: int) -> str:
            return f"{path}?{urlencode({**filters, 'PageSize': page_size, 'Page': n})}"

        start = page * page_size
        return _Answer(
            200,
            {
                "incoming_phone_numbers": items,
                "uri": page_uri(page),
                "first_page_uri": page_uri(0),
                "next_page_uri": page_uri(page + 1) if has_next else None,
                "previous_page_uri": page_uri(page - 1) if page > 0 else None,
                "page": page,
                "page_size": page_size,
                "start": start,
                "end": start + max(len(items) - 1, 0),
            },
        )

    def _owned_by(self, path: str, account_sid: str, sid: str) -> dict[str, Any]:
        resource = self._owned.get(sid)
        if resource is None or str(resource["account_sid"]).lower() != account_sid.lower():
            raise _not_found(path)
        return resource

    def _fetch(self, path: str, account_sid: str, sid: str) -> dict[str, Any]:
        with self._lock:
            resource = self._owned_by(path, account_sid, sid)
            copy: dict[str, Any] = json.loads(json.dumps(resource))
            return copy

    def _release(self, path: str, account_sid: str, sid: str) -> None:
        with self._lock:
            self._owned_by(path, account_sid, sid)
            del self._owned[sid]
            self._save_locked()

    # -- pricing ---------------------------------------------------------------------

    def _pricing_countries(self, request: _Request, prefix: str) -> _Answer:
        page_size = _int_param(request.query, "PageSize", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
        page = _int_param(request.query, "Page", 0, 0, 10**9)
        base = f"{request.origin}{prefix}/v1/PhoneNumbers/Countries"
        every = sorted(_COUNTRIES.values(), key=lambda c: c.name)
        chosen = every[page * page_size : (page + 1) * page_size]

        def page_url(n: int) -> str:
            return f"{base}?{urlencode({'PageSize': page_size, 'Page': n})}"

        countries = [
            {"country": c.name, "iso_country": c.iso, "url": f"{base}/{c.iso}"} for c in chosen
        ]
        more = (page + 1) * page_size < len(every)
        return _Answer(
            200,
            {
                "countries": countries,
                "meta": {
                    "page": page,
                    "page_size": page_size,
                    "first_page_url": page_url(0),
                    "previous_page_url": page_url(page - 1) if page > 0 else None,
                    "url": page_url(page),
                    "next_page_url": page_url(page + 1) if more else None,
                    "key": "countries",
                },
            },
        )

    def _pricing_country(self, request: _Request, prefix: str, iso: str) -> _Answer:
        country = _COUNTRIES.get(iso.upper())
        if country is None:
            raise _not_found(f"/PhoneNumbers/Countries/{iso}")
        return _Answer(
            200,
            {
                "country": country.name,
                "iso_country": country.iso,
                "phone_number_prices": [
                    {"number_type": kind, "base_price": price, "current_price": price}
                    for kind, price in country.prices
                ],
                "price_unit": "USD",
                "url": f"{request.origin}{prefix}/v1/PhoneNumbers/Countries/{country.iso}",
            },
        )

    # -- persistence -----------------------------------------------------------------

    def _save_locked(self) -> None:
        """Write the data file (caller holds the lock): temp file, fsync, rename."""
        if self._store_path is None:
            return
        path = self._store_path
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "format_version": _FORMAT_VERSION,
            "incoming_phone_numbers": list(self._owned.values()),
        }
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            with tmp.open("w", encoding="utf-8") as handle:
                json.dump(doc, handle, indent=2)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def _magic_listing() -> _Listing:
    return _Listing(
        MAGIC_OK, "US", "local", None, None, None, None, None, None, None,
        "none", False, True, True, True, False,
    )  # fmt: skip


def _load(path: Path) -> dict[str, dict[str, Any]]:
    """Bought numbers from the data file; {} when it does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format_version") != _FORMAT_VERSION:
        raise ValueError(f"{path} is not a Twilio emulator data file (format_version 1)")
    items = doc.get("incoming_phone_numbers")
    if not isinstance(items, list) or not all(
        isinstance(r, dict) and isinstance(r.get("sid"), str) for r in items
    ):
        raise ValueError(f"{path}: `incoming_phone_numbers` must be a list of numbers")
    return {str(r["sid"]): r for r in items}


def _read_request(environ: WSGIEnvironment) -> _Request:
    method = str(environ.get("REQUEST_METHOD", "GET")).upper()
    path = str(environ.get("PATH_INFO", "") or "/")
    query_string = str(environ.get("QUERY_STRING", ""))
    query = _first_values(parse_qs(query_string, keep_blank_values=True))
    form: dict[str, str] = {}
    if method in ("POST", "PUT", "PATCH"):
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        raw = environ["wsgi.input"].read(length) if length > 0 else b""
        content_type = str(environ.get("CONTENT_TYPE", ""))
        if raw and "application/x-www-form-urlencoded" not in content_type:
            raise _bad_param("Request bodies must be application/x-www-form-urlencoded")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _bad_param("Request body is not UTF-8") from None
        form = _first_values(parse_qs(text, keep_blank_values=True))
    scheme = str(environ.get("wsgi.url_scheme", "http"))
    host = str(environ.get("HTTP_HOST") or environ.get("SERVER_NAME") or "localhost")
    return _Request(method, path, query, query_string, form, f"{scheme}://{host}")


def _first_values(parsed: Mapping[str, list[str]]) -> dict[str, str]:
    return {key: values[0] for key, values in parsed.items() if values}
