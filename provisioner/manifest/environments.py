"""One manifest, many environments (#12): `environments:`, `variables:`, `overrides:` and the
per-resource `environments: [NAME]`. Pure: plain data and source positions in, the manifest
of one environment out, with where each value that differs by environment came from.

Selecting an environment happens right after loading, before the schema check: everything
downstream (schema, resolve, plan) sees an ordinary manifest, the one of that environment.

- `${var.x}` alone is replaced by the variable's value with its type (number, boolean,
  list, map); inside a longer string it is interpolated. `$${` stays an escape. Text that
  `${file:}` includes is never scanned (files are read later, by the resolver).
- overrides are JSON Merge Patches (RFC 7386): maps merge, lists replace whole, `null`
  removes a field.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from provisioner.addresses import ResourceAddress
from provisioner.diagnostics import Diagnostics
from provisioner.errors import ProvisionerError
from provisioner.kinds import KINDS
from provisioner.manifest.loader import JsonPath, LoadedManifest, Position, SourceMap
from provisioner.manifest.origins import DEFAULT_VALUE, Origin, OriginKind, Origins
from provisioner.manifest.variables import parse_variables, substitute

ENVIRONMENTS_KEY = "environments"
VARIABLES_KEY = "variables"
OVERRIDES_KEY = "overrides"
TOP_LEVEL_KEYS = (ENVIRONMENTS_KEY, VARIABLES_KEY, OVERRIDES_KEY)
DEFAULT_API_KEY_VAR = "VAPI_TOKEN"
ENVIRONMENT_FIELDS = ("apiKey", "baseUrl", "state", "protect", "orgId")

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_ENV_REF = re.compile(r"^\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}$")


@dataclass(frozen=True, slots=True)
class Environment:
    """One declared environment's settings."""

    name: str
    api_key_var: str = DEFAULT_API_KEY_VAR
    base_url: str | None = None
    # `environments.NAME.state`, as a `state:` block (a path is a local one).
    state: Mapping[str, Any] | None = None
    protect: bool = False
    org_id: str | None = None


@dataclass(frozen=True, slots=True)
class Environments:
    """The manifest's `environments:` (empty when it declares none)."""

    declared: Mapping[str, Environment] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.declared)

    def select(self, name: str | None) -> Environment | None:
        """The environment `--env NAME` names. Without environments, None (and `--env` is
        an error); with them, `--env` is required and must name one.

        Raises:
            ProvisionerError: naming the known environments.
        """
        known = ", ".join(self.names)
        if not self.declared:
            if name is not None:
                raise ProvisionerError(
                    f"--env {name}: this manifest declares no environments (add a top-level "
                    "`environments:` map to use --env)"
                )
            return None
        if name is None:
            raise ProvisionerError(
                f"this manifest declares environments ({known}): say which one with --env "
                "NAME (there is no default, so that nothing is applied to an org by accident)"
            )
        if name not in self.declared:
            raise ProvisionerError(f"unknown environment {name!r}: this manifest declares {known}")
        return self.declared[name]


@dataclass(frozen=True, slots=True)
class Selected:
    """The manifest of one environment (`environment` None: a manifest without them)."""

    loaded: LoadedManifest
    environment: Environment | None
    origins: Origins


def parse_environments(loaded: LoadedManifest) -> tuple[Environments, Diagnostics]:
    """The `environments:` map, checked: names, `apiKey` an `${env:}`, types of the rest."""
    diags = Diagnostics()
    data = loaded.data if isinstance(loaded.data, Mapping) else {}
    raw = data.get(ENVIRONMENTS_KEY)
    if raw is None:
        return Environments(), diags
    src = loaded.source
    if not isinstance(raw, Mapping) or not raw:
        diags.error(
            "environments: must map each environment's name to its settings",
            **src.where((ENVIRONMENTS_KEY,)),
        )
        return Environments(), diags
    declared: dict[str, Environment] = {}
    for name, settings in raw.items():
        where = (ENVIRONMENTS_KEY, name)
        if not _NAME.match(name) or name == DEFAULT_VALUE:
            diags.error(
                f"environment name {name!r} must be lower case letters, digits, - or _ "
                f"(starting with a letter, at most 32) and not {DEFAULT_VALUE!r}",
                **src.where(where),
            )
            continue
        settings = settings if settings is not None else {}
        if not isinstance(settings, Mapping):
            diags.error("an environment's settings must be a mapping", **src.where(where))
            continue
        env = Environment(name)
        for key, value in settings.items():
            at = src.where((*where, key))
            if key == "apiKey":
                m = _ENV_REF.match(value) if isinstance(value, str) else None
                if m is None:
                    diags.error(
                        "apiKey must be an environment variable, written ${env:NAME}: a key "
                        "written in the manifest would be a secret in the repository",
                        **at,
                    )
                    continue
                env = _with(env, api_key_var=m.group(1))
            elif key == "state" and isinstance(value, Mapping):
                # As the top-level `state:` (state/backend.py checks its fields).
                env = _with(env, state=dict(value))
            elif key in ("baseUrl", "state", "orgId"):
                if not isinstance(value, str) or not value.strip():
                    diags.error(f"{key} must be a non-empty string", **at)
                    continue
                if key == "baseUrl" and not value.startswith(("https://", "http://")):
                    diags.error("baseUrl must be an http(s) URL", **at)
                    continue
                if key == "state":  # a local file, relative to the manifest's folder
                    env = _with(env, state={"backend": "local", "path": value.strip()})
                    continue
                attr = {"baseUrl": "base_url", "orgId": "org_id"}[key]
                env = _with(env, **{attr: value.strip()})
            elif key == "protect":
                if not isinstance(value, bool):
                    diags.error("protect must be true or false", **at)
                    continue
                env = _with(env, protect=value)
            else:
                diags.error(
                    f"unknown environment setting {key!r}; known: " + ", ".join(ENVIRONMENT_FIELDS),
                    **at,
                )
        declared[name] = env
    return Environments(declared), diags


def _with(env: Environment, **changes: Any) -> Environment:
    return dataclasses.replace(env, **changes)


def select_environment(
    loaded: LoadedManifest, envs: Environments, environment: Environment | None
) -> tuple[Selected, Diagnostics]:
    """The manifest of `environment`: resources limited to other environments left out,
    its overrides merged in, `${var.x}` replaced; the top-level `environments`,
    `variables` and `overrides` removed. Positions of overridden fields point at the
    override. Every problem is reported (with the environment left to the caller)."""
    diags = Diagnostics()
    data = loaded.data
    if not isinstance(data, Mapping):
        return Selected(loaded, environment, {}), diags
    src = loaded.source
    name = environment.name if environment else None
    doc: dict[str, Any] = {k: v for k, v in data.items() if k not in TOP_LEVEL_KEYS}
    positions = dict(src.positions)
    origins: dict[JsonPath, Origin] = {}
    if not envs.declared and (data.get(OVERRIDES_KEY) is not None):
        diags.error(
            "overrides: apply per environment, and this manifest declares no environments",
            **src.where((OVERRIDES_KEY,)),
        )
    resources = resource_paths(doc)
    for path, body in list(resources.items()):
        if not isinstance(body, Mapping) or ENVIRONMENTS_KEY not in body:
            continue
        only = body[ENVIRONMENTS_KEY]
        at = src.where((*path, ENVIRONMENTS_KEY))
        if not envs.declared:
            diags.error("environments: this manifest declares no environments", **at)
            continue
        if not isinstance(only, list) or not only or not all(isinstance(n, str) for n in only):
            diags.error("environments: must list the environments this resource exists in", **at)
            continue
        unknown = [n for n in only if n not in envs.declared]
        if unknown:
            diags.error(
                f"unknown environment {', '.join(map(repr, unknown))}: this manifest "
                f"declares {', '.join(envs.names)}",
                **at,
            )
        kept = {k: v for k, v in body.items() if k != ENVIRONMENTS_KEY}
        listed = ", ".join(n for n in only if isinstance(n, str))
        origins[path] = Origin(
            OriginKind.LIMITED, f"environments: [{listed}]", name, src.file, at["line"]
        )
        if name in only:
            resources[path] = kept
            _set(doc, path, kept)
        else:
            del resources[path]
            _delete(doc, path)
    _apply_overrides(data, src, envs, name, doc, resources, positions, origins, diags)
    variables = parse_variables(data.get(VARIABLES_KEY), src, envs.names, diags)
    for path in resources:
        body = _get(doc, path)
        _set(doc, path, substitute(body, path, variables, name, src, origins, diags))
    selected = LoadedManifest(loaded.path, doc, SourceMap(src.file, positions))
    return Selected(selected, environment, origins), diags


def resource_paths(doc: Mapping[str, Any]) -> dict[JsonPath, Any]:
    """(section..., key) -> body of every resource written in `doc`."""
    out: dict[JsonPath, Any] = {}
    for kind in KINDS.values():
        node: Any = doc
        for part in kind.section:
            node = node.get(part) if isinstance(node, Mapping) else None
        if isinstance(node, Mapping):
            for key, body in node.items():
                out[(*kind.section, key)] = body
    return out


def _apply_overrides(
    data: Mapping[str, Any],
    src: SourceMap,
    envs: Environments,
    name: str | None,
    doc: dict[str, Any],
    resources: dict[JsonPath, Any],
    positions: dict[JsonPath, Position],
    origins: dict[JsonPath, Origin],
    diags: Diagnostics,
) -> None:
    raw = data.get(OVERRIDES_KEY)
    if raw is None or not envs.declared:
        return
    if not isinstance(raw, Mapping):
        diags.error(
            "overrides: must map environment names to patches", **src.where((OVERRIDES_KEY,))
        )
        return
    for env_name, patches in raw.items():
        at = (OVERRIDES_KEY, env_name)
        if env_name not in envs.declared:
            diags.error(
                f"overrides: unknown environment {env_name!r}; this manifest declares "
                + ", ".join(envs.names),
                **src.where(at),
            )
            continue
        if not isinstance(patches, Mapping):
            diags.error("overrides: map resource addresses (KIND.KEY) to patches", **src.where(at))
            continue
        for address, patch in patches.items():
            here = (*at, address)
            try:
                addr = ResourceAddress.parse(address)
            except ValueError as exc:
                diags.error(f"overrides: {exc}", **src.where(here))
                continue
            path: JsonPath = (*KINDS[addr.kind].section, addr.key)
            if not isinstance(patch, Mapping):
                diags.error(
                    "an override is a mapping of the fields to change (a JSON Merge Patch)",
                    **src.where(here),
                )
                continue
            if ENVIRONMENTS_KEY in patch:
                diags.error(
                    "environments: cannot be overridden; list the environments on the resource",
                    **src.where((*here, ENVIRONMENTS_KEY)),
                )
                continue
            if env_name != name:
                continue
            if path not in resources:
                diags.error(
                    f"overrides: {address} is not declared in environment {env_name}",
                    **src.where(here),
                )
                continue
            body = merge_patch(resources[path], patch)
            resources[path] = body
            _set(doc, path, body)
            for leaf in _patched_paths(patch, ()):
                target = (*path, *leaf)
                origins[target] = Origin(
                    OriginKind.OVERRIDE,
                    f"overrides.{env_name}.{address}",
                    env_name,
                    src.file,
                    src.locate((*here, *leaf)).line,
                )
                for p in [p for p in positions if p[: len(target)] == target]:
                    del positions[p]
            for p, pos in src.positions.items():
                if p[: len(here)] == here and len(p) > len(here):
                    positions[(*path, *p[len(here) :])] = pos


def _patched_paths(patch: Mapping[str, Any], prefix: JsonPath) -> list[JsonPath]:
    """The fields a merge patch sets or removes: a nested map patches inside, anything
    else (a list, a scalar, `null`) replaces the value at its path."""
    out: list[JsonPath] = []
    for key, value in patch.items():
        if isinstance(value, Mapping) and value:
            out.extend(_patched_paths(value, (*prefix, key)))
        else:
            out.append((*prefix, key))
    return out


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON Merge Patch: maps merge, `null` removes a member, anything else
    (lists included) replaces. Neither argument is changed."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _get(doc: Mapping[str, Any], path: JsonPath) -> Any:
    node: Any = doc
    for part in path:
        node = node[part]
    return node


def _set(doc: dict[str, Any], path: JsonPath, value: Any) -> None:
    """Set `value` at `path`, copying the maps on the way down (the loaded data is shared)."""
    node: Any = doc
    for part in path[:-1]:
        node[part] = dict(node[part])
        node = node[part]
    node[path[-1]] = value


def _delete(doc: dict[str, Any], path: JsonPath) -> None:
    node: Any = doc
    for part in path[:-1]:
        node[part] = dict(node[part])
        node = node[part]
    del node[path[-1]]
