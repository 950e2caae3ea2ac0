"""The comparison form shared by the planner and drift checks. Pure.

Vapi answers with a superset of what was sent (server fields, defaults, legacy keys), so
live objects are *projected* onto the shape of what the manifest says before comparing:
only fields the manifest sets can ever show up as a difference. Secrets are compared by
their keyed hash, never in clear.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from provisioner.kinds import OWNER_MARKER_KEY, SERVER_FIELDS, ResourceKind
from provisioner.values import HASH_PREFIX, SENSITIVE_TEXT, Sensitive, Unknown, keyed_hash


def comparable(desired: Any, key: str) -> Any:
    """Desired values in comparison form: secrets become their keyed hash; Unknown stays."""
    if isinstance(desired, Mapping):
        return {k: comparable(v, key) for k, v in desired.items()}
    if isinstance(desired, list):
        return [comparable(v, key) for v in desired]
    if isinstance(desired, Sensitive):
        return keyed_hash(desired.value, key)
    return desired


def strip_server_fields(live: Mapping[str, Any]) -> dict[str, Any]:
    """Drop server-managed fields and our ownership marker from a live object."""
    out = {k: v for k, v in live.items() if k not in SERVER_FIELDS}
    meta = out.get("metadata")
    if isinstance(meta, Mapping) and OWNER_MARKER_KEY in meta:
        rest = {k: v for k, v in meta.items() if k != OWNER_MARKER_KEY}
        if rest:
            out["metadata"] = rest
        else:
            del out["metadata"]
    return out


def project(value: Any, shape: Any) -> Any:
    """`value` restricted to the keys present in `shape`, recursively (lists element-wise)."""
    if isinstance(shape, Mapping) and isinstance(value, Mapping):
        return {k: project(value[k], shape[k]) for k in shape if k in value}
    if isinstance(shape, list) and isinstance(value, list) and len(shape) == len(value):
        return [project(v, s) for v, s in zip(value, shape, strict=True)]
    return value


def live_view(
    kind: ResourceKind,
    live: Mapping[str, Any],
    shape: Mapping[str, Any],
    applied: Mapping[str, Any],
) -> dict[str, Any]:
    """The live object in comparison form, shaped like `shape`.

    Write-only fields (which the API never returns) and fields the API does not echo are
    taken from what we last applied: the remote cannot tell us otherwise.
    """
    stripped = strip_server_fields(live)
    for k in shape:
        if (k in kind.write_only_fields or k not in stripped) and k in applied:
            stripped[k] = applied[k]
    projected: dict[str, Any] = project(stripped, shape)
    return projected


def display(value: Any) -> Any:
    """A comparison-form value made safe to show: hashes and secrets as `(sensitive)`."""
    if isinstance(value, Mapping):
        return {k: display(v) for k, v in value.items()}
    if isinstance(value, list):
        return [display(v) for v in value]
    if isinstance(value, Sensitive) or (isinstance(value, str) and value.startswith(HASH_PREFIX)):
        return SENSITIVE_TEXT
    if isinstance(value, Unknown):
        return value
    return value
