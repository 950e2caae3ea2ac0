"""The PostgreSQL state backend (psycopg 3).

Tables in the configured schema (created on first use):

- `states`: one row per state (`key`: the manifest's stem, or `state.key`), the state's JSON
  and a row `version`. A write is a compare-and-swap on that version, in one transaction;
- `rescues`: states whose write was refused (see `remote.py`);
- `locks`: who holds each state's run lock, for messages.

The run lock itself is a session advisory lock taken on a dedicated connection: the server
releases it when that connection ends, so a killed run never leaves a stale lock. It needs a
direct connection (or a session-pooling PgBouncer); behind transaction pooling the lock would
belong to whichever client next borrows the server connection, so that is detected (the
lock must be visible in `pg_locks` for our own backend, from the same backend) and refused.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from provisioner.errors import StateError, StateLockedError
from provisioner.state.config import BackendKind, StateConfig, redact_url
from provisioner.state.identity import Owner
from provisioner.state.lock import LockInfo, LockWaitCallback
from provisioner.state.remote import Conflict, Lease, RemoteStore

# The lease only watches the lock's connection (the server holds the lock itself).
_LEASE = 60.0
# Serialises the schema's creation across runs (pg_advisory_xact_lock key).
_SCHEMA_LOCK = 0x70726F76


def _lock_key(schema: str, key: str) -> int:
    digest = hashlib.sha256(f"provisioner:{schema}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PostgresBackend(RemoteStore):
    kind = BackendKind.POSTGRES

    def __init__(
        self,
        config: StateConfig,
        *,
        environ: Mapping[str, str],
        external_key: str | None,
        owner: Owner | None = None,
    ) -> None:
        super().__init__(config.describe(), external_key, owner)
        self.config = config
        self.url = config.url
        self.key = config.key
        self.lock_id = _lock_key(config.schema, config.key)
        self._table = {
            name: sql.Identifier(config.schema, name) for name in ("states", "rescues", "locks")
        }
        self._conn: psycopg.Connection[Any] | None = None
        self._conn_mutex = threading.Lock()

    def __repr__(self) -> str:
        return f"PostgresBackend({self.where!r})"

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def __del__(self) -> None:
        # A store lives as long as its command: its connection ends with it.
        conn = getattr(self, "_conn", None)
        if conn is not None:
            conn.close()

    # connections ---------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=5)
        except psycopg.Error as exc:
            raise StateError(
                f"cannot connect to the state database {redact_url(self.url)}: {str(exc).strip()}"
            ) from exc

    def _db(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            conn = self._connect()
            try:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                    conn.execute(
                        sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                            sql.Identifier(self.config.schema)
                        )
                    )
                    conn.execute(
                        sql.SQL(
                            "CREATE TABLE IF NOT EXISTS {} (key text PRIMARY KEY, data text "
                            "NOT NULL, version bigint NOT NULL, updated_at timestamptz NOT "
                            "NULL DEFAULT now())"
                        ).format(self._table["states"])
                    )
                    conn.execute(
                        sql.SQL(
                            "CREATE TABLE IF NOT EXISTS {} (id bigserial PRIMARY KEY, key text "
                            "NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), data "
                            "text NOT NULL)"
                        ).format(self._table["rescues"])
                    )
                    conn.execute(
                        sql.SQL(
                            "CREATE TABLE IF NOT EXISTS {} (key text PRIMARY KEY, holder text "
                            "NOT NULL, backend_pid integer NOT NULL)"
                        ).format(self._table["locks"])
                    )
            except psycopg.Error as exc:
                conn.close()
                raise self._error("set up", exc) from exc
            self._conn = conn
        return self._conn

    def _error(self, action: str, exc: Exception) -> StateError:
        return StateError(f"cannot {action} {self.where}: {str(exc).strip()}")

    def _query(
        self, action: str, query: sql.SQL | sql.Composed, params: tuple[Any, ...]
    ) -> list[Any]:
        with self._conn_mutex:
            try:
                with self._db().transaction() as tx:
                    rows: list[Any] = tx.connection.execute(query, params).fetchall()
            except psycopg.Error as exc:
                raise self._error(action, exc) from exc
        return rows

    # primitives ----------------------------------------------------------------------------

    def _get(self) -> tuple[bytes, str] | None:
        rows = self._query(
            "read",
            sql.SQL("SELECT data, version FROM {} WHERE key = %s").format(self._table["states"]),
            (self.key,),
        )
        return None if not rows else (str(rows[0][0]).encode(), str(rows[0][1]))

    def _put(self, data: bytes, expected: str | None) -> str:
        text = data.decode()
        if expected is None:
            query = sql.SQL(
                "INSERT INTO {} (key, data, version) VALUES (%s, %s, 1) "
                "ON CONFLICT (key) DO NOTHING RETURNING version"
            ).format(self._table["states"])
            rows = self._query("write", query, (self.key, text))
        else:
            query = sql.SQL(
                "UPDATE {} SET data = %s, version = version + 1, updated_at = now() "
                "WHERE key = %s AND version = %s RETURNING version"
            ).format(self._table["states"])
            rows = self._query("write", query, (text, self.key, int(expected)))
        if not rows:
            raise Conflict("version")
        return str(rows[0][0])

    def _put_rescue(self, name: str, data: bytes) -> str:
        rows = self._query(
            "write a rescue copy beside",
            sql.SQL("INSERT INTO {} (key, data) VALUES (%s, %s) RETURNING id").format(
                self._table["rescues"]
            ),
            (self.key, data.decode()),
        )
        return f"{self.config.schema}.rescues row {rows[0][0]}"

    def _rescues(self) -> list[tuple[str, bytes]]:
        rows = self._query(
            "read the rescue copies of",
            sql.SQL("SELECT id, data FROM {} WHERE key = %s ORDER BY id").format(
                self._table["rescues"]
            ),
            (self.key,),
        )
        return [(str(r[0]), str(r[1]).encode()) for r in rows]

    def _drop_rescue(self, name: str) -> None:
        self._query(
            "remove a rescue copy of",
            sql.SQL("DELETE FROM {} WHERE id = %s RETURNING id").format(self._table["rescues"]),
            (int(name),),
        )

    # the lock ------------------------------------------------------------------------------

    def _holder(self) -> LockInfo | None:
        rows = self._query(
            "read the lock of",
            sql.SQL("SELECT holder FROM {} WHERE key = %s").format(self._table["locks"]),
            (self.key,),
        )
        if not rows:
            return None
        try:
            return LockInfo.from_dict(json.loads(rows[0][0]))
        except ValueError:
            return None

    @contextmanager
    def lock(
        self, info: LockInfo, timeout: float, on_wait: LockWaitCallback | None = None
    ) -> Iterator[Lease]:
        self._db()  # the tables exist before anyone waits on them
        conn = self._connect()
        try:
            lease = self._acquire(conn, info, timeout, on_wait)
        except BaseException:
            conn.close()
            raise
        self.adopt_lease(lease)
        try:
            yield lease
        finally:
            self.adopt_lease(None)
            lease.release()

    def _acquire(
        self,
        conn: psycopg.Connection[Any],
        info: LockInfo,
        timeout: float,
        on_wait: LockWaitCallback | None,
    ) -> Lease:
        deadline = time.monotonic() + max(0.0, timeout)
        delay = 0.05
        told = False
        try:
            while True:
                row = conn.execute(
                    "SELECT pg_try_advisory_lock(%s), pg_backend_pid()", (self.lock_id,)
                ).fetchone()
                if row is not None and row[0]:
                    self._check_session(conn, int(row[1]))
                    break
                holder = self._holder()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    who = holder.describe() if holder else "another run (holder not recorded)"
                    waited = f" (waited {timeout:g}s)" if timeout > 0 else ""
                    raise StateLockedError(
                        f"{self.where} is locked by {who}{waited}. Wait for it to finish or "
                        "retry with --lock-timeout (PostgreSQL releases the lock of a run "
                        "that dies)."
                    )
                if on_wait is not None and holder is not None and not told:
                    on_wait(holder, timeout)
                    told = True
                time.sleep(min(delay, remaining))
                delay = min(delay * 2, 1.0)
            pid = int(row[1])
            self._query(
                "record the lock of",
                sql.SQL(
                    "INSERT INTO {} (key, holder, backend_pid) VALUES (%s, %s, %s) ON CONFLICT "
                    "(key) DO UPDATE SET holder = EXCLUDED.holder, "
                    "backend_pid = EXCLUDED.backend_pid RETURNING key"
                ).format(self._table["locks"]),
                (self.key, json.dumps(info.to_dict()), pid),
            )
        except psycopg.Error as exc:
            raise self._error("lock", exc) from exc
        mutex = threading.Lock()

        def ping() -> None:
            with mutex:
                conn.execute("SELECT 1")

        def release() -> bool:
            with mutex:
                try:
                    self._query(
                        "unlock",
                        sql.SQL(
                            "DELETE FROM {} WHERE key = %s AND holder = %s RETURNING key"
                        ).format(self._table["locks"]),
                        (self.key, json.dumps(info.to_dict())),
                    )
                    row = conn.execute("SELECT pg_advisory_unlock(%s)", (self.lock_id,)).fetchone()
                    return bool(row and row[0])
                except (psycopg.Error, StateError):
                    return False
                finally:
                    conn.close()  # ends the session: the server drops the lock regardless

        return Lease(info, _LEASE, ping, release).start()

    def _check_session(self, conn: psycopg.Connection[Any], pid: int) -> None:
        """Refuse a transaction-pooling PgBouncer: a session lock must stay with our session."""
        try:
            row = conn.execute(
                "SELECT pg_backend_pid(), EXISTS (SELECT 1 FROM pg_locks WHERE locktype = "
                "'advisory' AND granted AND pid = pg_backend_pid())"
            ).fetchone()
        except psycopg.Error as exc:
            raise self._error("check the lock of", exc) from exc
        if row is None or int(row[0]) != pid or not row[1]:
            raise StateError(
                f"{self.where}: the state lock cannot be held through this connection: each "
                "statement reached another server session, as behind a PgBouncer in "
                "transaction pooling mode. A session advisory lock needs a direct connection "
                "(or session pooling): point state.url at PostgreSQL itself, or at a "
                "session-mode pool."
            )

    def force_unlock(self, lock_id: str, *, force: bool = False) -> LockInfo | str:
        holder = self._holder()
        rows = self._query(
            "read the lock of",
            sql.SQL(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND "
                "objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = %s"
            ),
            (self.lock_id,),
        )
        if holder is None and not rows:
            raise StateError(f"{self.where} is not locked: nothing to unlock")
        if holder is not None and holder.id != lock_id:
            raise StateError(
                f"{self.where} is locked with lock ID {holder.id}, not {lock_id}: nothing "
                f"removed. The holder is {holder.describe()}."
            )
        for (pid,) in rows:
            self._query("unlock", sql.SQL("SELECT pg_terminate_backend(%s)"), (pid,))
        self._query(
            "unlock",
            sql.SQL("DELETE FROM {} WHERE key = %s RETURNING key").format(self._table["locks"]),
            (self.key,),
        )
        return holder if holder is not None else "names no holder"
