"""Twilio for plan and apply: prices for the plan's cost line, and buying and releasing
the numbers a manifest asks for with `purchase:`.

Owns: one `TwilioClient` per account (credentials from the phone number's own
`twilioAccountSid`/`twilioAuthToken`, else `TWILIO_ACCOUNT_SID`/`TWILIO_AUTH_TOKEN`), the
base URLs (`TWILIO_BASE_URL`, `TWILIO_PRICING_BASE_URL`, or the in-process emulator under
`--sandbox`), and a price cache per account and country for the run.

Buying is made crash-safe by the marker (`provisioner.plan.purchase.purchase_marker`):
every number is bought with a FriendlyName that names the manifest address, the state
lineage and the criteria, so a run that died between Twilio's answer and the state write
finds its number (`find_bought`) instead of buying another.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from provisioner.costs import Price, PriceKey
from provisioner.errors import ProvisionerError, RemoteError
from provisioner.numbers.rules import AREA_CODE_COUNTRIES, DEFAULT_COUNTRY, DEFAULT_TYPE, NumberType
from provisioner.settings import Settings
from provisioner.values import Sensitive

if TYPE_CHECKING:
    from provisioner.remote.twilio import PurchasedNumber, TwilioClient

SANDBOX_TWILIO_URL = "http://twilio.sandbox.local"
SANDBOX_ACCOUNT_SID = "AC" + "0" * 32
SANDBOX_AUTH_TOKEN = "sandbox"


# A price is an optional figure in a plan: ask twice, briefly, then report it missing.
_PRICES_ATTEMPTS = 2
_PRICES_MAX_DELAY = 2.0
_PRICES_TIMEOUT = 5.0


# The value `destroy` gives an unset `${env:...}` (destroy sends the manifest's values
# nowhere): never used as a credential, and a release that would need it is refused.
UNSET_FOR_DESTROY = "(unset: not needed to destroy)"


class PurchaseError(ProvisionerError):
    """A number could not be bought or released."""


def _given(value: Sensitive | str, field: str) -> str:
    """A secret the manifest gives. The stand-in for an unset `${env:...}` is refused,
    never replaced by TWILIO_AUTH_TOKEN (which may be another account's)."""
    text = value.value if isinstance(value, Sensitive) else value
    if text == UNSET_FOR_DESTROY:
        raise PurchaseError(
            f"the phone number's {field} comes from an environment variable that is not set"
        )
    return text


class Twilio:
    """The Twilio accounts a run talks to. Thread-safe; close() when done."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._clients: dict[str, TwilioClient] = {}
        self._tokens: dict[str, str] = {}
        # Account SID -> API key SID, for numbers that authenticate with a key.
        self._keys: dict[str, str] = {}
        self._prices: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self._transport: Any = None

    # -- credentials and clients -------------------------------------------------------

    def credentials(self, body: Mapping[str, Any]) -> tuple[str, str]:
        """(account SID, auth token or API key secret) for a phone number's body; an API
        key (`twilioApiKey` + `twilioApiSecret`) is remembered for the account. Raises
        PurchaseError."""
        env = self._settings.environ
        if self._settings.sandbox:
            sid = body.get("twilioAccountSid")
            return (sid if isinstance(sid, str) and sid else SANDBOX_ACCOUNT_SID), "sandbox"
        sid = body.get("twilioAccountSid") or env.get("TWILIO_ACCOUNT_SID") or ""
        key, key_secret = body.get("twilioApiKey"), body.get("twilioApiSecret")
        if isinstance(key, str) and key and isinstance(key_secret, Sensitive | str):
            secret = _given(key_secret, "twilioApiSecret")
            if sid and secret:
                with self._lock:
                    self._keys.setdefault(str(sid), key)
                return str(sid), secret
        # The manifest's token when it gives one, else TWILIO_AUTH_TOKEN (as destroy's
        # release check in `operations` has it): one it gives but cannot have is an error.
        token_value = body.get("twilioAuthToken")
        if isinstance(token_value, Sensitive | str):
            token = _given(token_value, "twilioAuthToken")
        else:
            token = env.get("TWILIO_AUTH_TOKEN") or ""
        if not sid or not token:
            raise PurchaseError(
                "buying or pricing a Twilio number needs the account's credentials: set "
                "twilioAccountSid and twilioAuthToken (or twilioApiKey and twilioApiSecret) "
                "on the phone number, or TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"
            )
        return str(sid), token

    def client(
        self, account_sid: str, token: str | None = None, *, for_prices: bool = False
    ) -> TwilioClient:
        """The client for an account. Price lookups get their own, less patient one: a plan
        must not wait long on an optional figure (buying keeps the full retry policy)."""
        from provisioner.remote.factory import twilio_client
        from provisioner.remote.retry import RetryPolicy
        from provisioner.remote.twilio import DEFAULT_RETRY

        cache_key = f"{account_sid}#prices" if for_prices else account_sid
        with self._lock:
            existing = self._clients.get(cache_key)
            if existing is not None:
                return existing
            settings = self._settings
            token = token or self._tokens.get(account_sid) or settings.twilio_auth_token
            if not token:
                raise PurchaseError(f"no Twilio auth token for account {account_sid}")
            retry, timeout = DEFAULT_RETRY, None
            if for_prices:
                retry = RetryPolicy(max_attempts=_PRICES_ATTEMPTS, max_delay=_PRICES_MAX_DELAY)
                timeout = min(_PRICES_TIMEOUT, settings.timeout)
            try:
                created = twilio_client(
                    settings,
                    account_sid,
                    token,
                    api_key=self._keys.get(account_sid),
                    retry=retry,
                    timeout=timeout,
                    sandbox_transport=self._sandbox_transport() if settings.sandbox else None,
                )
            except ValueError as exc:
                raise PurchaseError(f"Twilio account {account_sid}: {exc}") from exc
            self._clients[cache_key] = created
            return created

    def remember(self, body: Mapping[str, Any]) -> str:
        """Note a phone number's credentials for later price lookups; returns its SID."""
        sid, token = self.credentials(body)
        with self._lock:
            self._tokens.setdefault(sid, token)
        return sid

    def _sandbox_transport(self) -> Any:
        # One emulator per run: every account's client sees the same bought numbers.
        if self._transport is None:
            from provisioner.remote.factory import twilio_sandbox_transport

            try:
                self._transport = twilio_sandbox_transport(self._settings)
            except ValueError as exc:
                raise PurchaseError(f"cannot use the Twilio sandbox data ({exc})") from exc
        return self._transport

    def close(self) -> None:
        with self._lock:
            for c in self._clients.values():
                c.close()
            self._clients.clear()

    # -- prices ----------------------------------------------------------------------

    def price(self, key: PriceKey) -> Price:
        """Monthly price of one number of this type, or None (no such type, or Twilio
        could not be asked: `price_problem` says why). Cached per account and country."""
        account, country, number_type = key
        cache_key = (account, country)
        with self._lock:
            cached = self._prices.get(cache_key)
        if cached is None:
            try:
                cached = self.client(account, for_prices=True).pricing(country)
            except (RemoteError, PurchaseError) as exc:
                cached = exc
            with self._lock:
                self._prices[cache_key] = cached
        if isinstance(cached, Exception):
            return None
        amount: Decimal | None = cached.monthly(number_type)
        if amount is None:
            return None
        return amount, str(cached.currency or "USD").upper()

    def price_problem(self, key: PriceKey) -> str | None:
        """Why the price lookup for `key` failed, if it did."""
        with self._lock:
            failed = self._prices.get((key[0], key[1]))
        return f"Twilio prices unavailable ({failed})" if isinstance(failed, Exception) else None

    def price_problems(self) -> list[str]:
        """Why some prices are missing (each failed lookup once)."""
        with self._lock:
            return [
                f"Twilio prices for {country} (account {account}): {exc}"
                for (account, country), exc in self._prices.items()
                if isinstance(exc, Exception)
            ]

    # -- buying and releasing ------------------------------------------------------------

    def find_bought(self, account_sid: str, marker: str) -> PurchasedNumber | None:
        """A number this manifest entry bought before (by its FriendlyName marker)."""
        for owned in self.client(account_sid).list_owned():
            if owned.friendly_name == marker:
                return owned
        return None

    def buy(self, account_sid: str, purchase: Mapping[str, Any], marker: str) -> PurchasedNumber:
        """Buy one number matching `purchase` (country, type, areaCode, contains).

        Raises PurchaseError when nothing was bought: Twilio has no such number, or the
        request is malformed (validate catches that first; this is the last guard)."""
        try:
            return self._buy(account_sid, purchase, marker)
        except ValueError as exc:
            raise PurchaseError(f"cannot buy this number: {exc}") from exc

    def _buy(self, account_sid: str, purchase: Mapping[str, Any], marker: str) -> PurchasedNumber:
        client = self.client(account_sid)
        country = str(purchase.get("country") or DEFAULT_COUNTRY)
        number_type = str(purchase.get("type") or DEFAULT_TYPE)
        area_code = purchase.get("areaCode")
        contains = purchase.get("contains")
        local = country in AREA_CODE_COUNTRIES and number_type == NumberType.LOCAL
        if contains or not local or not area_code:
            # Twilio buys by AreaCode only for US/CA local numbers: otherwise pick one.
            found = client.search(
                country,
                type=number_type,
                area_code=str(area_code) if area_code else None,
                contains=str(contains) if contains else None,
                limit=1,
            )
            if not found:
                raise PurchaseError(
                    f"Twilio has no {number_type} number for sale in {country}"
                    + (f" in area code {area_code}" if area_code else "")
                    + (f" containing {contains}" if contains else "")
                )
            return client.buy(phone_number=found[0].phone_number, friendly_name=marker)
        return client.buy(area_code=str(area_code), friendly_name=marker)

    def release(self, account_sid: str, sid: str) -> bool:
        try:
            return self.client(account_sid).release(sid)
        except ValueError as exc:
            raise PurchaseError(f"cannot release this number: {exc}") from exc


@contextmanager
def open_twilio(settings: Settings) -> Iterator[Twilio]:
    """Twilio access for pricing and buying (nothing is sent until a price is needed)."""
    twilio = Twilio(settings)
    try:
        yield twilio
    finally:
        twilio.close()
