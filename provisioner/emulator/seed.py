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


# When they were "made in the dashboard": before anything a manifest makes.
_MADE_AT = "2026-01-05T09:30:00.000Z"


def seed_dashboard_objects(store: EmulatorStore) -> None:
    """Start a store that has never held anything with `DASHBOARD_OBJECTS` (kept in
    memory until the first write: a plan alone never creates the data file)."""
    store.seed(DASHBOARD_OBJECTS, _MADE_AT)
