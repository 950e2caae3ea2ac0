"""The `provisioner` command line: parses flags, builds Settings, calls operations, picks
the renderer, maps errors to exit codes. No business logic.

Exit codes: 0 success; 1 any error (usage errors included, so CI can trust 2);
2 changes pending, only with `plan --detailed-exitcode`.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import signal
import stat
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from provisioner import __version__
from provisioner.cli.toolkit import complete_address, saved_plan_note
from provisioner.diagnostics import Diagnostics
from provisioner.errors import Aborted, ProvisionerError
from provisioner.redact import forget_all, register_environment, scrub
from provisioner.render.human import Renderer

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class AppContext:
    renderer: Renderer
    environ: dict[str, str]

    # Every text the CLI writes passes here: a secret that slipped into one is scrubbed.
    def out(self, text: str = "") -> None:
        click.echo(scrub(text), color=self.renderer.color)

    def err(self, text: str) -> None:
        click.echo(scrub(text), err=True, color=self.renderer.color)

    def diagnostics(self, diags: Diagnostics) -> None:
        for d in diags.sorted():
            self.err(self.renderer.diagnostic(d))


pass_app = click.make_pass_decorator(AppContext)


@contextmanager
def _locked(app: AppContext, store: Any, command: str, timeout: float) -> Iterator[Any]:
    """Hold the state lock; say so when waiting for it, and when it was left by a run
    that died."""
    from provisioner import operations

    def waiting(holder: Any, seconds: float) -> None:
        app.err(f"Waiting for the state lock held by {holder.describe()} (up to {seconds:g} s)...")

    with store.lock(operations.lock_info(command), timeout=timeout, on_wait=waiting) as held:
        if held.replaced is not None:
            app.err(
                f"Warning: took over the state lock of a run that is no longer running "
                f"({held.replaced.describe()}); it was probably killed. Anything it created "
                f"was recorded and is picked up by this run."
            )
        yield held
        # A lock that must be renewed (S3) may have been lost meanwhile: say so, exit 1.
        getattr(held, "check", lambda: None)()


def _use_color(no_color: bool) -> bool:
    if no_color or os.environ.get("NO_COLOR"):
        return False
    return sys.stdout.isatty()


class _Group(click.Group):
    """The root group: the one place that turns errors into exit codes (CliRunner too)."""

    def main(  # type: ignore[override]
        self,
        args: list[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(1)
        except click.ClickException as exc:
            shown = io.StringIO()
            exc.show(file=shown)
            click.echo(scrub(shown.getvalue()), err=True, nl=False)
            # Usage errors exit 1 too: 2 is reserved for "changes pending".
            sys.exit(1)
        except ProvisionerError as exc:
            _error(args, str(exc))
            sys.exit(exc.exit_code)
        except BrokenPipeError:
            # The reader went away (`provisioner plan ... | head`): nothing left to say.
            # Point stdout at devnull so the interpreter's final flush stays quiet too.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(1)
        except OSError as exc:
            # The system refused (permission denied writing state, a full disk, ...):
            # what and where is all the user needs, not a traceback.
            where = f": {exc.filename}" if exc.filename else ""
            _error(args, f"{exc.strerror or exc}{where}")
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


def _error(args: list[str] | None, message: str) -> None:
    given = args if args is not None else sys.argv[1:]
    color = _use_color("--no-color" in given)
    message = scrub(message)
    click.echo(click.style("Error: ", fg="red", bold=True) + message, err=True, color=color)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="provisioner")
@click.option("--no-color", is_flag=True, help="Plain text output (also when NO_COLOR is set).")
@click.pass_context
def cli(ctx: click.Context, no_color: bool) -> None:
    """Infrastructure as code for Vapi: validate, plan and apply a YAML manifest of
    assistants, phone numbers and analytics."""
    environ = dict(os.environ)
    # A new run (CliRunner runs many in one process): these are the secrets to scrub.
    forget_all()
    register_environment(environ)
    ctx.obj = AppContext(Renderer(_use_color(no_color)), environ)


def _common(fn: F) -> F:
    fn = click.option(
        "--sandbox", is_flag=True, help="Run against the local Vapi emulator (no token needed)."
    )(fn)
    fn = click.option(
        "--state",
        "state_path",
        type=click.Path(dir_okay=False),
        help="State file, s3://BUCKET/KEY or postgres://... (default: the manifest's `state:`, "
        "else state/<manifest path in its repository>.json).",
    )(fn)
    return fn


class _FiniteFloat(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.2
    """A finite number of at least `minimum`: `nan` passes `click.FloatRange` (every
    comparison with it is false) and would remove the rate cap or the lock wait."""

    name = "number"

    def __init__(self, minimum: float) -> None:
        self.minimum = minimum

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if number < self.minimum:
            self.fail(f"{value!r} is below the minimum of {self.minimum:g}", param, ctx)
        return number


MAX_RPS = _FiniteFloat(0.1)
SECONDS = _FiniteFloat(0)


def _settings(app: AppContext, **kw: Any) -> Any:
    from provisioner.cli.environments import with_environment
    from provisioner.settings import Settings

    state = kw.pop("state_path", None)
    if isinstance(state, str) and "://" in state:
        kw["state_url"] = state  # s3:// or postgres:// (see state/backend.py)
    elif state is not None:
        kw["state_path"] = Path(state)
    settings = Settings(environ=app.environ, **{k: v for k, v in kw.items() if v is not None})
    return with_environment(settings)


MANIFEST = click.argument("manifest", type=click.Path(path_type=Path))


# validate ---------------------------------------------------------------------------------


@cli.command()
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
        raise SystemExit(_fail(app, f"{n} problem{'s' if n != 1 else ''} found in {manifest}."))

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


def _fail(app: AppContext, message: str) -> int:
    app.err(app.renderer.style(message, fg="red", bold=True))
    return 1


# plan -------------------------------------------------------------------------------------


FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["human", "json", "markdown"]),
    default="human",
    show_default=True,
    help="human text, one JSON document, or Markdown for a pull-request comment.",
)


@cli.command()
@MANIFEST
@_common
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
@click.option("--parallelism", type=click.IntRange(1, 64), default=10, show_default=True)
@pass_app
def plan(
    app: AppContext,
    manifest: Path,
    sandbox: bool,
    state_path: Path | None,
    detailed_exitcode: bool,
    destroy: bool,
    refresh_only: bool,
    out: Path | None,
    fmt: str,
    parallelism: int,
) -> None:
    """Refresh the live resources and show what apply would change."""
    from provisioner import operations
    from provisioner.plan.model import PlanMode

    if refresh_only and (out is not None or destroy):
        other = "--out" if out is not None else "--destroy"
        raise click.UsageError(
            f"--refresh-only reports drift only; it cannot be combined with {other}"
        )
    if out is not None:
        _check_out_path(out)
    settings = _settings(app, sandbox=sandbox, state_path=state_path, parallelism=parallelism)
    mode = PlanMode.DESTROY if destroy else PlanMode.NORMAL
    with (
        operations.open_client(settings, _request_printer(app)) as client,
        operations.open_twilio(settings) as numbers,
    ):
        result, diags = operations.plan(settings, manifest, client, mode=mode, numbers=numbers)
    app.diagnostics(diags)
    if result is None or diags.has_errors():
        raise SystemExit(_fail(app, "Planning failed."))
    if refresh_only:
        _show_drift(app, result.plan, fmt)
        if detailed_exitcode and result.plan.drifted():
            raise SystemExit(2)
        return
    if out is not None:
        operations.save_plan_file(settings, manifest, result, out)
    _show_plan(app, result.plan, fmt)
    if out is not None and fmt == "human":
        app.out(saved_plan_note(out, result.plan.environment))
    # A `moved` entry alone is pending too: applying the plan rewrites the state.
    if detailed_exitcode and (result.plan.has_changes or result.plan.moved):
        raise SystemExit(2)


def _check_out_path(out: Path) -> None:
    """`plan --out` only ever replaces a regular file: not a device (`/dev/full`), a
    FIFO, a directory, nor a symlink (which would redirect the write elsewhere). The
    plan is written to a temporary file beside it, then renamed over it."""
    try:
        mode = out.lstat().st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise click.BadParameter(f"{out}: {exc.strerror or exc}", param_hint="--out") from exc
    if stat.S_ISREG(mode):
        return
    what = (
        "a symbolic link"
        if stat.S_ISLNK(mode)
        else "a directory"
        if stat.S_ISDIR(mode)
        else "a FIFO"
        if stat.S_ISFIFO(mode)
        else "a device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "not a regular file"
    )
    raise click.BadParameter(
        f"{out} is {what}: a plan is only written to a new or regular file; nothing was written",
        param_hint="--out",
    )


def _show_plan(app: AppContext, the_plan: Any, fmt: str) -> None:
    if fmt == "json":
        from provisioner.render.json import dumps_plan

        app.out(dumps_plan(the_plan, cost=the_plan.cost))
    elif fmt == "markdown":
        from provisioner.render.markdown import plan_to_markdown

        app.out(plan_to_markdown(the_plan))
    else:
        app.out(app.renderer.plan(the_plan))


def _show_drift(app: AppContext, the_plan: Any, fmt: str) -> None:
    drifted = the_plan.drifted()
    if fmt == "json":
        from provisioner.render.json import plan_to_json

        doc = plan_to_json(the_plan)
        app.out(
            json.dumps({"format_version": doc["format_version"], "drift": doc["drift"]}, indent=2)
        )
    elif fmt == "markdown":
        from provisioner.render.markdown import drift_to_markdown

        app.out(drift_to_markdown(the_plan).rstrip("\n"))
    elif not drifted:
        app.out("No drift: the remote matches what was last applied.")
    else:
        app.out(app.renderer.drift(the_plan))


@cli.command()
@MANIFEST
@_common
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
    state_path: Path | None,
    fmt: str,
    accept: bool,
    lock_timeout: float,
) -> None:
    """Report changes made outside the manifest; exit 2 when there are any."""
    from provisioner import operations

    settings = _settings(app, sandbox=sandbox, state_path=state_path)
    with operations.open_client(settings, _request_printer(app)) as client:
        if accept:
            store = operations.open_state(settings, manifest)
            with _locked(app, store, f"provisioner drift {manifest}", lock_timeout):
                result, diags = operations.plan(settings, manifest, client, store=store)
                if result is not None and not diags.has_errors():
                    accepted = operations.accept_drift(store, result)
        else:
            result, diags = operations.plan(settings, manifest, client)
    app.diagnostics(diags)
    if result is None or diags.has_errors():
        raise SystemExit(_fail(app, "Drift check failed."))
    _show_drift(app, result.plan, fmt)
    if accept:
        message = f"Accepted the remote state of {accepted} resource(s) into the state file."
        if fmt == "human":
            app.out(f"\n{message}")
        else:  # JSON and Markdown stay one clean document on stdout
            app.err(message)
        return
    if result.plan.drifted():
        raise SystemExit(2)


def _request_printer(app: AppContext) -> Callable[[Any], None]:
    """Retries and waits go to stderr ("rate limited, retrying in 2 s (POST /assistant)")."""

    def on_event(event: Any) -> None:
        app.err(f"  {event.describe()}")

    return on_event


# apply / destroy ---------------------------------------------------------------------------


@cli.command()
@click.argument("target", metavar="MANIFEST|PLANFILE", type=click.Path(path_type=Path))
@_common
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation.")
@click.option("--parallelism", type=click.IntRange(1, 64), default=10, show_default=True)
@click.option("--max-rps", type=MAX_RPS, help="Cap on requests per second.")
@click.option(
    "--lock-timeout",
    type=SECONDS,
    default=0,
    help="Seconds to wait for another run's state lock.",
)
@click.option("--json", "json_events", is_flag=True, help="Progress as JSON lines.")
@pass_app
def apply(
    app: AppContext,
    target: Path,
    sandbox: bool,
    state_path: Path | None,
    auto_approve: bool,
    parallelism: int,
    max_rps: float | None,
    lock_timeout: float,
    json_events: bool,
) -> None:
    """Apply the changes needed to make the remote match MANIFEST, or run exactly the
    plan saved in PLANFILE by `plan --out` (refused if anything changed since)."""
    _run_apply(
        app,
        target,
        json_events=json_events,
        destroy=False,
        sandbox=sandbox,
        state_path=state_path,
        auto_approve=auto_approve,
        parallelism=parallelism,
        max_rps=max_rps,
        lock_timeout=lock_timeout,
    )


@cli.command()
@MANIFEST
@_common
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation.")
@click.option("--parallelism", type=click.IntRange(1, 64), default=10, show_default=True)
@click.option("--max-rps", type=MAX_RPS, help="Cap on requests per second.")
@click.option("--lock-timeout", type=SECONDS, default=0)
@pass_app
def destroy(
    app: AppContext,
    manifest: Path,
    sandbox: bool,
    state_path: Path | None,
    auto_approve: bool,
    parallelism: int,
    max_rps: float | None,
    lock_timeout: float,
) -> None:
    """Delete everything the state of MANIFEST manages, dependents first."""
    _run_apply(
        app,
        manifest,
        destroy=True,
        sandbox=sandbox,
        state_path=state_path,
        auto_approve=auto_approve,
        parallelism=parallelism,
        max_rps=max_rps,
        lock_timeout=lock_timeout,
    )


def _run_apply(app: AppContext, target: Path, *, json_events: bool = False, **kw: Any) -> None:
    """`_apply_run`; with `--json`, a run that stops before its summary (a bad manifest,
    a held lock, an unreachable API) still ends with one summary line, `ok: false`."""
    if not json_events:
        _apply_run(app, target, json_events=False, **kw)
        return
    summarized: list[bool] = []
    try:
        _apply_run(app, target, json_events=True, summarized=summarized, **kw)
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


def _apply_run(
    app: AppContext,
    target: Path,
    *,
    destroy: bool,
    auto_approve: bool,
    lock_timeout: float,
    json_events: bool = False,
    summarized: list[bool] | None = None,
    **kw: Any,
) -> None:
    from provisioner import operations
    from provisioner.apply.engine import apply_plan
    from provisioner.apply.purchases import Purchases
    from provisioner.plan.model import PlanMode
    from provisioner.validation import validate as validate_manifest

    settings = _settings(app, lock_timeout=lock_timeout, **kw)
    plan_file = target if not destroy and operations.is_plan_file(target) else None
    manifest = operations.saved_manifest_path(plan_file) if plan_file else target
    command = f"provisioner {'destroy' if destroy else 'apply'} {target}"
    if json_events and plan_file is None and not auto_approve:
        # JSON mode shows no plan, so there would be nothing to approve (as Terraform).
        raise click.UsageError(
            "--json shows no plan to approve: pass --auto-approve, or apply a saved plan "
            "(`plan --out FILE`, then `apply FILE --json`)"
        )
    # Check the manifest before taking the lock or touching anything.
    check = operations.validate_for_destroy if destroy else validate_manifest
    validated, diags = check(manifest, app.environ, environment=settings.env_name)
    if validated is None:
        app.diagnostics(diags)
        raise SystemExit(_fail(app, "Nothing was changed."))
    store = operations.open_state(settings, manifest)
    with (
        operations.open_client(settings, _request_printer(app)) as client,
        operations.open_twilio(settings) as numbers,
        _locked(app, store, command, lock_timeout) as held,
    ):
        if plan_file is not None:
            result, diags = operations.load_plan_file(settings, plan_file, client, store)
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
            )
        for note in getattr(store, "notes", ()):
            app.err(f"Recovered from a rescue copy of an earlier run: {note}")
        app.diagnostics(diags)
        if result is None or diags.has_errors():
            raise SystemExit(_fail(app, "Nothing was changed."))
        the_plan = result.plan
        if not json_events:
            app.out(app.renderer.plan(the_plan))
        if not the_plan.has_changes:
            if json_events:
                from provisioner.render.json import JsonApplyEvents

                # Nothing to do is still an answer: one summary line, all counts zero.
                JsonApplyEvents(app.out, total=0).summary([], False)
                (summarized if summarized is not None else []).append(True)
            else:
                _print_outputs(app, result.state, the_plan.cost)
            return
        # A saved plan was reviewed when it was made: it runs without a prompt.
        if plan_file is None and not auto_approve:
            _confirm(app, destroy)
        total = len(the_plan.pending())
        events: Any
        if json_events:
            from provisioner.render.json import JsonApplyEvents

            events = JsonApplyEvents(app.out, total=total)
        else:
            app.out("")
            events = _ProgressPrinter(app, total)
        with _interruptible() as interrupt:
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
            protected = operations.record_protection(applied.state, result.validated.manifest)
            if protected is not applied.state:
                applied = dataclasses.replace(applied, state=store.write(protected))
    if json_events:
        events.summary(applied.outcomes, applied.interrupted)
        (summarized if summarized is not None else []).append(True)
    else:
        app.out("")
        app.out(app.renderer.apply_summary(applied.outcomes, applied.interrupted))
        if not destroy:
            app.out("")
            _print_outputs(app, applied.state, the_plan.cost)
            if applied.ok:
                app.out("")
                app.out(_next_steps(settings, manifest, applied.state, the_plan))
    if not applied.ok:
        raise SystemExit(1)


def _next_steps(settings: Any, manifest: Path, state: Any, the_plan: Any) -> str:
    """What to do after a successful apply."""
    from provisioner.kinds import KINDS

    sandbox = " --sandbox" if settings.sandbox else ""
    sandbox += f" --env {settings.env_name}" if settings.env_name else ""
    lines = ["Next steps:"]
    calls = [r for r in _output_rows(state) if r.get("call")]
    if calls:
        lines.append(f"  - {calls[0]['call'][0].upper()}{calls[0]['call'][1:]}.")
    notes = [
        note
        for c in the_plan.pending()
        for note in KINDS[c.kind].behaviour.apply_notes(c.action.value, c.after or {})
    ]
    lines.extend(f"  - {note}" for note in dict.fromkeys(notes))
    lines.append(
        f"  - Run `provisioner plan {manifest}{sandbox}` again: it should show no changes."
    )
    from provisioner import operations

    # A team backend (S3, PostgreSQL) is shared already: nothing to commit.
    store = operations.open_state(settings, manifest)
    if not settings.sandbox and getattr(store, "kind", "") == "local":
        lines.append(
            f"  - Commit {store.describe()} (IDs and hashes only, no "
            "secrets) so that CI and your teammates plan against the same state."
        )
    return "\n".join(lines)


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


class _ProgressPrinter:
    def __init__(self, app: AppContext, total: int) -> None:
        self.app = app
        self.total = total
        self.done = 0
        self.lock = threading.Lock()

    def change_started(self, change: Any) -> None:
        with self.lock:
            self.app.out(self.app.renderer.started(change))

    def change_finished(self, outcome: Any) -> None:
        with self.lock:
            self.done += 1
            self.app.out(self.app.renderer.finished(outcome, self.done, self.total))

    def note(self, address: str | None, message: str) -> None:
        with self.lock:
            self.app.out(f"{address}: {message}" if address else message)


@contextmanager
def _interruptible() -> Iterator[threading.Event]:
    """First Ctrl-C: stop starting new work and let requests in flight finish.
    Second Ctrl-C: the default (immediate) behaviour."""
    event = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield event
        return

    def handler(signum: int, frame: Any) -> None:
        event.set()
        click.echo(
            "\nInterrupt received: finishing requests in flight, starting nothing new "
            "(press Ctrl-C again to stop at once).",
            err=True,
        )
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield event
    finally:
        signal.signal(signal.SIGINT, previous)


# outputs and state ---------------------------------------------------------------------------


def _output_rows(state: Any, prices: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """One row per resource; a phone number's `call` says what to dial, what answers, and
    (with `prices`: address -> "1.15 USD/month", from the plan's cost) what it costs."""
    from provisioner.kinds import KINDS
    from provisioner.render.human import dashboard_url

    names = {
        a: (r.applied.get("name") if isinstance(r.applied.get("name"), str) else None)
        for a, r in state.resources.items()
    }
    ids_to_addr = {r.id: a for a, r in state.resources.items() if r.id}
    rows = []
    order = list(KINDS)
    for addr, rs in sorted(
        state.resources.items(), key=lambda kv: (order.index(kv[1].kind), kv[0])
    ):
        row: dict[str, Any] = {
            "address": addr,
            "id": rs.id,
            "kind": rs.kind,
            "name": names.get(addr),
            "status": str(rs.status),
        }
        if rs.id:
            row["dashboard"] = dashboard_url(rs.kind, rs.id)
        if KINDS[rs.kind].behaviour.dialable:
            outputs = rs.extra.get("outputs", {})
            number = outputs.get("number") or rs.applied.get("number") or outputs.get("sipUri")
            row["number"] = number
            assistant_id = rs.applied.get("assistantId")
            target = ids_to_addr.get(assistant_id)
            row["assistant"] = target
            monthly = (prices or {}).get(addr)
            if monthly:
                row["monthly"] = monthly
            if number:
                row["call"] = _call_line(
                    number,
                    names.get(target) if target else None,
                    target or assistant_id,
                    rs.applied,
                    monthly,
                )
        rows.append(row)
    return rows


def _call_line(
    number: str, name: str | None, assistant: Any, applied: Any, monthly: str | None
) -> str:
    """`call +1 415-555-0100 to talk to Acme Support (1.15 USD/month)`, or where it routes."""
    from provisioner.numbers.format import format_number

    if number.startswith("+") or number.lower().startswith("sip"):
        dial = f"call {format_number(number)}"
    else:
        dial = f"dial {number} on your SIP trunk"  # an extension, not an E.164 number
    if name or isinstance(assistant, str) and assistant:
        reach = f" to talk to {name or assistant}"
    elif isinstance(applied.get("squadId"), str):
        reach = f": routes to squad {applied['squadId']}"
    elif isinstance(applied.get("workflowId"), str):
        reach = f": routes to workflow {applied['workflowId']}"
    else:
        reach = ": no assistant, squad or workflow answers it yet"
    cost = f" ({monthly})" if monthly else ""
    return f"{dial}{reach}{cost}"


def _print_outputs(app: AppContext, state: Any, cost: Mapping[str, Any] | None = None) -> None:
    from provisioner.render.costs import monthly_prices

    app.out(app.renderer.outputs(_output_rows(state, monthly_prices(cost))))


@cli.command()
@MANIFEST
@_common
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def output(
    app: AppContext, manifest: Path, sandbox: bool, state_path: Path | None, as_json: bool
) -> None:
    """Show the IDs, numbers to call and dashboard links recorded in state."""
    from provisioner import operations

    settings = _settings(app, sandbox=sandbox, state_path=state_path)
    state = operations.open_state(settings, manifest).read()
    rows = _output_rows(state)
    if as_json:
        app.out(json.dumps({r["address"]: r for r in rows}, indent=2))
    else:
        _print_outputs(app, state)


@cli.group()
def state() -> None:
    """Inspect the state file."""


@state.command("list")
@MANIFEST
@_common
@pass_app
def state_list(app: AppContext, manifest: Path, sandbox: bool, state_path: Path | None) -> None:
    """List the addresses the state of MANIFEST manages, with their IDs."""
    from provisioner import operations

    settings = _settings(app, sandbox=sandbox, state_path=state_path)
    st = operations.open_state(settings, manifest).read()
    for addr, rs in sorted(st.resources.items()):
        flag = "" if str(rs.status) == "created" else f"  ({rs.status})"
        app.out(f"{addr}  {rs.id or '-'}{flag}")


@state.command("show")
@MANIFEST
@click.argument("address", shell_complete=complete_address)
@_common
@pass_app
def state_show(
    app: AppContext, manifest: Path, address: str, sandbox: bool, state_path: Path | None
) -> None:
    """Show what the state records for ADDRESS."""
    from provisioner import operations
    from provisioner.plan.normalize import display

    settings = _settings(app, sandbox=sandbox, state_path=state_path)
    st = operations.open_state(settings, manifest).read()
    rs = st.resources.get(address)
    if rs is None:
        where = operations.open_state(settings, manifest).describe()
        raise ProvisionerError(f"{address} is not in the state ({where})")
    data = rs.to_dict()
    data["applied"] = display(data["applied"])
    app.out(json.dumps({"address": address, **data}, indent=2))


@cli.command("force-unlock")
@MANIFEST
@click.argument("lock_id")
@_common
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

    settings = _settings(app, sandbox=sandbox, state_path=state_path)
    store = operations.open_state(settings, manifest)
    removed = store.force_unlock(lock_id, force=force)
    if isinstance(removed, str):
        app.out(
            f"The lock file of {store.describe()} {removed} (a run was probably killed while "
            f"taking the lock): removed it."
        )
    else:
        app.out(f"Lock {lock_id} removed from {store.describe()}.")


@cli.command("import")
@MANIFEST
@click.argument("address", required=False, shell_complete=complete_address)
@click.argument("resource_id", metavar="ID", required=False)
@_common
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
    state_path: Path | None,
    generate: bool,
    lock_timeout: float,
) -> None:
    """Adopt existing remote resources: `import MANIFEST ADDRESS ID` records one object
    under ADDRESS; `import --generate MANIFEST` writes a manifest for everything."""
    from provisioner import operations

    if generate == bool(address or resource_id) or (not generate and not (address and resource_id)):
        raise click.UsageError("give either ADDRESS and ID, or --generate")
    settings = _settings(app, sandbox=sandbox, state_path=state_path)
    store = operations.open_state(settings, manifest)
    command = f"provisioner import {manifest}"
    with (
        operations.open_client(settings, _request_printer(app)) as client,
        _locked(app, store, command, lock_timeout),
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
            raise SystemExit(_fail(app, "Nothing was imported.")) from exc
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


# sandbox -------------------------------------------------------------------------------------


@cli.group()
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


def _register_numbers() -> None:
    from provisioner.cli.numbers import numbers
    from provisioner.cli.state_cmd import migrate

    cli.add_command(numbers)
    state.add_command(migrate)


_register_numbers()


def _register_toolkit() -> None:
    from provisioner.cli.toolkit import register

    register(cli)


_register_toolkit()


def _register_environments() -> None:
    from provisioner.cli.environments import register

    register(cli)


_register_environments()


def _no_color_given(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    app = ctx.find_object(AppContext)
    if value and app is not None:
        app.renderer = Renderer(_use_color(True))


def _accept_no_color_everywhere(group: click.Group) -> None:
    """`--no-color` after the subcommand too (`provisioner plan x.yaml --no-color`); the
    root group's option and `_use_color` stay the one place that decides."""
    for command in group.commands.values():
        command.params.append(
            click.Option(
                ["--no-color"],
                is_flag=True,
                expose_value=False,
                callback=_no_color_given,
                help="Plain text output (also when NO_COLOR is set).",
            )
        )
        if isinstance(command, click.Group):
            _accept_no_color_everywhere(command)


_accept_no_color_everywhere(cli)


# entry point ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Run the CLI (the `provisioner` console script)."""
    cli.main(args=argv, prog_name="provisioner")
