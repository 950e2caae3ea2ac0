"""The PostgreSQL backend against a real server started by the suite (conftest.pg_server)."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from provisioner.errors import StateConflictError, StateError, StateLockedError
from provisioner.state.backend import open_backend
from provisioner.state.config import BackendKind, StateConfig
from provisioner.state.lock import LockInfo
from provisioner.state.model import ResourceState
from provisioner.state.postgres import PostgresBackend
from tests.state.conftest import PgServer


def _store(url: str, key: str = "app", schema: str = "team_state") -> PostgresBackend:
    config = StateConfig(BackendKind.POSTGRES, url=url, key=key, schema=schema)
    store = open_backend(config, environ={}, external_key=None)
    assert isinstance(store, PostgresBackend)
    return store


@pytest.fixture
def db(pg_server: PgServer) -> str:
    return pg_server.new_database()


def _row(url: str, key: str = "app") -> tuple[str, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT data, version FROM team_state.states WHERE key = %s", (key,)
        ).fetchone()
    assert row is not None
    return str(row[0]), int(row[1])


def test_one_row_per_state_in_the_configured_schema(db: str) -> None:
    app, other = _store(db), _store(db, key="other")
    state = app.read()
    state.resources["assistant.a"] = ResourceState("assistant", "id-a")
    assert app.write(state).serial == 1 and app.version() == "1"
    other.write(other.read())
    data, version = _row(db)
    assert version == 1 and json.loads(data)["resources"]["assistant.a"]["id"] == "id-a"
    assert _store(db).read().lineage == state.lineage
    assert _store(db, key="other").read().lineage != state.lineage


def test_stale_writer_fails_keeps_a_rescue_row_and_the_next_run_merges_it(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    setup = _store(db)
    setup.write(setup.read())
    one, two = _store(db), _store(db)
    a, b = one.read(), two.read()
    a.resources["assistant.a"] = ResourceState("assistant", "id-a")
    one.write(a)
    b.resources["assistant.b"] = ResourceState("assistant", "id-b")
    with pytest.raises(StateConflictError, match="someone else changed the state"):
        two.write(b)
    assert set(json.loads(_row(db)[0])["resources"]) == {"assistant.a"}
    assert len(list((tmp_path / "state" / ".rescue").glob("*.json"))) == 1
    third = _store(db)
    with third.lock(LockInfo.create("provisioner apply x", "apply"), timeout=0):
        merged = third.read()
    assert {a: r.id for a, r in merged.resources.items()} == {
        "assistant.a": "id-a",
        "assistant.b": "id-b",
    }
    assert set(json.loads(_row(db)[0])["resources"]) == {"assistant.a", "assistant.b"}
    with psycopg.connect(db) as conn:
        left = conn.execute("SELECT count(*) FROM team_state.rescues").fetchone()
    assert left == (0,)


def test_the_lock_names_its_holder_and_is_released(db: str) -> None:
    holder = LockInfo.create("provisioner apply app.yaml", "apply")
    with _store(db).lock(holder, timeout=0) as held:
        assert held.healthy()
        with pytest.raises(StateLockedError) as caught:
            with _store(db).lock(LockInfo.create("provisioner apply b", "apply"), timeout=0.2):
                pass
        assert holder.id in str(caught.value) and "apply app.yaml" in str(caught.value)
    with _store(db).lock(LockInfo.create("provisioner apply c", "apply"), timeout=0):
        pass


def test_force_unlock_ends_the_holding_session(db: str) -> None:
    holder = LockInfo.create("provisioner apply app.yaml", "apply")
    store = _store(db)
    with store.lock(holder, timeout=0):
        with pytest.raises(StateError, match=f"lock ID {holder.id}, not nope"):
            _store(db).force_unlock("nope")
        assert _store(db).force_unlock(holder.id) == holder
        with _store(db).lock(LockInfo.create("provisioner apply b", "apply"), timeout=5):
            pass


def test_an_unreachable_database_is_a_clear_error_without_the_password(pg_server: PgServer) -> None:
    url = f"postgresql://postgres:hunter2@127.0.0.1:{pg_server.port}/no_such_db"
    with pytest.raises(StateError) as caught:
        _store(url).read()
    assert "hunter2" not in str(caught.value) and "no_such_db" in str(caught.value)
