"""Options and arguments shared by several commands, and the click parameter types that
check them (finite numbers, a file `plan --out` may replace)."""

from __future__ import annotations

import math
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

# A click command callback: any signature (click's own decorators are typed the same way).
F = TypeVar("F", bound=Callable[..., Any])

MANIFEST = click.argument("manifest", type=click.Path(path_type=Path))

FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["human", "json", "markdown"]),
    default="human",
    show_default=True,
    help="human text, one JSON document, or Markdown for a pull-request comment.",
)

PARALLELISM = click.option(
    "--parallelism", type=click.IntRange(1, 64), default=10, show_default=True
)
AUTO_APPROVE = click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation.")


def common(fn: F) -> F:
    """`--sandbox` and `--state`, on every command that reads a state."""
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


class FiniteFloat(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.2
    """A finite number of at least `minimum`: `nan` passes `click.FloatRange` (every
    comparison with it is false) and would remove the rate cap or the lock wait."""

    name = "number"

    def __init__(self, minimum: float) -> None:
        self.minimum = minimum

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        try:
            number = float(value)  # type: ignore[arg-type]  # anything float() accepts
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if number < self.minimum:
            self.fail(f"{value!r} is below the minimum of {self.minimum:g}", param, ctx)
        return number


MAX_RPS = FiniteFloat(0.1)
SECONDS = FiniteFloat(0)


def check_out_path(out: Path) -> None:
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
