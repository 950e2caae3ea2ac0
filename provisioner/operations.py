"""The wiring of each command: loader -> schema -> resolve -> state -> refresh -> plan -> apply.

I/O glue only: no click, no rendering, no business rules. Each function returns results
plus Diagnostics, or raises a ProvisionerError for aborts.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provisioner.diagnostics import Diagnostics
from provisioner.errors import ProvisionerError
from provisioner.graph import find_cycle
from provisioner.kinds import KINDS
from provisioner.manifest.loader import load_manifest
from provisioner.manifest.model import Manifest, build_manifest
from provisioner.manifest.schema import validate_schema
from provisioner.plan.differ import LiveSnapshot, make_plan
from provisioner.plan.model import Action, Plan, PlanMode
from provisioner.refresh import refresh_state
from provisioner.remote.client import RequestEvent, VapiClient
from provisioner.resolve import ResolvedManifest, resolve_manifest
from provisioner.settings import Settings
from provisioner.state.lock import LockInfo
from provisioner.state.model import StateFile
from provisioner.state.store import FileStateStore


@dataclass(frozen=True, slots=True)
class Validated:
    manifest: Manifest
    resolved: ResolvedManifest


@dataclass(frozen=True, slots=True)
class PlanResult:
    plan: Plan
    state: StateFile
    validated: Validated
    live: LiveSnapshot
    diagnostics: Diagnostics = field(default_factory=Diagnostics)


def validate(path: Path, environ: Mapping[str, str]) -> tuple[Validated | None, Diagnostics]:
    """Every problem in the manifest at once: YAML, schema, references, env vars, files, cycles."""
    loaded, diags = load_manifest(path)
    if loaded is None:
        return None, diags
    schema_diags = validate_schema(loaded)
    diags.extend(schema_diags)
    if not _sections_usable(loaded.data):
        return None, diags
    try:
        manifest = build_manifest(loaded)
    except (ValueError, TypeError, AttributeError, KeyError):
        # Schema errors already explain what is wrong with the structure.
        if not diags.has_errors():
            diags.error("the manifest's structure is invalid", file=loaded.source.file)
        return None, diags
    resolved, rdiags = resolve_manifest(manifest, environ)
    diags.extend(rdiags)
    edges = {a: r.depends_on for a, r in resolved.resources.items()}
    cycle = find_cycle(edges)
    if cycle:
        first = manifest.resources[cycle[0]]
        diags.error(
            "dependency cycle: " + " -> ".join(cycle),
            **manifest.source.where(first.path),
        )
    if diags.has_errors():
        return None, diags
    return Validated(manifest, resolved), diags


def _sections_usable(data: Any) -> bool:
    if not isinstance(data, dict):
        return False
    for kind in KINDS.values():
        node: Any = data
        for part in kind.section:
            if node is None:
                break
            if not isinstance(node, dict):
                return False
            node = node.get(part)
        if node is not None and (
            not isinstance(node, dict) or not all(isinstance(v, dict | None) for v in node.values())
        ):
            return False
    return True


def open_state(settings: Settings, manifest_path: Path) -> FileStateStore:
    return FileStateStore(settings.state_file_for(manifest_path))


@contextmanager
def open_client(
    settings: Settings, on_event: Callable[[RequestEvent], None] | None = None
) -> Iterator[VapiClient]:
    """The API client for these settings: the real API, or the sandbox in-process."""
    from provisioner.remote.limiter import RateLimiter

    transport = None
    if settings.sandbox:
        from provisioner.emulator import FaultProfile, make_sandbox_transport

        faults_text = settings.environ.get("PROVISIONER_SANDBOX_FAULTS")
        faults = FaultProfile.parse(faults_text) if faults_text else None
        settings.sandbox_dir.mkdir(parents=True, exist_ok=True)
        transport = make_sandbox_transport(settings.sandbox_data, faults)
    token = settings.token
    if not token:
        raise ProvisionerError(
            "no Vapi API key: set VAPI_TOKEN (or VAPI_API_KEY) to your private key, "
            "or use --sandbox to run against the local emulator"
        )
    limiter = RateLimiter(max_rps=settings.max_rps)
    import httpx

    client = VapiClient(
        settings.base_url,
        token,
        transport=transport,
        timeout=httpx.Timeout(settings.timeout, connect=min(5.0, settings.timeout)),
        limiter=limiter,
        on_event=on_event,
    )
    try:
        yield client
    finally:
        client.close()


def plan(
    settings: Settings,
    path: Path,
    client: VapiClient,
    *,
    mode: PlanMode = PlanMode.NORMAL,
    state: StateFile | None = None,
) -> tuple[PlanResult | None, Diagnostics]:
    """Validate, read state (no lock), refresh, and compute the plan."""
    validated, diags = validate(path, settings.environ)
    if validated is None:
        return None, diags
    if state is None:
        state = open_state(settings, path).read()
    live = refresh_state(client, state, parallelism=settings.parallelism)
    result = make_plan(validated.resolved.resources, state, live, mode=mode)
    _check_prevent_destroy(result, validated, diags)
    return PlanResult(result, state, validated, live, diags), diags


def _check_prevent_destroy(plan: Plan, validated: Validated, diags: Diagnostics) -> None:
    manifest = validated.manifest
    for c in plan.changes:
        if c.action not in (Action.DELETE, Action.REPLACE):
            continue
        config = manifest.resources.get(c.address)
        if config is not None and config.lifecycle.prevent_destroy:
            diags.error(
                f"{c.address} has lifecycle.preventDestroy set, but this plan would "
                f"{c.action.value} it ({c.reason.value})",
                **manifest.source.where((*config.path, "lifecycle", "preventDestroy")),
            )


def lock_info(command: str) -> LockInfo:
    return LockInfo.create(
        command=command, operation=command.split(" ")[1] if " " in command else command
    )


def hostname() -> str:
    return socket.gethostname()
