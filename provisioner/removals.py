"""Stop managing a resource without deleting it: `removed: [{from}]` in the manifest
(planned and applied, reviewable like `moved`) and `state rm` (at once).

The entry leaves the state and the remote object stays as it is, but for its ownership
marker (`metadata[OWNER_MARKER_KEY]`, on the kinds that carry one), which is cleared so
that another manifest can `import` it without being told another state made it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from provisioner.diagnostics import Diagnostics
from provisioner.kinds import OWNER_MARKER_KEY, ResourceKind
from provisioner.manifest.model import Manifest


class MarkerClient(Protocol):
    def get(self, kind: ResourceKind, resource_id: str) -> dict[str, Any] | None: ...
    def update(
        self, kind: ResourceKind, resource_id: str, body: Mapping[str, Any]
    ) -> dict[str, Any]: ...


def check_removed(manifest: Manifest) -> Diagnostics:
    """Mistakes in `removed`, at the entry's file:line: an address still declared (it
    would be created again at once) or given twice, or also renamed by `moved`."""
    diags = Diagnostics()
    seen: set[str] = set()
    moved = {str(m.source) for m in manifest.moved}
    for i, r in enumerate(manifest.removed):
        address = str(r.source)
        where = manifest.source.where(("removed", i, "from"))
        if address in manifest.resources:
            diags.error(
                f"removed: {address} is still declared in the manifest; delete its "
                "declaration to stop managing it (the remote object stays)",
                **where,
            )
        if address in seen:
            diags.error(f"removed: {address} is listed twice; keep one entry", **where)
        if address in moved:
            diags.error(f"removed: {address} is also renamed by `moved`; keep one", **where)
        seen.add(address)
    return diags


def marker_of(obj: Mapping[str, Any] | None) -> Any:
    """The ownership marker an object carries, or None."""
    meta = obj.get("metadata") if obj is not None else None
    return meta.get(OWNER_MARKER_KEY) if isinstance(meta, Mapping) else None


def without_marker(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object's `metadata` with the marker left out (PATCH sends `metadata` whole)."""
    meta = obj.get("metadata")
    rest = meta if isinstance(meta, Mapping) else {}
    return {k: v for k, v in rest.items() if k != OWNER_MARKER_KEY}


def clear_marker(client: MarkerClient, kind: ResourceKind, resource_id: str) -> bool:
    """Take the ownership marker off the live object. True if there was one to clear;
    False if the kind carries none, the object is gone or holds no marker. The object's
    own metadata is kept as it is now (read just before)."""
    if not kind.owner_marker:
        return False
    live = client.get(kind, resource_id)
    if live is None or marker_of(live) is None:
        return False
    client.update(kind, resource_id, {"metadata": without_marker(live)})
    return True
