"""`moved: [{from, to}]`: re-key state entries when a manifest key is renamed. Pure.

A rename must never recreate anything remotely: the entry simply changes address.
"""

from __future__ import annotations

from collections.abc import Iterable

from provisioner.diagnostics import Diagnostics
from provisioner.manifest.model import Manifest, Moved
from provisioner.state.model import StateFile


def check_moves(manifest: Manifest) -> Diagnostics:
    """Mistakes in `moved` that need no state, at the entry's file:line: a move that
    changes the kind, and two entries moving the same address (which one wins?)."""
    diags = Diagnostics()
    first: dict[str, int] = {}
    for i, m in enumerate(manifest.moved):
        src, dst = str(m.source), str(m.target)
        if m.source.kind != m.target.kind:
            diags.error(
                f"moved: cannot move {src} to {dst}: a move cannot change the kind",
                **manifest.source.where(("moved", i, "to")),
            )
        if src in first:
            line = manifest.source.locate(("moved", first[src], "from")).line
            diags.error(
                f"moved: {src} is moved twice (first at line {line}); keep one entry",
                **manifest.source.where(("moved", i, "from")),
            )
        else:
            first[src] = i
    return diags


def apply_moves(
    state: StateFile, moved: Iterable[Moved]
) -> tuple[StateFile, list[str], Diagnostics]:
    """A copy of `state` with moved entries re-keyed; the list of moves made; problems."""
    out = state.copy()
    done: list[str] = []
    diags = Diagnostics()
    for m in moved:
        src, dst = str(m.source), str(m.target)
        if m.source.kind != m.target.kind:
            diags.error(f"moved: cannot move {src} to {dst}: a move cannot change the kind")
            continue
        if src not in out.resources:
            continue  # already moved in an earlier run, or never applied
        if dst in out.resources:
            diags.error(f"moved: cannot move {src} to {dst}: {dst} is already in the state")
            continue
        out.resources[dst] = out.resources.pop(src)
        # References recorded by other entries follow the rename.
        for rs in out.resources.values():
            rs.depends_on = [dst if d == src else d for d in rs.depends_on]
        done.append(f"{src} -> {dst}")
    return out, done, diags
