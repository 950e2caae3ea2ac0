"""`output`, `state list|show|migrate` and `force-unlock`: read what the state records,
move it to where the manifest now keeps it, and remove a lock left by a run that died."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from provisioner.cli.app import AppContext, locked, pass_app
from provisioner.cli.options import MANIFEST, common
from provisioner.cli.toolkit import complete_address
from provisioner.cli.views import output_rows, print_outputs
from provisioner.errors import ProvisionerError


@click.command()
@MANIFEST
@common
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def output(
    app: AppContext, manifest: Path, sandbox: bool, state_path: str | None, as_json: bool
) -> None:
    """Show the IDs, numbers to call and dashboard links recorded in state."""
    from provisioner import operations

    settings = app.settings(sandbox=sandbox, state_path=state_path)
    state = operations.open_state(settings, manifest).read()
    rows = output_rows(state)
    if as_json:
        app.out(json.dumps({r["address"]: r for r in rows}, indent=2))
    else:
        print_outputs(app, state)


@click.group()
def state() -> None:
    """Inspect the state file."""


@state.command("list")
@MANIFEST
@common
@pass_app
def state_list(app: AppContext, manifest: Path, sandbox: bool, state_path: str | None) -> None:
    """List the addresses the state of MANIFEST manages, with their IDs."""
    from provisioner import operations

    settings = app.settings(sandbox=sandbox, state_path=state_path)
    st = operations.open_state(settings, manifest).read()
    for addr, rs in sorted(st.resources.items()):
        flag = "" if str(rs.status) == "created" else f"  ({rs.status})"
        app.out(f"{addr}  {rs.id or '-'}{flag}")


@state.command("show")
@MANIFEST
@click.argument("address", shell_complete=complete_address)
@common
@pass_app
def state_show(
    app: AppContext, manifest: Path, address: str, sandbox: bool, state_path: str | None
) -> None:
    """Show what the state records for ADDRESS."""
    from provisioner import operations
    from provisioner.plan.normalize import display

    settings = app.settings(sandbox=sandbox, state_path=state_path)
    st = operations.open_state(settings, manifest).read()
    rs = st.resources.get(address)
    if rs is None:
        where = operations.open_state(settings, manifest).describe()
        raise ProvisionerError(f"{address} is not in the state ({where})")
    data = rs.to_dict()
    data["applied"] = display(data["applied"])
    app.out(json.dumps({"address": address, **data}, indent=2))


@click.command("force-unlock")
@MANIFEST
@click.argument("lock_id")
@common
@click.option(
    "--force", is_flag=True, help="Remove it even if its holder is still running on this host."
)
@pass_app
def force_unlock(
    app: AppContext,
    manifest: Path,
    lock_id: str,
    sandbox: bool,
    state_path: str | None,
    force: bool,
) -> None:
    """Remove the state lock LOCK_ID left by a run that no longer exists (or a lock file
    left unreadable by a run killed while taking it, whatever LOCK_ID)."""
    from provisioner import operations

    settings = app.settings(sandbox=sandbox, state_path=state_path)
    store = operations.open_state(settings, manifest)
    removed = store.force_unlock(lock_id, force=force)
    if isinstance(removed, str):
        app.out(
            f"The lock file of {store.describe()} {removed} (a run was probably killed while "
            f"taking the lock): removed it."
        )
    else:
        app.out(f"Lock {lock_id} removed from {store.describe()}.")


@state.command("migrate")
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
    from provisioner.state import backend
    from provisioner.state.model import STATE_KEY_ENV

    app = ctx.find_object(AppContext)
    assert app is not None
    settings = app.settings(sandbox=sandbox, state_path=state_path)
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
    with locked(app, target, f"provisioner state migrate {manifest}", lock_timeout):
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
