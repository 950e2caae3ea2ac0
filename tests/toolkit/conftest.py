"""Fixtures: the emulator over real HTTP, shared with the GitOps tests."""

from tests.gitops.conftest import live_api

__all__ = ["live_api"]
