"""`data:` lookups: existing objects the manifest names but does not own.

`data: {credentials: {sip-trunk: {name: Acme SIP trunk}}}` is referenced as
`${data.credential.sip-trunk.id}`. A lookup is read at plan (one list per kind), never
modified, adopted, recorded in state or deleted: it is shown in the plan as read. It must
match exactly one object, by its `name` or one of its kind's identity fields
(`function.name` of a tool, `number` of a phone number); zero or several matches stop the
plan, naming the lookup and the candidates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from provisioner.diagnostics import Diagnostics
from provisioner.kinds import KINDS, ResourceKind
from provisioner.manifest.loader import JsonPath

__all__ = ["DATA_PREFIX", "Lookup", "lookups_in", "match", "read_lookups"]

# The top-level manifest key, and the first part of a lookup's address.
DATA_PREFIX = "data"


@dataclass(frozen=True, slots=True)
class Lookup:
    kind: ResourceKind
    key: str
    name: str
    path: JsonPath  # where it is declared, for diagnostics

    @property
    def address(self) -> str:
        return f"{DATA_PREFIX}.{self.kind.name}.{self.key}"


def lookups_in(data: Mapping[str, Any]) -> dict[str, Lookup]:
    """The lookups of a schema-valid manifest document, by address."""
    section = data.get(DATA_PREFIX)
    out: dict[str, Lookup] = {}
    if not isinstance(section, Mapping):
        return out
    for kind in KINDS.values():
        node: Any = section
        for part in kind.section:
            node = node.get(part) if isinstance(node, Mapping) else None
        for key, raw in (node or {}).items():
            if isinstance(raw, Mapping) and isinstance(raw.get("name"), str):
                found = Lookup(kind, key, raw["name"], (DATA_PREFIX, *kind.section, key))
                out[found.address] = found
    return out


def _field(obj: Mapping[str, Any], dotted: str) -> Any:
    value: Any = obj
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _names(kind: ResourceKind, obj: Mapping[str, Any]) -> set[str]:
    fields = ("name", *kind.identity_fields)
    return {v for f in fields if isinstance(v := _field(obj, f), str)}


def match(lookup: Lookup, objects: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The objects `lookup` names. Pure."""
    return [o for o in objects if lookup.name in _names(lookup.kind, o)]


class _Lister(Protocol):
    def list_all(self, kind: ResourceKind) -> Any: ...


def read_lookups(
    client: _Lister, lookups: Mapping[str, Lookup], where: Any
) -> tuple[dict[str, Mapping[str, Any]], Diagnostics]:
    """The object each lookup names (address -> live object); an error per lookup that
    names none or several. `where(path)` gives a diagnostic's location."""
    diags = Diagnostics()
    found: dict[str, Mapping[str, Any]] = {}
    listed: dict[str, list[Mapping[str, Any]]] = {}
    for address, lookup in lookups.items():
        kind = lookup.kind
        if kind.name not in listed:
            result = client.list_all(kind)
            listed[kind.name] = list(result.items)
        hits = match(lookup, listed[kind.name])
        if len(hits) == 1:
            found[address] = hits[0]
            continue
        names = sorted({n for o in listed[kind.name] for n in _names(kind, o)})
        if not hits:
            known = ", ".join(repr(n) for n in names) if names else f"no {kind.label}s at all"
            problem = f"{address}: no {kind.label} is named {lookup.name!r}; the org has {known}"
        else:
            ids = ", ".join(str(o.get("id")) for o in hits)
            problem = (
                f"{address}: {len(hits)} {kind.label}s are named {lookup.name!r} ({ids}); "
                "rename all but one in the dashboard, or manage it in the manifest instead"
            )
        diags.error(problem, **where(lookup.path))
    return found, diags
