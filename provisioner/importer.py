"""Adoption of existing remote resources: `import ADDRESS ID` and `import --generate`.

`import_resource` records one existing object under a manifest address, so the next plan
shows only real differences. `generate_manifest` (pure) turns what an org already has
(built in the dashboard, say) into manifest YAML, prompt files and state entries, so a
team starts managing it in one command.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from provisioner.addresses import ResourceAddress
from provisioner.errors import ProvisionerError
from provisioner.kinds import KINDS, OWNER_MARKER_KEY, SECRET_FIELD_NAMES, ResourceKind
from provisioner.plan.normalize import strip_server_fields
from provisioner.state.model import ResourceState, ResourceStatus
from provisioner.values import keyed_hash

_SLUG = re.compile(r"[^a-z0-9]+")

# `ResourceState.extra` key: the lineage in the ownership marker of an object adopted by
# `import` although another state made it. The lineage check accepts that one marker.
ADOPTED_LINEAGE_KEY = "adopted_from_lineage"


def marker_lineage(obj: Mapping[str, Any]) -> str | None:
    """The state lineage named by a live object's ownership marker, if it has one."""
    meta = obj.get("metadata")
    marker = meta.get(OWNER_MARKER_KEY) if isinstance(meta, Mapping) else None
    lineage = marker.get("lineage") if isinstance(marker, Mapping) else None
    return lineage if isinstance(lineage, str) and lineage else None


def adoption_extra(obj: Mapping[str, Any], lineage: str) -> dict[str, Any]:
    """`extra` for the state entry of an imported object: records the other state's
    lineage when another deployment made it, so the adoption is deliberate, not a mix-up."""
    theirs = marker_lineage(obj)
    return {ADOPTED_LINEAGE_KEY: theirs} if theirs and theirs != lineage else {}


@dataclass(frozen=True, slots=True)
class Generated:
    manifest_yaml: str
    # Relative path -> text of each prompt file the manifest refers to.
    files: dict[str, str] = field(default_factory=dict)
    # Address -> state entry adopting the remote object.
    entries: dict[str, ResourceState] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@functools.cache
def _api_defs() -> dict[str, Any]:
    text = resources.files("provisioner").joinpath("data/vapi-api.schema.json").read_text()
    defs: dict[str, Any] = json.loads(text).get("$defs", {})
    return defs


def create_fields(kind: ResourceKind, obj: Mapping[str, Any]) -> set[str] | None:
    """The fields the create endpoint accepts for this object (None if unknown)."""
    variant = str(obj.get(kind.discriminator, "")) if kind.discriminator else ""
    name = kind.create_schemas.get(variant)
    schema = _api_defs().get(name or "", {})
    props = schema.get("properties")
    return set(props) if isinstance(props, Mapping) else None


def body_from_live(kind: ResourceKind, obj: Mapping[str, Any]) -> dict[str, Any]:
    """A manifest body for a live object: server fields, our marker, nulls and fields the
    create endpoint would reject are left out."""
    body = strip_server_fields(obj)
    allowed = create_fields(kind, obj)
    return {
        k: v
        for k, v in body.items()
        if v is not None and (allowed is None or k in allowed) and k not in kind.write_only_fields
    }


def generate_manifest(objects: Mapping[str, list[Mapping[str, Any]]], hash_key: str) -> Generated:
    """Manifest, prompt files and state entries for `objects` (kind name -> live objects).

    A secret the API echoes (a header value, a password) is written to the manifest as
    `${env:NAME}` and to state as its keyed hash (`hash_key`): never in clear in a file a
    team commits. The notes name each variable to set.
    """
    keys: dict[str, ResourceAddress] = {}  # remote id -> address
    used: set[str] = set()
    for kind_name, objs in objects.items():
        for i, obj in enumerate(sorted(objs, key=lambda o: str(o.get("createdAt", "")))):
            named = _field(obj, KINDS[kind_name].import_name_field)
            base = _SLUG.sub("-", str(named or "").lower()).strip("-")[:40]
            key = base if base and base[0].isalnum() else f"{kind_name.lower()}-{i + 1}"
            candidate, n = key, 2
            while f"{kind_name}.{candidate}" in used:
                candidate, n = f"{key}-{n}", n + 1
            used.add(f"{kind_name}.{candidate}")
            keys[str(obj["id"])] = ResourceAddress(kind_name, candidate)

    doc: dict[str, Any] = {"version": 1}
    files: dict[str, str] = {}
    entries: dict[str, ResourceState] = {}
    notes: list[str] = []
    for kind_name, objs in objects.items():
        kind = KINDS[kind_name]
        for obj in sorted(objs, key=lambda o: str(o.get("createdAt", ""))):
            parsed = keys[str(obj["id"])]
            address, key = str(parsed), parsed.key
            applied = body_from_live(kind, obj)
            deps: set[str] = set()
            body = _with_references(applied, keys, address, deps)
            secrets = _secret_paths(applied)
            for path in secrets:
                var = _ENV_UNSAFE.sub("_", "_".join((address, *map(str, path)))).strip("_").upper()
                applied = _replace_at(applied, path, keyed_hash(_leaf(applied, path), hash_key))
                body = _replace_at(body, path, "${env:" + var + "}")
                notes.append(
                    f"{address}: {'.'.join(map(str, path))} is a secret: the manifest reads it "
                    f"as ${{env:{var}}}, so set {var} to its value (state keeps only its hash)"
                )
            body = dict(kind.behaviour.split_files(body, key, files))
            accepted = frozenset(create_fields(kind, obj) or ())
            secret = sorted(kind.behaviour.unreadable_secrets(kind, obj, accepted))
            if secret:
                notes.append(
                    f"{address}: {', '.join(secret)} cannot be read back from the API; "
                    "add it as ${env:NAME} to manage it"
                )
            section = doc
            for part in kind.section[:-1]:
                section = section.setdefault(part, {})
            section.setdefault(kind.section[-1], {})[key] = body
            theirs = marker_lineage(obj)
            if theirs:
                notes.append(
                    f"{address} was created by another provisioner state (lineage {theirs}); "
                    "it is now managed by this one too: stop managing it in the other"
                )
            entries[address] = ResourceState(
                kind=kind_name,
                id=str(obj["id"]),
                status=ResourceStatus.CREATED,
                applied=applied,
                depends_on=sorted(deps),
                remote_updated_at=obj.get("updatedAt"),
                extra={ADOPTED_LINEAGE_KEY: theirs} if theirs else {},
            )
    header = "# Generated by `provisioner import --generate` from the resources in your Vapi org.\n"
    text = header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)
    return Generated(text, files, entries, notes)


def _secret_paths(value: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Where `value` holds a secret the API echoed: a non-empty string under a secret-named
    field (or in a list under one), or any value in a `headers` mapping."""
    out: list[tuple[str | int, ...]] = []
    if isinstance(value, Mapping):
        for k, v in value.items():
            here = (*path, k)
            if isinstance(v, str) and v and _is_secret(path, k):
                out.append(here)
            elif isinstance(v, list) and _is_secret(path, k):
                out.extend((*here, i) for i, x in enumerate(v) if isinstance(x, str) and x)
            else:
                out.extend(_secret_paths(v, here))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_secret_paths(v, (*path, i)))
    return out


def _leaf(value: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        value = value[part]
    return value


def _replace_at(value: Any, path: tuple[str | int, ...], new: Any) -> Any:
    """A copy of `value` with the leaf at `path` replaced by `new`."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, Mapping):
        return {k: _replace_at(v, rest, new) if k == head else v for k, v in value.items()}
    return [_replace_at(v, rest, new) if i == head else v for i, v in enumerate(value)]


def _is_secret(parent: tuple[str | int, ...], key: str) -> bool:
    return key.lower() in SECRET_FIELD_NAMES or parent[-1:] == ("headers",)


_ENV_UNSAFE = re.compile(r"[^A-Za-z0-9]+")


def _field(obj: Mapping[str, Any], dotted: str) -> Any:
    """The value at a dotted field name (`function.name`), or None."""
    value: Any = obj
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _with_references(
    value: Any, keys: Mapping[str, ResourceAddress], me: str, deps: set[str]
) -> Any:
    if isinstance(value, Mapping):
        return {k: _with_references(v, keys, me, deps) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_references(v, keys, me, deps) for v in value]
    if isinstance(value, str) and value in keys and str(keys[value]) != me:
        deps.add(str(keys[value]))
        return "${" + str(keys[value]) + ".id}"
    if isinstance(value, str) and "${" in value:
        return value.replace("${", "$${")
    return value


def write_generated(manifest: Path, generated: Generated) -> None:
    """Write the generated manifest and its prompt files beside it; refuses (before
    writing anything) to overwrite a prompt file that exists."""
    for rel in generated.files:
        target = manifest.parent / rel
        if target.exists():
            raise ProvisionerError(f"{target} already exists: choose another folder")
    manifest.parent.mkdir(parents=True, exist_ok=True)
    for rel, text in generated.files.items():
        target = manifest.parent / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    manifest.write_text(generated.manifest_yaml, encoding="utf-8")
