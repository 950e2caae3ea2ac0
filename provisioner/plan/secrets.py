"""Secrets in a saved plan: their keyed hashes when it is written, and the secrets
themselves brought back from the environment when it is applied (refused if one changed).
Pure."""

from __future__ import annotations

import dataclasses
import hmac
from collections.abc import Mapping, Sequence
from typing import Any

from provisioner.errors import StalePlanError
from provisioner.plan.codec import SecretPlaceholder, encode_body
from provisioner.plan.model import FieldChange, Plan
from provisioner.resolve import RefString
from provisioner.values import Sensitive, keyed_hash


def hash_plan_secrets(plan: Plan, hash_key: str) -> dict[str, str]:
    """Keyed hashes of every secret in the plan's bodies, by location
    (`address#/json/pointer` into the body as saved): the `secret_hashes` for `save_plan`.

    `hash_key` must be the key apply will check against (the state's `hash_key`).
    """
    out: dict[str, str] = {}
    for c in plan.changes:
        if c.body is None:
            continue

        def record(loc: str, secret: Sensitive, address: str = c.address) -> str:
            out[f"{address}#{loc}"] = keyed_hash(secret.value, hash_key)
            return out[f"{address}#{loc}"]

        encode_body(c.body, "", record)
    return out


def has_placeholders(plan: Plan) -> bool:
    """True while some body still holds a `SecretPlaceholder` (not yet rehydrated)."""
    return any(c.body is not None and _contains_placeholder(c.body) for c in plan.changes)


def _contains_placeholder(value: Any) -> bool:
    if isinstance(value, SecretPlaceholder):
        return True
    if isinstance(value, RefString):
        return any(isinstance(p, SecretPlaceholder) for p in value.parts)
    if isinstance(value, Mapping):
        return any(_contains_placeholder(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_contains_placeholder(v) for v in value)
    return False


def rehydrate_secrets(
    body: Mapping[str, Any],
    resolved_body: Mapping[str, Any],
    *,
    hash_key: str,
    address: str = "",
) -> dict[str, Any]:
    """A loaded body with each `SecretPlaceholder` replaced by the secret from
    `resolved_body` (the same resource resolved again from the manifest and environment).

    Raises:
        StalePlanError: a secret's keyed hash differs from the stored one, a stored
            secret is no longer a secret, or any other value differs from the saved body
            (the manifest or a file it includes changed). The message names the field,
            never a value.
    """
    out = _rehydrate(body, resolved_body, (), hash_key, address)
    assert isinstance(out, dict)
    return out


def rehydrate_plan(
    plan: Plan, resolved_bodies: Mapping[str, Mapping[str, Any]], *, hash_key: str
) -> Plan:
    """`plan` with every body rehydrated from `resolved_bodies` (address -> resolved body).

    Raises:
        StalePlanError: as `rehydrate_secrets`, or a change's resource is no longer in
            the manifest.
    """
    changes = []
    for c in plan.changes:
        if c.body is None:
            changes.append(c)
            continue
        fresh = resolved_bodies.get(c.address)
        if fresh is None:
            raise StalePlanError(
                f"{c.address} is in the saved plan but no longer in the manifest: plan again"
            )
        body = rehydrate_secrets(c.body, fresh, hash_key=hash_key, address=c.address)
        changes.append(dataclasses.replace(c, body=body))
    return dataclasses.replace(plan, changes=tuple(changes))


def _rehydrate(saved: Any, fresh: Any, path: tuple[str | int, ...], key: str, address: str) -> Any:
    where = f"{address}: {_dotted(path) or '(body)'}"
    if isinstance(saved, SecretPlaceholder):
        if not isinstance(fresh, Sensitive):
            raise StalePlanError(
                f"{where} was a secret when the plan was made and is not one now: plan again"
            )
        if not hmac.compare_digest(keyed_hash(fresh.value, key), saved.digest):
            raise StalePlanError(
                f"{where}: the secret in the environment is not the one the plan was made "
                "with: plan again (or restore the value)"
            )
        return fresh
    if isinstance(saved, RefString):
        if not isinstance(fresh, RefString) or len(fresh.parts) != len(saved.parts):
            raise StalePlanError(f"{where} changed since the plan was made: plan again")
        parts = tuple(
            _rehydrate(s, f, path, key, address)
            for s, f in zip(saved.parts, fresh.parts, strict=True)
        )
        return RefString(parts)
    if isinstance(saved, Mapping):
        if not isinstance(fresh, Mapping) or set(saved) != set(fresh):
            raise StalePlanError(f"{where} changed since the plan was made: plan again")
        return {k: _rehydrate(v, fresh[k], (*path, k), key, address) for k, v in saved.items()}
    if isinstance(saved, list | tuple):
        if not isinstance(fresh, list | tuple) or len(saved) != len(fresh):
            raise StalePlanError(f"{where} changed since the plan was made: plan again")
        return [
            _rehydrate(s, f, (*path, i), key, address)
            for i, (s, f) in enumerate(zip(saved, fresh, strict=True))
        ]
    if isinstance(fresh, Sensitive) or type(saved) is not type(fresh) or saved != fresh:
        raise StalePlanError(f"{where} changed since the plan was made: plan again")
    return saved


def _dotted(path: Sequence[str | int]) -> str:
    return FieldChange(tuple(path), None, None).dotted
