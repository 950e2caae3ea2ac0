"""`provisioner numbers`: find Twilio phone numbers to buy, and what they cost per month.

Owns: the `numbers` click group (`list`, `search`, `pricing`). Which Twilio account it
talks to (the environment's, a manifest's, or the sandbox's in-process emulator, whose
bought numbers persist in `state/.sandbox/twilio.json`) is `cli.twilio_access`; the table
and JSON renderings of the results are `cli.numbers_views`.

`list` reads the Vapi org's numbers (and, given a manifest, its state to tell which ones it
manages); it writes nothing. Nothing here buys or releases: that happens only in `apply`,
after a plan that shows the price.

`cli.main` registers it; the root group (`cli.app`) maps the
`ProvisionerError`s raised here to exit 1 with "Error: ...".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from provisioner import purchasing
from provisioner.cli.numbers_views import (
    criteria_text,
    money,
    number_json,
    price_text,
    pricing_json,
    table,
)
from provisioner.cli.twilio_access import (
    MissingCredentialsError,
    captured_environ,
    open_twilio_client,
)
from provisioner.errors import RemoteError
from provisioner.numbers.format import format_number
from provisioner.numbers.rules import (
    AREA_CODE,
    AREA_CODE_COUNTRIES,
    CONTAINS,
    COUNTRY_ANY_CASE,
    DEFAULT_COUNTRY,
    DEFAULT_TYPE,
    PURCHASE_TYPES,
    VAPI_FREE_NUMBER_LIMIT,
)
from provisioner.settings import SANDBOX_DIR, Settings

if TYPE_CHECKING:
    # Imported where used: registering the group must not slow every CLI start with httpx.
    from provisioner.remote.twilio import (
        TwilioClient,
    )

__all__ = [
    "SANDBOX_ACCOUNT_SID",
    "SANDBOX_DATA",
    "VAPI_FREE_NUMBERS",
    "MissingCredentialsError",
    "numbers",
]

# The sandbox's fake account: any AC SID works with the emulator.
SANDBOX_ACCOUNT_SID = purchasing.SANDBOX_ACCOUNT_SID
SANDBOX_DATA = SANDBOX_DIR / "emulator" / "twilio.json"
VAPI_FREE_NUMBERS = (
    "Vapi also provides free US numbers (choose an area code with numberDesiredAreaCode; "
    f"up to {VAPI_FREE_NUMBER_LIMIT} per account)"
)
SEARCH_TYPES = tuple(t.value for t in PURCHASE_TYPES)


# -- option checks -----------------------------------------------------------------------


def _check_country(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not COUNTRY_ANY_CASE.match(value.strip()):
        raise click.BadParameter("use a two-letter ISO country code, e.g. US, CA, GB")
    return value.strip().upper()


def _check_area_code(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    if not AREA_CODE.match(value.strip()):
        raise click.BadParameter("a US/CA area code is three digits, not starting with 0 or 1")
    return value.strip()


def _check_contains(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    if not CONTAINS.match(value.strip()):
        raise click.BadParameter(
            "use 2 to 16 digits or letters, `*` for any one digit "
            "(e.g. 555, 415***0000, +1415, 1234$)"
        )
    return value.strip()


# -- the group ---------------------------------------------------------------------------


@click.group("numbers")
def numbers() -> None:
    """List the org's phone numbers; find Twilio numbers to buy, with their prices."""


SANDBOX = click.option(
    "--sandbox",
    is_flag=True,
    help="Use the local Twilio emulator (no credentials needed).",
)
AS_JSON = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
FROM_MANIFEST = click.option(
    "--manifest",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Use the Twilio account of this manifest's first Twilio number (its "
    "twilioAccountSid and twilioAuthToken, or API key) instead of TWILIO_ACCOUNT_SID and "
    "TWILIO_AUTH_TOKEN.",
)
COUNTRY = click.option(
    "--country",
    default=DEFAULT_COUNTRY,
    show_default=True,
    callback=_check_country,
    help="ISO country code.",
)


@numbers.command("list")
@click.argument("manifest", required=False, type=click.Path(path_type=Path))
@click.option("--sandbox", is_flag=True, help="Use the local Vapi emulator.")
@click.option(
    "--state",
    "state_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="State file of MANIFEST (default: state/<manifest path in its repository>.json).",
)
@AS_JSON
@click.pass_context
def list_numbers(
    ctx: click.Context,
    manifest: Path | None,
    sandbox: bool,
    state_path: Path | None,
    as_json: bool,
) -> None:
    """Every phone number in the Vapi org, where it routes, and whether MANIFEST manages it."""
    from provisioner import operations
    from provisioner.cli.environments import with_environment
    from provisioner.kinds import ASSISTANT, PHONE_NUMBER

    settings = Settings(environ=dict(captured_environ(ctx)), sandbox=sandbox, state_path=state_path)
    settings = with_environment(settings)  # --env: that environment's org and state (#12)
    managed: dict[str, str] = {}  # remote ID -> address
    if manifest is not None:
        state = operations.open_state(settings, manifest).read()
        managed = {r.id: a for a, r in state.resources.items() if r.id}
    with operations.open_client(settings) as client:
        phones = client.list_all(PHONE_NUMBER).items
        assistants = client.list_all(ASSISTANT).items
    names = {str(a.get("id")): a.get("name") for a in assistants}
    rows = [_listed_number(p, managed, names) for p in phones]
    rows.sort(key=lambda r: (r["managed_by"] is None, r["managed_by"] or "", r["number"] or ""))
    if as_json:
        click.echo(json.dumps({"phone_numbers": rows}, indent=2))
        return
    if not rows:
        click.echo("No phone numbers in this Vapi org.")
        return
    cells = [
        [
            format_number(r["number"]) if r["number"] else "-",
            r["provider"] or "-",
            r["name"] or "-",
            r["routes_to"] or "-",
            r["status"] or "-",
            r["managed_by"] or ("no" if manifest is not None else "?"),
        ]
        for r in rows
    ]
    headers = ["NUMBER", "PROVIDER", "NAME", "ROUTES TO", "STATUS", "MANAGED"]
    for line in table(headers, cells):
        click.echo(line)
    if manifest is None:
        click.echo("")
        click.echo("Give a manifest to see which of these it manages.")


def _listed_number(
    phone: Mapping[str, Any], managed: Mapping[str, str], names: Mapping[str, Any]
) -> dict[str, Any]:
    by_id = {rid: addr for rid, addr in managed.items()}
    target: str | None = None
    for field, label in (
        ("assistantId", "assistant"),
        ("squadId", "squad"),
        ("workflowId", "workflow"),
    ):
        value = phone.get(field)
        if isinstance(value, str) and value:
            where = by_id.get(value) or (
                f"{label} {names[value]} ({value})" if names.get(value) else f"{label} {value}"
            )
            target = where
            break
    if target is None and isinstance(phone.get("fallbackDestination"), Mapping):
        dest = phone["fallbackDestination"]
        target = f"forwards to {dest.get('number') or dest.get('sipUri') or '?'}"
    status = phone.get("status")
    if status is None and "isActive" in phone:
        status = "active" if phone.get("isActive") else "inactive"
    return {
        "id": phone.get("id"),
        "number": phone.get("number") or phone.get("sipUri"),
        "provider": phone.get("provider"),
        "name": phone.get("name"),
        "routes_to": target,
        "assistant_id": phone.get("assistantId"),
        "squad_id": phone.get("squadId"),
        "status": status,
        "managed_by": by_id.get(str(phone.get("id"))),
    }


@numbers.command("search")
@COUNTRY
@click.option(
    "--area-code", callback=_check_area_code, help="US/CA area code, e.g. 415 (US and CA only)."
)
@click.option(
    "--contains",
    callback=_check_contains,
    help="Digits or letters the number must contain; `*` matches any one digit.",
)
@click.option(
    "--type",
    "number_type",
    type=click.Choice(SEARCH_TYPES),
    default=DEFAULT_TYPE.value,
    show_default=True,
    help="Kind of number.",
)
@click.option(
    "--limit",
    type=click.IntRange(1, 1000),
    default=20,
    show_default=True,
    help="At most this many.",
)
@click.option("--sms", is_flag=True, help="Only numbers that can receive SMS.")
@click.option("--voice", is_flag=True, help="Only numbers that can receive calls.")
@AS_JSON
@SANDBOX
@FROM_MANIFEST
@click.pass_context
def search(
    ctx: click.Context,
    country: str,
    area_code: str | None,
    contains: str | None,
    number_type: str,
    limit: int,
    sms: bool,
    voice: bool,
    as_json: bool,
    sandbox: bool,
    manifest: Path | None,
) -> None:
    """Search the numbers Twilio has for sale, with their monthly price."""
    from provisioner.remote.twilio import TwilioError

    if area_code is not None and country not in AREA_CODE_COUNTRIES:
        raise click.BadParameter(
            f"area codes exist only for US and CA numbers, not {country}",
            param_hint="--area-code",
        )
    with open_twilio_client(ctx, sandbox, manifest) as client:
        try:
            found = client.search(
                country,
                type=number_type,
                area_code=area_code,
                contains=contains,
                sms=True if sms else None,
                voice=True if voice else None,
                limit=limit,
            )
        except TwilioError as exc:
            if exc.status != 404:
                raise
            hint = f"`provisioner numbers pricing --country {country}` lists the types on sale"
            raise TwilioError(
                f"{exc.message}; {hint}",
                method=exc.method,
                path=exc.path,
                status=exc.status,
                body=exc.body,
                code=exc.code,
                more_info=exc.more_info,
            ) from exc
        price, currency, price_problem = _monthly_price(client, country, number_type)
    if price_problem is not None:
        click.echo(f"Note: prices unavailable: {price_problem}", err=True)
    if as_json:
        doc = {
            "country": country,
            "type": number_type,
            "monthly_price": money(price),
            "currency": currency,
            "numbers": [number_json(n, price, currency) for n in found],
            "vapi_free_numbers": VAPI_FREE_NUMBERS,
        }
        click.echo(json.dumps(doc, indent=2))
        return
    criteria = criteria_text(country, number_type, area_code, contains, sms, voice)
    if not found:
        click.echo(f"No Twilio numbers for sale match: {criteria}.")
    else:
        shown = f"{len(found)} number{'s' if len(found) != 1 else ''}"
        click.echo(f"Twilio numbers for sale ({criteria}): {shown}")
        click.echo("")
        rows = [
            [
                format_number(n.phone_number),
                n.locality or "-",
                n.region or "-",
                " ".join(n.capabilities.labels()) or "-",
                price_text(price, currency),
            ]
            for n in found
        ]
        for line in table(["NUMBER", "LOCALITY", "REGION", "CAPABILITIES", "MONTHLY"], rows):
            click.echo(line)
    click.echo("")
    click.echo(f"{VAPI_FREE_NUMBERS}.")


@numbers.command("pricing")
@COUNTRY
@AS_JSON
@SANDBOX
@FROM_MANIFEST
@click.pass_context
def pricing(
    ctx: click.Context, country: str, as_json: bool, sandbox: bool, manifest: Path | None
) -> None:
    """Show Twilio's monthly price per phone number, by number type."""
    with open_twilio_client(ctx, sandbox, manifest) as client:
        prices = client.pricing(country)
    if as_json:
        click.echo(json.dumps(pricing_json(prices), indent=2))
        return
    click.echo(
        f"Twilio phone-number prices in {prices.country} ({prices.iso_country}), "
        "per number per month:"
    )
    click.echo("")
    if not prices.prices:
        click.echo("  (no number types listed)")
        return
    rows = []
    for row in prices.prices:
        text = price_text(row.current_price, prices.currency)
        if row.base_price != row.current_price:
            text += f" (list {money(row.base_price)})"
        rows.append([row.number_type, text])
    for line in table(["TYPE", "MONTHLY"], rows):
        click.echo(line)


def _monthly_price(
    client: TwilioClient, country: str, number_type: str
) -> tuple[Decimal | None, str | None, str | None]:
    """(price, currency, why there is none) for one number of this type."""
    try:
        prices = client.pricing(country)
    except RemoteError as exc:
        return None, None, str(exc)
    price = prices.monthly(number_type)
    if price is None:
        return None, prices.currency, f"Twilio lists no {number_type} price for {country}"
    return price, prices.currency, None
