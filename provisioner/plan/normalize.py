"""The comparison form shared by the planner and drift checks. Pure.

Vapi answers with a superset of what was sent (server fields, defaults, legacy keys), so
live objects are *projected* onto the shape of what the manifest says before comparing:
only fields the manifest sets can ever show up as a difference. Secrets are compared by
their keyed hash, never in clear.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from provisioner.kinds import OWNER_MARKER_KEY, SERVER_FIELDS, ResourceKind
from provisioner.values import HASH_PREFIX, SENSITIVE_TEXT, Sensitive, Unknown, keyed_hash, walk


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
    key: str,
) -> dict[str, Any]:
    """The live object in comparison form, shaped like `shape`.

    Write-only fields (which the API never returns) and fields the API does not echo are
    taken from what we last applied: the remote cannot tell us otherwise. A secret the API
    does echo back is replaced by its keyed hash (see `conceal`), so it compares equal to
    the hash in `shape` and is never carried in clear.
    """
    stripped = strip_server_fields(live)
    for k in shape:
        if (k in kind.write_only_fields or k not in stripped) and k in applied:
            stripped[k] = applied[k]
    projected: dict[str, Any] = project(stripped, shape)
    concealed: dict[str, Any] = conceal(projected, (shape, applied), key)
    return concealed


def conceal(value: Any, refs: tuple[Any, ...], key: str) -> Any:
    """`value` (a live object) with every secret it echoes replaced by its keyed hash.

    `refs` are comparison-form bodies (desired, last applied) in which secrets are keyed
    hashes. A live value is a secret where a ref holds a hash at the same path (whatever
    the remote now holds there: an edited secret is still one), or anywhere its hash is
    one of the refs' hashes (a list the remote reordered). Where a ref holds the very same
    clear value, the manifest says it in clear: it stays as it is.
    """
    hashes = _hashes(refs)
    if not hashes:
        return value
    return _conceal(value, refs, hashes, key)


def _conceal(value: Any, refs: tuple[Any, ...], hashes: frozenset[str], key: str) -> Any:
    if isinstance(value, Mapping):
        return {
            k: _conceal(
                v, tuple(r[k] for r in refs if isinstance(r, Mapping) and k in r), hashes, key
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            _conceal(
                v, tuple(r[i] for r in refs if isinstance(r, list) and i < len(r)), hashes, key
            )
            for i, v in enumerate(value)
        ]
    if _is_hash(value) or any(_same_leaf(r, value) for r in refs):
        return value
    if any(_is_hash(r) for r in refs):
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        return keyed_hash(text, key)
    if isinstance(value, str) and keyed_hash(value, key) in hashes:
        return keyed_hash(value, key)
    return value


def _hashes(refs: Any) -> frozenset[str]:
    found: set[str] = set()
    walk(refs, lambda v: found.add(v) if _is_hash(v) else None)
    return frozenset(found)


def _is_hash(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(HASH_PREFIX)


def _same_leaf(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


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
