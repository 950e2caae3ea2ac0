"""`variables:` and `${var.x}` (#12). Pure.

A whole-value `${var.x}` is replaced by the variable's value with its type (number,
boolean, list, map); inside a longer string it is interpolated. `$${` stays an escape.
Text that `${file:}` includes is never scanned (files are read later, by the resolver).
A variable holds no secret (`${env:}`) and no other variable.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from provisioner.diagnostics import Diagnostics
from provisioner.manifest.loader import JsonPath, SourceMap
from provisioner.manifest.origins import DEFAULT_VALUE, Origin, OriginKind

VARIABLES_KEY = "variables"
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# `$${` (the escape), or `${...}` with no brace inside: the resolver's own pattern.
_INTERP = re.compile(r"\$\$\{|\$\{([^{}]*)\}")


@dataclass(frozen=True, slots=True)
class Variable:
    name: str
    values: Mapping[str, Any]  # environment name or `default` -> value
    where: Mapping[str, int]  # the same -> line


def parse_variables(
    raw: Any, src: SourceMap, environments: Collection[str], diags: Diagnostics
) -> dict[str, Variable]:
    """The `variables:` map (`raw`), checked against the declared `environments`."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        diags.error(
            "variables: must map each variable's name to its values", **src.where((VARIABLES_KEY,))
        )
        return {}
    out: dict[str, Variable] = {}
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
            if key != DEFAULT_VALUE and key not in environments:
                known = ", ".join((DEFAULT_VALUE, *environments))
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
            out[name] = Variable(name, dict(values), lines)
    return out


def _mentions(value: Any, text: str) -> bool:
    if isinstance(value, str):
        return text in value.replace("$${", "")
    if isinstance(value, Mapping):
        return any(_mentions(v, text) for v in value.values())
    if isinstance(value, list):
        return any(_mentions(v, text) for v in value)
    return False


def substitute(
    value: Any,
    path: JsonPath,
    variables: Mapping[str, Variable],
    env: str | None,
    src: SourceMap,
    origins: dict[JsonPath, Origin],
    diags: Diagnostics,
) -> Any:
    if isinstance(value, Mapping):
        return {
            k: substitute(v, (*path, k), variables, env, src, origins, diags)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            substitute(v, (*path, i), variables, env, src, origins, diags)
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
