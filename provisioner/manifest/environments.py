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
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from provisioner.addresses import ResourceAddress
from provisioner.diagnostics import Diagnostics
from provisioner.errors import ProvisionerError
from provisioner.kinds import KINDS
from provisioner.manifest.loader import JsonPath, LoadedManifest, Position, SourceMap

ENVIRONMENTS_KEY = "environments"
VARIABLES_KEY = "variables"
OVERRIDES_KEY = "overrides"
TOP_LEVEL_KEYS = (ENVIRONMENTS_KEY, VARIABLES_KEY, OVERRIDES_KEY)
DEFAULT_VALUE = "default"
DEFAULT_API_KEY_VAR = "VAPI_TOKEN"
ENVIRONMENT_FIELDS = ("apiKey", "baseUrl", "state", "protect", "orgId")

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENV_REF = re.compile(r"^\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}$")
# `$${` (the escape), or `${...}` with no brace inside: the resolver's own pattern.
_INTERP = re.compile(r"\$\$\{|\$\{([^{}]*)\}")


class OriginKind(StrEnum):
    OVERRIDE = "override"
    VARIABLE = "variable"
    # A resource's own `environments: [dev]`: it exists in those environments only.
    LIMITED = "environments"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a value of one environment's manifest was set: an override or a variable."""

    kind: OriginKind
    name: str  # `overrides.prod.assistant.support` or `var.api_base`
    environment: str | None  # the value's environment; None for a variable's default
    file: str
    line: int

    def describe(self) -> str:
        which = self.environment or DEFAULT_VALUE
        what = self.name if self.kind is not OriginKind.VARIABLE else f"{self.name} ({which})"
        return f"{what}, {self.file}:{self.line}"

    @property
    def per_environment(self) -> bool:
        """Set for this environment only (an override, or a variable's own value)."""
        return self.environment is not None


Origins = Mapping[JsonPath, Origin]


@dataclass(frozen=True, slots=True)
class Environment:
    """One declared environment's settings."""

    name: str
    api_key_var: str = DEFAULT_API_KEY_VAR
    base_url: str | None = None
    state: str | None = None
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
            elif key in ("baseUrl", "state", "orgId"):
                if not isinstance(value, str) or not value.strip():
                    diags.error(f"{key} must be a non-empty string", **at)
                    continue
                if key == "baseUrl" and not value.startswith(("https://", "http://")):
                    diags.error("baseUrl must be an http(s) URL", **at)
                    continue
                attr = {"baseUrl": "base_url", "state": "state", "orgId": "org_id"}[key]
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
    import dataclasses

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
    variables = _parse_variables(data, src, envs, diags)
    for path in resources:
        body = _get(doc, path)
        _set(doc, path, _substitute(body, path, variables, name, src, origins, diags))
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


@dataclass(frozen=True, slots=True)
class _Variable:
    name: str
    values: Mapping[str, Any]  # environment name or `default` -> value
    where: Mapping[str, int]  # the same -> line


def _parse_variables(
    data: Mapping[str, Any], src: SourceMap, envs: Environments, diags: Diagnostics
) -> dict[str, _Variable]:
    raw = data.get(VARIABLES_KEY)
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        diags.error(
            "variables: must map each variable's name to its values", **src.where((VARIABLES_KEY,))
        )
        return {}
    out: dict[str, _Variable] = {}
    for name, values in raw.items():
        at = (VARIABLES_KEY, name)
        if not _VAR_NAME.match(name):
            diags.error(f"variable name {name!r} must be letters, digits and _", **src.where(at))
            continue
        if not isinstance(values, Mapping) or not values:
            diags.error(
                f"variable {name}: give its value per environment name, or `{DEFAULT_VALUE}`",
                **src.where(at),
            )
            continue
        ok = True
        for key, value in values.items():
            if key != DEFAULT_VALUE and key not in envs.declared:
                known = ", ".join((DEFAULT_VALUE, *envs.names))
                diags.error(
                    f"variable {name}: {key!r} is not an environment; use one of {known}",
                    **src.where((*at, key)),
                )
                ok = False
            elif _mentions(value, "${env:"):
                diags.error(
                    f"variable {name}: secrets stay in ${{env:}} where they are used, never "
                    "in variables (whose values plans and `config` show)",
                    **src.where((*at, key)),
                )
                ok = False
            elif _mentions(value, "${var."):
                diags.error(
                    f"variable {name}: a variable's value cannot use another variable",
                    **src.where((*at, key)),
                )
                ok = False
        if ok:
            lines = {k: src.locate((*at, k)).line for k in values}
            out[name] = _Variable(name, dict(values), lines)
    return out


def _mentions(value: Any, text: str) -> bool:
    if isinstance(value, str):
        return text in value.replace("$${", "")
    if isinstance(value, Mapping):
        return any(_mentions(v, text) for v in value.values())
    if isinstance(value, list):
        return any(_mentions(v, text) for v in value)
    return False


def _substitute(
    value: Any,
    path: JsonPath,
    variables: Mapping[str, _Variable],
    env: str | None,
    src: SourceMap,
    origins: dict[JsonPath, Origin],
    diags: Diagnostics,
) -> Any:
    if isinstance(value, Mapping):
        return {
            k: _substitute(v, (*path, k), variables, env, src, origins, diags)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            _substitute(v, (*path, i), variables, env, src, origins, diags)
            for i, v in enumerate(value)
        ]
    if not isinstance(value, str) or "${var." not in value:
        return value
    matches = list(_INTERP.finditer(value))
    uses = [m for m in matches if m.group(1) is not None and m.group(1).startswith("var.")]
    if not uses:
        return value
    whole = len(matches) == 1 and uses[0].span() == (0, len(value))

    def lookup(m: re.Match[str]) -> tuple[bool, Any]:
        name = m.group(1)[len("var.") :]
        var = variables.get(name)
        if var is None:
            known = ", ".join(sorted(variables)) or "none"
            diags.error(f"unknown variable {name!r} (declared: {known})", **src.where(path))
            return False, None
        key = env if env is not None and env in var.values else DEFAULT_VALUE
        if key not in var.values:
            diags.error(
                f"variable {name} has no value for environment {env} and no "
                f"{DEFAULT_VALUE}: give it one",
                **src.where(path),
            )
            return False, None
        origins[path] = Origin(
            OriginKind.VARIABLE,
            f"var.{name}",
            None if key == DEFAULT_VALUE else key,
            src.file,
            var.where[key],
        )
        return True, var.values[key]

    if whole:
        found, result = lookup(uses[0])
        return copy.deepcopy(result) if found else value
    out: list[str] = []
    last = 0
    for m in matches:
        out.append(value[last : m.start()])
        last = m.end()
        if m.group(1) is None or not m.group(1).startswith("var."):
            out.append(m.group(0))
            continue
        found, result = lookup(m)
        if not found:
            out.append(m.group(0))
        elif isinstance(result, Mapping | list):
            diags.error(
                f"{m.group(0)} is a {'list' if isinstance(result, list) else 'map'}: it can "
                "only be used as a whole value, not inside text",
                **src.where(path),
            )
            out.append(m.group(0))
        elif isinstance(result, bool) or result is None:
            out.append({True: "true", False: "false", None: "null"}[result])
        else:
            out.append(str(result))
    out.append(value[last:])
    return "".join(out)


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
