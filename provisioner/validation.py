"""`provisioner validate`: every problem in a manifest at once, without touching the network.

Kept apart from `operations` so that validating imports only the loader, the schema and the
resolver (no HTTP client, no differ): `provisioner validate` must start fast.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisioner.agent_rules import check_agent
from provisioner.diagnostics import Diagnostics
from provisioner.graph import find_cycle
from provisioner.kinds import KINDS
from provisioner.manifest.env_diff import per_environment
from provisioner.manifest.environments import (
    Environment,
    Environments,
    parse_environments,
    select_environment,
)
from provisioner.manifest.loader import JsonPath, LoadedManifest, format_path, load_manifest
from provisioner.manifest.model import Manifest, build_manifest
from provisioner.manifest.origins import Origins
from provisioner.manifest.schema import schema_digest, validate_schema
from provisioner.manifest.valid_cache import ValidCache
from provisioner.moves import check_moves
from provisioner.removals import check_removed
from provisioner.resolve import ResolvedManifest, checkable_document, resolve_manifest


@dataclass(frozen=True, slots=True)
class Validated:
    manifest: Manifest
    resolved: ResolvedManifest
    # The environment selected (#12; None: the manifest declares none), and where the
    # values that differ by environment came from.
    environment: Environment | None = None
    origins: Origins = dataclasses.field(default_factory=dict)


def validate(
    path: Path,
    environ: Mapping[str, str],
    *,
    stand_ins: Collection[str] = (),
    strict: bool = True,
    environment: str | None = None,
) -> tuple[Validated | None, Diagnostics]:
    """Every problem in the manifest at once: YAML, schema, references, env vars, files, cycles.

    `stand_ins`: names of `${env:}` variables whose values in `environ` are placeholders
    (a destroy sends no manifest value anywhere): what they produce is not schema-checked.
    `strict=False` (`provisioner validate`): an unset `${env:}` is a warning, as a pull
    request from a fork has no secrets.
    `environment`: the `--env` name, required once the manifest declares environments.

    Raises:
        ProvisionerError: `--env` missing, unknown, or given for a manifest without them.
    """
    loaded, diags = load_manifest(path)
    if loaded is None:
        return None, diags
    envs, edicts = parse_environments(loaded)
    diags.extend(edicts)
    if edicts.has_errors():
        return None, diags
    selected, sdiags = select_environment(loaded, envs, envs.select(environment))
    diags.extend(sdiags)
    loaded = selected.loaded
    diags.extend(_check_schema(loaded, environ))
    if not _sections_usable(loaded.data):
        return None, diags
    try:
        manifest = build_manifest(loaded)
    except (ValueError, TypeError, AttributeError, KeyError):
        # Schema errors already explain what is wrong with the structure.
        if not diags.has_errors():
            diags.error("the manifest's structure is invalid", file=loaded.source.file)
        return None, diags
    resolved, rdiags = resolve_manifest(manifest, environ, unset_env_ok=not strict)
    diags.extend(rdiags)
    stand_ins = {*stand_ins, *resolved.unset_env}
    diags.extend(_check_resolved_values(loaded, resolved, diags, stand_ins))
    check_agent(manifest, resolved, diags)
    _check_moves(manifest, diags)
    diags.extend(check_moves(manifest))
    diags.extend(check_removed(manifest))
    # A cycle through a handoff tool's destinations is broken by setting them after the
    # create; any other cycle no tool breaks.
    edges = {a: r.depends_on - r.deferrable for a, r in resolved.resources.items()}
    cycle = find_cycle(edges)
    if cycle:
        first = manifest.resources[cycle[0]]
        diags.error(
            "dependency cycle no handoff tool breaks: " + " -> ".join(cycle),
            **manifest.source.where(first.path),
        )
    if diags.has_errors():
        return None, diags
    return Validated(manifest, resolved, selected.environment, selected.origins), diags


def declared_environments(path: Path) -> tuple[Environments | None, Diagnostics]:
    """The manifest's `environments:`; None if the manifest cannot be read at all (then
    `validate` says why)."""
    loaded, diags = load_manifest(path)
    if loaded is None:
        return None, diags
    return parse_environments(loaded)


def validate_all(
    path: Path, environ: Mapping[str, str], *, strict: bool = True
) -> tuple[list[Validated], Diagnostics]:
    """`provisioner validate`: the manifest of every declared environment (or the one
    manifest when it declares none), every problem prefixed with its environments."""
    envs, diags = declared_environments(path)
    if envs is None or diags.has_errors() or not envs.declared:
        if diags.has_errors():
            return [], diags
        validated, diags = validate(path, environ, strict=strict)
        return ([validated] if validated else []), diags
    found: list[Validated] = []
    problems: dict[str, Diagnostics] = {}
    for name in envs.names:
        validated, problems[name] = validate(path, environ, strict=strict, environment=name)
        if validated is not None:
            found.append(validated)
    return found, per_environment(problems)


def _check_schema(loaded: LoadedManifest, environ: Mapping[str, str]) -> Diagnostics:
    """`validate_schema`, skipping the resources already known to pass it unchanged (the
    costly part of validating a large manifest, which every plan does again)."""
    cache = ValidCache.open(environ, schema_digest())
    entries = {p: ValidCache.digest(p, body) for p, body in _resource_entries(loaded.data)}
    known = {p for p, digest in entries.items() if digest in cache}
    data = _without(loaded.data, known) if known else loaded.data
    diags = validate_schema(dataclasses.replace(loaded, data=data))
    checked = (p for p in entries if p not in known)
    cache.add(entries[p] for p in checked if not _has_problem(diags, format_path(p)))
    cache.save()
    return diags


def _resource_entries(data: Any) -> Iterator[tuple[JsonPath, Any]]:
    """(path, body) of every resource entry in a manifest document, as written."""
    if not isinstance(data, Mapping):
        return
    for kind in KINDS.values():
        node: Any = data
        for part in kind.section:
            node = node.get(part) if isinstance(node, Mapping) else None
        if isinstance(node, Mapping):
            for key, body in node.items():
                yield (*kind.section, key), body


def _without(data: Mapping[str, Any], paths: set[JsonPath]) -> dict[str, Any]:
    """A copy of `data` with the entries at `paths` (resource entries) left out."""
    out: dict[Any, Any] = dict(data)
    for path in paths:
        node = out
        for part in path[:-1]:
            node[part] = dict(node[part])  # copy on the way down: `data` stays as it is
            node = node[part]
        del node[path[-1]]
    return out


def _has_problem(diags: Diagnostics, where: str) -> bool:
    return any(
        d.path == where or (d.path or "").startswith((where + ".", where + "[")) for d in diags
    )


def _check_resolved_values(
    loaded: LoadedManifest,
    resolved: ResolvedManifest,
    reported: Diagnostics,
    stand_ins: Collection[str],
) -> Diagnostics:
    """Schema problems in what `${env:}` and `${file:}` produced (a 45-character name
    read from a file), which the first schema check could not see. Reported at the
    interpolation, saying where the value came from; a secret shows as `(sensitive)`."""
    doc, sources = checkable_document(loaded.data, resolved)
    out = Diagnostics()
    placeholders = {f"${{env:{name}}}" for name in stand_ins}
    where = {
        format_path(p): ", ".join(found)
        for p, found in sources.items()
        if not set(found) <= placeholders
    }
    if not where:
        return out
    seen = {d.path for d in reported}
    for d in validate_schema(dataclasses.replace(loaded, data=doc)):
        if d.path in where and d.path not in seen:
            origin = where[d.path]
            out.append(dataclasses.replace(d, summary=f"{d.summary} (the value of {origin})"))
    return out


def _check_moves(manifest: Manifest, diags: Diagnostics) -> None:
    """A `moved.to` that the manifest does not declare is an error, not a rename: the entry
    would be re-keyed to nothing, then deleted and created again."""
    for i, m in enumerate(manifest.moved):
        if str(m.source) in manifest.resources:
            diags.error(
                f"moved: {m.source} is still declared in the manifest, so after the move it "
                f"would be created again; remove {m.source} (its settings now belong under "
                f"{m.target})",
                **manifest.source.where(("moved", i, "from")),
            )
        if str(m.target) not in manifest.resources:
            diags.error(
                f"moved: {m.target} is not declared in the manifest, so moving {m.source} "
                f"there would delete it and create it again; declare {m.target} (or remove "
                "this entry if the resource was deleted on purpose)",
                **manifest.source.where(("moved", i, "to")),
            )


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


def validate_for_destroy(
    path: Path, environ: Mapping[str, str], *, environment: str | None = None
) -> tuple[Validated | None, Diagnostics]:
    """`validate`, except that an unset `${env:NAME}` does not stop a destroy: it deletes
    what state holds and sends the manifest's values nowhere. Only releasing a number at
    Twilio needs a secret, and the plan refuses that without it (see `plan`)."""
    from provisioner.purchasing import UNSET_FOR_DESTROY
    from provisioner.resolve import value_sources

    validated, diags = validate(path, environ, environment=environment)
    if validated is not None:
        return validated, diags
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None, diags
    inner = (src[2:-1].strip() for src in value_sources(text))
    names = {i.removeprefix("env:").strip() for i in inner if i.startswith("env:")}
    unset = {n for n in names if not environ.get(n)}
    if not unset:
        return None, diags
    again, again_diags = validate(
        path,
        {**environ, **dict.fromkeys(unset, UNSET_FOR_DESTROY)},
        stand_ins=unset,
        environment=environment,
    )
    return (again, again_diags) if again is not None else (None, diags)
