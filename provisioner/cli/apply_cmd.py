"""`apply` and `destroy`: plan (or load a saved plan), confirm, run the apply engine
under the state lock, and show progress, a summary, the outputs and the next steps."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict, Unpack

import click

from provisioner.cli.app import AppContext, locked, pass_app
from provisioner.cli.interrupt import interruptible
from provisioner.cli.options import (
    AUTO_APPROVE,
    MANIFEST,
    MAX_RPS,
    PARALLELISM,
    REPLACE,
    SECONDS,
    TARGET,
    F,
    common,
)
from provisioner.cli.views import ProgressPrinter, next_steps, print_outputs, request_printer
from provisioner.errors import Aborted, ProvisionerError


class _Flags(TypedDict):
    """The options `apply` and `destroy` share."""

    sandbox: bool
    state_path: str | None
    auto_approve: bool
    parallelism: int
    max_rps: float | None
    lock_timeout: float
    targets: tuple[str, ...]


def _shared_options(lock_help: str | None) -> Callable[[F], F]:
    """The options of `_Flags`, on a command."""

    def decorate(fn: F) -> F:
        fn = click.option("--lock-timeout", type=SECONDS, default=0, help=lock_help)(fn)
        fn = click.option("--max-rps", type=MAX_RPS, help="Cap on requests per second.")(fn)
        return common(AUTO_APPROVE(PARALLELISM(TARGET(fn))))

    return decorate


@click.command()
@click.argument("target", metavar="MANIFEST|PLANFILE", type=click.Path(path_type=Path))
@_shared_options("Seconds to wait for another run's state lock.")
@click.option("--json", "json_events", is_flag=True, help="Progress as JSON lines.")
@REPLACE
@pass_app
def apply(
    app: AppContext,
    target: Path,
    json_events: bool,
    replace: tuple[str, ...],
    **flags: Unpack[_Flags],
) -> None:
    """Apply the changes needed to make the remote match MANIFEST, or run exactly the
    plan saved in PLANFILE by `plan --out` (refused if anything changed since)."""
    run = _Run(target, destroy=False, flags=flags, json_events=json_events, replace=replace)
    _run_apply(app, run)


@click.command()
@MANIFEST
@_shared_options(None)
@pass_app
def destroy(app: AppContext, manifest: Path, **flags: Unpack[_Flags]) -> None:
    """Delete everything the state of MANIFEST manages, dependents first."""
    _run_apply(app, _Run(manifest, destroy=True, flags=flags))


@dataclass(frozen=True, slots=True)
class _Run:
    """What `apply` or `destroy` was asked to do."""

    target: Path  # a manifest, or (apply only) a saved plan
    destroy: bool
    flags: _Flags
    json_events: bool = False
    replace: tuple[str, ...] = ()


def _run_apply(app: AppContext, run: _Run) -> None:
    """`_apply_run`; with `--json`, a run that stops before its summary (a bad manifest,
    a held lock, an unreachable API) still ends with one summary line, `ok: false`."""
    if not run.json_events:
        _apply_run(app, run)
        return
    summarized: list[bool] = []
    try:
        _apply_run(app, run, summarized)
    except (SystemExit, ProvisionerError, OSError) as exc:
        if not summarized and not (isinstance(exc, SystemExit) and exc.code in (0, None)):
            from datetime import UTC, datetime

            from provisioner.render.json import apply_event_json, summary_event

            event = summary_event([], interrupted=False, now=datetime.now(UTC))
            event["ok"] = False
            event["error"] = (
                "the run stopped early: see the messages on stderr"
                if isinstance(exc, SystemExit)
                else str(exc)
            )
            app.out(apply_event_json(event))
        raise


def _apply_run(app: AppContext, run: _Run, summarized: list[bool] | None = None) -> None:
    from provisioner import operations, saved_plans
    from provisioner.apply.engine import apply_plan
    from provisioner.apply.purchases import Purchases
    from provisioner.plan.checks import record_protection
    from provisioner.plan.model import PlanMode
    from provisioner.plan.targeting import Selection
    from provisioner.render.json import JsonApplyEvents
    from provisioner.validation import validate as validate_manifest
    from provisioner.validation import validate_for_destroy

    target, destroy, json_events = run.target, run.destroy, run.json_events
    settings = app.settings(
        sandbox=run.flags["sandbox"],
        state_path=run.flags["state_path"],
        parallelism=run.flags["parallelism"],
        max_rps=run.flags["max_rps"],
        lock_timeout=run.flags["lock_timeout"],
    )
    plan_file = target if not destroy and saved_plans.is_plan_file(target) else None
    manifest = saved_plans.saved_manifest_path(plan_file) if plan_file else target
    command = f"provisioner {'destroy' if destroy else 'apply'} {target}"
    if plan_file is not None and (run.flags["targets"] or run.replace):
        # The saved plan is what was reviewed: it already says what it targets.
        raise click.UsageError(
            "--target and --replace belong to `plan --out`; a saved plan runs as it was made"
        )
    if json_events and plan_file is None and not run.flags["auto_approve"]:
        # JSON mode shows no plan, so there would be nothing to approve (as Terraform).
        raise click.UsageError(
            "--json shows no plan to approve: pass --auto-approve, or apply a saved plan "
            "(`plan --out FILE`, then `apply FILE --json`)"
        )
    # Check the manifest before taking the lock or touching anything.
    check = validate_for_destroy if destroy else validate_manifest
    validated, diags = check(manifest, app.environ, environment=settings.env_name)
    if validated is None:
        app.diagnostics(diags)
        raise SystemExit(app.fail("Nothing was changed."))
    store = operations.open_state(settings, manifest)
    with (
        operations.open_client(settings, request_printer(app)) as client,
        operations.open_twilio(settings) as numbers,
        locked(app, store, command, run.flags["lock_timeout"]) as held,
    ):
        if plan_file is not None:
            result, diags = saved_plans.load_plan_file(settings, plan_file, client, store)
            if result is not None:
                operations.remember_twilio_accounts(result.validated, numbers)
        else:
            mode = PlanMode.DESTROY if destroy else PlanMode.NORMAL
            result, diags = operations.plan(
                settings,
                manifest,
                client,
                mode=mode,
                store=store,
                numbers=numbers,
                checked=(validated, diags),
                selection=Selection(run.flags["targets"], run.replace),
            )
        for note in getattr(store, "notes", ()):
            app.err(f"Recovered from a rescue copy of an earlier run: {note}")
        app.diagnostics(diags)
        if result is None or diags.has_errors():
            raise SystemExit(app.fail("Nothing was changed."))
        the_plan = result.plan
        if not json_events:
            app.out(app.renderer.plan(the_plan))
        if not the_plan.has_changes:
            if json_events:
                # Nothing to do is still an answer: one summary line, all counts zero.
                JsonApplyEvents(app.out, total=0).summary([], False)
                (summarized if summarized is not None else []).append(True)
            else:
                print_outputs(app, result.state, the_plan.cost)
            return
        # A saved plan was reviewed when it was made: it runs without a prompt.
        if plan_file is None and not run.flags["auto_approve"]:
            _confirm(app, destroy)
        total = len(the_plan.pending())
        json_sink = JsonApplyEvents(app.out, total=total) if json_events else None
        if json_sink is None:
            app.out("")
        events = json_sink or ProgressPrinter(app, total)
        with interruptible() as interrupt:
            from provisioner.state.remote import guard_interrupt

            # A lost lock (not renewed in time) stops new changes like Ctrl-C does.
            interrupt = guard_interrupt(interrupt, held)
            applied = apply_plan(
                the_plan,
                client=client,
                store=store,
                state=result.state,
                events=events,
                parallelism=settings.parallelism,
                interrupt=interrupt,
                hook=Purchases(numbers, the_plan),
            )
            # Record `preventDestroy` for what was just created, too.
            protected = record_protection(applied.state, result.validated.manifest)
            if protected is not applied.state:
                applied = dataclasses.replace(applied, state=store.write(protected))
    if json_sink is not None:
        json_sink.summary(applied.outcomes, applied.interrupted)
        (summarized if summarized is not None else []).append(True)
    else:
        app.out("")
        app.out(app.renderer.apply_summary(applied.outcomes, applied.interrupted))
        if not destroy:
            app.out("")
            print_outputs(app, applied.state, the_plan.cost)
            if applied.ok:
                app.out("")
                app.out(next_steps(settings, manifest, applied.state, the_plan))
    if not applied.ok:
        raise SystemExit(1)


def _confirm(app: AppContext, destroy: bool) -> None:
    command = "destroy" if destroy else "apply"
    if not sys.stdin.isatty():
        raise Aborted(
            f"{command} needs confirmation, and standard input is not a terminal: "
            "review the plan and run again with --auto-approve"
        )
    what = "delete these resources" if destroy else "perform these actions"
    answer = click.prompt(f"\nDo you want to {what}? Only 'yes' will be accepted", default="")
    if answer.strip() != "yes":
        raise Aborted(f"{command} cancelled; nothing was changed")
