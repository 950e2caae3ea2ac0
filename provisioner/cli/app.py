"""The CLI's application: the context every command receives (`AppContext`: output,
environment, renderer), the root group (`cli`), and the one place that turns errors into
exit codes.

Exit codes: 0 success; 1 any error (usage errors included, so CI can trust 2);
2 changes pending, only with `plan --detailed-exitcode`.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from provisioner import __version__
from provisioner.diagnostics import Diagnostics
from provisioner.errors import ProvisionerError
from provisioner.redact import forget_all, register_environment, scrub
from provisioner.render.human import Renderer

if TYPE_CHECKING:
    from provisioner.settings import Settings
    from provisioner.state.backend import Backend
    from provisioner.state.lock import Lock, LockInfo


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

    def fail(self, message: str) -> int:
        """Say why the command failed (in red on stderr); the exit code to raise."""
        self.err(self.renderer.style(message, fg="red", bold=True))
        return 1

    def settings(
        self,
        *,
        sandbox: bool = False,
        state_path: Path | str | None = None,
        parallelism: int | None = None,
        max_rps: float | None = None,
        lock_timeout: float | None = None,
    ) -> Settings:
        """The run's Settings from the captured environment and the flags given."""
        import dataclasses

        from provisioner.settings import Settings

        # `--state` is a file, or the URL of a team backend (state/backend.py).
        state_url = str(state_path) if state_path is not None and "://" in str(state_path) else None
        settings = Settings(
            environ=self.environ,
            sandbox=sandbox,
            state_path=None if state_url or state_path is None else Path(state_path),
            state_url=state_url,
            max_rps=max_rps,
        )
        # Flags not given keep Settings' own defaults.
        if parallelism is not None:
            settings = dataclasses.replace(settings, parallelism=parallelism)
        if lock_timeout is not None:
            settings = dataclasses.replace(settings, lock_timeout=lock_timeout)
        from provisioner.cli.environments import with_environment

        return with_environment(settings)  # --env (#12)


pass_app = click.make_pass_decorator(AppContext)


@contextmanager
def locked(app: AppContext, store: Backend, command: str, timeout: float) -> Iterator[Lock]:
    """Hold the state lock; say so when waiting for it, and when it was left by a run
    that died."""
    from provisioner import operations

    def waiting(holder: LockInfo, seconds: float) -> None:
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
        check = getattr(held, "check", None)
        if check is not None:
            check()


def use_color(no_color: bool) -> bool:
    if no_color or os.environ.get("NO_COLOR"):
        return False
    return sys.stdout.isatty()


class RootGroup(click.Group):
    """The root group: the one place that turns errors into exit codes (CliRunner too)."""

    def main(  # type: ignore[override]
        self,
        args: list[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,  # click's own pass-through keyword arguments
    ) -> int:
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
    color = use_color("--no-color" in given)
    message = scrub(message)
    click.echo(click.style("Error: ", fg="red", bold=True) + message, err=True, color=color)


@click.group(cls=RootGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
    ctx.obj = AppContext(Renderer(use_color(no_color)), environ)


def _no_color_given(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    app = ctx.find_object(AppContext)
    if value and app is not None:
        app.renderer = Renderer(use_color(True))


def accept_no_color_everywhere(group: click.Group) -> None:
    """`--no-color` after the subcommand too (`provisioner plan x.yaml --no-color`); the
    root group's option and `use_color` stay the one place that decides."""
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
            accept_no_color_everywhere(command)
