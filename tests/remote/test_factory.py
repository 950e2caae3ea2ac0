"""Settings carry Twilio's configuration, and one factory builds every Twilio client."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.errors import ProvisionerError
from provisioner.remote.factory import twilio_client
from provisioner.remote.twilio_values import PurchasedNumber
from provisioner.settings import (
    SANDBOX_TWILIO_ACCOUNT_SID,
    SANDBOX_TWILIO_URL,
    Settings,
)

SID = "AC" + "9a" * 16


def test_settings_read_twilio_from_the_environment_once() -> None:
    settings = Settings(
        environ={
            "TWILIO_ACCOUNT_SID": f" {SID} ",
            "TWILIO_AUTH_TOKEN": "secret",
            "TWILIO_BASE_URL": "http://127.0.0.1:9/",
            "TWILIO_PRICING_BASE_URL": "",  # empty counts as unset (a CI's missing secret)
        }
    )
    assert settings.twilio_account_sid == SID
    assert settings.twilio_auth_token == "secret"
    assert settings.twilio_base_url == "http://127.0.0.1:9"
    assert settings.twilio_pricing_base_url is None
    given = Settings(environ={"TWILIO_ACCOUNT_SID": SID}, twilio_account_sid="AC" + "1" * 32)
    assert given.twilio_account_sid == "AC" + "1" * 32  # what the caller gives wins


def test_the_sandbox_has_its_own_twilio() -> None:
    settings = Settings(environ={"TWILIO_BASE_URL": "https://api.twilio.com"}, sandbox=True)
    assert settings.twilio_base_url == SANDBOX_TWILIO_URL
    assert settings.twilio_account_sid == SANDBOX_TWILIO_ACCOUNT_SID


def test_the_http_timeout_comes_from_the_environment() -> None:
    assert Settings().timeout == 10.0
    assert Settings(environ={"PROVISIONER_HTTP_TIMEOUT": "2.5"}).timeout == 2.5
    with pytest.raises(ProvisionerError, match="PROVISIONER_HTTP_TIMEOUT must be"):
        Settings(environ={"PROVISIONER_HTTP_TIMEOUT": "inf"})


def test_a_live_client_gets_the_settings_urls_and_twilio_defaults() -> None:
    env = {"TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": "secret"}
    with twilio_client(Settings(environ=env)) as client:
        assert client.account_sid == SID
        assert client.base_url == "https://api.twilio.com"
        assert client.pricing_base_url == "https://pricing.twilio.com"
    with pytest.raises(ValueError, match="no Twilio account SID or auth token"):
        twilio_client(Settings(environ={"TWILIO_ACCOUNT_SID": SID}))


def test_a_sandbox_client_buys_from_the_emulator_and_keeps_what_it_bought(
    tmp_path: Path,
) -> None:
    settings = Settings(sandbox=True, sandbox_dir=tmp_path)
    with twilio_client(settings) as client:
        bought = client.buy(area_code="415")
    assert isinstance(bought, PurchasedNumber)
    assert settings.sandbox_twilio_data.is_file()
    with twilio_client(settings) as again:  # a later run sees the same account
        assert [n.sid for n in again.list_owned()] == [bought.sid]
