"""Which files a manifest may include with `${file:PATH}`: only files of its own
repository, never under `.git/` nor ignored by git. `resolve` asks; this module checks."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from provisioner.diagnostics import Diagnostics


def repository_root(folder: Path) -> Path:
    """The folder `${file:}` may read from: the nearest ancestor of `folder` (itself
    included) holding `.git`, else `folder` itself."""
    start = folder.resolve()
    for candidate in (start, *start.parents):
        if (candidate / ".git").exists():
            return candidate
    return start


class FileGuard:
    """Which files `${file:}` may read: only files of the manifest's own repository, so
    that a manifest (or a pull request changing one) cannot pull `/proc/self/environ` or
    `../../.ssh/id_rsa` into a request body, or into a plan posted as a PR comment; and
    in a git repository nothing under `.git/` (the job's token sits in `.git/config`)
    nor anything git ignores (a file kept out of git, `.env`, is exactly what should not
    be posted). Git is asked once for every file the manifest includes."""

    def __init__(self, base_dir: Path, rels: Iterable[str]) -> None:
        self.base_dir = base_dir
        self.root = repository_root(base_dir)
        self.ignored = git_ignored(self.root, (p for r in rels if (p := self._path(r))))

    def _path(self, rel: str) -> Path | None:
        """`rel` resolved, if it can be (no NUL byte, not absolute, a usable name)."""
        if "\0" in rel or Path(rel).is_absolute():
            return None
        try:
            return (self.base_dir / rel).resolve()
        except (OSError, ValueError, RuntimeError):
            return None

    def check(self, rel: str, where: Mapping[str, Any], diags: Diagnostics) -> Path | None:
        """The file `${file:rel}` names, or None (with a diagnostic) if it may not be read."""
        shown = rel.replace("\0", "\\0")
        if "\0" in rel:
            diags.error(f"${{file:{shown}}}: the path holds a NUL byte", **where)
            return None
        if Path(rel).is_absolute():
            diags.error(
                f"${{file:{rel}}}: absolute paths are not allowed; give a path relative to "
                "the manifest",
                **where,
            )
            return None
        path = self._path(rel)
        if path is None:
            diags.error(f"${{file:{rel}}}: not a usable file name", **where)
            return None
        if not path.is_relative_to(self.root):
            diags.error(
                f"${{file:{rel}}} is outside the manifest's repository ({self.root}): only "
                "files inside it can be included",
                **where,
            )
            return None
        if ".git" in path.relative_to(self.root).parts:
            diags.error(
                f"${{file:{rel}}} is inside a .git folder: git's own files (which can hold "
                "credentials) cannot be included",
                **where,
            )
            return None
        if path in self.ignored:
            diags.error(
                f"${{file:{rel}}} is ignored by git: a file kept out of the repository "
                "cannot be included (commit it, or remove it from .gitignore)",
                **where,
            )
            return None
        return path


def git_ignored(root: Path, paths: Iterable[Path]) -> frozenset[Path]:
    """Those of `paths` (inside `root`) that git ignores. Outside a git repository (no
    `.git`, git not installed, or not a repository git recognises) none are: only the
    confinement to `root` applies there."""
    inside = sorted({str(p.relative_to(root)) for p in paths if p.is_relative_to(root)})
    if not inside or not (root / ".git").exists():
        return frozenset()
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "check-ignore", "--stdin", "-z"],
            input="\0".join(inside).encode(),
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    if done.returncode not in (0, 1):  # 128: not a repository git knows
        return frozenset()
    names = done.stdout.decode(errors="replace").split("\0")
    return frozenset(root / n for n in names if n)
