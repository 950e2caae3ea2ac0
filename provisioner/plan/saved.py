"""The saved-plan file: `plan --out plan.bin` writes it, `apply plan.bin` runs it as planned.

Owns the file format and the checks that make applying a saved plan safe (staleness). The
only I/O is in `save_plan` / `load_plan`; everything else is pure. The plan section's codec
is `plan.codec`, the secrets' hashes and rehydration `plan.secrets` (re-exported here).

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

import gzip
import hashlib
import json
import os
import tempfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from provisioner import __version__
from provisioner.errors import ProvisionerError, StalePlanError
from provisioner.plan.codec import (
    SecretPlaceholder,
    json_object,
    json_opt_str,
    json_str,
    json_str_map,
    plan_from_dict,
    plan_to_dict,
)
from provisioner.plan.differ import LiveSnapshot
from provisioner.plan.model import (
    PLAN_FORMAT_VERSION,
    Plan,
)
from provisioner.plan.normalize import strip_server_fields
from provisioner.plan.secrets import (
    has_placeholders,
    hash_plan_secrets,
    rehydrate_plan,
    rehydrate_secrets,
)
from provisioner.values import keyed_hash

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


class PlanFileError(ProvisionerError):
    """The file is not a saved plan, is from a newer version, or is damaged."""

    def __init__(self, path: Path | str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = str(path)


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
        manifest = json_object(doc["manifest"])
        created_at = doc.get("created_at")
        where = json_object(doc.get("state", {}))
        return SavedPlan(
            state_backend=json_str(where.get("backend", "")),
            state_version=json_opt_str(where.get("version")),
            plan=plan_from_dict(doc["plan"]),
            manifest_path=json_str(manifest["path"]),
            manifest_digest=json_str(manifest["digest"]),
            live_fingerprint=json_str_map(doc.get("live_fingerprint", {})),
            secret_hashes=json_str_map(doc.get("secrets", {})),
            created_at=None if created_at is None else json_str(created_at),
            tool_version=json_str(doc.get("tool_version", "")),
            format_version=version,
        )
    except (KeyError, TypeError, ValueError) as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise PlanFileError(source, f"the plan file is damaged ({detail})") from exc
