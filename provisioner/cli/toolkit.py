"""The operator's toolkit: `show` (a saved plan rendered again), `graph` (the dependency
graph) and shell completion of a manifest's addresses.

`show` reads nothing but the plan file: no state, no lock, no network, so CI can post the
reviewed plan after the fact. `cli.main` registers these commands; the root
group (`cli.app`) maps the `ProvisionerError`s raised here to exit 1 with "Error: ...".
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

    from provisioner.cli.app import AppContext


@click.command()
@click.argument("planfile", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["human", "json", "markdown"]),
    default="human",
    show_default=True,
    help="As `plan --format`: the same bytes `plan` printed.",
)
@click.pass_obj
def show(app: AppContext, planfile: Path, fmt: str) -> None:
    """Render PLANFILE (saved by `plan --out`) exactly as `plan` did, without touching
    the remote or the state."""
    from provisioner.cli.views import show_plan
    from provisioner.plan.saved import load_plan

    the_plan = load_plan(planfile).plan
    show_plan(app, the_plan, fmt)
    if fmt == "human":
        app.out(saved_plan_note(planfile, the_plan.environment))


def saved_plan_note(path: Path, environment: str | None = None) -> str:
    """What `plan --out` says after a human plan (and `show` too, byte for byte)."""
    env = f" --env {environment}" if environment else ""
    return f"\nSaved the plan to {path}. Apply exactly it with: provisioner apply {path}{env}"


@click.command()
@click.argument("manifest", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "dot"]),
    default="mermaid",
    show_default=True,
    help="Mermaid (GitHub renders it in Markdown) or Graphviz DOT (`dot -Tsvg`).",
)
@click.option(
    "--plan",
    "plan_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A plan saved by `plan --out` from MANIFEST: colour each resource by its action.",
)
@click.pass_obj
def graph(app: AppContext, manifest: Path, fmt: str, plan_file: Path | None) -> None:
    """Print the dependency graph of MANIFEST: an arrow from each resource to what it
    references. Reads no state and no secret, and never talks to Vapi."""
    from provisioner.errors import ProvisionerError
    from provisioner.plan.saved import load_plan
    from provisioner.render.graph import GraphFormat, graph_of, render_graph
    from provisioner.validation import validate_for_destroy

    the_plan = None
    if plan_file is not None:
        saved = load_plan(plan_file)
        if Path(saved.manifest_path).resolve() != manifest.resolve():
            raise ProvisionerError(
                f"{plan_file} was made from {saved.manifest_path}, not {manifest}: "
                f"run `provisioner graph {saved.manifest_path} --plan {plan_file}`"
            )
        the_plan = saved.plan
    # As for a destroy: an unset `${env:...}` does not matter, no value is used.
    from provisioner.cli.environments import given_env

    env = given_env() or (the_plan.environment if the_plan else None)
    validated, diags = validate_for_destroy(manifest, app.environ, environment=env)
    app.diagnostics(diags)
    if validated is None:
        raise SystemExit(app.fail(f"Cannot draw the graph of {manifest}."))
    resources = {
        address: (_name(r.body.get("name")), r.depends_on)
        for address, r in validated.resolved.resources.items()
    }
    app.out(render_graph(graph_of(resources, the_plan), GraphFormat(fmt)))


def _name(value: object) -> str | None:
    return value if isinstance(value, str) else None


# Shell completion -------------------------------------------------------------------------


def complete_address(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """The addresses declared in the command's manifest (its MANIFEST argument, already
    typed), for an ADDRESS argument or an option such as `--target`. Quiet on any problem:
    completion must never print an error into the user's prompt."""
    from click.shell_completion import CompletionItem

    # `apply` names its MANIFEST|PLANFILE argument `target`. While an option's value is
    # being completed, click leaves the arguments before it unassigned, in `ctx.args`.
    given = [ctx.params.get("manifest"), ctx.params.get("target"), *ctx.args]
    manifest = next((g for g in given if isinstance(g, str | Path)), None)
    if manifest is None:
        return []
    try:
        addresses = manifest_addresses(Path(manifest))
    except Exception:  # noqa: BLE001 (a broken manifest completes nothing, silently)
        return []
    return [CompletionItem(a) for a in addresses if a.startswith(incomplete)]


def manifest_addresses(path: Path) -> list[str]:
    """Every `KIND.KEY` declared in the manifest at `path`, in manifest order; read as
    YAML only (no schema, no interpolation), so that completion stays instant."""
    from provisioner.kinds import KINDS
    from provisioner.manifest.loader import load_manifest

    loaded, _diags = load_manifest(path)
    if loaded is None:
        return []
    out: list[str] = []
    for kind in KINDS.values():
        node: Any = loaded.data
        for part in kind.section:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            out.extend(f"{kind.name}.{key}" for key in node if isinstance(key, str))
    return out
