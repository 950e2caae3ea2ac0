"""Fixtures of the hardening tests: the emulator on a real socket (as in gitops)."""

from __future__ import annotations

from tests.gitops.conftest import LiveApi, live_api

__all__ = ["LiveApi", "live_api"]
