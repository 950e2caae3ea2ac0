"""`output`, `state list|show` and `force-unlock`: read what the state records, and
remove a lock left by a run that died."""

from __future__ import annotations

import json
from pathlib import Path

import click

from provisioner.cli.app import AppContext, pass_app
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
    app: AppContext, manifest: Path, sandbox: bool, state_path: Path | None, as_json: bool
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
def state_list(app: AppContext, manifest: Path, sandbox: bool, state_path: Path | None) -> None:
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
    app: AppContext, manifest: Path, address: str, sandbox: bool, state_path: Path | None
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
    state_path: Path | None,
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
