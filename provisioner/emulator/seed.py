"""What the sandbox holds before any manifest touched it: objects a real org already has,
made in the dashboard, for `data:` lookups to find (README, "The sandbox").

Only the CLI's sandbox and `sandbox serve` start with them, and only on a fresh data file;
an emulator built directly (tests) starts empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from provisioner.emulator.store import EmulatorStore

__all__ = ["DASHBOARD_OBJECTS", "seed_dashboard_objects"]

# (kind, body) as the dashboard would have made them: a SIP trunk credential (no secret:
# the trunk authenticates this org by its gateway's IP).
DASHBOARD_OBJECTS: tuple[tuple[str, Mapping[str, Any]], ...] = (
    (
        "credential",
        {
            "provider": "byo-sip-trunk",
            "name": "Acme SIP trunk",
            "gateways": [{"ip": "203.0.113.10", "inboundEnabled": True}],
        },
    ),
)


def seed_dashboard_objects(store: EmulatorStore) -> None:
    """Add `DASHBOARD_OBJECTS` to a store that has never held anything."""
    path = store.path
    if path is not None and path.exists():
        return
    for kind, body in DASHBOARD_OBJECTS:
        store.insert(kind, body)
