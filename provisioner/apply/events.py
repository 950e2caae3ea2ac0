"""What the apply engine reports while it runs. Renderers implement `ApplyEvents`; the
engine itself never prints."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from provisioner.plan.model import ResourceChange


class Outcome(StrEnum):
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"  # a change it depends on failed
    NOT_STARTED = "not started"  # interrupted before it began


@dataclass(frozen=True, slots=True)
class ChangeOutcome:
    change: ResourceChange
    status: Outcome
    id: str | None = None
    message: str | None = None
    elapsed: float = 0.0
    # The object as the API returned it after the change (None for deletes and failures).
    live: dict[str, Any] | None = None


class ApplyEvents(Protocol):
    def change_started(self, change: ResourceChange) -> None: ...

    def change_finished(self, outcome: ChangeOutcome) -> None: ...

    def note(self, address: str | None, message: str) -> None: ...


class NullEvents:
    """Events sink that ignores everything (library use, tests)."""

    def change_started(self, change: ResourceChange) -> None:
        pass

    def change_finished(self, outcome: ChangeOutcome) -> None:
        pass

    def note(self, address: str | None, message: str) -> None:
        pass
