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
        """`--state` if given, else `<repository root>/state/<manifest's repository path,
        extension dropped>.json`; sandbox runs keep their own under `state/.sandbox/`
        (docs/state-identity.md). Shown relative to the current directory when inside it."""
        if self.state_path is not None:
            return self.state_path
        from provisioner.errors import StateError
        from provisioner.state.identity import locate, shown

        path = shown(locate(manifest).state_file(sandbox=self.sandbox))
        if self.sandbox and path.resolve() in (
            self.sandbox_data.resolve(),
            self.sandbox_twilio_data.resolve(),
        ):
            raise StateError(
                f"the state of {manifest} would be {path}, where the sandbox keeps its "
                "emulated objects: give another state file with --state"
            )
        return path

    @property
    def sandbox_data(self) -> Path:
        """The Vapi emulator's objects (in a folder of its own: no manifest's state file,
        `state/.sandbox/<stem>.json`, can ever collide with it)."""
        return self.sandbox_dir / "emulator" / "vapi.json"

    @property
    def sandbox_twilio_data(self) -> Path:
        """The Twilio emulator's bought numbers."""
        return self.sandbox_dir / "emulator" / "twilio.json"
