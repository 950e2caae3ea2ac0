"""`provisioner validate`: every problem in a manifest at once, without touching the network.

Kept apart from `operations` so that validating imports only the loader, the schema and the
resolver (no HTTP client, no differ): `provisioner validate` must start fast.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisioner.diagnostics import Diagnostics
from provisioner.graph import find_cycle
from provisioner.kinds import KINDS
from provisioner.manifest.loader import load_manifest
from provisioner.manifest.model import Manifest, build_manifest
from provisioner.manifest.schema import validate_schema
from provisioner.resolve import ResolvedManifest, resolve_manifest


@dataclass(frozen=True, slots=True)
class Validated:
    manifest: Manifest
    resolved: ResolvedManifest


def validate(path: Path, environ: Mapping[str, str]) -> tuple[Validated | None, Diagnostics]:
    """Every problem in the manifest at once: YAML, schema, references, env vars, files, cycles."""
    loaded, diags = load_manifest(path)
    if loaded is None:
        return None, diags
    schema_diags = validate_schema(loaded)
    diags.extend(schema_diags)
    if not _sections_usable(loaded.data):
        return None, diags
    try:
        manifest = build_manifest(loaded)
    except (ValueError, TypeError, AttributeError, KeyError):
        # Schema errors already explain what is wrong with the structure.
        if not diags.has_errors():
            diags.error("the manifest's structure is invalid", file=loaded.source.file)
        return None, diags
    resolved, rdiags = resolve_manifest(manifest, environ)
    diags.extend(rdiags)
    edges = {a: r.depends_on for a, r in resolved.resources.items()}
    cycle = find_cycle(edges)
    if cycle:
        first = manifest.resources[cycle[0]]
        diags.error(
            "dependency cycle: " + " -> ".join(cycle),
            **manifest.source.where(first.path),
        )
    if diags.has_errors():
        return None, diags
    return Validated(manifest, resolved), diags


def _sections_usable(data: Any) -> bool:
    if not isinstance(data, dict):
        return False
    for kind in KINDS.values():
        node: Any = data
        for part in kind.section:
            if node is None:
                break
            if not isinstance(node, dict):
                return False
            node = node.get(part)
        if node is not None and (
            not isinstance(node, dict) or not all(isinstance(v, dict | None) for v in node.values())
        ):
            return False
    return True
