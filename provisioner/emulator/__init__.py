"""The local Vapi API emulator ("the sandbox") and its hosting.

`VapiEmulator` is the WSGI app (`app`), `EmulatorStore` its object store (`store`),
`FaultProfile` the faults it injects (`faults`); `make_sandbox_transport` runs it
in-process for httpx, `running_server` / `serve_forever` over a socket (`server`).
Nothing outside the CLI's sandbox mode and the tests imports this package; `remote/`
and `apply/` never do. `twilio` (a fake Twilio API) is a separate module, imported
from `provisioner.emulator.twilio` directly.
"""

from __future__ import annotations

from provisioner.emulator.app import VapiEmulator as VapiEmulator
from provisioner.emulator.faults import ConnectionDropped as ConnectionDropped
from provisioner.emulator.faults import FaultProfile as FaultProfile
from provisioner.emulator.faults import RequestTimedOut as RequestTimedOut
from provisioner.emulator.server import SandboxTransport as SandboxTransport
from provisioner.emulator.server import make_sandbox_transport as make_sandbox_transport
from provisioner.emulator.server import running_server as running_server
from provisioner.emulator.server import serve_forever as serve_forever
from provisioner.emulator.store import EmulatorStore as EmulatorStore

__all__ = [
    "ConnectionDropped",
    "EmulatorStore",
    "FaultProfile",
    "RequestTimedOut",
    "SandboxTransport",
    "VapiEmulator",
    "make_sandbox_transport",
    "running_server",
    "serve_forever",
]
