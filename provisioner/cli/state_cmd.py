"""`provisioner state migrate`: move a state from its old location into the one the
manifest now configures (another file, S3 or PostgreSQL), lineage and serial kept."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from provisioner.errors import ProvisionerError


@click.command("migrate")
@click.argument("manifest", type=click.Path(path_type=Path))
@click.option(
    "--from",
    "source",
    required=True,
    help="Where the state is now: a file path, s3://BUCKET/KEY or postgres://... (no password).",
)
@click.option("--sandbox", is_flag=True, help="The sandbox's state location as the target.")
@click.option(
    "--state",
    "state_path",
    type=click.Path(dir_okay=False),
    help="The target, instead of what the manifest configures.",
)
@click.option("--lock-timeout", type=click.FloatRange(min=0), default=0)
@click.pass_context
def migrate(
    ctx: click.Context,
    manifest: Path,
    source: str,
    sandbox: bool,
    state_path: str | None,
    lock_timeout: float,
) -> None:
    """Copy the state of MANIFEST from --from into its configured location, then verify
    the copy. The source is left untouched; a target holding another state is refused."""
    from provisioner import operations
    from provisioner.cli.main import AppContext, _locked, _settings
    from provisioner.state import backend
    from provisioner.state.model import STATE_KEY_ENV

    app = ctx.find_object(AppContext)
    assert app is not None
    settings = _settings(app, sandbox=sandbox, state_path=state_path)
    external_key = settings.environ.get(STATE_KEY_ENV) or None
    old = backend.open_backend(
        backend.from_cli(source, manifest), environ=settings.environ, external_key=external_key
    )
    target = operations.open_state(settings, manifest)
    if old.describe() == target.describe():
        raise ProvisionerError(
            f"{manifest} already keeps its state in {target.describe()}: configure the new "
            "location (the manifest's `state:` or --state) before migrating"
        )
    if not old.exists():
        raise ProvisionerError(f"there is no state in {old.describe()}: nothing to migrate")
    state = old.read()
    with _locked(app, target, f"provisioner state migrate {manifest}", lock_timeout):
        if target.exists():
            there = target.read()
            if there.lineage != state.lineage:
                raise ProvisionerError(
                    f"{target.describe()} already holds another state (lineage "
                    f"{there.lineage}, the source's is {state.lineage}): refusing to replace "
                    "it. Choose another location, or remove that state if it is not needed"
                )
            if there.serial == state.serial and there.content_equal(state):
                app.out(f"{target.describe()} already holds this state (serial {state.serial}).")
                return
            if there.serial >= state.serial:
                raise ProvisionerError(
                    f"{target.describe()} holds a newer version of this state (serial "
                    f"{there.serial}, the source's is {state.serial}): it was migrated and "
                    "used since; nothing copied"
                )
        # A write stores serial + 1 for new content: hand it one less to keep the serial.
        target.write(dataclasses.replace(state, serial=state.serial - 1))
    check = operations.open_state(settings, manifest).read()
    if (check.lineage, check.serial) != (state.lineage, state.serial) or not check.content_equal(
        state
    ):
        raise ProvisionerError(
            f"the copy in {target.describe()} does not match {old.describe()} (serial "
            f"{check.serial}, expected {state.serial}): the source is untouched; try again"
        )
    app.out(
        f"Copied the state (lineage {state.lineage}, serial {state.serial}, "
        f"{len(state.resources)} resources) from {old.describe()} to {target.describe()}, "
        f"and verified the copy. {old.describe()} was left as it is: remove it once every "
        "run uses the new location."
    )
