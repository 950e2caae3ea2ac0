"""The state file's data: which remote object each manifest address owns. Pure, no I/O.

Versioned the Terraform way: `format_version` (the file layout, upgraded on read),
`lineage` (a UUID set once when the state is created: two files with different lineages
describe different deployments and must never be merged), and `serial` (bumped by the
store on every write that changes content).

State holds IDs, what was last applied, and keyed hashes of secrets; never a secret in clear.
The hashes' key is random per lineage and kept in the file, unless an external key is given
(`PROVISIONER_STATE_KEY`, see `with_external_key`): then the key is derived from it and the
file keeps only a short check of it, so a committed state cannot be used to guess weak
secrets offline.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from provisioner.errors import StateError
from provisioner.state.identity import Owner

FORMAT_VERSION = 1
# The environment variable holding an external key for the state's keyed hashes.
STATE_KEY_ENV = "PROVISIONER_STATE_KEY"
MIN_EXTERNAL_KEY = 16


def _same(value: Any) -> Any:
    return value


class ResourceStatus(StrEnum):
    # The create was confirmed and `id` is the remote object.
    CREATED = "created"
    # A create was about to be sent (intent recorded) but its outcome is not known:
    # the next run must look for the object before creating again.
    CREATING = "creating"


@dataclass(slots=True)
class ResourceState:
    kind: str
    id: str | None
    status: ResourceStatus = ResourceStatus.CREATED
    # The body last applied, references resolved to IDs, secrets as keyed hashes.
    applied: dict[str, Any] = field(default_factory=dict)
    # Addresses this resource referenced when last applied (delete ordering once it
    # has left the manifest).
    depends_on: list[str] = field(default_factory=list)
    # For CREATING: what identifies the object we may have created (name, owner marker).
    intent: dict[str, Any] | None = None
    # The remote's `updatedAt` seen after our last write (cheap drift hint).
    remote_updated_at: str | None = None
    # Kind-specific facts that must survive a crash (e.g. a purchased number's Twilio SID).
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, *, deep: bool = True) -> dict[str, Any]:
        """The JSON form. `deep=False` shares the nested values instead of copying them:
        only for serialising at once (the state store does, for speed), never to keep."""
        dup = copy.deepcopy if deep else _same
        out: dict[str, Any] = {"kind": self.kind, "id": self.id, "status": str(self.status)}
        out["applied"] = dup(self.applied)
        out["depends_on"] = list(self.depends_on)
        if self.intent is not None:
            out["intent"] = dup(self.intent)
        if self.remote_updated_at is not None:
            out["remote_updated_at"] = self.remote_updated_at
        if self.extra:
            out["extra"] = dup(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResourceState:
        return cls(
            kind=data["kind"],
            id=data.get("id"),
            status=ResourceStatus(data.get("status", "created")),
            applied=dict(data.get("applied") or {}),
            depends_on=list(data.get("depends_on") or []),
            intent=data.get("intent"),
            remote_updated_at=data.get("remote_updated_at"),
            extra=dict(data.get("extra") or {}),
        )


@dataclass(slots=True)
class StateFile:
    lineage: str
    serial: int = 0
    format_version: int = FORMAT_VERSION
    # Key for the keyed hashes of secrets; random per lineage, or derived from an
    # external key (then never written: see `key_check`).
    hash_key: str = ""
    resources: dict[str, ResourceState] = field(default_factory=dict)
    # Set when the key is external: a short check of it (written instead of the key).
    key_check: str | None = None
    # The owner (docs/state-identity.md): the manifest's repository path and environment.
    # None in a state written before states recorded it (claimed by its next write).
    manifest: str | None = None
    environment: str | None = None
    # The Vapi org of the objects it manages (#12, `org_guard`): from the first one read.
    org_id: str | None = None

    @classmethod
    def new(cls, owner: Owner | None = None) -> StateFile:
        return cls(
            lineage=str(uuid.uuid4()),
            hash_key=secrets.token_hex(32),
            manifest=owner.manifest if owner else None,
            environment=owner.environment if owner else None,
        )

    @property
    def owner(self) -> Owner | None:
        if self.manifest is None:
            return None
        return Owner(self.manifest, self.environment)

    def copy(self) -> StateFile:
        out = StateFile.from_dict(self.to_dict())
        out.hash_key = self.hash_key  # an external key is not in the dict
        return out

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, as stored: an external key appears only as its check."""
        out: dict[str, Any] = {
            "format_version": self.format_version,
            "lineage": self.lineage,
            "serial": self.serial,
        }
        if self.manifest is not None:
            out["manifest"] = self.manifest
        if self.environment is not None:
            out["environment"] = self.environment
        if self.org_id is not None:
            out["org_id"] = self.org_id
        if self.key_check is None:
            out["hash_key"] = self.hash_key
        else:
            out["key_check"] = self.key_check
        out["resources"] = {a: r.to_dict() for a, r in sorted(self.resources.items())}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StateFile:
        return cls(
            lineage=data["lineage"],
            serial=int(data["serial"]),
            format_version=int(data["format_version"]),
            hash_key=data.get("hash_key", ""),
            resources={
                a: ResourceState.from_dict(r) for a, r in (data.get("resources") or {}).items()
            },
            key_check=data.get("key_check"),
            manifest=data.get("manifest"),
            environment=data.get("environment"),
            org_id=data.get("org_id"),
        )

    def content_equal(self, other: StateFile) -> bool:
        """Same content, ignoring the serial (the store bumps serial only on real change)."""
        if self.resources.keys() != other.resources.keys():
            return False
        a, b = dataclasses.replace(self, resources={}), dataclasses.replace(other, resources={})
        if a.to_dict() | {"serial": 0} != b.to_dict() | {"serial": 0}:
            return False
        # (no copies: each entry's view is compared at once, then dropped)
        return all(
            r.to_dict(deep=False) == other.resources[k].to_dict(deep=False)
            for k, r in self.resources.items()
        )

    def with_external_key(self, external: str | None, where: str) -> StateFile:
        """The state with its hash key in place, per `PROVISIONER_STATE_KEY` (`external`).

        Raises:
            StateError: the key given does not match the state's check; or no key is given
                for a state that needs one; or one is given for a state that keeps its own
                key (which would make every secret look changed).
        """
        if external is not None and len(external) < MIN_EXTERNAL_KEY:
            # A short key could be guessed offline from the key check. (An empty one means
            # unset: `open_state` passes None for it.)
            raise StateError(
                f"{STATE_KEY_ENV} is too short: use at least {MIN_EXTERNAL_KEY} random "
                "characters (e.g. `openssl rand -hex 32`)"
            )
        if external is None:
            if self.key_check is not None:
                raise StateError(
                    f"{where} was written with an external hash key: set {STATE_KEY_ENV} "
                    "to that key"
                )
            return self
        key = derive_hash_key(external, self.lineage)
        if self.key_check is not None:
            if not hmac.compare_digest(self.key_check, key_check(key)):
                raise StateError(
                    f"{STATE_KEY_ENV} is not the key {where} was written with (its key check "
                    "does not match): set the right key. With a wrong one, every secret "
                    "would look changed"
                )
        elif self.hash_key and self.resources:
            raise StateError(
                f"{where} keeps its own hash key, but {STATE_KEY_ENV} is set. Unset it to use "
                f"the state as it is; or, to move the state to the external key, delete its "
                f'"hash_key" line: the next apply then sends each secret once more'
            )
        return dataclasses.replace(self, hash_key=key, key_check=key_check(key))


# -- `ResourceState.extra` of a number bought from Twilio ---------------------------------
# The only place these keys are spelled: everything else goes through the functions below.
_PURCHASE = "purchase"  # the number the entry has (or, while buying, the wish for one)
_REPLACED = "replaced"  # numbers it had and has not let go yet (released or kept)


def bought_number(extra: Mapping[str, Any]) -> dict[str, Any] | None:
    """The purchase record of an entry: criteria, `account`, `marker`, and `number`/`sid`
    once Twilio sold it."""
    bought = extra.get(_PURCHASE)
    return dict(bought) if isinstance(bought, Mapping) else None


def replaced_numbers(extra: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The numbers an entry bought before its current one and has not let go yet (a
    list; one mapping in state written before there could be several)."""
    replaced = extra.get(_REPLACED)
    if isinstance(replaced, Mapping):
        return [dict(replaced)]
    if isinstance(replaced, list):
        return [dict(r) for r in replaced if isinstance(r, Mapping)]
    return []


def purchase_extra(extra: Mapping[str, Any]) -> dict[str, Any]:
    """Only the purchase keys of `extra` (what a bought number keeps through a replace)."""
    out: dict[str, Any] = {}
    if (bought := bought_number(extra)) is not None:
        out[_PURCHASE] = bought
    if replaced := replaced_numbers(extra):
        out[_REPLACED] = replaced
    return out


def with_purchase(
    extra: Mapping[str, Any],
    purchase: Mapping[str, Any] | None,
    replaced: list[dict[str, Any]],
) -> dict[str, Any]:
    """`extra` with its purchase record and replaced numbers set (None/[] removes them)."""
    out = {k: v for k, v in extra.items() if k not in (_PURCHASE, _REPLACED)}
    if purchase is not None:
        out[_PURCHASE] = dict(purchase)
    if replaced:
        out[_REPLACED] = [dict(r) for r in replaced]
    return out


def without_replaced(extra: Mapping[str, Any], sid: object) -> dict[str, Any]:
    """`extra` with the replaced number of SID `sid` let go."""
    left = [r for r in replaced_numbers(extra) if r.get("sid") != sid]
    return with_purchase(extra, bought_number(extra), left)


def derive_hash_key(external: str, lineage: str) -> str:
    """The hash key a state of `lineage` uses under the external key `external`."""
    message = f"provisioner state hash key:{lineage}".encode()
    return hmac.new(external.encode(), message, hashlib.sha256).hexdigest()


def key_check(key: str) -> str:
    """A short check of a hash key, kept in state to recognise a wrong external key."""
    return hmac.new(key.encode(), b"provisioner key check", hashlib.sha256).hexdigest()[:16]
