"""The `provisioner` command line: the one registration list of its commands, and
`main()`, the console entry point. Each command lives in the module for its concern
(`plan_cmd`, `apply_cmd`, ...); the root group and error -> exit code mapping in `app`.

Commands import what does the work inside their bodies, so `provisioner --help` stays fast.
"""

from __future__ import annotations

from provisioner.cli import (
    apply_cmd,
    environments,
    import_cmd,
    plan_cmd,
    sandbox_cmd,
    state_cmd,
    toolkit,
)
from provisioner.cli.app import accept_no_color_everywhere, cli
from provisioner.cli.numbers import numbers

COMMANDS = (
    plan_cmd.validate,
    plan_cmd.plan,
    plan_cmd.drift,
    apply_cmd.apply,
    apply_cmd.destroy,
    state_cmd.output,
    state_cmd.state,
    state_cmd.force_unlock,
    import_cmd.import_,
    sandbox_cmd.sandbox,
    numbers,
    toolkit.show,
    toolkit.graph,
)

for _command in COMMANDS:
    cli.add_command(_command)
environments.register(cli)  # config, diff-env, and --env on the commands that need it
accept_no_color_everywhere(cli)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI (the `provisioner` console script)."""
    cli.main(args=argv, prog_name="provisioner")
