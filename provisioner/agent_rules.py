"""Rules of a voice agent as code that the schema cannot state. Pure (no I/O).

- A credential's secrets (`kinds.ResourceKind.secret_leaves`) come from `${env:}`: a
  literal one would sit in git and in every plan file.
- `assistantName` (squad `assistantDestinations[]`, transfer and handoff destinations of
  tools) names a squad member by its `name` (or `assistantOverrides.name`): a rename
  would break it silently, so it must match a member of the manifest's squads.
- `workflowId` anywhere: workflows were retired (API.md section 7); squads replace them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from provisioner.diagnostics import Diagnostics
from provisioner.manifest.loader import JsonPath
from provisioner.manifest.model import Manifest, ResourceConfig
from provisioner.resolve import ResolvedManifest
from provisioner.values import Sensitive

__all__ = ["check_agent"]

WORKFLOWS_RETIRED = (
    "workflows were retired on 2026-08-18 and Vapi names squads as their replacement: "
    "declare a squad (squads:) and route to it with squadId"
)


def check_agent(manifest: Manifest, resolved: ResolvedManifest, diags: Diagnostics) -> None:
    """Add every problem the rules above find to `diags`."""
    for addr, config in manifest.resources.items():
        res = resolved.resources.get(addr)
        if res is not None and config.kind.secret_leaves:
            _check_secrets(manifest, config, res.body, diags)
        for path in _keys(config.body, ("workflowId", "workflowIds"), config.path):
            diags.warning(WORKFLOWS_RETIRED, **manifest.source.where(path))
    names = _member_names(manifest)
    if names is None:
        return
    shown = ", ".join(sorted(names)) or "(none)"
    for config in manifest.resources.values():
        for path, name in _assistant_names(config.body, config.path):
            if name not in names:
                diags.error(
                    f"assistantName {name!r} is not the name of any squad member; the "
                    f"members are named: {shown}",
                    **manifest.source.where(path),
                )


def _check_secrets(
    manifest: Manifest, config: ResourceConfig, body: Any, diags: Diagnostics
) -> None:
    for path, value in _leaves(body, config.path):
        key = next((p for p in reversed(path) if isinstance(p, str)), "")
        if key in config.kind.secret_leaves and not isinstance(value, Sensitive) and value:
            diags.error(
                f"{key} is a secret: give it as ${{env:NAME}} (a value written in the "
                "manifest would be committed, and shown in plans)",
                **manifest.source.where(path),
            )


def _leaves(value: Any, path: JsonPath) -> Iterator[tuple[JsonPath, Any]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, (*path, i))
    else:
        yield path, value


def _keys(value: Any, names: tuple[str, ...], path: JsonPath) -> Iterator[JsonPath]:
    """Paths of every key in `names`, at any depth."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            if k in names:
                yield (*path, k)
            yield from _keys(v, names, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _keys(v, names, (*path, i))


def _member_names(manifest: Manifest) -> set[str] | None:
    """The names squad members answer to, or None when one cannot be known (a member
    named by a literal ID of an assistant made elsewhere, say): then nothing is checked."""
    squads = [c for c in manifest.resources.values() if c.kind.name == "squad"]
    if not squads:
        return None
    names: set[str] = set()
    for squad in squads:
        for member in squad.body.get("members") or ():
            if not isinstance(member, Mapping):
                return None
            name = _member_name(manifest, member)
            if name is None:
                return None
            names.add(name)
    return names


def _member_name(manifest: Manifest, member: Mapping[str, Any]) -> str | None:
    overrides = member.get("assistantOverrides")
    if isinstance(overrides, Mapping) and isinstance(overrides.get("name"), str):
        return str(overrides["name"])
    inline = member.get("assistant")
    if isinstance(inline, Mapping):
        name = inline.get("name")
        return name if isinstance(name, str) else None
    ref = member.get("assistantId")
    if isinstance(ref, str) and ref.startswith("${assistant.") and ref.endswith(".id}"):
        target = manifest.resources.get(ref[2:-4])
        name = target.body.get("name") if target is not None else None
        return name if isinstance(name, str) and "${" not in name else None
    return None


def _assistant_names(value: Any, path: JsonPath) -> Iterator[tuple[JsonPath, str]]:
    """Every `assistantName` of a destination (squad member or tool), with its path."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            if k == "assistantName" and isinstance(v, str) and "${" not in v:
                yield (*path, k), v
            else:
                yield from _assistant_names(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _assistant_names(v, (*path, i))
