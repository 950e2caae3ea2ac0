"""Run settings, built once by the CLI from flags and the environment.

Nothing else in the package reads `os.environ`: the environment is captured here and
passed down explicitly (manifests' `${env:...}` resolve against `Settings.environ`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_BASE_URL = "https://api.vapi.ai"
SANDBOX_BASE_URL = "http://sandbox.vapi.local"
SANDBOX_TOKEN = "sandbox"
STATE_DIR = Path("state")
SANDBOX_DIR = STATE_DIR / ".sandbox"


@dataclass(frozen=True, slots=True)
class Settings:
    environ: Mapping[str, str] = field(default_factory=dict)
    sandbox: bool = False
    state_path: Path | None = None
    # `--state s3://...` or `--state postgres://...` (see state/backend.py).
    state_url: str | None = None
    lock_timeout: float = 0.0
    parallelism: int = 10
    max_rps: float | None = None
    timeout: float = 10.0
    # The sandbox's data folder (emulated Vapi objects persist here between runs).
    sandbox_dir: Path = SANDBOX_DIR

    @property
    def base_url(self) -> str:
        if self.sandbox:
            return SANDBOX_BASE_URL
        return (self.environ.get("VAPI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")

    @property
    def token(self) -> str | None:
        if self.sandbox:
            return SANDBOX_TOKEN
        return self.environ.get("VAPI_TOKEN") or self.environ.get("VAPI_API_KEY") or None

    def state_file_for(self, manifest: Path) -> Path:
        """`--state` if given, else `state/<manifest stem>.json`; sandbox runs keep their own."""
        if self.state_path is not None:
            return self.state_path
        base = self.sandbox_dir if self.sandbox else STATE_DIR
        return base / f"{manifest.stem}.json"

    @property
    def sandbox_data(self) -> Path:
        """The Vapi emulator's objects (in a folder of its own: no manifest's state file,
        `state/.sandbox/<stem>.json`, can ever collide with it)."""
        return self.sandbox_dir / "emulator" / "vapi.json"

    @property
    def sandbox_twilio_data(self) -> Path:
        """The Twilio emulator's bought numbers."""
        return self.sandbox_dir / "emulator" / "twilio.json"
