"""Which manifest a state belongs to, and where its state lives by default. Pure, except
for looking for `.git` above the manifest and `move_old_state`. See docs/state-identity.md.

The owner of a state is the manifest's path relative to its repository root (plus, once
environments exist, the environment): never the current directory, so two manifests never
share a state and the same manifest finds its state from any folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from provisioner.errors import StateCorruptError, StateError
from provisioner.manifest.files import repository_root
from provisioner.state.lock import lock_path_for

STATE_FOLDER = "state"
SANDBOX_FOLDER = ".sandbox"


@dataclass(frozen=True, slots=True)
class Owner:
    """The manifest (repository-relative, POSIX) and environment a state belongs to."""

    manifest: str
    environment: str | None = None

    def describe(self) -> str:
        env = f" (environment {self.environment})" if self.environment else ""
        return f"manifest {self.manifest}{env}"


@dataclass(frozen=True, slots=True)
class Located:
    """A manifest placed in its repository."""

    root: Path
    owner: Owner

    @property
    def key(self) -> PurePosixPath:
        """The state's key: the manifest's repository path without its extension."""
        rel = PurePosixPath(self.owner.manifest)
        return rel.with_suffix("") if rel.suffix else rel

    def state_file(self, *, sandbox: bool) -> Path:
        """`<root>/state/<key>.json`; sandbox runs: `<root>/state/.sandbox/<key>.json`. In
        an environment, one more component: `<root>/state/<key>/<environment>.json`."""
        base = self.root / STATE_FOLDER
        if sandbox:
            base = base / SANDBOX_FOLDER
        if self.owner.environment is not None:
            return base.joinpath(*self.key.parts, f"{self.owner.environment}.json")
        return base.joinpath(*self.key.parts[:-1], f"{self.key.name}.json")


def locate(manifest: Path, environment: str | None = None) -> Located:
    """The manifest's repository root (the git work tree holding it; outside git, its own
    folder) and its owner identity."""
    path = Path(os.path.abspath(manifest))
    root = repository_root(path.parent)
    try:
        rel = path.resolve().relative_to(root)
    except ValueError:  # a symlink out of the repository: name it by where it is
        rel = path.relative_to(root) if path.is_relative_to(root) else Path(path.name)
    return Located(root, Owner(rel.as_posix(), environment))


def old_default(manifest: Path, *, sandbox: bool) -> Path:
    """Where a state was kept before it was keyed by the manifest's repository path:
    `state/<stem>.json` relative to the current directory."""
    base = Path(STATE_FOLDER) / SANDBOX_FOLDER if sandbox else Path(STATE_FOLDER)
    return base / f"{manifest.stem}.json"


def shown(path: Path) -> Path:
    """`path` relative to the current directory when it is inside it (as messages always
    showed state paths), else absolute."""
    cwd = Path.cwd()
    return path.relative_to(cwd) if path.is_absolute() and path.is_relative_to(cwd) else path


def check_owner(recorded: Owner | None, expected: Owner, where: str) -> None:
    """Refuse a state that records another owner than the manifest being run.

    Raises:
        StateError: naming both manifests (and environments).
    """
    if recorded is None or recorded == expected:
        return
    raise StateError(
        f"{where} belongs to {recorded.describe()}, not to {expected.describe()}: refusing to "
        f"use it, since planning {expected.manifest} against it would delete or change what "
        f"{recorded.manifest} manages. Use that manifest, or leave out --state to use the "
        f"state of {expected.manifest}"
    )


def move_old_state(old: Path, new: Path, owner: Owner) -> bool:
    """Move a state from its old default path to its new one, with its backup, when it is
    this manifest's (or records none), the new one does not exist yet and no run holds
    its lock. Returns whether it moved."""
    if not old.is_file() or new.exists() or old.resolve() == new.resolve():
        return False
    if lock_path_for(old).exists():
        return False  # a run (of an older provisioner, say) is using it there
    try:
        recorded = json.loads(old.read_text(encoding="utf-8")).get("manifest")
    except (OSError, ValueError, AttributeError) as exc:
        # Whose it is cannot be told: starting afresh beside it could duplicate it all.
        raise StateCorruptError(
            f"{old}, where earlier versions kept the state of this manifest, cannot be read "
            f"({exc}): repair it (or restore {old}.backup), or move it away if it is not "
            f"this manifest's. Its new place is {new}"
        ) from None
    if recorded is not None and recorded != owner.manifest:
        return False
    new.parent.mkdir(parents=True, exist_ok=True)
    os.replace(old, new)
    backup = old.with_name(old.name + ".backup")
    if backup.is_file():
        os.replace(backup, new.with_name(new.name + ".backup"))
    return True
