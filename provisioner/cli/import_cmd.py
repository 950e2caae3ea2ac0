"""`import`: adopt one existing remote object under an address, or write a manifest for
everything in the org (`--generate`)."""

from __future__ import annotations

from pathlib import Path

import click

from provisioner.cli.app import AppContext, locked, pass_app
from provisioner.cli.options import MANIFEST, SECONDS, common
from provisioner.cli.toolkit import complete_address
from provisioner.cli.views import request_printer


@click.command("import")
@MANIFEST
@click.argument("address", required=False, shell_complete=complete_address)
@click.argument("resource_id", metavar="ID", required=False)
@common
@click.option(
    "--generate",
    is_flag=True,
    help="Write MANIFEST (and prompt files) from every resource in the org, and adopt them.",
)
@click.option("--lock-timeout", type=SECONDS, default=0)
@pass_app
def import_(
    app: AppContext,
    manifest: Path,
    address: str | None,
    resource_id: str | None,
    sandbox: bool,
    state_path: str | None,
    generate: bool,
    lock_timeout: float,
) -> None:
    """Adopt existing remote resources: `import MANIFEST ADDRESS ID` records one object
    under ADDRESS; `import --generate MANIFEST` writes a manifest for everything."""
    from provisioner import operations

    if generate == bool(address or resource_id) or (not generate and not (address and resource_id)):
        raise click.UsageError("give either ADDRESS and ID, or --generate")
    settings = app.settings(sandbox=sandbox, state_path=state_path)
    store = operations.open_state(settings, manifest)
    command = f"provisioner import {manifest}"
    with (
        operations.open_client(settings, request_printer(app)) as client,
        locked(app, store, command, lock_timeout),
    ):
        if generate:
            gen = operations.generate_from_remote(manifest, client, store)
            app.out(
                f"Wrote {manifest} with {len(gen.entries)} resources"
                + (f" and {len(gen.files)} prompt files" if gen.files else "")
                + "."
            )
            for note in gen.notes:
                app.out(f"  note: {note}")
            app.out(f"Run `provisioner plan {manifest}` to check: it should show no changes.")
            return
        assert address is not None and resource_id is not None
        try:
            live = operations.import_resource(
                settings, manifest, address, resource_id, client, store
            )
        except operations.ManifestInvalid as exc:
            app.diagnostics(exc.diagnostics)
            raise SystemExit(app.fail("Nothing was imported.")) from exc
    name = f" ({live['name']})" if live.get("name") else ""
    app.out(f"Imported {address}{name}: {resource_id}.")
    from provisioner.importer import marker_lineage

    theirs = marker_lineage(live)
    if theirs and theirs != store.read().lineage:
        app.out(
            f"  note: another provisioner state (lineage {theirs}) created it; "
            "it is now managed by this one too: stop managing it in the other"
        )
    app.out(f"Run `provisioner plan {manifest}` to see how it differs from the manifest.")
