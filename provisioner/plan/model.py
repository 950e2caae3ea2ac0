"""The plan as data: what will change, why, and field by field. No I/O.

Only `plan.differ` creates plans; `apply.engine` executes them and `render.*` shows them.
`ResourceChange.body` is the only place that holds values to send (secrets still wrapped
in `Sensitive`); everything meant for display (`before`, `after`, `fields`) is redacted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

PLAN_FORMAT_VERSION = 1


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"
    # A Twilio number this entry gave up (replaced by another) whose release at Twilio
    # failed: released by a change of its own, after the entry's other change.
    RELEASE = "release"
    # `removed:` in the manifest: the entry leaves the state, the remote object stays (its
    # ownership marker cleared, so another manifest can import it).
    FORGET = "forget"
    NO_OP = "no-op"

    @property
    def is_change(self) -> bool:
        return self is not Action.NO_OP

    @property
    def is_destructive(self) -> bool:
        return self in (Action.DELETE, Action.REPLACE)


class ActionReason(StrEnum):
    """Why an action was chosen. For people only: never used to decide anything."""

    NEW = "new in the manifest"
    CREATE_UNFINISHED = "a previous create did not finish and nothing was found to adopt"
    DELETED_REMOTELY = "deleted outside the manifest"
    MANIFEST_CHANGED = "the manifest changed"
    DRIFT = "changed outside the manifest"
    REFERENCE_CHANGED = "a resource it references is being recreated"
    CANNOT_UPDATE = "a field that cannot be updated in place changed"
    REPLACE_REQUESTED = "replace requested"
    # `removed:` in the manifest: the entry leaves the state, the remote object stays.
    FORGET_REQUESTED = "removed from management (the remote object stays)"
    REMOVED = "removed from the manifest"
    DESTROY = "destroy requested"
    RELEASE_PENDING = "a number it replaced could not be released at Twilio yet"
    CYCLE_BROKEN = "sets what its create left out to break a reference cycle"
    UNCHANGED = "unchanged"


class PlanMode(StrEnum):
    NORMAL = "normal"
    DESTROY = "destroy"


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field that differs. `path` is from the resource body root; values redacted."""

    path: tuple[str | int, ...]
    before: Any
    after: Any
    # True when the remote moved away from what we last applied (changed outside the manifest).
    drift: bool = False
    # True when changing this field forces a replace.
    forces_replace: bool = False

    @property
    def dotted(self) -> str:
        out = ""
        for p in self.path:
            out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
        return out


MISSING = object()  # sentinel: a field absent on one side of a FieldChange


@dataclass(frozen=True, slots=True)
class ResourceChange:
    address: str
    kind: str
    action: Action
    reason: ActionReason
    # The remote ID being changed (None for a create).
    id: str | None = None
    # Redacted views for display and plan files.
    before: Mapping[str, Any] | None = None
    after: Mapping[str, Any] | None = None
    fields: tuple[FieldChange, ...] = ()
    # Remote edits made outside the manifest, reported apart from our own changes.
    drift: tuple[FieldChange, ...] = ()
    # Addresses this change must wait for (their creates/updates first).
    depends_on: tuple[str, ...] = ()
    # Every address the desired body references (recorded in state for delete ordering).
    references: tuple[str, ...] = ()
    # What the API receives: the full desired body, references still unbound (RefString).
    body: Mapping[str, Any] | None = field(default=None, compare=False)
    # Human-readable name of the resource (its `name`, if any).
    name: str | None = None
    warnings: tuple[str, ...] = ()
    # A Twilio number bought by this create, or released by this delete or release: JSON-ready, with
    # `action` (a `plan.purchase.PurchaseStep` value) and the keys of `purchase:`
    # (country, type, areaCode, contains, release) plus `number`/`sid` once bought and
    # `monthly`/`currency` once priced. See `provisioner.costs`.
    purchase: Mapping[str, Any] | None = None
    # An update that completes this plan's create of the same address: the fields a
    # create left out to break a reference cycle (a handoff tool's `destinations`).
    deferred: bool = False
    # Fields this environment sets itself (#12), as (field path, where): an override or
    # a per-environment variable, so a reviewer sees why prod differs from dev.
    origins: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        """Unique within a plan: the address, or for a release the address and the number's
        SID (an entry may have a change of its own and several numbers to release), or for
        a deferred update the address marked as such."""
        if self.action is Action.RELEASE:
            return f"{self.address}#release:{(self.purchase or {}).get('sid')}"
        if self.deferred:
            return f"{self.address}#deferred"
        return self.address

    @property
    def label(self) -> str:
        """The address as people read it: a release names the number it gives up."""
        if self.action is Action.RELEASE:
            return f"{self.address} (replaced {(self.purchase or {}).get('number')})"
        return self.address


@dataclass(frozen=True, slots=True)
class DataRead:
    """An object a `data:` lookup found: read by the plan, never changed."""

    address: str  # data.credential.sip-trunk
    kind: str
    id: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    changes: tuple[ResourceChange, ...]
    mode: PlanMode = PlanMode.NORMAL
    # The state the plan was made against; apply refuses a plan whose state moved on.
    lineage: str = ""
    serial: int = 0
    warnings: tuple[str, ...] = ()
    # State entries re-keyed by the manifest's `moved` list ("assistant.a -> assistant.b").
    moved: tuple[str, ...] = ()
    # The monthly cost of the phone numbers, JSON-ready (`provisioner.costs.estimate`).
    cost: Mapping[str, Any] | None = None
    # What the manifest's `data:` lookups found (JSON plan format 1.2).
    reads: tuple[DataRead, ...] = ()
    # `--target`: the addresses asked for (empty: a full plan), and the addresses with a
    # change that the partial plan left out (still pending; a full plan shows them).
    targets: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()

    @property
    def partial(self) -> bool:
        return bool(self.targets)

    # The manifest's environment the plan is for (#12); None without environments.
    environment: str | None = None

    def counts(self) -> dict[str, int]:
        out = {a.value: 0 for a in Action}
        for c in self.changes:
            out[c.action.value] += 1
        return out

    @property
    def has_changes(self) -> bool:
        return any(c.action.is_change for c in self.changes)

    def pending(self) -> tuple[ResourceChange, ...]:
        return tuple(c for c in self.changes if c.action.is_change)

    def drifted(self) -> tuple[ResourceChange, ...]:
        return tuple(
            c for c in self.changes if c.drift or c.reason is ActionReason.DELETED_REMOTELY
        )
