"""Merging rescue copies back (`remote.reconcile`, pure) and reading the `state:` block."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.state.backend import BackendConfigError, from_cli, from_manifest
from provisioner.state.config import BackendKind, redact_url
from provisioner.state.model import ResourceState, ResourceStatus, StateFile
from provisioner.state.remote import reconcile


def _state(lineage: str = "L", **ids: str | None) -> StateFile:
    state = StateFile(lineage=lineage, serial=3)
    for address, rid in ids.items():
        status = ResourceStatus.CREATED if rid else ResourceStatus.CREATING
        state.resources[address.replace("_", ".")] = ResourceState("assistant", rid, status)
    return state


def test_reconcile_takes_what_the_stored_state_lacks() -> None:
    stored = _state(assistant_a="id-a", assistant_b=None)
    rescued = _state(assistant_a="id-a", assistant_b="id-b", assistant_c="id-c")
    merged, notes = reconcile(stored, [rescued])
    assert {a: r.id for a, r in merged.resources.items()} == {
        "assistant.a": "id-a",
        "assistant.b": "id-b",
        "assistant.c": "id-c",
    }
    assert notes == ["assistant.b (id-b)", "assistant.c (id-c)"]
    assert stored.resources["assistant.b"].id is None  # the input is not changed


def test_reconcile_keeps_a_duplicate_under_its_own_address_to_be_deleted() -> None:
    merged, notes = reconcile(_state(assistant_a="id-1"), [_state(assistant_a="ID-2abcdefgh")])
    assert merged.resources["assistant.a"].id == "id-1"
    assert merged.resources["assistant.a--rescued-id-2abcd"].id == "ID-2abcdefgh"
    assert "a duplicate of assistant.a" in notes[0]


def test_reconcile_ignores_another_lineage() -> None:
    merged, notes = reconcile(_state(), [_state("other", assistant_a="id-a")])
    assert merged.resources == {} and notes == []


def test_manifest_blocks(tmp_path: Path) -> None:
    manifest = tmp_path / "app.yaml"
    s3 = from_manifest(
        {"backend": "s3", "bucket": "b", "key": "k.json", "lockExpiry": 5}, manifest, {}
    )
    assert s3 is not None and s3.kind is BackendKind.S3 and s3.lock_expiry == 5
    pg = from_manifest(
        {"backend": "postgres", "url": "${env:PG}"}, manifest, {"PG": "postgresql://u:pw@h/db"}
    )
    assert pg is not None and pg.key == "app" and pg.schema == "provisioner"
    assert "pw" not in pg.describe()
    assert from_manifest(None, manifest, {}) is None
    with pytest.raises(BackendConfigError, match="lockExpiry: at least 1"):
        from_manifest({"backend": "s3", "bucket": "b", "key": "k", "lockExpiry": 0}, manifest, {})
    with pytest.raises(BackendConfigError, match="not a plain lower-case SQL identifier"):
        from_manifest({"backend": "postgres", "url": "x", "schema": "a;b"}, manifest, {})


def test_cli_urls() -> None:
    config = from_cli("s3://bucket/team/app.json", Path("app.yaml"))
    assert (config.bucket, config.key) == ("bucket", "team/app.json")
    with pytest.raises(BackendConfigError, match="expected s3://BUCKET/KEY"):
        from_cli("s3://bucket", Path("app.yaml"))
    with pytest.raises(BackendConfigError, match="holds a password"):
        from_cli("postgres://h/db?password=x", Path("app.yaml"))
    assert from_cli("state/x.json", Path("app.yaml")).path == Path("state/x.json")
    assert redact_url("postgresql://u:secret@h:5432/db") == "postgresql://u@h:5432/db"
