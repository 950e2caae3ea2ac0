"""Run settings, built once by the CLI from flags and the environment.

Nothing else in the package reads `os.environ`: the environment is captured here and
passed down explicitly (manifests' `${env:...}` resolve against `Settings.environ`). The
settings that come from it (Vapi's and Twilio's base URLs and credentials, the HTTP
timeout) are read here, once, when Settings is built.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from provisioner.errors import ProvisionerError

if TYPE_CHECKING:
    from provisioner.manifest.environments import Environment

DEFAULT_BASE_URL = "https://api.vapi.ai"
SANDBOX_BASE_URL = "http://sandbox.vapi.local"
SANDBOX_TOKEN = "sandbox"
STATE_DIR = Path("state")
SANDBOX_DIR = STATE_DIR / ".sandbox"
DEFAULT_TIMEOUT = 10.0
DEFAULT_TOKEN_VAR = "VAPI_TOKEN"
# Seconds each HTTP request may wait for an answer (a short one makes a dead endpoint
# fail fast; tests use it).
TIMEOUT_VAR = "PROVISIONER_HTTP_TIMEOUT"
# The Twilio sandbox: an in-process emulator that takes any AC SID and this token.
SANDBOX_TWILIO_URL = "http://twilio.sandbox.local"
SANDBOX_TWILIO_ACCOUNT_SID = "AC" + "0" * 32
SANDBOX_TWILIO_TOKEN = "sandbox"


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
    timeout: float = DEFAULT_TIMEOUT
    # The sandbox's data folder (emulated Vapi objects persist here between runs).
    sandbox_dir: Path = SANDBOX_DIR
    # Twilio: read from TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_BASE_URL and
    # TWILIO_PRICING_BASE_URL unless given (an empty variable counts as unset); the
    # sandbox's own under `sandbox`. None base URLs mean Twilio's public ones.
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_base_url: str | None = None
    twilio_pricing_base_url: str | None = None
    # The manifest's environment selected with --env (#12): its key, URL, state, sandbox.
    environment: Environment | None = None
    # --allow-empty-org: a state whose objects are all missing may create them anew.
    allow_empty_org: bool = False

    def __post_init__(self) -> None:
        env = self.environ
        if self.sandbox:
            given = {
                "twilio_account_sid": SANDBOX_TWILIO_ACCOUNT_SID,
                "twilio_auth_token": SANDBOX_TWILIO_TOKEN,
                "twilio_base_url": SANDBOX_TWILIO_URL,
                "twilio_pricing_base_url": SANDBOX_TWILIO_URL,
            }
        else:
            given = {
                "twilio_account_sid": (env.get("TWILIO_ACCOUNT_SID") or "").strip(),
                # Not stripped: a token with whitespace is refused, never silently changed.
                "twilio_auth_token": env.get("TWILIO_AUTH_TOKEN") or "",
                "twilio_base_url": (env.get("TWILIO_BASE_URL") or "").strip().rstrip("/"),
                "twilio_pricing_base_url": (env.get("TWILIO_PRICING_BASE_URL") or "")
                .strip()
                .rstrip("/"),
            }
        for name, value in given.items():
            if getattr(self, name) is None and value:
                object.__setattr__(self, name, value)
        text = env.get(TIMEOUT_VAR)
        if text and self.timeout == DEFAULT_TIMEOUT:
            object.__setattr__(self, "timeout", _seconds(TIMEOUT_VAR, text))

    @property
    def base_url(self) -> str:
        if self.sandbox:
            return SANDBOX_BASE_URL
        if self.environment is not None and self.environment.base_url:
            return self.environment.base_url.rstrip("/")
        return (self.environ.get("VAPI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")

    @property
    def token(self) -> str | None:
        if self.sandbox:
            return SANDBOX_TOKEN
        var = self.environment.api_key_var if self.environment else DEFAULT_TOKEN_VAR
        if var != DEFAULT_TOKEN_VAR:
            return self.environ.get(var) or None
        return self.environ.get("VAPI_TOKEN") or self.environ.get("VAPI_API_KEY") or None

    @property
    def env_name(self) -> str | None:
        """The `--env` name, None for a manifest without environments."""
        return self.environment.name if self.environment else None

    @property
    def token_var(self) -> str:
        """The environment variable the Vapi key is read from (for messages)."""
        return self.environment.api_key_var if self.environment else DEFAULT_TOKEN_VAR

    def state_file_for(self, manifest: Path) -> Path:
        """`--state` if given, else `<repository root>/state/<manifest's repository path,
        extension dropped>.json`; sandbox runs keep their own under `state/.sandbox/`
        (docs/state-identity.md). Shown relative to the current directory when inside it."""
        if self.state_path is not None:
            return self.state_path
        from provisioner.errors import StateError
        from provisioner.state.identity import locate, shown

        env = self.environment  # (its own `state:` is a backend's: state/backend.py)
        located = locate(manifest, env.name if env else None)
        path = shown(located.state_file(sandbox=self.sandbox))
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
        return self.sandbox_dir / "emulator" / self._per_environment("vapi.json")

    @property
    def sandbox_twilio_data(self) -> Path:
        """The Twilio emulator's bought numbers."""
        return self.sandbox_dir / "emulator" / self._per_environment("twilio.json")

    def _per_environment(self, name: str) -> str:
        """Each environment its own sandbox org: `vapi.dev.json`, `vapi.prod.json`."""
        if self.environment is None:
            return name
        stem, _, ext = name.rpartition(".")
        return f"{stem}.{self.environment.name}.{ext}"


def _seconds(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ProvisionerError(f"{name} must be a number of seconds above 0, not {text!r}")
    return value
