"""`provisioner numbers` through CliRunner: sandbox search/pricing, JSON, credential errors."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path

import click
import httpx
import pytest
from click.testing import CliRunner, Result

from provisioner.cli.numbers import SANDBOX_DATA, VAPI_FREE_NUMBERS, _monthly_price, numbers
from provisioner.cli.twilio_access import MissingCredentialsError, SandboxDataError, live_client
from provisioner.emulator.twilio import TwilioEmulator
from provisioner.errors import ProvisionerError
from provisioner.remote.twilio import TwilioClient, TwilioError
from provisioner.settings import Settings

AC = "AC" + "4d" * 16
NO_TWILIO_ENV: dict[str, str | None] = {
    "TWILIO_ACCOUNT_SID": None,
    "TWILIO_AUTH_TOKEN": None,
    "TWILIO_BASE_URL": None,
    "TWILIO_PRICING_BASE_URL": None,
}


@pytest.fixture
def root() -> click.Group:
    group = click.Group("root")
    group.add_command(numbers)
    return group


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.chdir(tmp_path)
    yield CliRunner()


def run(
    runner: CliRunner, root: click.Group, *args: str, env: Mapping[str, str | None] | None = None
) -> Result:
    return runner.invoke(root, ["numbers", *args], env={**NO_TWILIO_ENV, **(env or {})})


# -- search ------------------------------------------------------------------------------


def test_sandbox_search_prints_a_table_with_prices(runner: CliRunner, root: click.Group) -> None:
    result = run(runner, root, "search", "--sandbox", "--area-code", "415", "--limit", "5")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "Twilio numbers for sale (US, local, area code 415): 5 numbers"
    header = lines[2]
    for column in ("NUMBER", "LOCALITY", "REGION", "CAPABILITIES", "MONTHLY"):
        assert column in header
    rows = lines[3:8]
    assert all(r.startswith("+1 415-") for r in rows)
    assert all("San Francisco" in r and " CA " in r and r.endswith("1.15 USD") for r in rows)
    assert all("voice" in r for r in rows)
    assert lines[-1] == f"{VAPI_FREE_NUMBERS}."
    assert "numberDesiredAreaCode" in lines[-1] and "up to 5 per account" in lines[-1]


def test_sandbox_search_json(runner: CliRunner, root: click.Group) -> None:
    result = run(
        runner, root, "search", "--sandbox", "--type", "toll-free", "--limit", "3", "--json"
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["country"], doc["type"]) == ("US", "toll-free")
    assert (doc["monthly_price"], doc["currency"]) == ("2.15", "USD")
    assert doc["vapi_free_numbers"] == VAPI_FREE_NUMBERS
    assert len(doc["numbers"]) == 3
    for number in doc["numbers"]:
        assert number["phone_number"].startswith("+18")
        assert number["monthly_price"] == "2.15" and number["currency"] == "USD"
        assert set(number["capabilities"]) == {"voice", "sms", "mms", "fax"}
        assert number["locality"] is None


def test_search_filters_reach_twilio(runner: CliRunner, root: click.Group) -> None:
    result = run(
        runner, root, "search", "--sandbox", "--contains", "555", "--sms", "--json", "--limit", "4"
    )
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)["numbers"]
    assert len(found) == 4
    assert all("555" in n["phone_number"] and n["capabilities"]["sms"] for n in found)


def test_great_britain_mobile(runner: CliRunner, root: click.Group) -> None:
    result = run(runner, root, "search", "--sandbox", "--country", "gb", "--type", "mobile")
    assert result.exit_code == 0, result.output
    assert "(GB, mobile)" in result.stdout
    assert "+44 7" in result.stdout and "1.00 USD" in result.stdout


def test_no_matches(runner: CliRunner, root: click.Group) -> None:
    result = run(runner, root, "search", "--sandbox", "--area-code", "533")
    assert result.exit_code == 0, result.output
    assert "No Twilio numbers for sale match: US, local, area code 533." in result.stdout
    assert VAPI_FREE_NUMBERS in result.stdout


def test_a_type_the_country_lacks_is_an_error(runner: CliRunner, root: click.Group) -> None:
    result = run(runner, root, "search", "--sandbox", "--type", "mobile")
    assert result.exit_code == 1
    assert isinstance(result.exception, TwilioError)
    message = str(result.exception)
    assert message.startswith("Twilio offers no mobile numbers in US")
    assert "provisioner numbers pricing --country US" in message


def test_sandbox_remembers_bought_numbers(runner: CliRunner, root: click.Group) -> None:
    # Numbers bought in the sandbox (by any tool using its data file) are not for sale.
    app = TwilioEmulator(store_path=SANDBOX_DATA)
    with TwilioClient(
        AC, "x", base_url="http://t", pricing_base_url="http://t",
        transport=httpx.WSGITransport(app=app),
    ) as client:  # fmt: skip
        first = client.search("US", area_code="415", limit=1)[0].phone_number
        client.buy(phone_number=first)
    assert Path("state/.sandbox/emulator/twilio.json").is_file()
    result = run(runner, root, "search", "--sandbox", "--area-code", "415", "--json")
    assert result.exit_code == 0, result.output
    assert first not in {n["phone_number"] for n in json.loads(result.stdout)["numbers"]}


def test_corrupt_sandbox_data_is_an_error(runner: CliRunner, root: click.Group) -> None:
    SANDBOX_DATA.parent.mkdir(parents=True)
    SANDBOX_DATA.write_text("{oops")
    result = run(runner, root, "search", "--sandbox")
    assert result.exit_code == 1
    assert isinstance(result.exception, SandboxDataError)
    assert SANDBOX_DATA.read_text() == "{oops"


# -- pricing -----------------------------------------------------------------------------


def test_sandbox_pricing_text(runner: CliRunner, root: click.Group) -> None:
    result = run(runner, root, "pricing", "--sandbox", "--country", "US")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "Twilio phone-number prices in United States (US), per number per month:"
    assert lines[2].split() == ["TYPE", "MONTHLY"]
    assert lines[3].split() == ["local", "1.15", "USD"]
    assert lines[4].split() == ["toll", "free", "2.15", "USD"]
    assert len(lines) == 5


def test_sandbox_pricing_json(runner: CliRunner, root: click.Group) -> None:
    result = run(runner, root, "pricing", "--sandbox", "--country", "gb", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["iso_country"], doc["country"], doc["currency"]) == (
        "GB",
        "United Kingdom",
        "USD",
    )
    rows = {r["number_type"]: r for r in doc["prices"]}
    assert set(rows) == {"local", "mobile", "national", "toll free"}
    assert rows["toll free"]["type"] == "toll-free"
    assert rows["toll free"]["monthly_price"] == "2.00"
    assert rows["mobile"]["monthly_price"] == "1.00"


def test_pricing_for_an_unknown_country(runner: CliRunner, root: click.Group) -> None:
    result = run(runner, root, "pricing", "--sandbox", "--country", "ZZ")
    assert result.exit_code == 1
    assert "no phone-number prices for ZZ" in str(result.exception)


# -- credentials and options -------------------------------------------------------------


@pytest.mark.parametrize(
    "env",
    [{}, {"TWILIO_ACCOUNT_SID": AC}, {"TWILIO_AUTH_TOKEN": "secret"}],
    ids=["neither", "no-token", "no-sid"],
)
@pytest.mark.parametrize("command", ["search", "pricing"])
def test_missing_credentials_name_both_variables(
    runner: CliRunner, root: click.Group, env: dict[str, str | None], command: str
) -> None:
    result = run(runner, root, command, env=env)
    assert result.exit_code == 1
    assert isinstance(result.exception, MissingCredentialsError)
    assert isinstance(result.exception, ProvisionerError)
    message = str(result.exception)
    assert "TWILIO_ACCOUNT_SID" in message and "TWILIO_AUTH_TOKEN" in message
    assert "--sandbox" in message


def test_a_malformed_account_sid_is_an_error(runner: CliRunner, root: click.Group) -> None:
    env = {"TWILIO_ACCOUNT_SID": "SK" + "0" * 32, "TWILIO_AUTH_TOKEN": "secret"}
    result = run(runner, root, "search", env=env)
    assert result.exit_code == 1
    assert "TWILIO_ACCOUNT_SID must be an Account SID" in str(result.exception)


def test_the_environment_sets_credentials_and_base_urls() -> None:
    client = live_client(
        Settings(
            environ={
                "TWILIO_ACCOUNT_SID": AC,
                "TWILIO_AUTH_TOKEN": "secret",
                "TWILIO_BASE_URL": "http://127.0.0.1:8788/",
                "TWILIO_PRICING_BASE_URL": "http://127.0.0.1:8788/pricing",
            }
        )
    )
    with client:
        assert client.account_sid == AC
        assert client.base_url == "http://127.0.0.1:8788"
        assert client.pricing_base_url == "http://127.0.0.1:8788/pricing"
    environ = {"TWILIO_ACCOUNT_SID": AC, "TWILIO_AUTH_TOKEN": "secret"}
    with live_client(Settings(environ=environ)) as default:
        assert default.base_url == "https://api.twilio.com"
        assert default.pricing_base_url == "https://pricing.twilio.com"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--area-code", "12"], "three digits"),
        (["--area-code", "123"], "three digits"),
        (["--country", "USA"], "two-letter"),
        (["--country", "GB", "--area-code", "415"], "only for US and CA"),
        (["--contains", "5"], "2 to 16"),
        (["--type", "premium"], "premium"),
        (["--limit", "0"], "0"),
    ],
)
def test_bad_options_are_usage_errors(
    runner: CliRunner, root: click.Group, args: list[str], words: str
) -> None:
    result = run(runner, root, "search", "--sandbox", *args)
    assert result.exit_code == 2, result.output
    assert words in result.stderr


def test_prices_that_cannot_be_read_leave_the_search_usable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            404,
            json={"code": 20404, "message": "not found", "more_info": "", "status": 404},
        )

    with TwilioClient(AC, "x", transport=httpx.MockTransport(handler)) as client:
        price, currency, problem = _monthly_price(client, "US", "local")
    assert price is None and currency is None
    assert problem is not None and "Twilio 20404" in problem


# -- --manifest: the manifest's Twilio account ---------------------------------------------


def test_search_and_pricing_take_the_manifest_account(
    runner: CliRunner, root: click.Group, tmp_path: Path
) -> None:
    """`--manifest` uses the first Twilio number's account and token (resolved from
    `${env:...}`), over a real socket to an emulator that accepts only that account."""
    from provisioner.emulator.app import VapiEmulator
    from provisioner.emulator.server import running_server, with_twilio
    from provisioner.emulator.store import EmulatorStore

    secret = "manifest-token-3c2b1a"
    (tmp_path / "m.yaml").write_text(
        "version: 1\nphoneNumbers:\n  line:\n    provider: twilio\n"
        "    purchase: {areaCode: '415'}\n"
        f"    twilioAccountSid: {AC}\n    twilioAuthToken: ${{env:LINE_TOKEN}}\n"
    )
    vapi = VapiEmulator(EmulatorStore(path=None))
    app = with_twilio(vapi, tmp_path / "twilio.json", twilio_credentials=(AC, secret))
    with running_server(app) as url:
        env = {"TWILIO_BASE_URL": url, "TWILIO_PRICING_BASE_URL": url, "LINE_TOKEN": secret}
        priced = run(runner, root, "pricing", "--manifest", "m.yaml", "--json", env=env)
        assert priced.exit_code == 0, priced.output
        assert json.loads(priced.stdout)["iso_country"] == "US"
        assert f"Using the Twilio account of phoneNumber.line ({AC})" in priced.stderr
        found = run(runner, root, "search", "--area-code", "415", "--manifest", "m.yaml", env=env)
        assert found.exit_code == 0, found.output
        assert "+1 415-" in found.stdout
        assert secret not in found.output + priced.output
        # Without --manifest the environment has no account: refused, as before.
        assert run(runner, root, "pricing", env=env).exit_code == 1
        # A wrong token in the environment reaches Twilio, which refuses it.
        refused = run(
            runner, root, "pricing", "--manifest", "m.yaml", env={**env, "LINE_TOKEN": "no"}
        )
        assert refused.exit_code == 1
        assert "20003" in str(refused.exception) or "401" in str(refused.exception)


def test_manifest_without_a_twilio_number_is_an_error(
    runner: CliRunner, root: click.Group, tmp_path: Path
) -> None:
    (tmp_path / "m.yaml").write_text(
        "version: 1\nphoneNumbers:\n  line: {provider: vapi, numberDesiredAreaCode: '415'}\n"
    )
    result = run(runner, root, "pricing", "--manifest", "m.yaml")
    assert result.exit_code == 1
    assert "has no Twilio phone number" in str(result.exception)
    (tmp_path / "bad.yaml").write_text("version: 1\nphoneNumbers:\n  line: {provider: twillio}\n")
    bad = run(runner, root, "pricing", "--manifest", "bad.yaml")
    assert bad.exit_code == 1
    assert "bad.yaml:3:" in bad.stderr
    assert "is not valid; nothing was asked of Twilio" in str(bad.exception)
