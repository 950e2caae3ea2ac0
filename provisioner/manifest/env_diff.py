"""What differs between environments: `diff-env` field by field, with where each value came
from, and the problems of every environment at once for `validate`. Pure."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from provisioner.diagnostics import Diagnostic, Diagnostics
from provisioner.manifest.environments import resource_paths
from provisioner.manifest.loader import JsonPath, format_path
from provisioner.manifest.origins import Origin, Origins

MISSING: Any = object()  # a field one environment's manifest does not have


@dataclass(frozen=True, slots=True)
class EnvDifference:
    """One field that differs between two environments' merged manifests."""

    path: JsonPath
    left: Any  # MISSING when absent
    right: Any
    left_origin: Origin | None
    right_origin: Origin | None

    @property
    def dotted(self) -> str:
        return format_path(self.path)


def leaves(doc: Any, prefix: JsonPath = ()) -> dict[JsonPath, Any]:
    """Every field of a document by path; a list is one value (lists replace whole, so
    they are compared and shown whole, never item by item)."""
    if isinstance(doc, Mapping) and doc:
        out: dict[JsonPath, Any] = {}
        for key, value in doc.items():
            out.update(leaves(value, (*prefix, key)))
        return out
    return {prefix: doc}


def diff_environments(
    left: Mapping[str, Any], left_origins: Origins, right: Mapping[str, Any], right_origins: Origins
) -> list[EnvDifference]:
    """The fields whose values differ between two merged manifests, in document order
    (left's, then right's own), each with the origin of either side's value: the override
    or variable that set it there (or above it). A resource that exists in one of them
    only is one difference, shown whole."""
    a, b = leaves(left), leaves(right)
    ra, rb = resource_paths(left), resource_paths(right)
    for only, other, here in ((ra, rb, a), (rb, ra, b)):
        for path in only.keys() - other.keys():
            for p in [p for p in here if p[: len(path)] == path]:
                del here[p]
            here[path] = only[path]
    out: list[EnvDifference] = []
    for path in [*a, *(p for p in b if p not in a)]:
        lv, rv = a.get(path, MISSING), b.get(path, MISSING)
        if lv is not MISSING and rv is not MISSING and _same(lv, rv):
            continue
        out.append(
            EnvDifference(
                path, lv, rv, origin_of(path, left_origins), origin_of(path, right_origins)
            )
        )
    return out


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def origin_of(path: JsonPath, origins: Origins) -> Origin | None:
    """The origin recorded at `path` or the nearest field above it (an override that
    replaced a whole list or removed a map); or below it (a removed resource's fields)."""
    p = tuple(path)
    while p:
        if p in origins:
            return origins[p]
        p = p[:-1]
    below = [o for q, o in origins.items() if q[: len(path)] == tuple(path)]
    return below[0] if below else None


def per_environment(problems: Mapping[str, Diagnostics]) -> Diagnostics:
    """The problems of every environment as one list, each prefixed with the environments
    it occurs in (`dev, prod: ...` once when it is the same in both)."""
    seen: dict[Diagnostic, list[str]] = {}
    for env, diags in problems.items():
        for d in diags:
            seen.setdefault(d, []).append(env)
    return Diagnostics(_prefixed(seen.items()))


def _prefixed(items: Iterable[tuple[Diagnostic, list[str]]]) -> list[Diagnostic]:
    return [dataclasses.replace(d, summary=f"[{', '.join(envs)}] {d.summary}") for d, envs in items]
