"""Ctrl-C reaches the client: nothing that has not left yet is sent, and waits before
retries (or for the rate limiter) end at once. The emulator runs in-process with its fault
script; sleeps are real, and the interrupt is set from the event reported before a wait."""

from __future__ import annotations

import threading

import httpx
import pytest

from provisioner.emulator import FaultProfile, SandboxTransport, VapiEmulator
from provisioner.emulator.twilio import TwilioEmulator
from provisioner.errors import RequestInterrupted
from provisioner.kinds import ASSISTANT
from provisioner.remote.client import RequestEvent, VapiClient
from provisioner.remote.limiter import Cancelled, RateLimiter
from provisioner.remote.twilio import RetryNotice, TwilioClient
from tests.emulator.conftest import assistant_body

TOKEN = "test-private-key"


def client_for(app: VapiEmulator, interrupt: threading.Event) -> VapiClient:
    def on_event(event: RequestEvent) -> None:
        interrupt.set()  # Ctrl-C arrives just as the client starts to wait

    return VapiClient(
        "http://sandbox", TOKEN, transport=SandboxTransport(app=app), on_event=on_event
    )


@pytest.mark.parametrize(
    ("step", "sent"),
    [
        ("GET:503", True),  # a 5xx may have done something (for GET it does not matter)
        ("GET:429", False),  # a 429 was turned away before any work
    ],
)
def test_a_retry_wait_ends_at_the_interrupt(step: str, sent: bool) -> None:
    app = VapiEmulator(token=TOKEN, faults=FaultProfile(script=(step,)))
    interrupt = threading.Event()
    with client_for(app, interrupt) as client, client.interruptible(interrupt):
        with pytest.raises(RequestInterrupted, match="while waiting to retry GET") as err:
            client.get(ASSISTANT, "a1")
    assert err.value.sent is sent
    assert app.stats()["requests"] == 1  # no retry went out
    assert client.stats.retries == 0


def test_a_post_refused_with_429_is_never_resent_after_the_interrupt() -> None:
    app = VapiEmulator(token=TOKEN, faults=FaultProfile(script=("POST:429",)))
    interrupt = threading.Event()
    with client_for(app, interrupt) as client, client.interruptible(interrupt):
        with pytest.raises(RequestInterrupted) as err:
            client.create(ASSISTANT, assistant_body())
    assert err.value.sent is False  # nothing was created: it counts as never made
    assert app.store.counts()["assistant"] == 0 and app.stats()["requests"] == 1


def test_nothing_is_sent_once_interrupted_and_the_binding_ends_with_the_block() -> None:
    app = VapiEmulator(token=TOKEN)
    interrupt = threading.Event()
    interrupt.set()
    with client_for(app, interrupt) as client:
        with client.interruptible(interrupt), pytest.raises(RequestInterrupted) as err:
            client.create(ASSISTANT, assistant_body())
        assert "interrupted before POST /assistant was sent" in str(err.value)
        assert err.value.sent is False and app.stats()["requests"] == 0
        assert client.list_all(ASSISTANT).items == []  # outside the block: sent as usual
    assert app.stats()["requests"] == 1


def test_a_limiter_wait_is_cancelled() -> None:
    limiter = RateLimiter()
    limiter.record_rate_limited(retry_after=60)  # every thread paused for a minute
    cancel = threading.Event()
    outcome: list[str] = []

    def waiter() -> None:
        try:
            limiter.acquire(on_wait=lambda delay, why: cancel.set(), cancel=cancel)
            outcome.append("acquired")
        except Cancelled:
            outcome.append("cancelled")

    thread = threading.Thread(target=waiter)
    thread.start()
    thread.join(30)
    assert outcome == ["cancelled"]
    assert limiter.stats.acquired == 0


# -- Twilio: the same interrupt path ------------------------------------------------------

TWILIO_SID = "AC" + "7d" * 16


class Counting(httpx.WSGITransport):
    """The Twilio emulator in-process, counting what reaches it."""

    def __init__(self, app: TwilioEmulator) -> None:
        super().__init__(app=app)
        self.requests = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return super().handle_request(request)


def twilio_for(transport: Counting, interrupt: threading.Event) -> TwilioClient:
    def on_retry(notice: RetryNotice) -> None:
        interrupt.set()  # Ctrl-C arrives just as the client starts to wait

    return TwilioClient(
        TWILIO_SID,
        "twilio-token",
        base_url="http://twilio",
        pricing_base_url="http://twilio",
        transport=transport,
        on_retry=on_retry,
    )


def test_a_twilio_retry_wait_ends_at_the_interrupt() -> None:
    transport = Counting(TwilioEmulator(rate_limit=1.0))  # every request: 429
    interrupt = threading.Event()
    with twilio_for(transport, interrupt) as client, client.interruptible(interrupt):
        with pytest.raises(RequestInterrupted, match="while waiting to retry GET") as err:
            client.search("US", area_code="415")
    assert err.value.sent is False  # a 429 was turned away before any work
    assert transport.requests == 1  # no retry went out


def test_a_purchase_refused_with_429_is_never_resent_after_the_interrupt() -> None:
    transport = Counting(TwilioEmulator(rate_limit=1.0))
    interrupt = threading.Event()
    with twilio_for(transport, interrupt) as client, client.interruptible(interrupt):
        with pytest.raises(RequestInterrupted) as err:
            client.buy(area_code="415")
    assert err.value.sent is False and transport.requests == 1


def test_no_twilio_request_is_sent_once_interrupted() -> None:
    transport = Counting(TwilioEmulator())
    interrupt = threading.Event()
    interrupt.set()
    with twilio_for(transport, interrupt) as client:
        with client.interruptible(interrupt), pytest.raises(RequestInterrupted) as err:
            client.buy(area_code="415")
        assert "interrupted before POST" in str(err.value) and err.value.sent is False
        assert transport.requests == 0
        assert client.list_owned() == []  # outside the block: sent as usual
    assert transport.requests == 1
