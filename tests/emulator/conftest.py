"""Fixtures for the emulator tests: an app, in-process and socket clients, valid bodies."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from provisioner.emulator import SandboxTransport, VapiEmulator, running_server

TOKEN = "test-private-key"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
REPO = Path(__file__).resolve().parents[2]


class _Background:
    """`sdk_round_trip.py` in its own process, started once tests are selected."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        if self.proc is None:
            env = {**os.environ, "PYTHONPATH": str(REPO)}
            script = Path(__file__).with_name("sdk_round_trip.py")
            self.proc = subprocess.Popen(
                [sys.executable, str(script)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )

    def result(self, timeout: float) -> tuple[str, str, int]:
        self.start()
        assert self.proc is not None
        out, err = self.proc.communicate(timeout=timeout)
        return out, err, self.proc.returncode

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


SDK_RUN = _Background()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "vapi_sdk: drives the emulator with the official SDK")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # After -k/-m deselection: start the slow SDK run now, so other tests overlap it.
    if any(item.get_closest_marker("vapi_sdk") for item in items):
        SDK_RUN.start()


def pytest_unconfigure(config: pytest.Config) -> None:
    SDK_RUN.stop()


def assistant_body(name: str = "Support") -> dict[str, Any]:
    return {
        "name": name,
        "firstMessage": "Hi!",
        "model": {
            "provider": "openai",
            "model": "gpt-4o",
            "temperature": 0.3,
            "messages": [{"role": "system", "content": "Be brief."}],
        },
        "voice": {"provider": "11labs", "voiceId": "burt"},
        "metadata": {"team": "support"},
    }


def twilio_body(**extra: Any) -> dict[str, Any]:
    return {
        "provider": "twilio",
        "name": "Main line",
        "number": "+14155550100",
        "twilioAccountSid": "AC0123456789abcdef0123456789abcdef",
        "twilioAuthToken": "twilio-secret-1234",
        **extra,
    }


def structured_output_body(**extra: Any) -> dict[str, Any]:
    return {
        "name": "Call summary",
        "type": "ai",
        "schema": {"type": "object", "properties": {"summary": {"type": "string"}}},
        **extra,
    }


def insight_body(name: str = "Calls per day") -> dict[str, Any]:
    return {
        "type": "line",
        "name": name,
        "queries": [{"type": "vapiql-json", "table": "call", "column": "id", "operation": "count"}],
        "timeRange": {"start": "-7d", "end": "now", "step": "day"},
    }


def board_body(insight_id: str) -> dict[str, Any]:
    return {
        "name": "Overview",
        "layout": {"columns": 6},
        "items": [
            {
                "type": "insight",
                "insightId": insight_id,
                "position": {"x": 0, "y": 0},
                "size": {"width": 3, "height": 2},
            }
        ],
    }


@pytest.fixture
def app() -> VapiEmulator:
    return VapiEmulator(token=TOKEN)


@pytest.fixture
def client(app: VapiEmulator) -> Iterator[httpx.Client]:
    """In-process client (httpx WSGI transport)."""
    transport = SandboxTransport(app=app)
    with httpx.Client(transport=transport, base_url="http://sandbox", headers=AUTH) as c:
        yield c


@pytest.fixture
def served(app: VapiEmulator) -> Iterator[str]:
    """The app over a real socket; yields the base URL."""
    with running_server(app) as url:
        yield url


@pytest.fixture(params=["in-process", "socket"])
def any_client(request: pytest.FixtureRequest, app: VapiEmulator) -> Iterator[httpx.Client]:
    """The same app through each transport."""
    if request.param == "in-process":
        with httpx.Client(
            transport=SandboxTransport(app=app), base_url="http://sandbox", headers=AUTH
        ) as c:
            yield c
        return
    with running_server(app) as url, httpx.Client(base_url=url, headers=AUTH) as c:
        yield c
