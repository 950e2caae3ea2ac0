"""TwilioClient against the emulator (in-process), and against MockTransport for faults."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from provisioner.emulator.twilio import TwilioEmulator
from provisioner.errors import AmbiguousCreateError, RemoteError, RemoteTransportError
from provisioner.remote.retry import RetryPolicy
from provisioner.remote.twilio import (
    AmbiguousPurchaseError,
    Capabilities,
    PurchasedNumber,
    RetryNotice,
    TwilioClient,
    TwilioError,
)

AC = "AC" + "3c" * 16
BASE = "http://twilio.test"
FAST = RetryPolicy(max_attempts=4, base_delay=0.0, max_delay=0.0)
NUMBERS_PATH = f"/2010-04-01/Accounts/{AC}/IncomingPhoneNumbers.json"


def make_client(transport: httpx.BaseTransport, **kw: Any) -> TwilioClient:
    return TwilioClient(
        AC,
        "token",
        base_url=BASE,
        pricing_base_url=BASE,
        transport=transport,
        retry=FAST,
        sleep=lambda _s: None,
        **kw,
    )


@pytest.fixture
def emulator() -> TwilioEmulator:
    return TwilioEmulator()


@pytest.fixture
def client(emulator: TwilioEmulator) -> Iterator[TwilioClient]:
    with make_client(httpx.WSGITransport(app=emulator)) as c:
        yield c


Handler = Callable[[httpx.Request], httpx.Response]


def mock(handler: Handler, **kw: Any) -> tuple[TwilioClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    return make_client(httpx.MockTransport(record), **kw), seen


def twilio_error(status: int, code: int, message: str) -> httpx.Response:
    return httpx.Response(
        status,
        json={
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
    )


RESOURCE = {
    "sid": "PN" + "ab" * 16,
    "account_sid": AC,
    "phone_number": "+14155550123",
    "friendly_name": "(415) 555-0123",
    "capabilities": {"voice": True, "sms": True, "mms": False, "fax": False},
    "status": "in-use",
    "type": "local",
}


# -- construction ------------------------------------------------------------------------


def test_credentials_are_checked_up_front() -> None:
    with pytest.raises(ValueError, match="Account SID"):
        TwilioClient("SK" + "0" * 32, "token")
    with pytest.raises(ValueError, match="token"):
        TwilioClient(AC, "")


def test_default_base_urls() -> None:
    with TwilioClient(AC, "token") as c:
        assert c.base_url == "https://api.twilio.com"
        assert c.pricing_base_url == "https://pricing.twilio.com"


# -- search ------------------------------------------------------------------------------


def test_search_by_area_code(client: TwilioClient) -> None:
    found = client.search("us", area_code=415, limit=5)
    assert len(found) == 5
    for number in found:
        assert number.phone_number.startswith("+1415")
        assert (number.locality, number.region, number.iso_country) == (
            "San Francisco",
            "CA",
            "US",
        )
        assert isinstance(number.latitude, str) and isinstance(number.longitude, str)
        assert number.capabilities.voice is True


def test_search_reads_upper_case_capability_keys(
    client: TwilioClient, emulator: TwilioEmulator
) -> None:
    with httpx.Client(
        transport=httpx.WSGITransport(app=emulator), base_url=BASE, auth=(AC, "t")
    ) as raw:
        items = raw.get(
            f"/2010-04-01/Accounts/{AC}/AvailablePhoneNumbers/US/Local.json",
            params={"AreaCode": "415", "PageSize": 20},
        ).json()["available_phone_numbers"]
    parsed = client.search("US", area_code="415", limit=20)
    assert [n.phone_number for n in parsed] == [i["phone_number"] for i in items]
    for number, item in zip(parsed, items, strict=True):
        caps = item["capabilities"]
        assert number.capabilities == Capabilities(
            voice=caps["voice"], sms=caps["SMS"], mms=caps["MMS"], fax=caps.get("fax")
        )
    assert any(not n.capabilities.mms for n in parsed)  # the flags are really read


def test_search_filters(client: TwilioClient) -> None:
    containing = client.search("US", contains="555", limit=8)
    assert len(containing) == 8 and all("555" in n.phone_number for n in containing)
    sms = client.search("US", area_code="212", sms=True, limit=30)
    assert sms and all(n.capabilities.sms for n in sms)
    no_sms = client.search("US", area_code="212", sms=False, limit=10)
    assert no_sms and not any(n.capabilities.sms for n in no_sms)
    assert len(client.search("US", voice=True, limit=3)) == 3
    toll_free = client.search("US", type="toll-free", limit=4)
    assert len(toll_free) == 4 and all(n.locality is None for n in toll_free)
    mobile = client.search("GB", type="mobile", limit=2)
    assert all(n.phone_number.startswith("+447") and n.capabilities.fax is None for n in mobile)


def test_search_with_no_matches_is_an_empty_list(client: TwilioClient) -> None:
    assert client.search("US", area_code="533") == []


def test_search_of_a_type_the_country_lacks_says_so(client: TwilioClient) -> None:
    with pytest.raises(TwilioError) as info:
        client.search("US", type="mobile")
    assert info.value.code == 20404 and info.value.status == 404
    assert str(info.value).startswith("Twilio offers no mobile numbers in US (Twilio 20404: ")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"country": "USA"},
        {"country": "US", "type": "premium"},
        {"country": "US", "area_code": "12"},
        {"country": "US", "limit": 0},
    ],
)
def test_bad_search_arguments(client: TwilioClient, kwargs: dict[str, Any]) -> None:
    country = kwargs.pop("country")
    with pytest.raises(ValueError):
        client.search(country, **kwargs)


def test_search_sends_twilios_parameter_names() -> None:
    client, seen = mock(lambda r: httpx.Response(200, json={"available_phone_numbers": []}))
    client.search("ca", type="toll-free", area_code="800", contains="+1800*", sms=True,
                  voice=False, limit=7)  # fmt: skip
    url = seen[0].url
    assert url.path == f"/2010-04-01/Accounts/{AC}/AvailablePhoneNumbers/CA/TollFree.json"
    assert dict(url.params) == {
        "PageSize": "7",
        "AreaCode": "800",
        "Contains": "+1800*",
        "SmsEnabled": "true",
        "VoiceEnabled": "false",
    }
    assert seen[0].headers["Authorization"].startswith("Basic ")


def test_search_tolerates_numeric_coordinates_and_missing_keys() -> None:
    item = {
        "phone_number": "+18089251571",
        "latitude": 19.72,
        "longitude": -155.09,
        "capabilities": {"Voice": True, "sms": "true", "MMS": False},
    }
    client, _ = mock(lambda r: httpx.Response(200, json={"available_phone_numbers": [item]}))
    (number,) = client.search("US")
    assert number.latitude == "19.72" and number.longitude == "-155.09"
    assert number.capabilities == Capabilities(voice=True, sms=True, mms=False, fax=None)
    assert number.friendly_name == "+18089251571" and number.locality is None


# -- pricing -----------------------------------------------------------------------------


def test_pricing_parses_decimals_and_maps_types(
    client: TwilioClient, emulator: TwilioEmulator
) -> None:
    us = client.pricing("us")
    assert (us.iso_country, us.country, us.currency) == ("US", "United States", "USD")
    assert us.monthly("local") == Decimal("1.15")
    assert isinstance(us.monthly("local"), Decimal)
    toll_free = us.price_for("toll-free")
    assert toll_free is not None and toll_free.number_type == "toll free"
    assert toll_free.current_price == Decimal("2.15") == toll_free.base_price
    assert us.monthly("TOLL-FREE") == Decimal("2.15")
    assert us.monthly("toll free") == Decimal("2.15")
    assert us.monthly("mobile") is None
    gb = client.pricing("GB")
    assert gb.monthly("mobile") == Decimal("1.00") and gb.monthly("national") == Decimal("1.00")
    assert gb.monthly("toll-free") == Decimal("2.00")
    # Cached for the life of the client.
    before = emulator.request_count
    assert client.pricing("US") is us
    assert emulator.request_count == before


def test_pricing_is_tolerant_of_numbers_and_case() -> None:
    body = {
        "country": "Testland",
        "iso_country": "TL",
        "phone_number_prices": [
            {"number_type": "Toll Free", "base_price": 2.15, "current_price": "1.99"},
            {"number_type": "local", "base_price": "0.10"},
        ],
        "price_unit": "usd",
    }
    client, _ = mock(lambda r: httpx.Response(200, json=body))
    prices = client.pricing("TL")
    assert prices.currency == "USD"
    row = prices.price_for("toll-free")
    assert row is not None
    assert row.base_price == Decimal("2.15") and row.current_price == Decimal("1.99")
    assert prices.monthly("local") == Decimal("0.10")


@pytest.mark.parametrize("bad", ["cheap", "NaN", True])
def test_unreadable_prices_are_an_error(bad: object) -> None:
    body = {"phone_number_prices": [{"number_type": "local", "base_price": bad}]}
    client, _ = mock(lambda r: httpx.Response(200, json=body))
    with pytest.raises(RemoteError, match="price"):
        client.pricing("US")


def test_pricing_for_an_unknown_country(client: TwilioClient) -> None:
    with pytest.raises(TwilioError, match=r"no phone-number prices for ZZ \(Twilio 20404"):
        client.pricing("ZZ")


def test_pricing_countries(client: TwilioClient) -> None:
    isos = {c.iso_country for c in client.pricing_countries()}
    assert isos >= {"US", "CA", "GB"}


def test_pricing_countries_follow_next_page_url() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        page = request.url.params.get("Page", "0")
        nxt = "https://pricing.twilio.com/v1/PhoneNumbers/Countries?PageSize=1&Page=1"
        return httpx.Response(
            200,
            json={
                "countries": [{"country": f"C{page}", "iso_country": f"C{page}"}],
                "meta": {"next_page_url": nxt if page == "0" else None},
            },
        )

    client, seen = mock(handler)
    assert [c.iso_country for c in client.pricing_countries()] == ["C0", "C1"]
    # The next page goes to our base URL, never to the host named in the answer.
    assert [r.url.host for r in seen] == ["twilio.test", "twilio.test"]


# -- buy, list, fetch, release -----------------------------------------------------------


def test_buy_by_area_code_then_the_same_number_again_is_21422(client: TwilioClient) -> None:
    bought = client.buy(area_code="415", friendly_name="intake")
    assert isinstance(bought, PurchasedNumber)
    assert bought.sid.startswith("PN") and len(bought.sid) == 34
    assert bought.phone_number.startswith("+1415")
    assert bought.friendly_name == "intake" and bought.account_sid == AC
    assert bought.status == "in-use" and bought.number_type == "local"
    with pytest.raises(TwilioError) as info:
        client.buy(phone_number=bought.phone_number)
    assert info.value.code == 21422 and info.value.status == 400
    assert str(info.value) == f"Twilio 21422: PhoneNumber {bought.phone_number} is not available"
    assert not isinstance(info.value, AmbiguousCreateError)


def test_buy_a_searched_number(client: TwilioClient) -> None:
    wanted = client.search("US", area_code="512", limit=1)[0]
    bought = client.buy(phone_number=wanted.phone_number)
    assert bought.phone_number == wanted.phone_number
    assert [n.sid for n in client.list_owned(phone_number=wanted.phone_number)] == [bought.sid]


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"area_code": "533"}, "Twilio 21452: No phone numbers found for area code 533"),
        ({"phone_number": "+15005550001"}, "Twilio 21421: PhoneNumber +15005550001 is invalid"),
        (
            {"phone_number": "+15005550000"},
            "Twilio 21422: PhoneNumber +15005550000 is not available",
        ),
    ],
)
def test_purchase_errors_are_readable(
    client: TwilioClient, kwargs: dict[str, str], text: str
) -> None:
    with pytest.raises(TwilioError) as info:
        client.buy(**kwargs)
    assert str(info.value) == text


def test_magic_numbers_buy(client: TwilioClient) -> None:
    assert client.buy(phone_number="+15005550006").phone_number == "+15005550006"
    assert client.buy(area_code=500).phone_number == "+15005550006"


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"phone_number": "+14155550100", "area_code": "415"}, {"phone_number": "4155550100"},
     {"area_code": "41"}, {"area_code": "415", "friendly_name": "x" * 65}],
)  # fmt: skip
def test_bad_purchase_arguments_send_nothing(kwargs: dict[str, str]) -> None:
    client, seen = mock(lambda r: httpx.Response(500))
    with pytest.raises(ValueError):
        client.buy(**kwargs)
    assert seen == []


def test_get_list_and_release(client: TwilioClient) -> None:
    first = client.buy(area_code="206")
    second = client.buy(area_code="617")
    fetched = client.get(first.sid)
    assert fetched == first
    assert [n.sid for n in client.list_owned()] == [first.sid, second.sid]
    assert [n.sid for n in client.list_owned(phone_number="+1617*")] == [second.sid]
    assert client.release(first.sid) is True
    assert client.release(first.sid) is False
    assert client.get(first.sid) is None
    assert [n.sid for n in client.list_owned()] == [second.sid]


def test_malformed_sids_are_refused(client: TwilioClient) -> None:
    with pytest.raises(ValueError):
        client.get("../../Accounts")
    with pytest.raises(ValueError):
        client.release("PN123")


def test_list_owned_follows_next_page_uri() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        page = request.url.params.get("Page", "0")
        item = {**RESOURCE, "sid": "PN" + page * 32}
        nxt = f"{NUMBERS_PATH}?PageSize=1&Page=1" if page == "0" else None
        return httpx.Response(200, json={"incoming_phone_numbers": [item], "next_page_uri": nxt})

    client, seen = mock(handler)
    assert [n.sid for n in client.list_owned(phone_number="+1415")] == [
        "PN" + "0" * 32,
        "PN" + "1" * 32,
    ]
    assert seen[0].url.params["PhoneNumber"] == "+1415"
    assert seen[1].url.path == NUMBERS_PATH and seen[1].url.params["Page"] == "1"


# -- errors and retries ------------------------------------------------------------------


def test_rejected_credentials_name_the_variables() -> None:
    app = TwilioEmulator(credentials=(AC, "right"))
    with make_client(httpx.WSGITransport(app=app)) as client, pytest.raises(TwilioError) as info:
        client.search("US")
    assert info.value.code == 20003 and info.value.status == 401
    assert str(info.value) == (
        "Twilio 20003: Authenticate (check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN)"
    )


def test_a_purchase_is_never_retried_after_a_502() -> None:
    client, seen = mock(lambda r: httpx.Response(502, text="<html>Bad Gateway</html>"))
    with pytest.raises(AmbiguousPurchaseError) as info:
        client.buy(phone_number="+14155550123")
    assert len(seen) == 1
    error = info.value
    assert isinstance(error, AmbiguousCreateError) and isinstance(error, RemoteError)
    assert error.status == 502 and error.phone_number == "+14155550123"
    assert "list_owned(phone_number='+14155550123')" in str(error)
    assert "may or may not have gone through" in str(error)


def test_a_purchase_timeout_after_sending_is_ambiguous() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    client, seen = mock(handler)
    with pytest.raises(AmbiguousPurchaseError) as info:
        client.buy(area_code="415")
    assert len(seen) == 1 and info.value.area_code == "415"
    assert "+1415" in str(info.value)


def test_an_unreadable_purchase_answer_is_ambiguous() -> None:
    client, seen = mock(lambda r: httpx.Response(201, json={"status": "in-use"}))
    with pytest.raises(AmbiguousPurchaseError, match="accepted the purchase"):
        client.buy(phone_number="+14155550123")
    assert len(seen) == 1


def test_a_purchase_is_retried_after_429() -> None:
    answers = [twilio_error(429, 20429, "Too Many Requests")] * 2 + [
        httpx.Response(201, json=RESOURCE)
    ]
    notices: list[RetryNotice] = []
    client, seen = mock(lambda r: answers.pop(0), on_retry=notices.append)
    bought = client.buy(phone_number="+14155550123")
    assert bought.sid == RESOURCE["sid"]
    assert len(seen) == 3
    assert [n.reason for n in notices] == ["rate limited", "rate limited"]
    assert [n.attempt for n in notices] == [2, 3]
    assert seen[0].content == seen[2].content == b"PhoneNumber=%2B14155550123"


def test_a_purchase_is_retried_when_the_connection_never_opened() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(201, json=RESOURCE)

    client, _ = mock(handler)
    assert client.buy(phone_number="+14155550123").sid == RESOURCE["sid"]
    assert calls == 2


def test_rate_limiting_that_never_ends_is_reported_not_ambiguous() -> None:
    client, seen = mock(lambda r: twilio_error(429, 20429, "Too Many Requests"))
    with pytest.raises(TwilioError) as info:
        client.buy(area_code="415")
    assert not isinstance(info.value, AmbiguousCreateError)
    assert len(seen) == FAST.max_attempts
    assert str(info.value) == "Twilio 20429: Too Many Requests (gave up after 4 attempts)"


def test_reads_are_retried_on_server_errors_and_connection_failures() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.ConnectError("refused", request=request)
        if calls == 2:
            return twilio_error(503, 20503, "Service is unavailable, please try again")
        return httpx.Response(200, json={"available_phone_numbers": []})

    client, _ = mock(handler)
    assert client.search("US") == []
    assert calls == 3


def test_reads_give_up_with_a_transport_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client, seen = mock(handler)
    with pytest.raises(RemoteTransportError, match="cannot connect.*gave up after 4 attempts"):
        client.pricing("US")
    assert len(seen) == 4


def test_a_release_whose_first_answer_was_lost_counts_as_done() -> None:
    answers = [httpx.Response(502), twilio_error(404, 20404, "not found")]
    client, seen = mock(lambda r: answers.pop(0))
    assert client.release("PN" + "ab" * 16) is True
    assert [r.method for r in seen] == ["DELETE", "DELETE"]


def test_a_release_error_is_readable() -> None:
    client, _ = mock(lambda r: twilio_error(400, 21218, "Invalid ApplicationSid"))
    with pytest.raises(TwilioError, match=r"^Twilio 21218: Invalid ApplicationSid$"):
        client.release("PN" + "ab" * 16)


def test_a_non_twilio_error_body_is_quoted_with_its_status() -> None:
    client, _ = mock(lambda r: httpx.Response(400, text="plain words"))
    with pytest.raises(TwilioError, match=r"^Twilio API answered 400 Bad Request: plain words$"):
        client.get("PN" + "ab" * 16)


def test_a_non_json_success_is_an_error_not_a_crash() -> None:
    client, _ = mock(lambda r: httpx.Response(200, text="<html></html>"))
    with pytest.raises(RemoteError, match="HTML page .* not the API's JSON: check TWILIO_BASE_URL"):
        client.search("US")
    client, _ = mock(lambda r: httpx.Response(200, text="{oops"))
    with pytest.raises(RemoteError, match="not JSON"):
        client.search("US")


def test_the_emulators_rate_limit_is_ridden_out(emulator: TwilioEmulator) -> None:
    flaky = TwilioEmulator(rate_limit=0.4, seed=3)
    policy = RetryPolicy(max_attempts=20, base_delay=0.0, max_delay=0.0)
    with TwilioClient(
        AC,
        "token",
        base_url=BASE,
        pricing_base_url=BASE,
        transport=httpx.WSGITransport(app=flaky),
        retry=policy,
        sleep=lambda _s: None,
    ) as client:
        bought = [client.buy(area_code="415") for _ in range(5)]
        assert len({b.phone_number for b in bought}) == 5
        assert len(client.list_owned()) == 5
        assert client.pricing("US").monthly("local") == Decimal("1.15")
    assert len(flaky.owned()) == 5  # 429s bought nothing extra
    assert flaky.request_count > 11


def test_error_bodies_keep_twilios_fields() -> None:
    client, _ = mock(lambda r: twilio_error(400, 21452, "No phone numbers found for area code 533"))
    with pytest.raises(TwilioError) as info:
        client.buy(area_code="533")
    assert info.value.more_info == "https://www.twilio.com/docs/errors/21452"
    assert json.loads(json.dumps(info.value.body))["code"] == 21452
    assert info.value.method == "POST" and info.value.path == NUMBERS_PATH
