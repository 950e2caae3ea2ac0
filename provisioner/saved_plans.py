"""The wiring of saved plans: `plan --out` writes one, `apply FILE` reads it back, checked
against the state, the manifest and the live objects it was made from.

I/O glue only, like `operations`: the file's format and checks are `plan/saved.py`'s.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

from provisioner.diagnostics import Diagnostics
from provisioner.errors import ProvisionerError
from provisioner.operations import PlanResult, StateWriter, lock_info, open_state, prepare
from provisioner.org_guard import refuse_other_environment
from provisioner.plan import saved
from provisioner.remote.client import VapiClient
from provisioner.settings import Settings


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
