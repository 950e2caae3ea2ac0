"""Secrets the API never returns, for objects that were not made by this tool (imported).

A credential's secrets are write-only: `import` cannot read them, so
- `import --generate` writes `${env:VAR}` at each secret leaf (around what the API does
  echo of the rest: an `authenticationPlan`'s `type`), and names the variables to set;
- the state entry lists those fields (`UNREAD_KEY`) instead of a hash: the first plan
  takes the manifest's value as what Vapi holds (sending it again would change nothing the
  manifest can see, and would rotate nothing), and the first apply records its keyed hash
  and says so, once. Later changes of the secret are detected from that hash and sent.

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from provisioner.kinds import ResourceKind

__all__ = ["UNREAD_KEY", "placeholders", "record", "taken_as_applied"]

# `ResourceState.extra` key: write-only fields of an imported object whose value (and so
# whose hash) is not known yet.
UNREAD_KEY = "unread_secrets"
_ENV_UNSAFE = re.compile(r"[^A-Za-z0-9]+")


def _var(address: str, path: tuple[str, ...]) -> str:
    return _ENV_UNSAFE.sub("_", "_".join((address, *path))).strip("_").upper()


def placeholders(
    kind: ResourceKind,
    obj: Mapping[str, Any],
    address: str,
    dto: Mapping[str, Any],
    defs: Mapping[str, Any],
) -> tuple[dict[str, Any], list[str], list[str]]:
    """For a live object of a kind with secret leaves: manifest values of its write-only
    fields (`${env:VAR}` at each secret leaf), the variables to set, and the fields."""
    if not kind.secret_leaves:
        return {}, [], []
    props = dto.get("properties") or {}
    required = set(dto.get("required") or ())
    values: dict[str, Any] = {}
    variables: list[str] = []
    for name in sorted(kind.write_only_fields & set(props)):
        if name not in required and name not in obj:
            continue
        filled = _fill(kind, props[name], obj.get(name), address, (name,), defs, variables)
        if filled is not None:
            values[name] = filled
    return values, variables, sorted(values)


def _deref(schema: Any, defs: Mapping[str, Any]) -> Mapping[str, Any]:
    for _ in range(8):
        if not isinstance(schema, Mapping) or "$ref" not in schema:
            break
        schema = {
            **defs.get(str(schema["$ref"]).rsplit("/", 1)[-1], {}),
            **{k: v for k, v in schema.items() if k != "$ref"},
        }
    return schema if isinstance(schema, Mapping) else {}


def _fill(
    kind: ResourceKind,
    schema: Any,
    echo: Any,
    address: str,
    path: tuple[str, ...],
    defs: Mapping[str, Any],
    variables: list[str],
) -> Any:
    schema = _deref(schema, defs)
    is_object = schema.get("type") == "object" or "properties" in schema or "allOf" in schema
    if not is_object:
        if path[-1] in kind.secret_leaves or path[-1] in kind.write_only_fields:
            variables.append(_var(address, path))
            return "${env:" + variables[-1] + "}"
        return echo
    out: dict[str, Any] = dict(echo) if isinstance(echo, Mapping) else {}
    props: dict[str, Any] = dict(schema.get("properties") or {})
    required: set[str] = set(schema.get("required") or ())
    # A union dispatched on a discriminator (`type: bearer`): the branch the echo names.
    for part in schema.get("allOf") or ():
        cond = part.get("if") if isinstance(part, Mapping) else None
        if isinstance(cond, Mapping) and _holds(cond, out):
            branch = _deref(part.get("then"), defs)
            props.update(branch.get("properties") or {})
            required |= set(branch.get("required") or ())
    for name in sorted(required | {k for k in out if k in kind.secret_leaves}):
        if name in out and name not in kind.secret_leaves:
            continue
        value = _fill(
            kind, props.get(name, {}), out.get(name), address, (*path, name), defs, variables
        )
        if value is not None:
            out[name] = value
    return out


def _holds(cond: Mapping[str, Any], value: Mapping[str, Any]) -> bool:
    for key, rule in (cond.get("properties") or {}).items():
        if isinstance(rule, Mapping) and "const" in rule and value.get(key) != rule["const"]:
            return False
    return all(k in value for k in cond.get("required") or ())


def taken_as_applied(
    extra: Mapping[str, Any], applied: Mapping[str, Any], want: Mapping[str, Any]
) -> dict[str, Any]:
    """`applied` with the unread secrets taken from the manifest's values (`want`, in
    comparison form): what the plan compares the live object with."""
    unread = [k for k in extra.get(UNREAD_KEY) or () if k in want and k not in applied]
    return {**applied, **{k: want[k] for k in unread}} if unread else dict(applied)


def record(
    extra: Mapping[str, Any], applied: Mapping[str, Any], want: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """(applied, extra, fields recorded): the unread secrets' hashes recorded from the
    manifest's values, and the mark gone."""
    unread = [k for k in extra.get(UNREAD_KEY) or () if k in want]
    rest = {k: v for k, v in extra.items() if k != UNREAD_KEY}
    return taken_as_applied(extra, applied, want), rest, unread
