"""The wiring of each command: loader -> schema -> resolve -> state -> refresh -> plan -> apply.

I/O glue only: no click, no rendering, no business rules. Each function returns results
plus Diagnostics, or raises a ProvisionerError for aborts.
"""

from __future__ import annotations

import dataclasses
import socket
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from provisioner import costs, importer
from provisioner.diagnostics import Diagnostics
from provisioner.errors import ProvisionerError, RemoteError, StateCorruptError
from provisioner.kinds import KINDS, OWNER_MARKER_KEY
from provisioner.manifest.model import Manifest
from provisioner.moves import apply_moves
from provisioner.org_guard import check_org, guard_org, refuse_other_environment
from provisioner.ownership import look_before_creating
from provisioner.plan import saved
from provisioner.plan.differ import LiveSnapshot, make_plan
from provisioner.plan.model import Action, Plan, PlanMode
from provisioner.plan.normalize import comparable, live_view
from provisioner.plan.origins import with_origins
from provisioner.plan.protection import check_protected
from provisioner.plan.purchase import PurchaseStep, purchase_step
from provisioner.purchasing import UNSET_FOR_DESTROY, PurchaseError, Twilio
from provisioner.refresh import adopt_found, refresh_state
from provisioner.remote.client import RequestEvent, VapiClient
from provisioner.resolve import bind
from provisioner.settings import Settings
from provisioner.state import backend
from provisioner.state.backend import Backend
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
    if config.kind is backend.BackendKind.LOCAL and settings.state_path is None and env is None:
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
) -> tuple[Prepared | None, Diagnostics]:
    """Validate, read state, re-key `moved` entries, refresh, adopt interrupted creates,
    and (`look_for_existing`) look for what the plan would create (`look_before_creating`).

    Without `store` (a plan) the state is read without a lock and changes stay in memory;
    with it (an apply holding the lock) they are saved first, so the plan's serial is the
    one on disk. `checked` is the manifest already validated by the caller (not redone).
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
    if diags.has_errors():
        return None, diags
    if not state.resources and validated.manifest.resources:
        # Refresh reads nothing for an empty state: without this, a wrong API key would
        # pass every plan (in CI, on every pull request) and surface only at apply.
        client.check_access()
    live = refresh_state(client, state, parallelism=settings.parallelism)
    state = guard_org(state, live, settings)
    _check_lineage(state, live, reader, client)
    state, live = adopt_found(state, live)
    notes: tuple[str, ...] = ()
    if look_for_existing:
        state, live, notes = look_before_creating(path, validated, state, live, client, settings)
    state = record_protection(state, validated.manifest)
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
) -> tuple[PlanResult | None, Diagnostics]:
    """Prepare, then compute the plan (and check lifecycle rules). With `numbers`, the
    plan carries what its phone numbers cost per month (Twilio's prices)."""
    prepared, diags = prepare(
        settings,
        path,
        client,
        store=store,
        checked=checked,
        look_for_existing=mode is PlanMode.NORMAL,
    )
    if prepared is None:
        return None, diags
    validated, state, live = prepared.validated, prepared.state, prepared.live
    result = make_plan(validated.resolved.resources, state, live, mode=mode)
    result = dataclasses.replace(
        result, moved=prepared.moves, warnings=(*prepared.notes, *result.warnings)
    )
    if numbers is not None:
        result = price_plan(result, validated, numbers)
    env = validated.environment
    result = with_origins(result, validated.origins, env.name if env else None)
    _check_prevent_destroy(result, validated, state, diags)
    diags.extend(check_protected(result, env))
    _check_twilio_credentials(result, validated, diags)
    return PlanResult(result, state, validated, live, diags), diags


@contextmanager
def open_twilio(settings: Settings) -> Iterator[Twilio]:
    """Twilio access for pricing and buying (nothing is sent until a price is needed)."""
    twilio = Twilio(settings)
    try:
        yield twilio
    finally:
        twilio.close()


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


def validate_for_destroy(
    path: Path, environ: Mapping[str, str], *, environment: str | None = None
) -> tuple[Validated | None, Diagnostics]:
    """`validate`, except that an unset `${env:NAME}` does not stop a destroy: it deletes
    what state holds and sends the manifest's values nowhere. Only releasing a number at
    Twilio needs a secret, and the plan refuses that without it (see `plan`)."""
    from provisioner.resolve import value_sources

    validated, diags = validate(path, environ, environment=environment)
    if validated is not None:
        return validated, diags
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None, diags
    inner = (src[2:-1].strip() for src in value_sources(text))
    names = {i.removeprefix("env:").strip() for i in inner if i.startswith("env:")}
    unset = {n for n in names if not environ.get(n)}
    if not unset:
        return None, diags
    again, again_diags = validate(
        path,
        {**environ, **dict.fromkeys(unset, UNSET_FOR_DESTROY)},
        stand_ins=unset,
        environment=environment,
    )
    return (again, again_diags) if again is not None else (None, diags)


def _check_twilio_credentials(plan: Plan, validated: Validated, diags: Diagnostics) -> None:
    """A Twilio number this plan imports into Vapi needs its credentials (validate lets
    an entry without them be, for a number imported already: the token is write-only);
    one it releases at Twilio needs them too (an unset secret passes `destroy` otherwise)."""
    from provisioner.manifest.schema import TWILIO_CREDENTIALS_NEEDED

    manifest = validated.manifest
    for c in plan.changes:
        resolved = validated.resolved.resources.get(c.address)
        if purchase_step(c.purchase) is PurchaseStep.RELEASE and resolved is not None:
            entry = manifest.resources[c.address]
            for field_name in ("twilioAuthToken", "twilioApiSecret"):
                value = resolved.body.get(field_name)
                if getattr(value, "value", None) == UNSET_FOR_DESTROY:
                    raw = str(entry.body.get(field_name, ""))
                    diags.error(
                        f"releasing {(c.purchase or {}).get('number')} at Twilio needs this "
                        f"secret, and {raw} is not set",
                        **manifest.source.where((*entry.path, field_name)),
                    )
        body = c.body or {}
        if c.action not in (Action.CREATE, Action.REPLACE) or body.get("provider") != "twilio":
            continue
        has_key = body.get("twilioApiKey") and body.get("twilioApiSecret")
        if body.get("twilioAuthToken") or has_key:
            continue
        config = manifest.resources.get(c.address)
        where = manifest.source.where(config.path) if config else {"file": manifest.source.file}
        diags.error(f"this plan imports it into Vapi: {TWILIO_CREDENTIALS_NEEDED}", **where)


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
    key of the secrets' hashes exist when the plan is applied. That write takes the state
    lock, like any other, and refuses if another run created the state in the meantime.
    """
    store = open_state(settings, manifest)
    state = result.state
    if not store.exists():
        with store.lock(lock_info(f"provisioner plan {manifest} --out {out}"), timeout=0):
            if store.exists():
                raise ProvisionerError(
                    f"{store.describe()} was created by another run while this plan was "
                    "made: run plan again"
                )
            state = store.write(state)
    if store.version() is None and store.exists():
        store.read()  # for its version token
    the_plan = dataclasses.replace(result.plan, lineage=state.lineage, serial=state.serial)
    saved.save_plan(
        out,
        the_plan,
        manifest_path=manifest,
        manifest_digest=saved.digest_bytes(manifest.read_bytes()),
        live_fingerprint=saved.fingerprint_live(result.live, state.hash_key),
        secret_hashes=saved.hash_plan_secrets(the_plan, state.hash_key),
        created_at=datetime.now(UTC),
        state_backend=store.describe(),
        state_version=store.version(),
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
    if loaded.plan.environment != settings.env_name:
        raise ProvisionerError(
            refuse_other_environment(plan_file, loaded.plan.environment, settings.env_name)
        )
    on_disk = store.read()
    try:
        digest = saved.digest_bytes(manifest.read_bytes())
    except OSError as exc:
        raise ProvisionerError(
            f"the plan was made from {manifest}, which cannot be read: {exc.strerror}"
        ) from exc
    loaded.verify(
        lineage=on_disk.lineage,
        serial=on_disk.serial,
        manifest_digest=digest,
        backend=store.describe(),
        version=store.version(),
    )
    prepared, diags = prepare(settings, manifest, client)
    if prepared is None:
        return None, diags
    loaded.verify(
        lineage=on_disk.lineage,
        serial=on_disk.serial,
        live_fingerprint=saved.fingerprint_live(prepared.live, on_disk.hash_key),
    )
    state = prepared.state
    bodies = {a: r.body for a, r in prepared.validated.resolved.resources.items()}
    # Every check (a changed secret included) comes before the state is written: a plan
    # refused after the write would find its serial gone and stay stale for good.
    the_plan = saved.rehydrate_plan(loaded.plan, bodies, hash_key=state.hash_key)
    if not state.content_equal(on_disk):
        state = store.write(state)
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
    state.resources[address] = ResourceState(
        kind=kind.name,
        id=resource_id,
        applied=live_view(kind, live, shape, {}, state.hash_key),
        depends_on=sorted(resolved.depends_on),
        remote_updated_at=live.get("updatedAt"),
        extra=importer.adoption_extra(live, state.lineage),
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


def _check_lineage(
    state: StateFile, live: LiveSnapshot, reader: StateWriter, client: VapiClient
) -> None:
    """Refuse a state file that belongs to another deployment (e.g. copied between projects).

    Only assistants carry an ownership marker (address + lineage, in their metadata), so:

    - an assistant in the state whose marker names another lineage is another state's;
    - an entry of another kind cannot be checked by itself, but when it was applied pointing
      at an assistant the state holds no ID for (removed from it, say), and the live object
      points at an assistant that another lineage marks with that very address, the entry
      was made by that deployment too. That costs one list of assistants, and only then.

    State entries that neither are assistants nor point at one cannot be told apart.
    """
    for addr, obj in live.objects.items():
        rs = state.resources.get(addr)
        if obj is None or rs is None or not KINDS[rs.kind].owner_marker:
            continue
        theirs = importer.marker_lineage(obj)
        # `import` records the lineage of an object it adopted on purpose.
        adopted = rs.extra.get(importer.ADOPTED_LINEAGE_KEY)
        if theirs and theirs != state.lineage and theirs != adopted:
            _refuse_foreign(reader, state, f"{addr} ({rs.id}) is managed by", theirs)
    accepted = {state.lineage} | {
        str(rs.extra[importer.ADOPTED_LINEAGE_KEY])
        for rs in state.resources.values()
        if rs.extra.get(importer.ADOPTED_LINEAGE_KEY)
    }
    found = _foreign_reference(state, live, client, accepted)
    if found is not None:
        what, theirs, dep = found
        _refuse_foreign(
            reader,
            state,
            what,
            theirs,
            also=f" To take it over instead, `provisioner import` {dep} into this state too.",
        )


def _foreign_reference(
    state: StateFile, live: LiveSnapshot, client: VapiClient, accepted: set[str]
) -> tuple[str, str, str] | None:
    """(what was found, the other lineage, the address) for an entry that points at
    another deployment's object under an address this state has no ID for; else None."""
    unchecked: list[tuple[str, str]] = []  # (entry, the address it depends on)
    for addr, rs in state.resources.items():
        if live.objects.get(addr) is None or KINDS[rs.kind].owner_marker:
            continue
        for dep in rs.depends_on:
            kind = KINDS.get(dep.partition(".")[0])
            held = state.resources.get(dep)
            if kind is not None and kind.owner_marker and (held is None or not held.id):
                unchecked.append((addr, dep))
    if not unchecked:
        return None
    marked: dict[str, tuple[str, str]] = {}  # ID -> (marker address, marker lineage)
    for kind_name in sorted({dep.partition(".")[0] for _, dep in unchecked}):
        for obj in client.list_all(KINDS[kind_name]).items:
            lineage = importer.marker_lineage(obj)
            meta = obj.get("metadata")
            marker = meta.get(OWNER_MARKER_KEY) if isinstance(meta, Mapping) else None
            address = marker.get("address") if isinstance(marker, Mapping) else None
            if lineage and lineage not in accepted and isinstance(address, str):
                marked[str(obj.get("id"))] = (address, lineage)
    for addr, dep in unchecked:
        for value in _strings(live.objects[addr]):
            if value in marked and marked[value][0] == dep:
                rid = state.resources[addr].id
                return (
                    f"{addr} ({rid}) points at {dep} ({value}), which is managed by",
                    marked[value][1],
                    dep,
                )
    return None


def _strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value (where an object's references to others are)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _refuse_foreign(
    reader: StateWriter, state: StateFile, what: str, theirs: str, *, also: str = ""
) -> None:
    where = reader.describe()
    # A file store keeps the previous version beside the file (other stores may not).
    backup = getattr(reader, "backup_path", None)
    hint = (
        f" If {where} was replaced by mistake, its previous version (one write older) is in "
        f"{backup}: check its lineage before restoring it."
        if isinstance(backup, Path) and backup.exists()
        else ""
    )
    raise StateCorruptError(
        f"{where} belongs to another deployment: {what} state lineage {theirs}, but this "
        f"state's lineage is {state.lineage}. Refusing to continue: applying it could change "
        f"or delete resources another state manages. Use the state file of that deployment."
        + also
        + hint
    )
