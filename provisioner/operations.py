"""The wiring of each command: loader -> schema -> resolve -> state -> refresh -> plan -> apply.

I/O glue only: no click, no rendering, no business rules. Each function returns results
plus Diagnostics, or raises a ProvisionerError for aborts.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from provisioner import costs, importer
from provisioner.diagnostics import Diagnostics
from provisioner.errors import ProvisionerError, RemoteError, StateCorruptError
from provisioner.kinds import KINDS
from provisioner.manifest.model import Manifest
from provisioner.moves import apply_moves
from provisioner.plan import saved
from provisioner.plan.differ import LiveSnapshot, make_plan
from provisioner.plan.model import Action, Plan, PlanMode
from provisioner.plan.normalize import comparable, live_view
from provisioner.purchasing import PurchaseError, Twilio
from provisioner.refresh import adopt_found, refresh_state
from provisioner.remote.client import RequestEvent, VapiClient
from provisioner.resolve import bind
from provisioner.settings import Settings
from provisioner.state.lock import LockInfo
from provisioner.state.model import ResourceState, StateFile
from provisioner.state.store import FileStateStore
from provisioner.validation import Validated, validate


class StateWriter(Protocol):
    def read(self) -> StateFile: ...

    def write(self, state: StateFile) -> StateFile: ...

    def describe(self) -> str: ...


@dataclass(frozen=True, slots=True)
class PlanResult:
    plan: Plan
    state: StateFile
    validated: Validated
    live: LiveSnapshot
    diagnostics: Diagnostics = field(default_factory=Diagnostics)


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
        settings.sandbox_data.parent.mkdir(parents=True, exist_ok=True)
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


@dataclass(frozen=True, slots=True)
class Prepared:
    """Everything a plan is made from: the manifest, the state and what refresh saw."""

    validated: Validated
    state: StateFile
    live: LiveSnapshot
    moves: tuple[str, ...] = ()


def prepare(
    settings: Settings,
    path: Path,
    client: VapiClient,
    *,
    store: StateWriter | None = None,
    checked: tuple[Validated, Diagnostics] | None = None,
) -> tuple[Prepared | None, Diagnostics]:
    """Validate, read state, re-key `moved` entries, refresh, adopt interrupted creates.

    Without `store` (a plan) the state is read without a lock and changes stay in memory;
    with it (an apply holding the lock) they are saved first, so the plan's serial is the
    one on disk. `checked` is the manifest already validated by the caller (not redone).
    """
    validated: Validated | None
    if checked is not None:
        validated, diags = checked[0], Diagnostics()
        diags.extend(checked[1])
    else:
        validated, diags = validate(path, settings.environ)
    if validated is None:
        return None, diags
    reader = store or open_state(settings, path)
    original = reader.read()
    state, moves, mdiags = apply_moves(original, validated.manifest.moved)
    diags.extend(mdiags)
    if diags.has_errors():
        return None, diags
    live = refresh_state(client, state, parallelism=settings.parallelism)
    _check_lineage(state, live, reader.describe())
    state, live = adopt_found(state, live)
    state = record_protection(state, validated.manifest)
    # Compare with what was read (not a fresh read: a missing file reads as a new lineage).
    if store is not None and (moves or not state.content_equal(original)):
        state = store.write(state)
    return Prepared(validated, state, live, tuple(moves)), diags


def plan(
    settings: Settings,
    path: Path,
    client: VapiClient,
    *,
    mode: PlanMode = PlanMode.NORMAL,
    store: StateWriter | None = None,
    numbers: Twilio | None = None,
    checked: tuple[Validated, Diagnostics] | None = None,
) -> tuple[PlanResult | None, Diagnostics]:
    """Prepare, then compute the plan (and check lifecycle rules). With `numbers`, the
    plan carries what its phone numbers cost per month (Twilio's prices)."""
    prepared, diags = prepare(settings, path, client, store=store, checked=checked)
    if prepared is None:
        return None, diags
    validated, state, live = prepared.validated, prepared.state, prepared.live
    result = make_plan(validated.resolved.resources, state, live, mode=mode)
    result = dataclasses.replace(result, moved=prepared.moves)
    if numbers is not None:
        result = price_plan(result, validated, numbers)
    _check_prevent_destroy(result, validated, state, diags)
    return PlanResult(result, state, validated, live, diags), diags


@contextmanager
def open_twilio(settings: Settings) -> Iterator[Twilio]:
    """Twilio access for pricing and buying (nothing is sent until a price is needed)."""
    twilio = Twilio(settings)
    try:
        yield twilio
    finally:
        twilio.close()


def remember_twilio_accounts(validated: Validated, numbers: Twilio) -> None:
    """Give `numbers` the Twilio credentials of the manifest's numbers (for prices, and
    for releasing a number whose entry is being deleted)."""
    for r in validated.resolved.resources.values():
        if r.kind.name == "phoneNumber" and r.body.get("provider") == "twilio":
            try:
                numbers.remember(r.body)
            except PurchaseError:
                pass  # reported where a price or a purchase needs them


def price_plan(the_plan: Plan, validated: Validated, numbers: Twilio) -> Plan:
    """The plan with its numbers' prices: each purchase's, and the monthly total."""
    remember_twilio_accounts(validated, numbers)
    if not costs.needed_prices(the_plan) and not any(
        c.kind == "phoneNumber" for c in the_plan.changes
    ):
        return the_plan
    priced = costs.with_purchase_prices(the_plan, numbers.price)
    estimate = costs.estimate(priced, numbers.price, numbers.price_problem)
    problems = tuple(numbers.price_problems())
    return dataclasses.replace(
        priced, cost=estimate, warnings=tuple(dict.fromkeys((*priced.warnings, *problems)))
    )


PROTECTED_KEY = "prevent_destroy"


def record_protection(state: StateFile, manifest: Manifest) -> StateFile:
    """Note `lifecycle.preventDestroy` in state, so that removing a protected entry from the
    manifest cannot delete it either (the flag must be turned off and applied first)."""
    out: StateFile | None = None
    for addr, config in manifest.resources.items():
        rs = state.resources.get(addr)
        if rs is None or bool(rs.extra.get(PROTECTED_KEY)) == config.lifecycle.prevent_destroy:
            continue
        out = out or state.copy()
        extra = dict(out.resources[addr].extra)
        if config.lifecycle.prevent_destroy:
            extra[PROTECTED_KEY] = True
        else:
            extra.pop(PROTECTED_KEY, None)
        out.resources[addr] = dataclasses.replace(out.resources[addr], extra=extra)
    return out or state


def _check_prevent_destroy(
    plan: Plan, validated: Validated, state: StateFile, diags: Diagnostics
) -> None:
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
        elif config is None and c.address in state.resources:
            if state.resources[c.address].extra.get(PROTECTED_KEY):
                diags.error(
                    f"{c.address} was removed from the manifest, but it is protected: it had "
                    "lifecycle.preventDestroy when last applied. To delete it, put it back "
                    "with preventDestroy: false, apply, then remove it",
                    file=manifest.source.file,
                )


def lock_info(command: str) -> LockInfo:
    return LockInfo.create(
        command=command, operation=command.split(" ")[1] if " " in command else command
    )


def hostname() -> str:
    return socket.gethostname()


def save_plan_file(settings: Settings, manifest: Path, result: PlanResult, out: Path) -> None:
    """`plan --out`: write the plan, with what makes `apply FILE` able to tell it is stale.

    A first plan (no state yet) saves the new, empty state, so that its lineage and the
    key of the secrets' hashes exist when the plan is applied.
    """
    store = open_state(settings, manifest)
    state = result.state
    if not store.exists():
        state = store.write(state)
    the_plan = dataclasses.replace(result.plan, lineage=state.lineage, serial=state.serial)
    saved.save_plan(
        out,
        the_plan,
        manifest_path=manifest,
        manifest_digest=saved.digest_bytes(manifest.read_bytes()),
        live_fingerprint=saved.fingerprint_live(result.live),
        secret_hashes=saved.hash_plan_secrets(the_plan, state.hash_key),
        created_at=datetime.now(UTC),
    )


def load_plan_file(
    settings: Settings, plan_file: Path, client: VapiClient, store: StateWriter
) -> tuple[PlanResult | None, Diagnostics]:
    """`apply FILE`: the saved plan, checked against the state, the manifest and the live
    objects it was made from, with secrets resolved again from the environment.

    Raises StalePlanError if anything moved since the plan was made; the caller then
    plans again. Nothing remote is changed here.
    """
    loaded = saved.load_plan(plan_file)
    manifest = Path(loaded.manifest_path)
    on_disk = store.read()
    try:
        digest = saved.digest_bytes(manifest.read_bytes())
    except OSError as exc:
        raise ProvisionerError(
            f"the plan was made from {manifest}, which cannot be read: {exc.strerror}"
        ) from exc
    loaded.verify(lineage=on_disk.lineage, serial=on_disk.serial, manifest_digest=digest)
    prepared, diags = prepare(settings, manifest, client)
    if prepared is None:
        return None, diags
    loaded.verify(
        lineage=on_disk.lineage,
        serial=on_disk.serial,
        live_fingerprint=saved.fingerprint_live(prepared.live),
    )
    state = prepared.state
    if not state.content_equal(on_disk):
        state = store.write(state)
    bodies = {a: r.body for a, r in prepared.validated.resolved.resources.items()}
    the_plan = saved.rehydrate_plan(loaded.plan, bodies, hash_key=state.hash_key)
    the_plan = dataclasses.replace(the_plan, lineage=state.lineage, serial=state.serial)
    return PlanResult(the_plan, state, prepared.validated, prepared.live, diags), diags


def is_plan_file(path: Path) -> bool:
    """Whether `path` looks like a saved plan rather than a manifest."""
    try:
        head = path.read_bytes()[:64]
    except OSError:
        return False
    return head.startswith(b"\x1f\x8b") or saved.MAGIC.encode() in head


def saved_manifest_path(plan_file: Path) -> Path:
    """The manifest a saved plan was made from."""
    return Path(saved.load_plan(plan_file).manifest_path)


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
            rs.applied = live_view(kind, live, rs.applied, rs.applied)
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
    validated, diags = validate(manifest, settings.environ)
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
    state.resources[address] = ResourceState(
        kind=kind.name,
        id=resource_id,
        applied=live_view(kind, live, shape, {}),
        depends_on=sorted(resolved.depends_on),
        remote_updated_at=live.get("updatedAt"),
        extra=importer.adoption_extra(live, state.lineage),
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
    generated = importer.generate_manifest(objects)
    for rel in generated.files:
        target = manifest.parent / rel
        if target.exists():
            raise ProvisionerError(f"{target} already exists: choose another folder")
    manifest.parent.mkdir(parents=True, exist_ok=True)
    for rel, text in generated.files.items():
        target = manifest.parent / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    manifest.write_text(generated.manifest_yaml, encoding="utf-8")
    state.resources.update(generated.entries)
    store.write(state)
    return generated


class ManifestInvalid(ProvisionerError):
    """The manifest has errors (already reported as diagnostics)."""

    def __init__(self, diags: Diagnostics) -> None:
        super().__init__(f"the manifest has {len(diags.errors())} problem(s)")
        self.diagnostics = diags


def _check_lineage(state: StateFile, live: LiveSnapshot, where: str) -> None:
    """Refuse a state file that belongs to another deployment: the objects it names carry
    another lineage in their ownership marker (e.g. a state file copied between projects)."""
    for addr, obj in live.objects.items():
        rs = state.resources.get(addr)
        if obj is None or rs is None or not KINDS[rs.kind].owner_marker:
            continue
        theirs = importer.marker_lineage(obj)
        # `import` records the lineage of an object it adopted on purpose.
        adopted = rs.extra.get(importer.ADOPTED_LINEAGE_KEY)
        if theirs and theirs != state.lineage and theirs != adopted:
            raise StateCorruptError(
                f"{where} belongs to another deployment: {addr} ({rs.id}) is managed by "
                f"state lineage {theirs}, but this state's lineage is {state.lineage}. "
                "Refusing to continue: applying it could change or delete resources another "
                "state manages. Use the state file of that deployment."
            )
