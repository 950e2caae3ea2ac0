"""`sandbox serve`: the local Vapi emulator over HTTP."""

from __future__ import annotations

from pathlib import Path

import click

from provisioner.cli.app import AppContext, pass_app


@click.group()
def sandbox() -> None:
    """The local Vapi emulator."""


@sandbox.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8787, show_default=True)
@click.option(
    "--data",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Persist objects in this JSON file (default: in memory).",
)
@click.option(
    "--faults",
    help="Fault profile, e.g. 'rps=5,p429=0.2,seed=1' (also PROVISIONER_SANDBOX_FAULTS).",
)
@click.option("--token", help="Accept only this API key (default: any).")
@pass_app
def sandbox_serve(
    app: AppContext, host: str, port: int, data: Path | None, faults: str | None, token: str | None
) -> None:
    """Serve the Vapi emulator over HTTP (for curl, SDKs, other tools)."""
    from provisioner.emulator import FaultProfile, serve_forever

    text = faults or app.environ.get("PROVISIONER_SANDBOX_FAULTS")
    try:
        profile = FaultProfile.parse(text) if text else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--faults") from exc
    serve_forever(host, port, store_path=data, faults=profile, token=token)
