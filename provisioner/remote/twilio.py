"""The client for Twilio phone numbers (search, prices, buy, fetch, list, release): a thin
wrapper over `remote.http`.

Owns: every request to Twilio's 2010 API (`AvailablePhoneNumbers`, `IncomingPhoneNumbers`)
and to Pricing v1 (`/v1/PhoneNumbers/Countries`), HTTP Basic auth, and Twilio's errors
("Twilio 21452: No phone numbers found for area code 533"); answers become the typed
values of `remote.twilio_values`. Retries, Ctrl-C and transport failures are the HTTP
layer's. No `httpx` exception leaves this module.

Buying costs money and Twilio has no idempotency keys, so the purchase POST is retried
only when Twilio provably did nothing (a 429, a connection that could not be opened). Any
other failure after sending raises `AmbiguousPurchaseError`: the caller must look with
`list_owned(phone_number=...)` before buying again.

Must not touch: the environment (`remote.factory` builds clients from `Settings`), the
terminal, plans, state, the Vapi API.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import quote

import httpx

from provisioner.errors import AmbiguousCreateError
from provisioner.numbers.rules import ACCOUNT_SID as _ACCOUNT_SID
from provisioner.numbers.rules import API_KEY_SID as _API_KEY_SID
from provisioner.numbers.rules import E164 as _E164
from provisioner.numbers.rules import NUMBER_SID as _NUMBER_SID
from provisioner.numbers.rules import NUMBER_TYPES
from provisioner.remote.answers import (
    Answer,
    check_credential,
    decode,
)
from provisioner.remote.http import HttpSession, RequestEvent, SessionClient
from provisioner.remote.retry import RetryPolicy
from provisioner.remote.twilio_values import (
    AmbiguousPurchaseError,
    AvailableNumber,
    Capabilities,
    CountryPricing,
    NumberPrice,
    PricingCountry,
    PurchasedNumber,
    RetryNotice,
    TwilioError,
    area_code_param,
    available,
    country_param,
    number_type_param,
    opt_str,
    price_row,
    purchased,
    purchased_or_none,
    read_twilio_error,
    relative,
    twilio_shape_error,
    wire_bool,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_PRICING_BASE_URL",
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUT",
    "NUMBER_TYPES",
    "AmbiguousPurchaseError",
    "AvailableNumber",
    "Capabilities",
    "CountryPricing",
    "NumberPrice",
    "PricingCountry",
    "PurchasedNumber",
    "RetryNotice",
    "TwilioClient",
    "TwilioError",
    "describe_twilio_error",
]

DEFAULT_BASE_URL = "https://api.twilio.com"
DEFAULT_PRICING_BASE_URL = "https://pricing.twilio.com"
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
DEFAULT_RETRY = RetryPolicy(max_attempts=5)
API = "/2010-04-01"
MAX_PAGE_SIZE = 1000
_MAX_PAGES = 1000
_CREDENTIALS_HINT = "check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"


# -- the client --------------------------------------------------------------------------


class TwilioClient(SessionClient):
    """Client for one Twilio account's phone numbers; safe to share between threads.

    Args:
        account_sid: the `AC…` Account SID (also the path of every 2010 API call).
        auth_token: the account's auth token, or the secret of `api_key`.
        api_key: an API key SID (`SK…`) to authenticate with instead of the Account SID
            (Twilio's recommendation for production); the paths still use the Account SID.
        base_url: the 2010 API origin (`TWILIO_BASE_URL` in the CLI).
        pricing_base_url: the Pricing API origin (`TWILIO_PRICING_BASE_URL`).
        transport: httpx transport; tests pass `httpx.WSGITransport` or `MockTransport`.
        timeout: per-request timeouts (seconds, or an `httpx.Timeout`).
        retry: attempts and backoff; the per-method rules are in `remote.retry`.
        on_retry: called before each retry sleep.
        sleep: used between retries; injected by tests.
        rng: source of backoff jitter.

    Raises:
        ValueError: the Account SID is malformed or the token is empty.
    """

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        pricing_base_url: str = DEFAULT_PRICING_BASE_URL,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        retry: RetryPolicy = DEFAULT_RETRY,
        on_retry: Callable[[RetryNotice], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        api_key: str | None = None,
    ) -> None:
        if not _ACCOUNT_SID.match(account_sid):
            raise ValueError("a Twilio Account SID is AC followed by 32 hexadecimal digits")
        if api_key is not None and not _API_KEY_SID.match(api_key):
            raise ValueError("a Twilio API key SID is SK followed by 32 hexadecimal digits")
        check_credential(auth_token, "the Twilio auth token")
        self._account_sid = account_sid
        self._base_url = base_url.rstrip("/")
        self._pricing_base_url = pricing_base_url.rstrip("/")
        self._on_retry = on_retry
        self._lock = threading.Lock()
        self._pricing_cache: dict[str, CountryPricing] = {}
        self._session = HttpSession(
            self._base_url,
            setting="TWILIO_BASE_URL",
            headers={},
            auth=(api_key or account_sid, auth_token),
            secrets=(auth_token,),
            transport=transport,
            timeout=timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout),
            retry=retry,
            limiter=None,  # Twilio's limits are per account, and a run asks little of it
            on_event=self._notice,
            sleep=sleep,
            rng=rng,
            describe=lambda response: describe_twilio_error(response)[0],
        )

    @property
    def account_sid(self) -> str:
        return self._account_sid

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def pricing_base_url(self) -> str:
        return self._pricing_base_url

    def _notice(self, event: RequestEvent) -> None:
        if self._on_retry is not None and event.kind == "retry":
            notice = RetryNotice(event.method, event.path, event.reason, event.delay, event.attempt)
            self._on_retry(notice)

    # -- search and prices -----------------------------------------------------------

    def search(
        self,
        country: str,
        *,
        type: str = "local",
        area_code: str | int | None = None,
        contains: str | None = None,
        sms: bool | None = None,
        voice: bool | None = None,
        limit: int = 20,
    ) -> list[AvailableNumber]:
        """Numbers for sale in `country` (ISO alpha-2), at most `limit` of them.

        Args:
            type: `local`, `toll-free`, `mobile` or `national`.
            area_code: US/CA area code (NPA).
            contains: Twilio's pattern: digits or letters, `*` for any one digit.
            sms, voice: True keeps only numbers with the capability, False only those
                without it, None does not filter.

        Returns:
            The numbers in Twilio's order; an empty list when none match.

        Raises:
            ValueError: a malformed argument.
            TwilioError: Twilio refused, e.g. code 20404 when the country has no numbers
                of that type.
        """
        iso = country_param(country)
        segment, _ = number_type_param(type)
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE_SIZE}")
        params: dict[str, str] = {"PageSize": str(limit)}
        if area_code is not None:
            params["AreaCode"] = area_code_param(area_code)
        if contains:
            params["Contains"] = contains
        if sms is not None:
            params["SmsEnabled"] = wire_bool(sms)
        if voice is not None:
            params["VoiceEnabled"] = wire_bool(voice)
        path = f"{self._account_path()}/AvailablePhoneNumbers/{iso}/{segment}.json"
        missing = f"Twilio offers no {type} numbers in {iso}"
        _, _, items = self._listing(
            self._base_url, path, "available_phone_numbers", missing, params
        )
        return [available(item) for item in items if isinstance(item, dict)][:limit]

    def pricing(self, country: str) -> CountryPricing:
        """Monthly number prices in `country` (cached for the life of this client).

        Raises:
            TwilioError: e.g. 20404 when Twilio has no prices for the country.
        """
        iso = country_param(country)
        with self._lock:
            cached = self._pricing_cache.get(iso)
        if cached is not None:
            return cached
        path = f"/v1/PhoneNumbers/Countries/{iso}"
        missing = f"Twilio has no phone-number prices for {iso}"
        answer, data, rows = self._listing(
            self._pricing_base_url, path, "phone_number_prices", missing
        )
        prices = tuple(price_row(answer, row) for row in rows if isinstance(row, dict))
        unit = data.get("price_unit")
        result = CountryPricing(
            iso_country=opt_str(data.get("iso_country")) or iso,
            country=opt_str(data.get("country")) or iso,
            currency=unit.strip().upper() if isinstance(unit, str) and unit.strip() else None,
            prices=prices,
        )
        with self._lock:
            self._pricing_cache[iso] = result
        return result

    def pricing_countries(self) -> list[PricingCountry]:
        """Every country Pricing v1 has phone-number prices for (all pages)."""
        found: list[PricingCountry] = []
        path = "/v1/PhoneNumbers/Countries"
        for item in self._pages(self._pricing_base_url, path, {}, "countries"):
            if isinstance(item.get("iso_country"), str):
                iso = str(item["iso_country"])
                found.append(PricingCountry(iso, opt_str(item.get("country")) or iso))
        return found

    def _listing(
        self,
        base: str,
        path: str,
        key: str,
        missing: str | None,
        params: Mapping[str, str] | None = None,
    ) -> tuple[Answer, dict[str, Any], list[Any]]:
        """(answer, object, its list `key`) of one GET; `missing` words a 404 if given."""
        answer = self._send("GET", base, path, params=params)
        if missing is not None and answer.response.status_code == 404:
            raise self._status_error("GET", answer, missing)
        data = self._object("GET", answer)
        items = data.get(key)
        if not isinstance(items, list):
            article = "an" if key[0] in "aeiou" else "a"
            raise twilio_shape_error(answer, f"{article} `{key}` list")
        return answer, data, items

    def _pages(
        self, base: str, path: str, params: dict[str, str], key: str
    ) -> Iterator[dict[str, Any]]:
        """The objects of list `key` on every page, following Twilio's next-page links
        (`meta.next_page_url` in Pricing v1, `next_page_uri` in the 2010 API)."""
        query: dict[str, str] | None = {"PageSize": str(MAX_PAGE_SIZE), **params}
        at: str | None = path
        for _ in range(_MAX_PAGES):
            if at is None:
                break
            _, data, items = self._listing(base, at, key, None, query)
            yield from (item for item in items if isinstance(item, dict))
            meta = data.get("meta")
            link = meta.get("next_page_url") if isinstance(meta, dict) else None
            link = link or data.get("next_page_uri")
            at = relative(link, base) if isinstance(link, str) and link else None
            query = None  # the next page's link carries its own query

    # -- owned numbers ---------------------------------------------------------------

    def buy(
        self,
        *,
        phone_number: str | None = None,
        area_code: str | int | None = None,
        friendly_name: str | None = None,
    ) -> PurchasedNumber:
        """Buy `phone_number` (E.164), or any available number in `area_code` (US/CA).

        Raises:
            ValueError: neither or both of phone_number and area_code, or malformed.
            TwilioError: Twilio refused: 21422 not available (or already bought), 21421
                invalid number, 21451 invalid area code, 21452 no numbers in the area code.
            AmbiguousPurchaseError: the purchase may have gone through; check
                `list_owned(phone_number=...)` before trying again.
            RemoteTransportError: Twilio could not be reached; nothing was bought.
        """
        if (phone_number is None) == (area_code is None):
            raise ValueError("give exactly one of phone_number and area_code")
        form: dict[str, str] = {}
        code: str | None = None
        if phone_number is not None:
            if not _E164.match(phone_number):
                raise ValueError(f"{phone_number!r} is not an E.164 number like +14155550100")
            form["PhoneNumber"] = phone_number
        else:
            assert area_code is not None
            code = area_code_param(area_code)
            form["AreaCode"] = code
        if friendly_name is not None:
            if len(friendly_name) > 64:
                raise ValueError("friendly_name is at most 64 characters")
            form["FriendlyName"] = friendly_name
        path = f"{self._account_path()}/IncomingPhoneNumbers.json"
        what = phone_number or f"a number in area code {code}"
        check = (
            f"list_owned(phone_number={phone_number!r})"
            if phone_number
            else f"list_owned(phone_number='+1{code}')"
        )

        def unsure(why: str, status: int | None, body: Any) -> AmbiguousPurchaseError:
            return AmbiguousPurchaseError(
                f"{why}; check the numbers the account owns ({check}) before buying again",
                path=path,
                status=status,
                body=body,
                phone_number=phone_number,
                area_code=code,
            )

        try:
            answer = self._send("POST", self._base_url, path, data=form)
        except AmbiguousCreateError as exc:
            why = f"the purchase of {what} may or may not have gone through ({exc.message})"
            raise unsure(why, exc.status, exc.body) from exc
        response = answer.response
        if not response.is_success:
            raise self._status_error("POST", answer)
        try:
            data = decode(response)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            return purchased(data)
        except ValueError as exc:
            # Twilio said yes, so a number was most likely bought: do not buy blindly.
            why = (
                f"Twilio accepted the purchase of {what} ({response.status_code}) but its "
                f"answer is unreadable ({exc})"
            )
            raise unsure(why, response.status_code, response.text) from exc

    def get(self, sid: str) -> PurchasedNumber | None:
        """The owned number with this `PN…` SID, or None if the account has no such number."""
        path = self._number_path(sid)
        answer = self._send("GET", self._base_url, path)
        if answer.response.status_code == 404:
            return None
        return self._purchased("GET", answer)

    def list_owned(self, phone_number: str | None = None) -> list[PurchasedNumber]:
        """Every number the account owns, all pages; `phone_number` filters (partial,
        `*` for any digit), e.g. "+14155550100" to check whether that number is owned."""
        params = {"PhoneNumber": phone_number} if phone_number else {}
        path = f"{self._account_path()}/IncomingPhoneNumbers.json"
        found: list[PurchasedNumber] = []
        seen: set[str] = set()
        for item in self._pages(self._base_url, path, params, "incoming_phone_numbers"):
            number = purchased_or_none(item)
            if number is not None and number.sid not in seen:
                seen.add(number.sid)
                found.append(number)
        return found

    def release(self, sid: str) -> bool:
        """Release (DELETE) an owned number. True if released now, False if it was
        already gone (404) — unless an earlier attempt of this call may have done it."""
        path = self._number_path(sid)
        answer = self._send("DELETE", self._base_url, path)
        status = answer.response.status_code
        if status == 404:
            return answer.maybe_applied
        if not answer.response.is_success:
            raise self._status_error("DELETE", answer)
        return True

    # -- paths and answers -----------------------------------------------------------

    def _account_path(self) -> str:
        return f"{API}/Accounts/{self._account_sid}"

    def _number_path(self, sid: str) -> str:
        if not _NUMBER_SID.match(sid):
            raise ValueError(f"{sid!r} is not a phone-number SID (PN followed by 32 hex digits)")
        return f"{self._account_path()}/IncomingPhoneNumbers/{quote(sid, safe='')}.json"

    def _purchased(self, method: str, answer: Answer) -> PurchasedNumber:
        data = self._object(method, answer)
        try:
            return purchased(data)
        except ValueError as exc:
            raise twilio_shape_error(answer, f"a phone number ({exc})") from exc

    def _object(self, method: str, answer: Answer) -> dict[str, Any]:
        response = answer.response
        if not response.is_success:
            raise self._status_error(method, answer)
        try:
            data = decode(response)
        except ValueError as exc:
            raise twilio_shape_error(answer, "JSON") from exc
        if not isinstance(data, dict):
            raise twilio_shape_error(answer, "a JSON object")
        return data

    def _status_error(self, method: str, answer: Answer, context: str = "") -> TwilioError:
        """Twilio's error; `context` puts its words in brackets after words of our own."""
        message, body, code, more_info = describe_twilio_error(answer.response)
        if context:
            message = f"{context} ({message})"
        if answer.attempts > 1:
            message += f" (gave up after {answer.attempts} attempts)"
        return TwilioError(
            message,
            method=method,
            path=answer.path,
            status=answer.response.status_code,
            body=body,
            code=code,
            more_info=more_info,
        )

    def _send(
        self,
        method: str,
        base: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
    ) -> Answer:
        """Send through the shared HTTP layer; return the final answer (any status)."""
        pricing = base == self._pricing_base_url and base != self._base_url
        return self._session.send(
            method,
            path,
            base=base,
            params=params,
            data=data,
            setting="TWILIO_PRICING_BASE_URL" if pricing else None,
        )


# -- parsing (pure) ----------------------------------------------------------------------


def describe_twilio_error(response: httpx.Response) -> tuple[str, Any, int | None, str | None]:
    """(message, parsed body, Twilio code, more_info) for an error answer; a 401 says
    which credentials to check (`twilio_values.read_twilio_error`)."""
    return read_twilio_error(response, _CREDENTIALS_HINT)
