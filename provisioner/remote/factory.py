"""The one place a `TwilioClient` is built: from `Settings`, live or sandbox.

Owns: which base URLs and credentials a Twilio client gets (`Settings.twilio_*`, read from
the environment when Settings was built) and the in-process Twilio emulator behind
`--sandbox`. Callers (plan/apply's `purchasing.Twilio`, the `numbers` commands) choose
the account, the patience (retry, timeout) and what to say about retries.

Must not touch: `os.environ`, the terminal, plans, state.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from provisioner.remote.retry import RetryPolicy
from provisioner.remote.twilio import (
    DEFAULT_BASE_URL,
    DEFAULT_PRICING_BASE_URL,
    DEFAULT_RETRY,
    RetryNotice,
    TwilioClient,
)
from provisioner.settings import Settings

__all__ = ["twilio_client", "twilio_sandbox_transport"]


def twilio_sandbox_transport(settings: Settings) -> httpx.BaseTransport:
    """An in-process transport to the Twilio emulator whose bought numbers persist in
    `settings.sandbox_twilio_data`. Raises ValueError when that file is unusable."""
    from provisioner.emulator.twilio import TwilioEmulator

    data = settings.sandbox_twilio_data
    data.parent.mkdir(parents=True, exist_ok=True)
    return httpx.WSGITransport(app=TwilioEmulator(store_path=data))


def twilio_client(
    settings: Settings,
    account_sid: str | None = None,
    auth_token: str | None = None,
    *,
    api_key: str | None = None,
    retry: RetryPolicy = DEFAULT_RETRY,
    timeout: float | None = None,
    on_retry: Callable[[RetryNotice], None] | None = None,
    sandbox_transport: httpx.BaseTransport | None = None,
) -> TwilioClient:
    """A client for `account_sid` (default `settings.twilio_account_sid`) with
    `auth_token` (default `settings.twilio_auth_token`), at the settings' base URLs.

    Under `settings.sandbox` it talks to the emulator: `sandbox_transport` if given (a run
    shares one), else a new one; API keys are not used there. `timeout` (seconds) is
    `settings.timeout` unless given; connecting never waits longer than 5 s.

    Raises:
        ValueError: no account SID or token, a malformed one (`CredentialError` for a
            token HTTP cannot carry), or unusable sandbox data.
    """
    sid = account_sid or settings.twilio_account_sid
    token = auth_token or settings.twilio_auth_token
    if not sid or not token:
        raise ValueError("no Twilio account SID or auth token")
    transport = None
    if settings.sandbox:
        transport = sandbox_transport or twilio_sandbox_transport(settings)
        api_key = None
    return TwilioClient(
        sid,
        token,
        base_url=settings.twilio_base_url or DEFAULT_BASE_URL,
        pricing_base_url=settings.twilio_pricing_base_url or DEFAULT_PRICING_BASE_URL,
        transport=transport,
        api_key=api_key,
        retry=retry,
        timeout=_timeout(settings.timeout if timeout is None else timeout),
        on_retry=on_retry,
    )


def _timeout(seconds: float) -> httpx.Timeout:
    return httpx.Timeout(seconds, connect=min(5.0, seconds))
