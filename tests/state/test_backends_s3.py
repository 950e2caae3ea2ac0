"""The S3 backend against moto in server mode (real HTTP on a loopback port)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from provisioner.errors import StateConflictError, StateLockedError
from provisioner.state.backend import open_backend
from provisioner.state.config import BackendKind, StateConfig
from provisioner.state.lock import LockInfo
from provisioner.state.model import ResourceState
from provisioner.state.s3 import S3Backend
from tests.state.conftest import MotoServer


def _store(bucket: str, expiry: float = 2.0) -> S3Backend:
    config = StateConfig(BackendKind.S3, bucket=bucket, key="team/app.json", lock_expiry=expiry)
    store = open_backend(config, environ={}, external_key=None)
    assert isinstance(store, S3Backend)
    return store


def test_moto_honours_conditional_writes(s3_env: MotoServer) -> None:
    """The premise of the backend: put_object with IfNoneMatch/IfMatch is enforced."""
    from botocore.exceptions import ClientError

    s3 = s3_env.client()
    bucket = s3_env.new_bucket()
    first = s3.put_object(Bucket=bucket, Key="k", Body=b"1", IfNoneMatch="*")  # type: ignore[attr-defined]
    with pytest.raises(ClientError, match="PreconditionFailed"):
        s3.put_object(Bucket=bucket, Key="k", Body=b"2", IfNoneMatch="*")  # type: ignore[attr-defined]
    s3.put_object(Bucket=bucket, Key="k", Body=b"2", IfMatch=first["ETag"])  # type: ignore[attr-defined]
    with pytest.raises(ClientError, match="PreconditionFailed"):
        s3.put_object(Bucket=bucket, Key="k", Body=b"3", IfMatch=first["ETag"])  # type: ignore[attr-defined]


def test_write_read_and_versions(s3_env: MotoServer) -> None:
    store = _store(s3_env.new_bucket())
    assert not store.exists()
    state = store.read()
    assert store.version() is None
    state.resources["assistant.a"] = ResourceState("assistant", "id-a")
    written = store.write(state)
    assert written.serial == 1 and store.exists()
    first = store.version()
    again = _store(store.bucket).read()
    assert again.lineage == state.lineage and again.resources["assistant.a"].id == "id-a"
    # An unchanged state is not written again; a changed one gets a new version and serial.
    assert store.write(written).serial == 1 and store.version() == first
    written.resources["assistant.b"] = ResourceState("assistant", "id-b")
    assert store.write(written).serial == 2 and store.version() != first


def test_stale_writer_fails_keeps_a_rescue_copy_and_the_next_run_merges_it(
    s3_env: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    bucket = s3_env.new_bucket()
    setup = _store(bucket)
    setup.write(setup.read())
    one, two = _store(bucket), _store(bucket)
    a, b = one.read(), two.read()
    a.resources["assistant.a"] = ResourceState("assistant", "id-a")
    one.write(a)
    b.resources["assistant.b"] = ResourceState("assistant", "id-b")
    with pytest.raises(StateConflictError, match="someone else changed the state") as caught:
        two.write(b)
    assert "next apply merges it back" in str(caught.value)
    rescued = list((tmp_path / "state" / ".rescue").glob("*.json"))
    assert len(rescued) == 1 and "id-b" in rescued[0].read_text()
    listed = s3_env.client().list_objects_v2(Bucket=bucket, Prefix="team/app.json.rescue/")  # type: ignore[attr-defined]
    assert len(listed["Contents"]) == 1
    # The stored state is the first writer's, untouched by the stale one.
    raw = s3_env.client().get_object(Bucket=bucket, Key="team/app.json")["Body"].read()  # type: ignore[attr-defined]
    assert set(json.loads(raw)["resources"]) == {"assistant.a"}

    # A read without the lock (plan) shows the merge; one under the lock saves it.
    assert set(_store(bucket).read().resources) == {"assistant.a", "assistant.b"}
    third = _store(bucket)
    with third.lock(LockInfo.create("provisioner apply x", "apply"), timeout=0):
        merged = third.read()
    assert merged.resources["assistant.b"].id == "id-b"
    assert third.notes == ["assistant.b (id-b)"]
    stored = _store(bucket).read()
    assert {a: r.id for a, r in stored.resources.items()} == {
        "assistant.a": "id-a",
        "assistant.b": "id-b",
    }
    listed = s3_env.client().list_objects_v2(Bucket=bucket, Prefix="team/app.json.rescue/")  # type: ignore[attr-defined]
    assert listed.get("KeyCount", 0) == 0


def test_a_live_lock_is_reported_with_its_holder_and_never_taken(s3_env: MotoServer) -> None:
    bucket = s3_env.new_bucket()
    holder = LockInfo.create("provisioner apply app.yaml", "apply")
    with _store(bucket, expiry=1).lock(holder, timeout=0) as held:
        time.sleep(1.0)  # a lifetime: the renewals keep it alive
        assert held.healthy()
        with pytest.raises(StateLockedError) as caught:
            with _store(bucket).lock(LockInfo.create("provisioner apply b", "apply"), timeout=0.3):
                pass
        message = str(caught.value)
        assert holder.id in message and holder.who in message and "apply app.yaml" in message
    # Released: the next run gets it at once.
    with _store(bucket).lock(LockInfo.create("provisioner apply c", "apply"), timeout=0) as held:
        assert held.replaced is None


def test_an_expired_lock_is_taken_over_naming_the_old_holder(s3_env: MotoServer) -> None:
    bucket = s3_env.new_bucket()
    dead = LockInfo.create("provisioner apply app.yaml", "apply")
    store = _store(bucket, expiry=1)
    s3 = s3_env.client()
    from provisioner.state.remote import encode_lock

    s3.put_object(Bucket=bucket, Key=store.lock_key, Body=encode_lock(dead, expiry=1.0))  # type: ignore[attr-defined]
    with pytest.raises(StateLockedError):
        with store.lock(LockInfo.create("provisioner apply b", "apply"), timeout=0):
            pass
    with store.lock(LockInfo.create("provisioner apply b", "apply"), timeout=10) as held:
        assert held.replaced is not None and held.replaced.id == dead.id


def test_force_unlock_removes_a_lock_left_behind(s3_env: MotoServer) -> None:
    from provisioner.errors import StateError
    from provisioner.state.remote import encode_lock

    bucket = s3_env.new_bucket()
    store = _store(bucket, expiry=60)
    gone = LockInfo.create("provisioner apply app.yaml", "apply")
    s3_env.client().put_object(  # type: ignore[attr-defined]
        Bucket=bucket, Key=store.lock_key, Body=encode_lock(gone, expiry=60.0)
    )
    with pytest.raises(StateError, match=f"lock ID {gone.id}, not nope"):
        store.force_unlock("nope")
    assert store.force_unlock(gone.id, force=True) == gone
    with store.lock(LockInfo.create("provisioner apply b", "apply"), timeout=0) as held:
        assert held.replaced is None
