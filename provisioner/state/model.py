"""The state file's data: which remote object each manifest address owns. Pure, no I/O.

Versioned the Terraform way: `format_version` (the file layout, upgraded on read),
`lineage` (a UUID set once when the state is created: two files with different lineages
describe different deployments and must never be merged), and `serial` (bumped by the
store on every write that changes content).

State holds IDs, what was last applied, and keyed hashes of secrets; never a secret in clear.
"""

from __future__ import annotations

import copy
import secrets
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

FORMAT_VERSION = 1


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
    # Key for the keyed hashes of secrets; random per lineage.
    hash_key: str = ""
    resources: dict[str, ResourceState] = field(default_factory=dict)

    @classmethod
    def new(cls) -> StateFile:
        return cls(lineage=str(uuid.uuid4()), hash_key=secrets.token_hex(32))

    def copy(self) -> StateFile:
        return StateFile.from_dict(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "lineage": self.lineage,
            "serial": self.serial,
            "hash_key": self.hash_key,
            "resources": {a: r.to_dict() for a, r in sorted(self.resources.items())},
        }

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
        )

    def content_equal(self, other: StateFile) -> bool:
        """Same content, ignoring the serial (the store bumps serial only on real change)."""
        a, b = self.to_dict(), other.to_dict()
        a.pop("serial")
        b.pop("serial")
        return a == b
