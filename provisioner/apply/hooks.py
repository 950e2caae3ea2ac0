"""How kind-specific work outside the remote API plugs into the apply engine.

The engine calls a `ChangeHook` at fixed points of each change (before a replace deletes,
building a create's body, after a create, after a delete) and for changes of the hook's own
kind; `Effects` is all the hook gets from it. Buying and releasing Twilio numbers is one
(`provisioner.apply.purchases`): the engine knows nothing of Twilio.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from provisioner.plan.model import ResourceChange
from provisioner.state.model import StateFile


@dataclass(frozen=True, slots=True)
class Effects:
    """What a hook may do from inside a change: read the state, change it (each change
    saved at once), say something, and mark that a request with an effect went out (so
    an interrupt after it cannot count the change as not started)."""

    state: Callable[[], StateFile]
    mutate: Callable[[Callable[[StateFile], None]], None]
    note: Callable[[str, str], None]
    began: Callable[[], None]


class ChangeHook(Protocol):
    """Kind-specific work outside Vapi around a change, called at fixed points
    (`provisioner.apply.purchases.Purchases`: numbers bought at Twilio)."""

    def before_replace(self, fx: Effects, change: ResourceChange, body: Mapping[str, Any]) -> None:
        """A replace, before the old object is deleted."""

    def create_body(
        self, fx: Effects, change: ResourceChange, body: dict[str, Any]
    ) -> dict[str, Any]:
        """The body to create (with what the hook provides, e.g. a bought number)."""

    def carried(self, fx: Effects, address: str) -> dict[str, Any]:
        """The state extras of `address` that outlive its remote object."""

    def after_create(self, fx: Effects, change: ResourceChange) -> None:
        """After the created object is recorded in state."""

    def after_delete(self, fx: Effects, change: ResourceChange) -> dict[str, Any]:
        """After the object is deleted remotely; returns the extras to keep (the entry
        stays, without an ID, while there are any)."""

    def run(self, fx: Effects, change: ResourceChange) -> bool:
        """Run a change of the hook's own (not a create, update or delete); False if
        `change` is not one."""


class NoHook:
    """No work outside the remote API: what the engine uses without a hook."""

    def before_replace(self, fx: Effects, change: ResourceChange, body: Mapping[str, Any]) -> None:
        pass

    def create_body(
        self, fx: Effects, change: ResourceChange, body: dict[str, Any]
    ) -> dict[str, Any]:
        return body

    def carried(self, fx: Effects, address: str) -> dict[str, Any]:
        return {}

    def after_create(self, fx: Effects, change: ResourceChange) -> None:
        pass

    def after_delete(self, fx: Effects, change: ResourceChange) -> dict[str, Any]:
        return {}

    def run(self, fx: Effects, change: ResourceChange) -> bool:
        return False
