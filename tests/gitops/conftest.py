"""Fixtures: the emulator served over real HTTP (as `provisioner sandbox serve` does), for
runs without `--sandbox` whose requests are counted."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from provisioner.emulator import VapiEmulator, running_server
from provisioner.emulator.server import with_twilio
from provisioner.emulator.store import EmulatorStore


@dataclass
class LiveApi:
    """The emulator on a socket: `env` points the CLI (and Twilio pricing) at it."""

    app: VapiEmulator
    url: str

    @property
    def env(self) -> dict[str, str]:
        return {
            "VAPI_BASE_URL": self.url,
            "VAPI_TOKEN": "test-private-key",
            "TWILIO_BASE_URL": self.url,
            "TWILIO_PRICING_BASE_URL": self.url,
        }

    def requests(self) -> dict[str, int]:
        """Requests received so far, by method."""
        return dict(self.app.stats()["by_method"])


@pytest.fixture
def live_api(project: Path) -> Iterator[LiveApi]:
    org = project / "org"
    org.mkdir()
    app = VapiEmulator(EmulatorStore(org / "vapi.json"))
    with running_server(with_twilio(app, org / "twilio.json")) as url:
        yield LiveApi(app, url)
