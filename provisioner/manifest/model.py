"""The manifest as typed data: one `ResourceConfig` per declared resource. Pure.

Built only from schema-valid data. Reserved keys that are ours, not the API's
(`lifecycle`, `purchase`), are split off here so that nothing downstream can send them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provisioner.addresses import ResourceAddress
from provisioner.kinds import KINDS, ResourceKind
from provisioner.lookups import Lookup, lookups_in
from provisioner.manifest.loader import JsonPath, LoadedManifest, SourceMap

RESERVED_KEYS = ("lifecycle", "purchase")


@dataclass(frozen=True, slots=True)
class Lifecycle:
    prevent_destroy: bool = False
    ignore_changes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ResourceConfig:
    address: ResourceAddress
    kind: ResourceKind
    # The body as written (interpolations unresolved), reserved keys removed.
    body: Mapping[str, Any]
    # Where the resource sits in the manifest, for diagnostics.
    path: JsonPath
    lifecycle: Lifecycle = Lifecycle()
    purchase: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Moved:
    source: ResourceAddress
    target: ResourceAddress


@dataclass(frozen=True, slots=True)
class Removed:
    """`removed: [{from: ADDRESS}]`: stop managing it; the remote object stays."""

    source: ResourceAddress


@dataclass(frozen=True, slots=True)
class Manifest:
    path: Path
    source: SourceMap
    resources: dict[str, ResourceConfig] = field(default_factory=dict)
    moved: tuple[Moved, ...] = ()
    # `data:` lookups of objects the manifest does not own, by address.
    lookups: dict[str, Lookup] = field(default_factory=dict)
    removed: tuple[Removed, ...] = ()

    @property
    def base_dir(self) -> Path:
        return self.path.parent


def build_manifest(loaded: LoadedManifest) -> Manifest:
    """Typed view of a schema-valid manifest. Declaration order is kept."""
    data: Mapping[str, Any] = loaded.data or {}
    resources: dict[str, ResourceConfig] = {}
    for kind in KINDS.values():
        section: Any = data
        for part in kind.section:
            section = section.get(part) if isinstance(section, Mapping) else None
        for key, raw in (section or {}).items():
            body = {k: v for k, v in (raw or {}).items() if k not in RESERVED_KEYS}
            lc = (raw or {}).get("lifecycle") or {}
            address = ResourceAddress(kind.name, key)
            resources[str(address)] = ResourceConfig(
                address=address,
                kind=kind,
                body=body,
                path=(*kind.section, key),
                lifecycle=Lifecycle(
                    prevent_destroy=bool(lc.get("preventDestroy", False)),
                    ignore_changes=tuple(lc.get("ignoreChanges") or ()),
                ),
                purchase=(raw or {}).get("purchase"),
            )
    moved = tuple(
        Moved(ResourceAddress.parse(m["from"]), ResourceAddress.parse(m["to"]))
        for m in data.get("moved") or ()
    )
    removed = tuple(Removed(ResourceAddress.parse(r["from"])) for r in data.get("removed") or ())
    return Manifest(
        path=loaded.path,
        source=loaded.source,
        resources=resources,
        moved=moved,
        lookups=lookups_in(data),
        removed=removed,
    )
