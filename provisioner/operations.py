"""The wiring of each command: loader -> schema -> resolve -> state -> refresh -> plan -> apply.

I/O glue only: no click, no rendering, no business rules. Each function returns results
plus Diagnostics, or raises a ProvisionerError for aborts.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from provisioner import costs, importer, unread_secrets
from provisioner.diagnostics import Diagnostics
from provisioner.errors import ProvisionerError, RemoteError
from provisioner.kinds import KINDS
from provisioner.lookups import read_lookups
from provisioner.moves import apply_moves
from provisioner.org_guard import check_org, guard_org
from provisioner.ownership import check_lineage, look_before_creating
from provisioner.plan.checks import (
    check_prevent_destroy,
    check_twilio_credentials,
    record_protection,
)
from provisioner.plan.differ import LiveSnapshot, make_plan
from provisioner.plan.model import Plan, PlanMode
from provisioner.plan.normalize import comparable, live_view
from provisioner.plan.origins import with_origins
from provisioner.plan.protection import check_protected
from provisioner.plan.targeting import Selection, target_plan
from provisioner.purchasing import PurchaseError, Twilio
from provisioner.purchasing import open_twilio as open_twilio
from provisioner.refresh import adopt_found, refresh_state
from provisioner.remote.client import RequestEvent, VapiClient
from provisioner.resolve import bind
from provisioner.settings import Settings
from provisioner.state import backend
from provisioner.state.backend import Backend
from provisioner.state.config import BackendKind
from provisioner.state.identity import locate, move_old_state, old_default
from provisioner.state.lock import LockInfo
from provisioner.state.model import STATE_KEY_ENV, ResourceState, StateFile
from provisioner.validation import Validated, validate


class StateWriter(Protocol):
    def read(self) -> StateFile: ...

    def write(self, state: StateFile) -> StateFile: ...

    def describe(self) -> str: ...

    def version(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class PlanResult:
    plan: Plan
    state: StateFile
    validated: Validated
    live: LiveSnapshot
    diagnostics: Diagnostics = field(default_factory=Diagnostics)


def open_state(
    settings: Settings, manifest_path: Path, notify: Callable[[str], None] | None = None
) -> Backend:
    """The state store of `manifest_path`: `--state`, the manifest's `state:`, or the file
    at its default path. A state recording another manifest is refused when read. A state
    at the old default (`state/<stem>.json` in the current directory) is moved to the new
    one first, with a notice (`notify`, default stderr), if it records this manifest or none."""
    # Empty counts as unset: CI systems expand a secret nobody defined to "". A state
    # that uses an external key still refuses to run without it (its key_check).
    external_key = settings.environ.get(STATE_KEY_ENV) or None
    env = settings.environment
    located = locate(manifest_path, env.name if env else None)
    path = settings.state_file_for(manifest_path)
    config = backend.configured(
        manifest_path,
        state_path=settings.state_path,
        state_url=settings.state_url,
        sandbox=settings.sandbox,
        default=path,
        environ=settings.environ,
        default_key=located.key.as_posix(),
        environment=env.name if env else None,
        environment_block=env.state if env else None,
    )
    if config.kind is BackendKind.LOCAL and settings.state_path is None and env is None:
        old = old_default(manifest_path, sandbox=settings.sandbox)
        if config.path == path and move_old_state(old, path, located.owner):
            (notify or _to_stderr)(
                f"Moved the state of {manifest_path} from {old} to {path}: states are now "
                "kept by the manifest's path in its repository, not by the current folder."
            )
    return backend.open_backend(
        config, environ=settings.environ, external_key=external_key, owner=located.owner
    )


def _to_stderr(message: str) -> None:
    sys.stderr.write(f"Note: {message}\n")


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
        settings.sandbox_data.parent.mkdir(parents=True, exist_ok=True)
        transport = make_sandbox_transport(settings.sandbox_data, faults)
    token = settings.token
    if not token:
        raise ProvisionerError(
            f"no Vapi API key: set {settings.token_var}"
            + (" (or VAPI_API_KEY)" if settings.environment is None else "")
            + " to your private key, or use --sandbox to run against the local emulator"
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


@dataclass(frozen=True, slots=True)
class Prepared:
    """Everything a plan is made from: the manifest, the state and what refresh saw."""

    validated: Validated
    state: StateFile
    live: LiveSnapshot
    moves: tuple[str, ...] = ()
    # What was adopted before creating (docs/state-identity.md), for the plan's warnings.
    notes: tuple[str, ...] = ()


def prepare(
    settings: Settings,
    path: Path,
    client: VapiClient,
    *,
    store: StateWriter | None = None,
    checked: tuple[Validated, Diagnostics] | None = None,
    look_for_existing: bool = True,
    selection: Selection | None = None,
) -> tuple[Prepared | None, Diagnostics]:
    """Validate, read state, re-key `moved` entries, refresh, adopt interrupted creates,
    and (`look_for_existing`) look for what the plan would create (`look_before_creating`).

    Without `store` (a plan) the state is read without a lock and changes stay in memory;
    with it (an apply holding the lock) they are saved first, so the plan's serial is the
    one on disk. `checked` is the manifest already validated by the caller (not redone).
    `selection` (`--target`, `--replace`) is checked against the manifest and the state
    before anything is refreshed or written.
    """
    validated: Validated | None
    if checked is not None:
        validated, diags = checked[0], Diagnostics()
        diags.extend(checked[1])
    else:
        validated, diags = validate(path, settings.environ, environment=settings.env_name)
    if validated is None:
        return None, diags
    reader = store or open_state(settings, path)
    original = reader.read()
    state, moves, mdiags = apply_moves(original, validated.manifest.moved)
    diags.extend(mdiags)
    if selection is not None:
        for problem in selection.problems(validated.resolved.resources, state.resources):
            diags.error(problem)
    if diags.has_errors():
        return None, diags
    if not state.resources and validated.manifest.resources:
        # Refresh reads nothing for an empty state: without this, a wrong API key would
        # pass every plan (in CI, on every pull request) and surface only at apply.
        client.check_access()
    live = refresh_state(client, state, parallelism=settings.parallelism)
    state = guard_org(state, live, settings)
    check_lineage(state, live, reader, client)
    state, live = adopt_found(state, live)
    lookups = validated.manifest.lookups
    if lookups:
        found, ldiags = read_lookups(client, lookups, validated.manifest.source.where)
        diags.extend(ldiags)
        if ldiags.has_errors():
            return None, diags
        live = dataclasses.replace(live, lookups=found)
    notes: tuple[str, ...] = ()
    if look_for_existing:
        state, live, notes = look_before_creating(path, validated, state, live, client, settings)
    state = record_protection(state, validated.manifest)
    state = _record_unread_secrets(state, validated, diags, recording=store is not None)
    # Compare with what was read (not a fresh read: a missing file reads as a new lineage).
    if store is not None and (moves or not state.content_equal(original)):
        state = store.write(state)
    return Prepared(validated, state, live, tuple(moves), notes), diags


def plan(
    settings: Settings,
    path: Path,
    client: VapiClient,
    *,
    mode: PlanMode = PlanMode.NORMAL,
    store: StateWriter | None = None,
    numbers: Twilio | None = None,
    checked: tuple[Validated, Diagnostics] | None = None,
    selection: Selection | None = None,
) -> tuple[PlanResult | None, Diagnostics]:
    """Prepare, then compute the plan (and check lifecycle rules). With `numbers`, the
    plan carries what its phone numbers cost per month (Twilio's prices). `selection`:
    replace some resources, or plan only some (a partial plan)."""
    selection = selection or Selection()
    prepared, diags = prepare(
        settings,
        path,
        client,
        store=store,
        checked=checked,
        look_for_existing=mode is PlanMode.NORMAL,
        selection=selection,
    )
    if prepared is None:
        return None, diags
    validated, state, live = prepared.validated, prepared.state, prepared.live
    result = make_plan(
        validated.resolved.resources,
        state,
        live,
        mode=mode,
        replace=frozenset(selection.replace),
        forget=frozenset(str(r.source) for r in validated.manifest.removed),
    )
    result = dataclasses.replace(
        result, moved=prepared.moves, warnings=(*prepared.notes, *result.warnings)
    )
    result = target_plan(result, selection.targets)
    if numbers is not None:
        result = price_plan(result, validated, numbers)
    env = validated.environment
    result = with_origins(result, validated.origins, env.name if env else None)
    check_prevent_destroy(result, validated, state, diags)
    diags.extend(check_protected(result, env))
    check_twilio_credentials(result, validated, diags)
    return PlanResult(result, state, validated, live, diags), diags


def twilio_numbers(validated: Validated) -> list[tuple[str, Mapping[str, Any]]]:
    """(address, body) of each Twilio phone number of the manifest, in manifest order."""
    return [
        (address, r.body)
        for address, r in validated.resolved.resources.items()
        if r.kind.behaviour.uses_twilio_account(r.body)
    ]


def remember_twilio_accounts(validated: Validated, numbers: Twilio) -> None:
    """Give `numbers` the Twilio credentials of the manifest's numbers (for prices, and
    for releasing a number whose entry is being deleted)."""
    for _, body in twilio_numbers(validated):
        try:
            numbers.remember(body)
        except PurchaseError:
            pass  # reported where a price or a purchase needs them


def price_plan(the_plan: Plan, validated: Validated, numbers: Twilio) -> Plan:
    """The plan with its numbers' prices: each purchase's, and the monthly total."""
    remember_twilio_accounts(validated, numbers)
    if not costs.needed_prices(the_plan) and not any(
        KINDS[c.kind].behaviour.billed for c in the_plan.changes
    ):
        return the_plan
    priced = costs.with_purchase_prices(the_plan, numbers.price)
    estimate = costs.estimate(priced, numbers.price, numbers.price_problem)
    problems = (*numbers.price_problems(), *costs.free_number_warnings(the_plan))
    return dataclasses.replace(
        priced, cost=estimate, warnings=tuple(dict.fromkeys((*priced.warnings, *problems)))
    )


def _record_unread_secrets(
    state: StateFile, validated: Validated, diags: Diagnostics, *, recording: bool
) -> StateFile:
    """Imported secrets (never readable): an apply records the hash of the manifest's value
    as what Vapi holds, without sending it, and says so once; a plan says it will."""
    marked = [a for a, rs in state.resources.items() if rs.extra.get(unread_secrets.UNREAD_KEY)]
    if not marked:
        return state
    out = state.copy() if recording else state
    ids = {a: r.id for a, r in state.resources.items() if r.id}
    for addr in marked:
        res = validated.resolved.resources.get(addr)
        if res is None:
            continue
        rs = out.resources[addr]
        want = comparable(bind(res.body, ids), state.hash_key)
        applied, extra, fields = unread_secrets.record(rs.extra, rs.applied, want)
        if not fields:
            continue
        said = ", ".join(fields)
        if recording:
            out.resources[addr] = dataclasses.replace(rs, applied=applied, extra=extra)
            diags.warning(
                f"{addr}: {said} cannot be read back from Vapi; recorded the hash of the "
                "manifest's value as what Vapi holds, without sending it (change the "
                "value to send a new one)"
            )
        else:
            diags.warning(
                f"{addr}: {said} cannot be read back from Vapi; the manifest's value is taken "
                "as what Vapi holds (the next apply records its hash, sending nothing)"
            )
    return out


def lock_info(command: str) -> LockInfo:
    return LockInfo.create(
        command=command, operation=command.split(" ")[1] if " " in command else command
    )


def accept_drift(store: StateWriter, result: PlanResult) -> int:
    """Record the remote as it is as what was last applied, for every drifted resource.

    The manifest is not changed: a later plan then shows the difference as an ordinary
    update (the manifest wins), no longer as drift. Returns how many entries changed.
    """
    state = store.read()
    count = 0
    for change in result.plan.drifted():
        rs = state.resources.get(change.address)
        live = result.live.objects.get(change.address)
        if rs is None:
            continue
        if live is None:
            state.resources.pop(change.address)
        else:
            kind = KINDS[rs.kind]
            rs.applied = live_view(kind, live, rs.applied, rs.applied, state.hash_key)
            rs.remote_updated_at = live.get("updatedAt")
        count += 1
    if count:
        store.write(state)
    return count


def import_resource(
    settings: Settings,
    manifest: Path,
    address: str,
    resource_id: str,
    client: VapiClient,
    store: StateWriter,
) -> dict[str, Any]:
    """Adopt the existing remote object `resource_id` as `address` of the manifest."""
    validated, diags = validate(manifest, settings.environ, environment=settings.env_name)
    if validated is None:
        raise ManifestInvalid(diags)
    resolved = validated.resolved.resources.get(address)
    if resolved is None:
        known = ", ".join(validated.resolved.resources) or "none"
        raise ProvisionerError(
            f"{address} is not declared in {manifest} (declared: {known}); add it first"
        )
    state = store.read()
    if address in state.resources and state.resources[address].id:
        raise ProvisionerError(
            f"{address} is already managed (ID {state.resources[address].id}); "
            "to manage another object, remove it from the state first"
        )
    for other, rs in state.resources.items():
        if rs.id == resource_id:
            raise ProvisionerError(f"{resource_id} is already managed as {other}")
    kind = resolved.kind
    try:
        live = client.get(kind, resource_id)
    except RemoteError as exc:
        if exc.status != 400:
            raise
        # The API checks the ID's form first ("Validation failed (uuid is expected)").
        raise ProvisionerError(
            f"{resource_id} is not a valid {kind.label} ID: {exc.message}"
        ) from exc
    if live is None:
        raise ProvisionerError(f"there is no {kind.label} with ID {resource_id} in Vapi")
    ids = {a: r.id for a, r in state.resources.items() if r.id}
    shape = comparable(bind(resolved.body, ids), state.hash_key)
    applied = live_view(kind, live, shape, {}, state.hash_key)
    extra = importer.adoption_extra(live, state.lineage)
    unread = sorted(k for k in kind.write_only_fields & set(shape) if k not in applied)
    if unread and kind.secret_leaves:
        extra[unread_secrets.UNREAD_KEY] = unread  # (recorded by the first apply, not sent)
    state.resources[address] = ResourceState(
        kind=kind.name,
        id=resource_id,
        applied=applied,
        depends_on=sorted(resolved.depends_on),
        remote_updated_at=live.get("updatedAt"),
        extra=extra,
    )
    env = settings.environment
    state.org_id = check_org(  # the object read is in this state's org (#12)
        state,
        {address: live},
        pinned=env.org_id if env else None,
        environment=settings.env_name,
        allow_empty=True,
    )
    store.write(state)
    return dict(live)


def generate_from_remote(
    manifest: Path, client: VapiClient, store: StateWriter
) -> importer.Generated:
    """`import --generate`: write a manifest, its prompt files and its state from every
    resource in the org. Refuses to overwrite an existing manifest or state."""
    if manifest.exists():
        raise ProvisionerError(f"{manifest} already exists: choose a new file name")
    state = store.read()
    if state.resources:
        raise ProvisionerError(f"the state for {manifest} already has resources")
    objects: dict[str, list[Mapping[str, Any]]] = {}
    for kind in KINDS.values():
        result = client.list_all(kind)
        # Server-made objects (the default board, system insights) are not ours to manage.
        objects[kind.name] = [o for o in result.items if not o.get("systemKey")]
    generated = importer.generate_manifest(objects, state.hash_key)
    importer.write_generated(manifest, generated)
    state.resources.update(generated.entries)
    store.write(state)
    return generated


class ManifestInvalid(ProvisionerError):
    """The manifest has errors (already reported as diagnostics)."""

    def __init__(self, diags: Diagnostics) -> None:
        super().__init__(f"the manifest has {len(diags.errors())} problem(s)")
        self.diagnostics = diags
