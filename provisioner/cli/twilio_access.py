"""Which Twilio account `provisioner numbers` talks to: the environment's
(`TWILIO_ACCOUNT_SID`, `TWILIO_AUTH_TOKEN`), a manifest's first Twilio number
(`--manifest`), or the sandbox's in-process emulator (`--sandbox`); and the errors that
say why none can be used."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from provisioner import purchasing
from provisioner.errors import ProvisionerError
from provisioner.numbers.rules import ACCOUNT_SID
from provisioner.settings import Settings

if TYPE_CHECKING:
    # Imported where used: registering the group must not slow every CLI start with httpx.
    from provisioner.remote.twilio import RetryNotice, TwilioClient

ACCOUNT_SID_VAR = "TWILIO_ACCOUNT_SID"
AUTH_TOKEN_VAR = "TWILIO_AUTH_TOKEN"


class MissingCredentialsError(ProvisionerError):
    """The Twilio account SID or auth token is not in the environment (or malformed)."""


class ManifestCredentialsError(ProvisionerError):
    """`--manifest` names a manifest that is invalid or has no Twilio number."""


class SandboxDataError(ProvisionerError):
    """The Twilio sandbox's data file cannot be used."""


def captured_environ(ctx: click.Context) -> Mapping[str, str]:
    """The environment the root group captured (`AppContext.environ`), else the process's."""
    environ = getattr(ctx.obj, "environ", None)
    if isinstance(environ, Mapping):
        return environ
    return os.environ


def _report_retry(notice: RetryNotice) -> None:
    click.echo(f"  {notice.describe()}", err=True)


@contextmanager
def open_twilio_client(
    ctx: click.Context, sandbox: bool, manifest: Path | None = None
) -> Iterator[TwilioClient]:
    if manifest is not None and not sandbox:
        with _manifest_client(ctx, manifest) as client:
            yield client
        return
    settings = Settings(environ=dict(captured_environ(ctx)), sandbox=sandbox)
    client = sandbox_client(settings) if sandbox else live_client(settings)
    with client:
        yield client


@contextmanager
def _manifest_client(ctx: click.Context, manifest: Path) -> Iterator[TwilioClient]:
    """A client with the credentials of the manifest's first Twilio number, resolved as
    plan and apply resolve them (`purchasing.Twilio.credentials`)."""
    from provisioner.cli.app import AppContext
    from provisioner.operations import twilio_numbers
    from provisioner.render.human import Renderer
    from provisioner.settings import Settings
    from provisioner.validation import validate

    environ = captured_environ(ctx)
    from provisioner.cli.environments import given_env

    validated, diags = validate(manifest, environ, environment=given_env())
    if validated is None:
        # As `validate` prints them: through the app's renderer (colour, format).
        app = ctx.find_object(AppContext) or AppContext(Renderer(False), dict(environ))
        app.diagnostics(diags)
        raise ManifestCredentialsError(f"{manifest} is not valid; nothing was asked of Twilio")
    bodies = twilio_numbers(validated)
    if not bodies:
        raise ManifestCredentialsError(
            f"{manifest} has no Twilio phone number to take an account from"
        )
    address, body = bodies[0]
    twilio = purchasing.Twilio(Settings(environ=environ))
    try:
        sid, secret = twilio.credentials(body)
        click.echo(f"Using the Twilio account of {address} ({sid}).", err=True)
        yield twilio.client(sid, secret)
    finally:
        twilio.close()


def live_client(settings: Settings) -> TwilioClient:
    from provisioner.remote.factory import twilio_client

    sid = settings.twilio_account_sid or ""
    token = settings.twilio_auth_token or ""
    if not sid or not token:
        unset = " and ".join(
            n for n, v in ((ACCOUNT_SID_VAR, sid), (AUTH_TOKEN_VAR, token)) if not v
        )
        raise MissingCredentialsError(
            f"Twilio credentials missing ({unset} not set): set {ACCOUNT_SID_VAR} and "
            f"{AUTH_TOKEN_VAR} from the Twilio console, or pass --sandbox to try the "
            "local emulator"
        )
    if not ACCOUNT_SID.match(sid):
        raise MissingCredentialsError(
            f"{ACCOUNT_SID_VAR} must be an Account SID: AC followed by 32 hexadecimal digits"
        )
    try:
        return twilio_client(settings, on_retry=_report_retry)
    except ValueError as exc:  # a token HTTP cannot carry (the message never shows it)
        raise MissingCredentialsError(f"{exc} ({AUTH_TOKEN_VAR})") from exc


def sandbox_client(settings: Settings) -> TwilioClient:
    from provisioner.remote.factory import twilio_client

    try:
        return twilio_client(settings, on_retry=_report_retry)
    except ValueError as exc:
        raise SandboxDataError(
            f"cannot use the Twilio sandbox data ({exc}); move the file away to start afresh"
        ) from exc
