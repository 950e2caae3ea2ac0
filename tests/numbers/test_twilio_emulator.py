"""The Twilio emulator through httpx in-process: wire shapes, quirks, every error code."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from provisioner.emulator.twilio import TwilioEmulator

AC = "AC" + "1a" * 16
OTHER_AC = "AC" + "2b" * 16
TOKEN = "secret"
API = f"/2010-04-01/Accounts/{AC}"
SEARCH_US = f"{API}/AvailablePhoneNumbers/US/Local.json"
NUMBERS = f"{API}/IncomingPhoneNumbers.json"
PN = re.compile(r"^PN[0-9a-f]{32}$")
RFC2822 = re.compile(r"^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000$")


def client_for(app: TwilioEmulator, user: str = AC, secret: str = TOKEN) -> httpx.Client:
    return httpx.Client(
        transport=httpx.WSGITransport(app=app), base_url="http://twilio.test", auth=(user, secret)
    )


@pytest.fixture
def emulator() -> TwilioEmulator:
    return TwilioEmulator()


@pytest.fixture
def http(emulator: TwilioEmulator) -> Iterator[httpx.Client]:
    with client_for(emulator) as c:
        yield c


def error_of(response: httpx.Response, status: int, code: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "message", "more_info", "status"}
    assert body["code"] == code
    assert body["status"] == status
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    return body


def numbers_of(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["available_phone_numbers"]
    return items


def buy(http: httpx.Client, **form: str) -> httpx.Response:
    return http.post(NUMBERS, data=form)


# -- auth and routing --------------------------------------------------------------------


def test_missing_credentials_get_twilios_401_body(emulator: TwilioEmulator) -> None:
    with httpx.Client(transport=httpx.WSGITransport(app=emulator), base_url="http://t") as c:
        response = c.get(SEARCH_US)
    assert response.status_code == 401
    assert response.json() == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }


@pytest.mark.parametrize(
    ("user", "secret"),
    [("not-a-sid", TOKEN), (AC, ""), ("AC123", TOKEN), (OTHER_AC, TOKEN)],
)
def test_bad_credentials_are_refused(emulator: TwilioEmulator, user: str, secret: str) -> None:
    with client_for(emulator, user, secret) as c:
        error_of(c.get(SEARCH_US), 401, 20003)


def test_an_api_key_may_act_for_the_account_in_the_path(emulator: TwilioEmulator) -> None:
    with client_for(emulator, "SK" + "0" * 32, "key-secret") as c:
        assert c.get(SEARCH_US).status_code == 200


def test_a_configured_credential_pair_is_the_only_one_accepted() -> None:
    app = TwilioEmulator(credentials=(AC, "right"))
    with client_for(app, AC, "wrong") as c:
        error_of(c.get(SEARCH_US), 401, 20003)
    with client_for(app, AC, "right") as c:
        assert c.get(SEARCH_US).status_code == 200


def test_an_api_key_sid_in_the_path_is_not_found(http: httpx.Client) -> None:
    body = error_of(
        http.get(f"/2010-04-01/Accounts/SK{'0' * 32}/IncomingPhoneNumbers.json"), 404, 20404
    )
    assert "was not found" in body["message"]


def test_only_json_paths_are_served(http: httpx.Client) -> None:
    error_of(http.get(f"{API}/IncomingPhoneNumbers"), 404, 20404)
    error_of(http.get(f"{API}/IncomingPhoneNumbers.xml"), 404, 20404)
    error_of(http.get("/2010-04-01/Nothing.json"), 404, 20404)


def test_other_methods_are_not_allowed(http: httpx.Client) -> None:
    error_of(http.put(NUMBERS), 405, 20004)
    error_of(http.post(SEARCH_US), 405, 20004)
    error_of(http.delete("/v1/PhoneNumbers/Countries/US"), 405, 20004)


# -- search ------------------------------------------------------------------------------


def test_search_item_shape_has_twilios_quirks(http: httpx.Client) -> None:
    response = http.get(SEARCH_US, params={"AreaCode": "415", "PageSize": 5})
    body = response.json()
    assert set(body) == {"available_phone_numbers", "uri"}
    assert body["uri"].startswith(f"{SEARCH_US}?")
    items = body["available_phone_numbers"]
    assert len(items) == 5
    for item in items:
        assert item["phone_number"].startswith("+1415") and len(item["phone_number"]) == 12
        digits = item["phone_number"][2:]
        assert item["friendly_name"] == f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"
        assert (item["locality"], item["region"], item["iso_country"]) == (
            "San Francisco",
            "CA",
            "US",
        )
        # Declared numbers, sent as strings.
        assert isinstance(item["latitude"], str) and isinstance(item["longitude"], str)
        assert float(item["latitude"]) == pytest.approx(37.77, abs=0.1)
        assert isinstance(item["lata"], str)
        # Upper-case SMS/MMS, lower-case voice/fax.
        assert {"voice", "SMS", "MMS"} <= set(item["capabilities"])
        assert "sms" not in item["capabilities"]
        assert item["address_requirements"] == "none"
        assert isinstance(item["beta"], bool)


@pytest.mark.parametrize(
    ("area_code", "locality", "region"),
    [("212", "New York", "NY"), ("312", "Chicago", "IL"), ("512", "Austin", "TX")],
)
def test_well_known_area_codes_have_their_city(
    http: httpx.Client, area_code: str, locality: str, region: str
) -> None:
    items = numbers_of(http.get(SEARCH_US, params={"AreaCode": area_code, "PageSize": 3}))
    assert items and all((i["locality"], i["region"]) == (locality, region) for i in items)


def test_other_us_area_codes_have_numbers_with_generic_geography(http: httpx.Client) -> None:
    items = numbers_of(http.get(SEARCH_US, params={"AreaCode": "737", "PageSize": 3}))
    assert len(items) == 3
    assert all(i["phone_number"].startswith("+1737") and i["locality"] is None for i in items)


def test_the_inventory_is_deterministic() -> None:
    params: dict[str, str | int] = {"AreaCode": "415", "PageSize": 10}
    with client_for(TwilioEmulator()) as a, client_for(TwilioEmulator()) as b:
        assert numbers_of(a.get(SEARCH_US, params=params)) == numbers_of(
            b.get(SEARCH_US, params=params)
        )


def test_search_without_area_code_spans_the_country(http: httpx.Client) -> None:
    items = numbers_of(http.get(SEARCH_US, params={"PageSize": 30}))
    assert len(items) == 30
    assert len({i["phone_number"][2:5] for i in items}) > 5


def test_page_size_limits_and_defaults_to_fifty(http: httpx.Client) -> None:
    assert len(numbers_of(http.get(SEARCH_US, params={"AreaCode": "415"}))) == 50
    assert len(numbers_of(http.get(SEARCH_US, params={"AreaCode": "415", "PageSize": 7}))) == 7


@pytest.mark.parametrize("size", ["0", "1001", "many"])
def test_a_bad_page_size_is_a_400(http: httpx.Client, size: str) -> None:
    error_of(http.get(SEARCH_US, params={"PageSize": size}), 400, 20001)


def test_contains_matches_anywhere(http: httpx.Client) -> None:
    items = numbers_of(http.get(SEARCH_US, params={"Contains": "555", "PageSize": 10}))
    assert len(items) == 10
    assert all("555" in i["phone_number"] for i in items)


def test_contains_wildcards_and_anchors(http: httpx.Client) -> None:
    items = numbers_of(http.get(SEARCH_US, params={"Contains": "+1415***9", "PageSize": 5}))
    assert items and all(re.match(r"^\+1415\d{3}9", i["phone_number"]) for i in items)
    items = numbers_of(http.get(SEARCH_US, params={"Contains": "00$", "PageSize": 5}))
    assert items and all(i["phone_number"].endswith("00") for i in items)
    items = numbers_of(http.get(SEARCH_US, params={"Contains": "415**7", "PageSize": 5}))
    assert items and all(re.search(r"415\d\d7", i["phone_number"]) for i in items)


def test_contains_letters_are_keypad_digits(http: httpx.Client) -> None:
    by_letters = numbers_of(http.get(SEARCH_US, params={"Contains": "JAM", "PageSize": 5}))
    by_digits = numbers_of(http.get(SEARCH_US, params={"Contains": "526", "PageSize": 5}))
    assert by_letters and by_letters == by_digits


@pytest.mark.parametrize("pattern", ["5", "12345678901234567", "55-5", "5%5"])
def test_a_bad_contains_pattern_is_a_400(http: httpx.Client, pattern: str) -> None:
    error_of(http.get(SEARCH_US, params={"Contains": pattern}), 400, 20001)


def test_capability_filters(http: httpx.Client) -> None:
    base: dict[str, str | int] = {"AreaCode": "415", "PageSize": 40}
    with_sms = numbers_of(http.get(SEARCH_US, params={**base, "SmsEnabled": "true"}))
    assert len(with_sms) == 40 and all(i["capabilities"]["SMS"] for i in with_sms)
    without = numbers_of(http.get(SEARCH_US, params={**base, "SmsEnabled": "false"}))
    assert without and not any(i["capabilities"]["SMS"] for i in without)
    mms = numbers_of(http.get(SEARCH_US, params={**base, "MmsEnabled": "true"}))
    assert all(i["capabilities"]["MMS"] for i in mms)
    voice = numbers_of(http.get(SEARCH_US, params={**base, "VoiceEnabled": "true"}))
    assert len(voice) == 40
    error_of(http.get(SEARCH_US, params={"SmsEnabled": "maybe"}), 400, 20001)


def test_beta_false_leaves_out_beta_numbers(http: httpx.Client) -> None:
    items = numbers_of(http.get(SEARCH_US, params={"Beta": "false", "PageSize": 200}))
    assert len(items) == 200 and not any(i["beta"] for i in items)


def test_region_and_locality_filters(http: httpx.Client) -> None:
    items = numbers_of(http.get(SEARCH_US, params={"InRegion": "tx", "PageSize": 5}))
    assert items and all(i["region"] == "TX" for i in items)
    items = numbers_of(http.get(SEARCH_US, params={"InLocality": "Chicago", "PageSize": 5}))
    assert items and all(i["locality"] == "Chicago" for i in items)


@pytest.mark.parametrize("area_code", ["533", "500", "800", "416"])
def test_area_codes_without_local_numbers_give_an_empty_200(
    http: httpx.Client, area_code: str
) -> None:
    response = http.get(SEARCH_US, params={"AreaCode": area_code})
    assert response.status_code == 200
    assert response.json()["available_phone_numbers"] == []


@pytest.mark.parametrize("area_code", ["123", "911", "41", "4155"])
def test_invalid_area_codes_are_21451(http: httpx.Client, area_code: str) -> None:
    error_of(http.get(SEARCH_US, params={"AreaCode": area_code}), 400, 21451)


def test_toll_free_numbers_have_no_geography(http: httpx.Client) -> None:
    items = numbers_of(http.get(f"{API}/AvailablePhoneNumbers/US/TollFree.json"))
    assert items
    for item in items:
        assert item["phone_number"][2:5] in {"800", "833", "844", "855", "866", "877", "888"}
        assert item["locality"] is None and item["latitude"] is None and item["lata"] is None
        assert item["capabilities"]["voice"] is True


def test_canada_and_great_britain(http: httpx.Client) -> None:
    ca = numbers_of(
        http.get(f"{API}/AvailablePhoneNumbers/CA/Local.json", params={"AreaCode": "416"})
    )
    assert ca and all(i["locality"] == "Toronto" and i["region"] == "ON" for i in ca)
    assert all(i["iso_country"] == "CA" for i in ca)
    gb = numbers_of(http.get(f"{API}/AvailablePhoneNumbers/GB/Local.json"))
    assert gb and all(i["phone_number"].startswith("+44") for i in gb)
    assert all(i["friendly_name"] == i["phone_number"] for i in gb)
    assert all("fax" not in i["capabilities"] and i["region"] is None for i in gb)
    assert {i["locality"] for i in gb} >= {"London", "Manchester"}
    mobile = numbers_of(http.get(f"{API}/AvailablePhoneNumbers/GB/Mobile.json"))
    assert mobile and all(
        i["phone_number"].startswith("+447") and i["capabilities"]["SMS"] for i in mobile
    )
    gb_area = http.get(f"{API}/AvailablePhoneNumbers/GB/Local.json", params={"AreaCode": "415"})
    assert numbers_of(gb_area) == []


@pytest.mark.parametrize(
    "path", ["US/Mobile.json", "ZZ/Local.json", "US/Unknown.json", "CA/Mobile.json"]
)
def test_types_a_country_does_not_offer_are_not_found(http: httpx.Client, path: str) -> None:
    error_of(http.get(f"{API}/AvailablePhoneNumbers/{path}"), 404, 20404)


def test_bought_numbers_leave_the_search_results(http: httpx.Client) -> None:
    params: dict[str, str | int] = {"AreaCode": "415", "PageSize": 3}
    first = numbers_of(http.get(SEARCH_US, params=params))[0]["phone_number"]
    assert buy(http, PhoneNumber=first).status_code == 201
    after = numbers_of(http.get(SEARCH_US, params=params))
    assert first not in {i["phone_number"] for i in after}


# -- buy ---------------------------------------------------------------------------------


def test_buy_by_area_code_returns_the_full_resource(http: httpx.Client) -> None:
    response = buy(http, AreaCode="415")
    assert response.status_code == 201
    body = response.json()
    assert PN.match(body["sid"])
    assert body["account_sid"] == AC
    assert body["phone_number"].startswith("+1415")
    assert body["uri"] == f"{API}/IncomingPhoneNumbers/{body['sid']}.json"
    assert set(body["capabilities"]) == {"voice", "sms", "mms", "fax"}  # lower case here
    assert RFC2822.match(body["date_created"])
    assert body["status"] == "in-use" and body["type"] == "local" and body["origin"] == "twilio"
    assert body["friendly_name"].startswith("(415) ")
    for key in ("voice_url", "sms_url", "trunk_sid", "emergency_status", "bundle_sid"):
        assert key in body


def test_buy_a_searched_number_with_configuration(http: httpx.Client) -> None:
    number = numbers_of(http.get(SEARCH_US, params={"AreaCode": "212", "PageSize": 1}))[0]
    response = buy(
        http,
        PhoneNumber=number["phone_number"],
        FriendlyName="support line",
        VoiceUrl="https://example.com/voice",
    )
    assert response.status_code == 201
    body = response.json()
    assert body["phone_number"] == number["phone_number"]
    assert body["friendly_name"] == "support line"
    assert body["voice_url"] == "https://example.com/voice"


def test_buying_a_bought_number_is_21422_for_everyone(emulator: TwilioEmulator) -> None:
    with client_for(emulator) as mine, client_for(emulator, OTHER_AC) as theirs:
        number = buy(mine, AreaCode="312").json()["phone_number"]
        body = error_of(buy(mine, PhoneNumber=number), 400, 21422)
        assert number in body["message"]
        other = theirs.post(
            f"/2010-04-01/Accounts/{OTHER_AC}/IncomingPhoneNumbers.json",
            data={"PhoneNumber": number},
        )
        error_of(other, 400, 21422)


def test_a_number_outside_the_inventory_is_not_available(http: httpx.Client) -> None:
    # 211 is a service code, never an exchange, so this number is never for sale.
    error_of(buy(http, PhoneNumber="+14152111234"), 400, 21422)


@pytest.mark.parametrize("number", ["+1415", "14155550100", "+1415555010000", "+0123456789"])
def test_malformed_numbers_are_21421(http: httpx.Client, number: str) -> None:
    error_of(buy(http, PhoneNumber=number), 400, 21421)


def test_a_purchase_needs_a_number_or_an_area_code(http: httpx.Client) -> None:
    body = error_of(buy(http, FriendlyName="x"), 400, 21421)
    assert "AreaCode" in body["message"]


def test_no_numbers_in_the_area_code_is_21452(http: httpx.Client) -> None:
    body = error_of(buy(http, AreaCode="533"), 400, 21452)
    assert body["message"] == "No phone numbers found for area code 533"


def test_an_invalid_area_code_is_21451(http: httpx.Client) -> None:
    error_of(buy(http, AreaCode="099"), 400, 21451)


def test_a_too_long_friendly_name_is_refused(http: httpx.Client) -> None:
    error_of(buy(http, AreaCode="415", FriendlyName="x" * 65), 400, 20001)


def test_magic_numbers(http: httpx.Client) -> None:
    ok = buy(http, PhoneNumber="+15005550006")
    assert ok.status_code == 201 and ok.json()["phone_number"] == "+15005550006"
    again = buy(http, PhoneNumber="+15005550006")  # test numbers always succeed
    assert again.status_code == 201 and again.json()["sid"] != ok.json()["sid"]
    error_of(buy(http, PhoneNumber="+15005550000"), 400, 21422)
    error_of(buy(http, PhoneNumber="+15005550001"), 400, 21421)
    by_area = buy(http, AreaCode="500")
    assert by_area.status_code == 201 and by_area.json()["phone_number"] == "+15005550006"
    error_of(buy(http, AreaCode="533"), 400, 21452)


def test_concurrent_purchases_by_area_code_get_distinct_numbers(
    emulator: TwilioEmulator,
) -> None:
    results: list[httpx.Response] = []
    lock = threading.Lock()

    def worker() -> None:
        with client_for(emulator) as c:
            response = buy(c, AreaCode="512")
        with lock:
            results.append(response)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in results] == [201] * 16
    assert len({r.json()["phone_number"] for r in results}) == 16
    assert len(emulator.owned()) == 16


# -- list, fetch, release ----------------------------------------------------------------


def test_list_envelope_and_phone_number_filter(emulator: TwilioEmulator) -> None:
    with client_for(emulator) as http, client_for(emulator, OTHER_AC) as other:
        a = buy(http, AreaCode="415").json()
        b = buy(http, AreaCode="212").json()
        body = http.get(NUMBERS).json()
        assert {
            "incoming_phone_numbers",
            "uri",
            "page",
            "page_size",
            "start",
            "end",
            "first_page_uri",
            "next_page_uri",
            "previous_page_uri",
        } <= set(body)
        assert [n["sid"] for n in body["incoming_phone_numbers"]] == [a["sid"], b["sid"]]
        assert body["next_page_uri"] is None and body["previous_page_uri"] is None
        exact = http.get(NUMBERS, params={"PhoneNumber": a["phone_number"]}).json()
        assert [n["sid"] for n in exact["incoming_phone_numbers"]] == [a["sid"]]
        partial = http.get(NUMBERS, params={"PhoneNumber": "+1212*"}).json()
        assert [n["sid"] for n in partial["incoming_phone_numbers"]] == [b["sid"]]
        assert (
            http.get(NUMBERS, params={"PhoneNumber": "+1999"}).json()["incoming_phone_numbers"]
            == []
        )
        theirs = other.get(f"/2010-04-01/Accounts/{OTHER_AC}/IncomingPhoneNumbers.json")
        assert theirs.json()["incoming_phone_numbers"] == []


def test_list_pages_follow_next_page_uri(http: httpx.Client) -> None:
    sids = [buy(http, AreaCode="305").json()["sid"] for _ in range(5)]
    seen: list[str] = []
    url: str | None = f"{NUMBERS}?PageSize=2"
    pages = 0
    while url:
        body = http.get(url).json()
        seen += [n["sid"] for n in body["incoming_phone_numbers"]]
        url = body["next_page_uri"]
        pages += 1
    assert seen == sids and pages == 3


def test_fetch_and_release(http: httpx.Client) -> None:
    bought = buy(http, AreaCode="206").json()
    item = f"{API}/IncomingPhoneNumbers/{bought['sid']}.json"
    fetched = http.get(item)
    assert fetched.status_code == 200 and fetched.json() == bought
    deleted = http.delete(item)
    assert deleted.status_code == 204 and deleted.content == b""
    body = error_of(http.delete(item), 404, 20404)
    assert body["message"] == f"The requested resource {item} was not found"
    error_of(http.get(item), 404, 20404)
    # Released numbers go back on sale.
    again = buy(http, PhoneNumber=bought["phone_number"])
    assert again.status_code == 201


def test_another_accounts_number_is_not_found(emulator: TwilioEmulator) -> None:
    with client_for(emulator) as mine, client_for(emulator, OTHER_AC) as theirs:
        sid = buy(mine, AreaCode="404").json()["sid"]
        path = f"/2010-04-01/Accounts/{OTHER_AC}/IncomingPhoneNumbers/{sid}.json"
        error_of(theirs.get(path), 404, 20404)
        error_of(theirs.delete(path), 404, 20404)
    assert len(emulator.owned()) == 1


# -- pricing -----------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["", "/pricing"])
def test_pricing_countries_use_the_meta_envelope(http: httpx.Client, prefix: str) -> None:
    body = http.get(f"{prefix}/v1/PhoneNumbers/Countries").json()
    assert {c["iso_country"] for c in body["countries"]} >= {"US", "CA", "GB"}
    meta = body["meta"]
    assert meta["key"] == "countries"
    assert meta["next_page_url"] is None and meta["previous_page_url"] is None
    assert meta["url"].startswith(f"http://twilio.test{prefix}/v1/PhoneNumbers/Countries")
    first = http.get(f"{prefix}/v1/PhoneNumbers/Countries", params={"PageSize": 1}).json()
    assert len(first["countries"]) == 1 and first["meta"]["next_page_url"]


def test_us_prices_are_strings_with_toll_free_spelled_with_a_space(
    http: httpx.Client,
) -> None:
    body = http.get("/v1/PhoneNumbers/Countries/US").json()
    assert body["country"] == "United States" and body["iso_country"] == "US"
    assert body["price_unit"] == "USD"
    rows = {r["number_type"]: r for r in body["phone_number_prices"]}
    assert set(rows) == {"local", "toll free"}  # no mobile numbers in the US
    assert rows["local"]["current_price"] == "1.15" and rows["local"]["base_price"] == "1.15"
    assert rows["toll free"]["current_price"] == "2.15"


@pytest.mark.parametrize(
    ("iso", "expected"),
    [
        ("GB", {"local": "1.00", "mobile": "1.00", "national": "1.00", "toll free": "2.00"}),
        ("ca", {"local": "1.15", "toll free": "2.15"}),
    ],
)
def test_other_country_prices(http: httpx.Client, iso: str, expected: dict[str, str]) -> None:
    body = http.get(f"/pricing/v1/PhoneNumbers/Countries/{iso}").json()
    assert {r["number_type"]: r["current_price"] for r in body["phone_number_prices"]} == expected


def test_pricing_for_an_unknown_country_is_not_found(http: httpx.Client) -> None:
    error_of(http.get("/v1/PhoneNumbers/Countries/ZZ"), 404, 20404)


def test_pricing_needs_credentials(emulator: TwilioEmulator) -> None:
    with httpx.Client(transport=httpx.WSGITransport(app=emulator), base_url="http://t") as c:
        error_of(c.get("/v1/PhoneNumbers/Countries/US"), 401, 20003)


# -- faults and persistence --------------------------------------------------------------


def test_rate_limit_injection_refuses_before_doing_anything() -> None:
    app = TwilioEmulator(rate_limit=1.0)
    with client_for(app) as http:
        body = error_of(buy(http, AreaCode="415"), 429, 20429)
        assert body["message"] == "Too Many Requests"
        error_of(http.get("/v1/PhoneNumbers/Countries/US"), 429, 20429)
    assert app.owned() == []


def test_rate_limit_injection_is_seeded() -> None:
    def statuses(seed: int) -> list[int]:
        with client_for(TwilioEmulator(rate_limit=0.5, seed=seed)) as http:
            return [http.get("/v1/PhoneNumbers/Countries/US").status_code for _ in range(30)]

    first = statuses(7)
    assert first == statuses(7)
    assert set(first) == {200, 429}


def test_a_bad_rate_limit_is_refused() -> None:
    with pytest.raises(ValueError):
        TwilioEmulator(rate_limit=1.5)


def test_bought_numbers_persist_in_the_data_file(tmp_path: Path) -> None:
    path = tmp_path / "sandbox" / "twilio.json"
    with client_for(TwilioEmulator(store_path=path)) as http:
        kept = buy(http, AreaCode="415").json()
        gone = buy(http, AreaCode="415").json()
        assert http.delete(f"{API}/IncomingPhoneNumbers/{gone['sid']}.json").status_code == 204
    doc = json.loads(path.read_text())
    assert doc["format_version"] == 1
    assert [n["sid"] for n in doc["incoming_phone_numbers"]] == [kept["sid"]]
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    with client_for(TwilioEmulator(store_path=path)) as http:
        assert http.get(f"{API}/IncomingPhoneNumbers/{kept['sid']}.json").json() == kept
        error_of(buy(http, PhoneNumber=kept["phone_number"]), 400, 21422)
        search = numbers_of(http.get(SEARCH_US, params={"AreaCode": "415", "PageSize": 100}))
        assert kept["phone_number"] not in {i["phone_number"] for i in search}


def test_reading_never_creates_the_data_file(tmp_path: Path) -> None:
    path = tmp_path / "twilio.json"
    with client_for(TwilioEmulator(store_path=path)) as http:
        numbers_of(http.get(SEARCH_US))
    assert not path.exists()


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[]",
        '{"format_version": 2}',
        '{"format_version": 1, "incoming_phone_numbers": 3}',
    ],
)
def test_a_corrupt_data_file_is_refused_not_emptied(tmp_path: Path, content: str) -> None:
    path = tmp_path / "twilio.json"
    path.write_text(content)
    with pytest.raises(ValueError, match="twilio.json"):
        TwilioEmulator(store_path=path)
    assert path.read_text() == content
