"""The command line of environments (#12): `--env NAME` and `--allow-empty-org` on every
command that reads a state or touches an org, `config` and `diff-env`.

`--env` is added to those commands the way `--no-color` is (one option, one callback, kept
in the click context), and `with_environment` is the one place that turns it into the
run's `Settings`: required once the manifest declares environments, never implied.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from provisioner.errors import ProvisionerError

if TYPE_CHECKING:
    from provisioner.manifest.environments import Environment, Selected
    from provisioner.settings import Settings

ENV_KEY = "provisioner.env"
ALLOW_EMPTY_KEY = "provisioner.allow_empty_org"
# Commands that read a state or touch an org, `validate` (one environment, or all) and
# `graph` (one environment's resources).
ENV_COMMANDS = (
    "validate",
    "plan",
    "apply",
    "destroy",
    "drift",
    "import",
    "output",
    "force-unlock",
    "graph",
    "numbers",
    "state",
)
# Commands that write: `--allow-empty-org` lets a state whose objects are all gone
# create them anew.
WRITING_COMMANDS = ("apply", "destroy", "import", "plan", "drift")


def _remember(key: str) -> Any:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is not None and value is not False:
            ctx.meta[key] = value

    return callback


def add_options(group: click.Group) -> None:
    """`--env NAME` on every command of `ENV_COMMANDS` (and the subcommands of groups
    among them), `--allow-empty-org` on `WRITING_COMMANDS`."""

    def visit(command: click.Command, writing: bool) -> None:
        if isinstance(command, click.Group):
            for sub in command.commands.values():
                visit(sub, writing)
            return
        command.params.append(
            click.Option(
                ["--env", "env_name"],
                metavar="NAME",
                expose_value=False,
                callback=_remember(ENV_KEY),
                help="The manifest's environment (required once it declares `environments:`).",
            )
        )
        if writing:
            command.params.append(
                click.Option(
                    ["--allow-empty-org"],
                    is_flag=True,
                    expose_value=False,
                    callback=_remember(ALLOW_EMPTY_KEY),
                    help="Create anew what the state manages though none of it is found "
                    "(wrong org or deleted org? is refused otherwise).",
                )
            )

    for name in ENV_COMMANDS:
        command = group.commands.get(name)
        if command is not None:
            visit(command, name in WRITING_COMMANDS)


def given_env() -> str | None:
    """`--env` as given on this command line (None when not given)."""
    ctx = click.get_current_context(silent=True)
    value = ctx.meta.get(ENV_KEY) if ctx is not None else None
    return value if isinstance(value, str) else None


def environment_of(manifest: Path) -> Environment | None:
    """The environment `--env` selects in `manifest` (a manifest, or a saved plan: its
    manifest). None for a manifest without environments.

    Raises:
        ProvisionerError: `--env` missing or unknown, or given for a manifest without them.
    """
    from provisioner import saved_plans
    from provisioner.validation import declared_environments

    if manifest.is_file() and saved_plans.is_plan_file(manifest):
        manifest = saved_plans.saved_manifest_path(manifest)
    envs, diags = declared_environments(manifest)
    if envs is None:
        return None  # unreadable: the command's own validation reports why
    if diags.has_errors():
        raise ProvisionerError(
            "the manifest's environments are invalid:\n"
            + "\n".join(d.format() for d in diags.errors())
        )
    return envs.select(given_env())


def with_environment(settings: Settings) -> Settings:
    """`settings` with the environment `--env` selects in the command's MANIFEST, and
    `--allow-empty-org`. Unchanged for a command without a manifest."""
    ctx = click.get_current_context(silent=True)
    params = ctx.params if ctx is not None else {}
    manifest = params.get("manifest", params.get("target"))  # apply: MANIFEST|PLANFILE
    if ctx is None or not isinstance(manifest, Path):
        return settings
    allow = bool(ctx.meta.get(ALLOW_EMPTY_KEY))
    return dataclasses.replace(
        settings, environment=environment_of(manifest), allow_empty_org=allow
    )


MANIFEST = click.argument("manifest", type=click.Path(path_type=Path))


@click.command("config")
@MANIFEST
@click.option("--env", "env_name", metavar="NAME", help="The environment to show.")
def config(manifest: Path, env_name: str | None) -> None:
    """Print MANIFEST as one environment sees it: resources of other environments left
    out, its overrides merged, variables replaced (`${env:}` stays as written)."""
    from provisioner.render.environments import config_yaml

    selected = _selected(manifest, env_name)
    click.echo(config_yaml(selected.loaded.data), nl=False)


@click.command("diff-env")
@MANIFEST
@click.argument("left")
@click.argument("right")
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
def diff_env(manifest: Path, left: str, right: str, as_json: bool) -> None:
    """Show what differs between two environments of MANIFEST, field by field, each value
    with the override or variable (file:line) that set it."""
    from provisioner.manifest.env_diff import diff_environments
    from provisioner.render.environments import diff_json, diff_text

    if left == right:
        raise ProvisionerError(f"diff-env compares two environments; {left} was given twice")
    a, b = _selected(manifest, left), _selected(manifest, right)
    diffs = diff_environments(a.loaded.data, a.origins, b.loaded.data, b.origins)
    click.echo((diff_json if as_json else diff_text)(left, right, diffs))


def _selected(manifest: Path, env_name: str | None) -> Selected:
    """The manifest of one environment; its problems end the command (exit 1)."""
    from provisioner.manifest.environments import parse_environments, select_environment
    from provisioner.manifest.loader import load_manifest
    from provisioner.redact import scrub

    loaded, diags = load_manifest(manifest)
    if loaded is not None:
        envs, more = parse_environments(loaded)
        diags.extend(more)
        if not more.has_errors():
            selected, more = select_environment(loaded, envs, envs.select(env_name))
            diags.extend(more)
            if not diags.has_errors():
                return selected
    for d in diags.sorted():
        click.echo(scrub(d.format()), err=True)
    raise ProvisionerError(f"{len(diags.errors())} problem(s) found in {manifest}")


def register(group: click.Group) -> None:
    """`config` and `diff-env`, then `--env` on the commands that need it."""
    group.add_command(config)
    group.add_command(diff_env)
    add_options(group)
