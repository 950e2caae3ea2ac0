"""The saved-plan file: `plan --out plan.bin` writes it, `apply plan.bin` runs it as planned.

Owns the file format and the checks that make applying a saved plan safe. The only I/O
is in `save_plan` / `load_plan`; everything else is pure.

File layout: gzip-compressed UTF-8 JSON (plain JSON is read too; the `.bin` name is only a
convention)::

    {
      "magic": "provisioner-plan",
      "format_version": 1,                 # PLAN_FORMAT_VERSION; newer files are refused
      "tool_version": "0.1.0",
      "created_at": "2026-...Z",           # only when a clock value is passed in
      "manifest": {"path": "...", "digest": "sha256:..."},
      "live_fingerprint": {"assistant.a": "hmac-sha256:..." | "absent", ...},
      "secrets": {"assistant.a#/server/secret": "hmac-sha256:...", ...},
      "plan": {"mode", "lineage", "serial", "warnings", "moved", "changes": [...]},
      "checksum": "sha256:..."             # over the canonical JSON of everything else
    }

Inside the plan, values that JSON cannot hold are tagged one-key objects:
`{"$sensitive": "hmac-sha256:..."}` (a secret, as its keyed hash only: the value is never
written), `{"$ref_string": [part, ...]}` (a string with references, each reference part
`{"$address": "assistant.a"}`), `{"$unknown": "assistant.a"}` (a value known after
apply), and `{"$literal": {...}}` (a manifest object that happens to have exactly one key
spelled like a tag). A field side that does not exist (`MISSING`) is an absent key.

Applying a saved plan (the caller's wiring):

1. `saved = load_plan(path)`
2. with the state locked: `saved.verify(lineage=..., serial=..., manifest_digest=...,
   live_fingerprint=fingerprint_live(refresh_state(...)))`; raises StalePlanError.
3. re-resolve the manifest with the environment, then
   `plan = rehydrate_plan(saved.plan, {a: r.body for a, r in resolved.items()},
   hash_key=state.hash_key)`: secrets come back from the environment, and a secret
   whose keyed hash differs from the stored one is refused (StalePlanError naming the
   field, never the value).
4. run the engine with `plan`, without planning again.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import hmac
import json
import os
import tempfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from provisioner import __version__
from provisioner.addresses import ResourceAddress
from provisioner.errors import ProvisionerError, StalePlanError
from provisioner.plan.differ import LiveSnapshot
from provisioner.plan.model import (
    MISSING,
    PLAN_FORMAT_VERSION,
    Action,
    ActionReason,
    FieldChange,
    Plan,
    PlanMode,
    ResourceChange,
)
from provisioner.plan.normalize import strip_server_fields
from provisioner.resolve import RefString
from provisioner.values import Sensitive, Unknown, keyed_hash

__all__ = [
    "ABSENT",
    "MAGIC",
    "PlanFileError",
    "SavedPlan",
    "SecretPlaceholder",
    "digest_bytes",
    "fingerprint_live",
    "hash_plan_secrets",
    "has_placeholders",
    "load_plan",
    "plan_from_dict",
    "plan_to_dict",
    "rehydrate_plan",
    "rehydrate_secrets",
    "save_plan",
]

MAGIC = "provisioner-plan"
# Live-fingerprint value for an address whose object did not exist when planning.
ABSENT = "absent"
_GZIP_MAGIC = b"\x1f\x8b"
_TAGS = frozenset({"$sensitive", "$ref_string", "$address", "$unknown", "$literal"})


class PlanFileError(ProvisionerError):
    """The file is not a saved plan, is from a newer version, or is damaged."""

    def __init__(self, path: Path | str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = str(path)


@dataclass(frozen=True, slots=True)
class SecretPlaceholder:
    """A secret in a loaded plan's body: only its keyed hash, until `rehydrate_secrets`."""

    digest: str

    def __repr__(self) -> str:
        return f"SecretPlaceholder({self.digest})"


@dataclass(frozen=True, slots=True)
class SavedPlan:
    """A loaded plan file. `plan` bodies hold `SecretPlaceholder`s until rehydrated."""

    plan: Plan
    manifest_path: str
    manifest_digest: str
    # address -> hash of the live object read while planning, or ABSENT.
    live_fingerprint: Mapping[str, str] = field(default_factory=dict)
    # "address#/json/pointer" -> keyed hash, for every secret in the bodies.
    secret_hashes: Mapping[str, str] = field(default_factory=dict)
    created_at: str | None = None
    tool_version: str = ""
    format_version: int = PLAN_FORMAT_VERSION
    # Where the state was (backend description) and its version token then.
    state_backend: str = ""
    state_version: str | None = None

    def stale_reasons(
        self,
        *,
        lineage: str,
        serial: int,
        manifest_digest: str | None = None,
        live_fingerprint: Mapping[str, str] | None = None,
        backend: str | None = None,
        version: str | None = None,
    ) -> list[str]:
        """Every reason this plan can no longer be applied as is (empty when it can).

        Args:
            lineage, serial: of the state as it is now (read under the lock).
            manifest_digest: of the manifest as it is now (`digest_bytes` of its bytes);
                None skips the check.
            live_fingerprint: `fingerprint_live` of a fresh refresh; None skips the check.
            backend, version: where the state is now and its version token; None skips.
        """
        reasons: list[str] = []
        if self.plan.lineage != lineage:
            reasons.append(
                "the plan was made for a different state (lineage "
                f"{self.plan.lineage or '(none)'}, the state is {lineage or '(none)'})"
            )
        elif self.plan.serial != serial:
            reasons.append(
                f"the state has changed since the plan was made (serial {self.plan.serial} "
                f"then, {serial} now)"
            )
        elif self.state_version and version is not None and version != self.state_version:
            reasons.append(
                f"the state in {backend} has changed since the plan was made (version "
                f"{self.state_version} then, {version} now)"
            )
        if self.state_backend and backend is not None and backend != self.state_backend:
            reasons.append(
                f"the plan was made against the state in {self.state_backend}, and this run "
                f"uses {backend}"
            )
        if manifest_digest is not None and manifest_digest != self.manifest_digest:
            reasons.append(f"the manifest {self.manifest_path} has changed since the plan was made")
        if live_fingerprint is not None:
            moved = _fingerprint_changes(self.live_fingerprint, live_fingerprint)
            if moved:
                reasons.append("changed remotely since the plan was made: " + ", ".join(moved))
        return reasons

    def verify(
        self,
        *,
        lineage: str,
        serial: int,
        manifest_digest: str | None = None,
        live_fingerprint: Mapping[str, str] | None = None,
        backend: str | None = None,
        version: str | None = None,
    ) -> None:
        """Raise StalePlanError listing every reason from `stale_reasons`, if any."""
        reasons = self.stale_reasons(
            lineage=lineage,
            serial=serial,
            manifest_digest=manifest_digest,
            live_fingerprint=live_fingerprint,
            backend=backend,
            version=version,
        )
        if reasons:
            raise StalePlanError(
                "the saved plan is stale: " + "; ".join(reasons) + ". Run plan again."
            )


# Fingerprints and digests --------------------------------------------------------------


def digest_bytes(data: bytes) -> str:
    """`sha256:<hex>` of raw bytes (use it for `manifest_digest`)."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def fingerprint_live(live: LiveSnapshot, hash_key: str) -> dict[str, str]:
    """address -> keyed hash of each live object the plan read (`ABSENT` if it was gone).

    Server-managed fields (`updatedAt`, `status`, ...) and our ownership marker are left
    out, so only a change to content the planner compares makes a plan stale. Keyed with
    the state's key: a live object may hold an echoed secret, and a plain hash of it in a
    plan artifact would let a weak secret be guessed offline.
    """
    out: dict[str, str] = {}
    sources: list[Mapping[str, Mapping[str, Any] | None]] = [live.objects, live.adopted]
    for objects in sources:
        for addr, obj in objects.items():
            out[addr] = ABSENT if obj is None else _object_hash(obj, hash_key)
    return dict(sorted(out.items()))


def _object_hash(obj: Mapping[str, Any], hash_key: str) -> str:
    content = {"id": obj.get("id"), **strip_server_fields(obj)}
    return keyed_hash(_canonical(content).decode(), hash_key)


def _fingerprint_changes(then: Mapping[str, str], now: Mapping[str, str]) -> list[str]:
    out = []
    for addr in sorted(set(then) | set(now)):
        a, b = then.get(addr), now.get(addr)
        if a == b:
            continue
        if b is None or b == ABSENT:
            out.append(f"{addr} (gone)" if a not in (None, ABSENT) else f"{addr}")
        elif a is None or a == ABSENT:
            out.append(f"{addr} (appeared)")
        else:
            out.append(f"{addr} (edited)")
    return out


def _canonical(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# Secrets -------------------------------------------------------------------------------


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

        _encode_body(c.body, "", record)
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


# Encoding ------------------------------------------------------------------------------


def _pointer(parent: str, token: str | int) -> str:
    return f"{parent}/{str(token).replace('~', '~0').replace('/', '~1')}"


def _encode_body(value: Any, loc: str, on_secret: Callable[[str, Sensitive], str]) -> Any:
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
                    str(k): _encode_body(v, _pointer(inner, str(k)), on_secret)
                    for k, v in value.items()
                }
            }
        return {str(k): _encode_body(v, _pointer(loc, str(k)), on_secret) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode_body(v, _pointer(loc, i), on_secret) for i, v in enumerate(value)]
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
        "body": None if c.body is None else _encode_body(c.body, "", lookup),
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
        "changes": [_encode_change(c, secret_hashes) for c in plan.changes],
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
        return Unknown(_str(value[tag]))
    if tag == "$literal":
        inner = value[tag]
        if not isinstance(inner, dict):
            raise ValueError("$literal must hold an object")
        return {k: _decode_value(v, body=body) for k, v in inner.items()}
    if tag is not None and body:
        if tag == "$sensitive":
            return SecretPlaceholder(_str(value[tag]))
        if tag == "$ref_string":
            return RefString(tuple(_decode_part(p) for p in _list(value[tag])))
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
        return ResourceAddress.parse(_str(part[tag]))
    if tag == "$sensitive":
        return SecretPlaceholder(_str(part[tag]))
    raise ValueError("a reference string part must be a string, $address or $sensitive")


def _decode_field(data: Any) -> FieldChange:
    d = _dict(data)
    path = tuple(
        p if isinstance(p, int) and not isinstance(p, bool) else _str(p) for p in _list(d["path"])
    )
    return FieldChange(
        path,
        _decode_value(d["before"]) if "before" in d else MISSING,
        _decode_value(d["after"]) if "after" in d else MISSING,
        drift=bool(d.get("drift", False)),
        forces_replace=bool(d.get("forces_replace", False)),
    )


def _decode_change(data: Any) -> ResourceChange:
    d = _dict(data)
    before, after, body = d.get("before"), d.get("after"), d.get("body")
    return ResourceChange(
        address=_str(d["address"]),
        kind=_str(d["kind"]),
        action=Action(d["action"]),
        reason=ActionReason[_str(d["reason"]).upper()],
        id=_opt_str(d.get("id")),
        before=None if before is None else _dict(_decode_value(before)),
        after=None if after is None else _dict(_decode_value(after)),
        fields=tuple(_decode_field(f) for f in _list(d.get("fields", []))),
        drift=tuple(_decode_field(f) for f in _list(d.get("drift", []))),
        depends_on=tuple(_str(a) for a in _list(d.get("depends_on", []))),
        references=tuple(_str(a) for a in _list(d.get("references", []))),
        body=None if body is None else _dict(_decode_value(body, body=True)),
        name=_opt_str(d.get("name")),
        warnings=tuple(_str(w) for w in _list(d.get("warnings", []))),
        purchase=None if d.get("purchase") is None else _dict(d["purchase"]),
        origins=tuple(
            (_str(p), _str(o)) for p, o in (_list(x) for x in _list(d.get("origins", [])))
        ),
    )


def plan_from_dict(data: Any) -> Plan:
    """Rebuild a Plan from the `"plan"` section. Raises KeyError/TypeError/ValueError."""
    d = _dict(data)
    serial = d["serial"]
    if not isinstance(serial, int) or isinstance(serial, bool):
        raise TypeError("serial must be an integer")
    return Plan(
        changes=tuple(_decode_change(c) for c in _list(d["changes"])),
        mode=PlanMode(d["mode"]),
        lineage=_str(d["lineage"]),
        serial=serial,
        warnings=tuple(_str(w) for w in _list(d.get("warnings", []))),
        moved=tuple(_str(m) for m in _list(d.get("moved", []))),
        cost=None if d.get("cost") is None else _dict(d["cost"]),
        environment=None if d.get("environment") is None else _str(d["environment"]),
    )


def _dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, found {type(value).__name__}")
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, found {type(value).__name__}")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, found {type(value).__name__}")
    return value


def _opt_str(value: Any) -> str | None:
    return None if value is None else _str(value)


def _str_map(value: Any) -> dict[str, str]:
    return {_str(k): _str(v) for k, v in _dict(value).items()}


# Files ---------------------------------------------------------------------------------


def save_plan(
    path: str | os.PathLike[str],
    plan: Plan,
    *,
    manifest_path: str | os.PathLike[str],
    manifest_digest: str,
    live_fingerprint: Mapping[str, str],
    secret_hashes: Mapping[str, str],
    created_at: datetime | None = None,
    compress: bool = True,
    state_backend: str = "",
    state_version: str | None = None,
) -> None:
    """Write `plan` to `path` atomically (temporary file, then rename).

    Args:
        path: where to write (any name; `plan.bin` by convention).
        plan: the plan, bodies included; secrets are written as their keyed hash only.
        manifest_path: the manifest the plan was made from (recorded for messages).
        manifest_digest: `digest_bytes` of the manifest's bytes.
        live_fingerprint: `fingerprint_live` of the snapshot the plan was made from.
        secret_hashes: `hash_plan_secrets(plan, state.hash_key)`.
        created_at: a timestamp to record (the caller's clock); left out when None.
        compress: gzip the JSON (default); False writes indented plain JSON.

    Raises:
        ValueError: a secret in a body has no entry in `secret_hashes`.
        PlanFileError: the file cannot be written.
    """
    doc: dict[str, Any] = {
        "magic": MAGIC,
        "format_version": PLAN_FORMAT_VERSION,
        "tool_version": __version__,
    }
    if created_at is not None:
        doc["created_at"] = (
            created_at.astimezone(UTC).isoformat(timespec="seconds").removesuffix("+00:00") + "Z"
        )
    doc["manifest"] = {"path": os.fspath(manifest_path), "digest": manifest_digest}
    if state_backend:
        doc["state"] = {"backend": state_backend, "version": state_version}
    doc["live_fingerprint"] = dict(sorted(live_fingerprint.items()))
    doc["secrets"] = dict(sorted(secret_hashes.items()))
    doc["plan"] = plan_to_dict(plan, secret_hashes)
    doc["checksum"] = digest_bytes(_canonical(doc))
    if compress:
        # Keys in the plan's own order (the checksum is over the sorted form): `show`
        # renders the objects exactly as `plan` did.
        compact = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
        data = gzip.compress(compact, mtime=0)
    else:
        data = (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()
    target = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or Path("."))
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise PlanFileError(target, f"cannot write the plan file: {exc.strerror or exc}") from exc


def load_plan(path: str | os.PathLike[str]) -> SavedPlan:
    """Read a plan file written by `save_plan`.

    Raises:
        PlanFileError: unreadable, not a plan file, written by a newer version, or
            damaged (bad compression, checksum mismatch, malformed content).
    """
    source = Path(path)
    try:
        raw = source.read_bytes()
    except OSError as exc:
        raise PlanFileError(source, f"cannot read the plan file: {exc.strerror or exc}") from exc
    not_a_plan = "is not a saved plan (expected a file written by `plan --out`)"
    if raw.startswith(_GZIP_MAGIC):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise PlanFileError(source, f"the plan file is damaged ({exc})") from exc
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise PlanFileError(source, not_a_plan) from exc
    if not isinstance(doc, dict) or doc.get("magic") != MAGIC:
        raise PlanFileError(source, not_a_plan)
    version = doc.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise PlanFileError(source, "the plan file is damaged (bad format_version)")
    if version > PLAN_FORMAT_VERSION:
        raise PlanFileError(
            source,
            f"the plan was written by a newer provisioner (plan format {version}; this "
            f"version reads up to {PLAN_FORMAT_VERSION}): upgrade, or plan again",
        )
    checksum = doc.pop("checksum", None)
    if checksum != digest_bytes(_canonical(doc)):
        raise PlanFileError(
            source, "the plan file is damaged or was edited (checksum mismatch): plan again"
        )
    try:
        manifest = _dict(doc["manifest"])
        created_at = doc.get("created_at")
        where = _dict(doc.get("state", {}))
        return SavedPlan(
            state_backend=_str(where.get("backend", "")),
            state_version=_opt_str(where.get("version")),
            plan=plan_from_dict(doc["plan"]),
            manifest_path=_str(manifest["path"]),
            manifest_digest=_str(manifest["digest"]),
            live_fingerprint=_str_map(doc.get("live_fingerprint", {})),
            secret_hashes=_str_map(doc.get("secrets", {})),
            created_at=None if created_at is None else _str(created_at),
            tool_version=_str(doc.get("tool_version", "")),
            format_version=version,
        )
    except (KeyError, TypeError, ValueError) as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise PlanFileError(source, f"the plan file is damaged ({detail})") from exc
