"""`validate`, `plan` and `drift`: check a manifest, show what apply would change, report
changes made outside the manifest. Nothing here writes to the remote."""

from __future__ import annotations

from pathlib import Path

import click

from provisioner.cli.app import AppContext, locked, pass_app
from provisioner.cli.options import (
    FORMAT,
    MANIFEST,
    PARALLELISM,
    REPLACE,
    SECONDS,
    TARGET,
    check_out_path,
    common,
)
from provisioner.cli.toolkit import saved_plan_note
from provisioner.cli.views import request_printer, show_drift, show_plan


@click.command()
@MANIFEST
@click.option(
    "--sandbox",
    is_flag=True,
    help="Accepted as on every command; validating never talks to Vapi anyway.",
)
@click.option(
    "--strict",
    is_flag=True,
    help="An unset or empty ${env:} variable is an error (by default a warning: "
    "validating needs no secrets).",
)
@pass_app
def validate(app: AppContext, manifest: Path, sandbox: bool, strict: bool) -> None:
    """Check MANIFEST against the schema, references, env vars and files."""
    from provisioner.cli.environments import given_env
    from provisioner.validation import validate as validate_manifest
    from provisioner.validation import validate_all

    env = given_env()
    if env is not None:
        one, diags = validate_manifest(manifest, app.environ, strict=strict, environment=env)
        found = [one] if one else []
    else:  # every environment the manifest declares, problems prefixed with theirs
        found, diags = validate_all(manifest, app.environ, strict=strict)
    app.diagnostics(diags)
    if not found or diags.has_errors():
        n = len(diags.errors())
        raise SystemExit(app.fail(f"{n} problem{'s' if n != 1 else ''} found in {manifest}."))

    def counted(n: int) -> str:
        return f"{n} resource{'s' if n != 1 else ''}"

    if found[0].environment is None:
        app.out(f"{manifest} is valid: {counted(len(found[0].manifest.resources))}.")
    else:  # per environment: `valid in dev (2 resources), prod (1 resource).`
        each = (
            f"{v.environment.name} ({counted(len(v.manifest.resources))})"
            for v in found
            if v.environment
        )
        app.out(f"{manifest} is valid in {', '.join(each)}.")


@click.command()
@MANIFEST
@common
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 0 when there are no changes, 2 when changes are pending, 1 on error.",
)
@click.option("--destroy", is_flag=True, help="Plan to delete everything the state manages.")
@click.option(
    "--refresh-only", is_flag=True, help="Report drift alone (changes made outside the manifest)."
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Save the plan to this file; `apply FILE` then runs exactly it.",
)
@FORMAT
@PARALLELISM
@TARGET
@REPLACE
@pass_app
def plan(
    app: AppContext,
    manifest: Path,
    sandbox: bool,
    state_path: str | None,
    detailed_exitcode: bool,
    destroy: bool,
    refresh_only: bool,
    out: Path | None,
    fmt: str,
    parallelism: int,
    targets: tuple[str, ...],
    replace: tuple[str, ...],
) -> None:
    """Refresh the live resources and show what apply would change."""
    from provisioner import operations, saved_plans
    from provisioner.plan.model import PlanMode
    from provisioner.plan.targeting import Selection

    if refresh_only and (out is not None or destroy):
        other = "--out" if out is not None else "--destroy"
        raise click.UsageError(
            f"--refresh-only reports drift only; it cannot be combined with {other}"
        )
    if destroy and replace:
        raise click.UsageError("--replace cannot be combined with --destroy")
    if out is not None:
        check_out_path(out)
    settings = app.settings(sandbox=sandbox, state_path=state_path, parallelism=parallelism)
    mode = PlanMode.DESTROY if destroy else PlanMode.NORMAL
    with (
        operations.open_client(settings, request_printer(app)) as client,
        operations.open_twilio(settings) as numbers,
    ):
        result, diags = operations.plan(
            settings,
            manifest,
            client,
            mode=mode,
            numbers=numbers,
            selection=Selection(targets, replace),
        )
    app.diagnostics(diags)
    if result is None or diags.has_errors():
        raise SystemExit(app.fail("Planning failed."))
    if refresh_only:
        show_drift(app, result.plan, fmt)
        if detailed_exitcode and result.plan.drifted():
            raise SystemExit(2)
        return
    if out is not None:
        saved_plans.save_plan_file(settings, manifest, result, out)
    show_plan(app, result.plan, fmt)
    if out is not None and fmt == "human":
        app.out(saved_plan_note(out, result.plan.environment))
    # A `moved` entry alone is pending too: applying the plan rewrites the state.
    if detailed_exitcode and (result.plan.has_changes or result.plan.moved):
        raise SystemExit(2)


@click.command()
@MANIFEST
@common
@FORMAT
@click.option(
    "--accept",
    is_flag=True,
    help="Update the state to accept the remote as it is (the manifest is not changed).",
)
@click.option("--lock-timeout", type=SECONDS, default=0)
@pass_app
def drift(
    app: AppContext,
    manifest: Path,
    sandbox: bool,
    state_path: str | None,
    fmt: str,
    accept: bool,
    lock_timeout: float,
) -> None:
    """Report changes made outside the manifest; exit 2 when there are any."""
    from provisioner import operations

    settings = app.settings(sandbox=sandbox, state_path=state_path)
    with operations.open_client(settings, request_printer(app)) as client:
        if accept:
            store = operations.open_state(settings, manifest)
            with locked(app, store, f"provisioner drift {manifest}", lock_timeout):
                result, diags = operations.plan(settings, manifest, client, store=store)
                if result is not None and not diags.has_errors():
                    accepted = operations.accept_drift(store, result)
        else:
            result, diags = operations.plan(settings, manifest, client)
    app.diagnostics(diags)
    if result is None or diags.has_errors():
        raise SystemExit(app.fail("Drift check failed."))
    show_drift(app, result.plan, fmt)
    if accept:
        message = f"Accepted the remote state of {accepted} resource(s) into the state file."
        if fmt == "human":
            app.out(f"\n{message}")
        else:  # JSON and Markdown stay one clean document on stdout
            app.err(message)
        return
    if result.plan.drifted():
        raise SystemExit(2)
