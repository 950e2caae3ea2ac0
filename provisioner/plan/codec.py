"""The plan as JSON data and back (the `"plan"` section of a saved-plan file; the layout
is described in `plan.saved`). Secrets are written as their keyed hash only, and read
back as `SecretPlaceholder`s until `plan.secrets` rehydrates them. Pure."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from provisioner.addresses import ResourceAddress
from provisioner.plan.model import (
    MISSING,
    Action,
    ActionReason,
    DataRead,
    FieldChange,
    Plan,
    PlanMode,
    ResourceChange,
)
from provisioner.resolve import RefString
from provisioner.values import Sensitive, Unknown

_TAGS = frozenset({"$sensitive", "$ref_string", "$address", "$unknown", "$literal"})


@dataclass(frozen=True, slots=True)
class SecretPlaceholder:
    """A secret in a loaded plan's body: only its keyed hash, until `rehydrate_secrets`."""

    digest: str

    def __repr__(self) -> str:
        return f"SecretPlaceholder({self.digest})"


# Encoding ------------------------------------------------------------------------------


def _pointer(parent: str, token: str | int) -> str:
    return f"{parent}/{str(token).replace('~', '~0').replace('/', '~1')}"


def encode_body(value: Any, loc: str, on_secret: Callable[[str, Sensitive], str]) -> Any:
    """A desired body as JSON data; `on_secret(location, secret)` gives each secret's hash."""
    if isinstance(value, Sensitive):
        return {"$sensitive": on_secret(loc, value)}
    if isinstance(value, RefString):
        parts: list[Any] = []
        for i, p in enumerate(value.parts):
            if isinstance(p, ResourceAddress):
                parts.append({"$address": str(p)})
            elif isinstance(p, Sensitive):
                parts.append(
                    {"$sensitive": on_secret(_pointer(_pointer(loc, "$ref_string"), i), p)}
                )
            elif isinstance(p, str):
                parts.append(p)
            else:
                raise TypeError(f"unexpected {type(p).__name__} in a reference string")
        return {"$ref_string": parts}
    if isinstance(value, Mapping):
        if len(value) == 1 and next(iter(value)) in _TAGS:
            inner = _pointer(loc, "$literal")
            return {
                "$literal": {
                    str(k): encode_body(v, _pointer(inner, str(k)), on_secret)
                    for k, v in value.items()
                }
            }
        return {str(k): encode_body(v, _pointer(loc, str(k)), on_secret) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode_body(v, _pointer(loc, i), on_secret) for i, v in enumerate(value)]
    return _encode_leaf(value)


def _encode_value(value: Any) -> Any:
    """A redacted display value as JSON data. A secret here is a bug and is refused."""
    if isinstance(value, Mapping):
        if len(value) == 1 and next(iter(value)) in _TAGS:
            return {"$literal": {str(k): _encode_value(v) for k, v in value.items()}}
        return {str(k): _encode_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode_value(v) for v in value]
    if isinstance(value, Sensitive | RefString):
        raise TypeError(f"a {type(value).__name__} in a display value: it must be redacted")
    return _encode_leaf(value)


def _encode_leaf(value: Any) -> Any:
    if isinstance(value, Unknown):
        return {"$unknown": value.address}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if value is MISSING:
        raise TypeError("MISSING inside a value: only a whole field side may be absent")
    raise TypeError(f"cannot save a {type(value).__name__} in a plan file")


def _encode_field(f: FieldChange) -> dict[str, Any]:
    out: dict[str, Any] = {"path": list(f.path)}
    if f.before is not MISSING:
        out["before"] = _encode_value(f.before)
    if f.after is not MISSING:
        out["after"] = _encode_value(f.after)
    out["drift"] = f.drift
    out["forces_replace"] = f.forces_replace
    return out


def _encode_change(c: ResourceChange, secret_hashes: Mapping[str, str]) -> dict[str, Any]:
    def lookup(loc: str, _secret: Sensitive) -> str:
        try:
            return secret_hashes[f"{c.address}#{loc}"]
        except KeyError:
            raise ValueError(
                f"no keyed hash for the secret at {c.address}#{loc}: "
                "pass secret_hashes=hash_plan_secrets(plan, state.hash_key)"
            ) from None

    return {
        "address": c.address,
        "kind": c.kind,
        "action": c.action.value,
        "reason": c.reason.name.lower(),
        "id": c.id,
        "name": c.name,
        "before": None if c.before is None else _encode_value(c.before),
        "after": None if c.after is None else _encode_value(c.after),
        "fields": [_encode_field(f) for f in c.fields],
        "drift": [_encode_field(f) for f in c.drift],
        "depends_on": list(c.depends_on),
        "references": list(c.references),
        "warnings": list(c.warnings),
        "purchase": None if c.purchase is None else dict(c.purchase),
        "body": None if c.body is None else encode_body(c.body, "", lookup),
        "deferred": c.deferred,
        **({"origins": [list(o) for o in c.origins]} if c.origins else {}),
    }


def plan_to_dict(plan: Plan, secret_hashes: Mapping[str, str]) -> dict[str, Any]:
    """The `"plan"` section of the file. Raises ValueError if a secret has no hash."""
    return {
        "mode": plan.mode.value,
        "lineage": plan.lineage,
        "serial": plan.serial,
        "warnings": list(plan.warnings),
        "moved": list(plan.moved),
        "cost": None if plan.cost is None else dict(plan.cost),
        "targets": list(plan.targets),
        "excluded": list(plan.excluded),
        "changes": [_encode_change(c, secret_hashes) for c in plan.changes],
        "reads": [dataclasses.asdict(r) for r in plan.reads],
        # (#12) apply refuses the plan in another environment; left out without them.
        **({} if plan.environment is None else {"environment": plan.environment}),
    }


# Decoding ------------------------------------------------------------------------------


def _tag(value: Any) -> str | None:
    if isinstance(value, dict) and len(value) == 1:
        key = next(iter(value))
        if key in _TAGS:
            return str(key)
    return None


def _decode_value(value: Any, *, body: bool = False) -> Any:
    tag = _tag(value)
    if tag == "$unknown":
        return Unknown(json_str(value[tag]))
    if tag == "$literal":
        inner = value[tag]
        if not isinstance(inner, dict):
            raise ValueError("$literal must hold an object")
        return {k: _decode_value(v, body=body) for k, v in inner.items()}
    if tag is not None and body:
        if tag == "$sensitive":
            return SecretPlaceholder(json_str(value[tag]))
        if tag == "$ref_string":
            return RefString(tuple(_decode_part(p) for p in json_list(value[tag])))
    if tag is not None:
        raise ValueError(f"unexpected {tag} outside a body")
    if isinstance(value, dict):
        return {k: _decode_value(v, body=body) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_value(v, body=body) for v in value]
    return value


def _decode_part(part: Any) -> Any:
    if isinstance(part, str):
        return part
    tag = _tag(part)
    if tag == "$address":
        return ResourceAddress.parse(json_str(part[tag]))
    if tag == "$sensitive":
        return SecretPlaceholder(json_str(part[tag]))
    raise ValueError("a reference string part must be a string, $address or $sensitive")


def _decode_field(data: Any) -> FieldChange:
    d = json_object(data)
    path = tuple(
        p if isinstance(p, int) and not isinstance(p, bool) else json_str(p)
        for p in json_list(d["path"])
    )
    return FieldChange(
        path,
        _decode_value(d["before"]) if "before" in d else MISSING,
        _decode_value(d["after"]) if "after" in d else MISSING,
        drift=bool(d.get("drift", False)),
        forces_replace=bool(d.get("forces_replace", False)),
    )


def _decode_change(data: Any) -> ResourceChange:
    d = json_object(data)
    before, after, body = d.get("before"), d.get("after"), d.get("body")
    return ResourceChange(
        address=json_str(d["address"]),
        kind=json_str(d["kind"]),
        action=Action(d["action"]),
        reason=ActionReason[json_str(d["reason"]).upper()],
        id=json_opt_str(d.get("id")),
        before=None if before is None else json_object(_decode_value(before)),
        after=None if after is None else json_object(_decode_value(after)),
        fields=tuple(_decode_field(f) for f in json_list(d.get("fields", []))),
        drift=tuple(_decode_field(f) for f in json_list(d.get("drift", []))),
        depends_on=tuple(json_str(a) for a in json_list(d.get("depends_on", []))),
        references=tuple(json_str(a) for a in json_list(d.get("references", []))),
        body=None if body is None else json_object(_decode_value(body, body=True)),
        name=json_opt_str(d.get("name")),
        warnings=tuple(json_str(w) for w in json_list(d.get("warnings", []))),
        purchase=None if d.get("purchase") is None else json_object(d["purchase"]),
        deferred=bool(d.get("deferred", False)),
        origins=tuple(
            (json_str(p), json_str(o))
            for p, o in (json_list(x) for x in json_list(d.get("origins", [])))
        ),
    )


def plan_from_dict(data: Any) -> Plan:
    """Rebuild a Plan from the `"plan"` section. Raises KeyError/TypeError/ValueError."""
    d = json_object(data)
    serial = d["serial"]
    if not isinstance(serial, int) or isinstance(serial, bool):
        raise TypeError("serial must be an integer")
    return Plan(
        changes=tuple(_decode_change(c) for c in json_list(d["changes"])),
        mode=PlanMode(d["mode"]),
        lineage=json_str(d["lineage"]),
        serial=serial,
        warnings=tuple(json_str(w) for w in json_list(d.get("warnings", []))),
        moved=tuple(json_str(m) for m in json_list(d.get("moved", []))),
        cost=None if d.get("cost") is None else json_object(d["cost"]),
        reads=tuple(
            DataRead(
                address=json_str(r["address"]),
                kind=json_str(r["kind"]),
                id=json_str(r["id"]),
                name=json_opt_str(r.get("name")),
            )
            for r in map(json_object, json_list(d.get("reads", [])))
        ),
        targets=tuple(json_str(a) for a in json_list(d.get("targets", []))),
        excluded=tuple(json_str(a) for a in json_list(d.get("excluded", []))),
        environment=None if d.get("environment") is None else json_str(d["environment"]),
    )


def json_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, found {type(value).__name__}")
    return value


def json_list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, found {type(value).__name__}")
    return value


def json_str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, found {type(value).__name__}")
    return value


def json_opt_str(value: Any) -> str | None:
    return None if value is None else json_str(value)


def json_str_map(value: Any) -> dict[str, str]:
    return {json_str(k): json_str(v) for k, v in json_object(value).items()}
