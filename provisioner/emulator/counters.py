"""What the emulator counts for its admin API (`GET /__emulator/stats`), and the requests
it holds on demand (`PUT /__emulator/hold`, for kill tests)."""

from __future__ import annotations

import threading
from typing import Any

from provisioner.emulator.routes import emulated_kinds

# How long a held request waits for `/__emulator/release` at most.
_HOLD_LIMIT = 120.0


class Stats:
    """Counters for `/__emulator/stats` (Vapi routes only, admin calls excluded)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.by_method: dict[str, int] = {}
        self.by_status: dict[str, int] = {}
        self.creates: dict[str, int] = {kind: 0 for kind in emulated_kinds()}
        self.dropped = 0
        self.hung = 0
        self.ambiguous_posts = 0  # creates performed, then answered 502 or dropped

    def arrive(self, method: str) -> int:
        with self.lock:
            self.requests += 1
            self.by_method[method] = self.by_method.get(method, 0) + 1
            return self.requests

    def answer(self, status: int | None) -> None:
        with self.lock:
            if status is None:
                self.dropped += 1
            else:
                key = str(status)
                self.by_status[key] = self.by_status.get(key, 0) + 1

    def created(self, kind: str) -> None:
        with self.lock:
            self.creates[kind] += 1

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": self.requests,
                "by_method": dict(self.by_method),
                "by_status": dict(self.by_status),
                "rate_limited": self.by_status.get("429", 0),
                "dropped": self.dropped,
                "hung": self.hung,
                "ambiguous_posts": self.ambiguous_posts,
                "creates": dict(self.creates),
            }


class Holds:
    """`PUT /__emulator/hold`: make one future request wait until released."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.target: int | None = None
        self.phase = "before"
        self.held = 0
        self.generation = 0

    def arm(self, target: int, phase: str) -> None:
        with self.cond:
            self.target = target
            self.phase = phase

    def release(self) -> None:
        with self.cond:
            self.target = None
            self.generation += 1
            self.cond.notify_all()

    def wait_if_due(self, number: int, phase: str) -> bool:
        """Block while request `number` is held at `phase`; True if it was held."""
        with self.cond:
            if self.target != number or self.phase != phase:
                return False
            self.target = None
            generation = self.generation
            self.held += 1
            try:
                self.cond.wait_for(lambda: self.generation != generation, timeout=_HOLD_LIMIT)
            finally:
                self.held -= 1
            return True
