"""What the remote backends (S3, PostgreSQL) share: the state's bytes, compare-and-swap
writes, rescue copies and their reconciliation, and a lease-style held lock.

A subclass supplies five primitives (`_get`, `_put`, `_put_rescue`, `_rescues`,
`_drop_rescue`) and its lock; this class owns the rules:

- serial and lineage as in the file store: the serial is bumped only when the content
  changed, and a state of another lineage is never written over the stored one;
- every write is conditional on the version last read or written. A failed condition, or a
  write attempted after this run lost its lock, raises `StateConflictError`, and the state
  that could not be saved is kept twice: beside the state in the backend and in a local file
  (`state/.rescue/`), so no created ID is lost even if the runner is thrown away;
- the next run that reads the state while holding the lock merges every rescue copy of the
  same lineage back (`reconcile`) and saves the result before anything else.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from provisioner.errors import StateConflictError, StateCorruptError, StateError
from provisioner.state.identity import Owner, check_owner
from provisioner.state.lock import LockInfo
from provisioner.state.model import ResourceState, ResourceStatus, StateFile
from provisioner.state.parse import parse_state

# Where rescue copies go on the runner (relative to the working folder, like `state/`).
LOCAL_RESCUE_DIR = Path("state") / ".rescue"


class Conflict(Exception):
    """A primitive's condition failed: the stored version is not the one expected."""


def encode(state: StateFile) -> bytes:
    """The state's bytes: the same JSON text as the state file."""
    return (json.dumps(state.to_dict(), indent=2, sort_keys=True) + "\n").encode()


def decode(raw: bytes, where: str) -> StateFile:
    """Parse stored bytes with the state file's own checks (`state/parse.py`), refusing
    anything that cannot be trusted (never "empty")."""

    def corrupt(problem: str) -> StateCorruptError:
        return StateCorruptError(
            f"{problem}: refusing to continue, since treating it as empty would create every "
            "resource again. Restore a good version (S3 object versioning, a database "
            "backup) or repair it by hand."
        )

    return parse_state(raw, where, corrupt)


def reconcile(state: StateFile, rescued: Iterable[StateFile]) -> tuple[StateFile, list[str]]:
    """`state` with what each rescue copy recorded and `state` lacks. Pure.

    - an address `state` lacks, or holds only as an unfinished create, takes the rescued
      entry (its ID and intent are then confirmed or adopted by the refresh);
    - an address both hold under different IDs keeps `state`'s, and the rescued object is
      kept under `<address>--rescued-<id>`: not in the manifest, so the next plan deletes
      that duplicate instead of forgetting it.

    Returns the merged state (a copy) and a note per entry taken over.
    """
    out = state.copy()
    notes: list[str] = []
    for copy in rescued:
        if copy.lineage != state.lineage:
            continue
        for address, entry in copy.resources.items():
            mine = out.resources.get(address)
            if mine is None or (mine.id is None and entry.id is not None):
                out.resources[address] = ResourceState.from_dict(entry.to_dict())
                notes.append(f"{address} ({entry.id or 'create in progress'})")
            elif entry.id is not None and mine.id != entry.id:
                if any(r.id == entry.id for r in out.resources.values()):
                    continue
                orphan = f"{address}--rescued-{entry.id[:8].lower()}"
                out.resources[orphan] = replace(
                    ResourceState.from_dict(entry.to_dict()), status=ResourceStatus.CREATED
                )
                notes.append(f"{orphan} ({entry.id}, a duplicate of {address}: to be deleted)")
    return out, notes


class Lease:
    """A held lock that must be renewed before it expires; renewed by a daemon thread.

    `healthy()` is judged on this process's monotonic clock, conservatively: the lock is
    counted lost `margin` of its lifetime after the start of the last successful renewal,
    well before another run can see it expired on the store's clock. A stopped process
    (SIGSTOP) therefore finds itself unhealthy when it resumes, before it sends anything.
    """

    def __init__(
        self,
        info: LockInfo,
        expiry: float,
        renew: Callable[[], None],
        release: Callable[[], bool],
        *,
        replaced: LockInfo | None = None,
        margin: float = 0.75,
    ) -> None:
        self.info = info
        self.replaced = replaced
        self._expiry = expiry
        self._renew = renew
        self._release = release
        self._margin = margin
        self._valid_until = time.monotonic() + expiry * margin
        self._lost: str | None = None
        self._last_error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="state-lock-renewal", daemon=True)

    def mark_renewed(self, started: float) -> None:
        """The lock was written by a request sent at `started` (monotonic)."""
        self._valid_until = started + self._expiry * self._margin

    def start(self) -> Lease:
        self._thread.start()
        return self

    def _loop(self) -> None:
        interval = self._expiry / 4
        while not self._stop.wait(interval):
            if not self.healthy():
                return
            started = time.monotonic()
            try:
                self._renew()
            except Conflict:
                self._lost = "another run took the lock over"
                return
            except Exception as exc:  # noqa: BLE001 - a failed renewal is retried until expiry
                self._last_error = str(exc)
                continue
            self.mark_renewed(started)

    def healthy(self) -> bool:
        """Whether this run still certainly holds the lock."""
        if self._lost is None and time.monotonic() >= self._valid_until:
            self._lost = f"it was not renewed within {self._expiry * self._margin:g} s"
            if self._last_error:
                self._lost += f"; last renewal error: {self._last_error}"
        return self._lost is None

    def check(self) -> None:
        """Raise unless the lock is still held: before any change."""
        if not self.healthy():
            raise StateConflictError(
                f"this run lost the state lock ({self._lost}; lock ID {self.info.id}): it "
                "starts no new change and writes nothing more to the state. Run "
                "`provisioner plan` to see where things stand."
            )

    def release(self) -> bool:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=self._expiry)
        # Even a lost lock is released: the condition on it leaves another run's alone.
        return self._release()


class GuardedEvent(threading.Event):
    """The run's interrupt event (Ctrl-C), also set once the lease is lost: the apply
    engine and the API client look at it before every change and every request."""

    def __init__(self, outer: threading.Event, lease: Lease) -> None:
        super().__init__()
        self._outer = outer
        self._lease = lease

    def is_set(self) -> bool:
        return self._outer.is_set() or not self._lease.healthy()

    def set(self) -> None:
        self._outer.set()

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            left = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
            if left <= 0:
                return False
            self._outer.wait(left)
        return True


def guard_interrupt(event: threading.Event, held: object) -> threading.Event:
    """`event`, also set when `held` (a lease) is lost; `event` itself for other locks."""
    return GuardedEvent(event, held) if isinstance(held, Lease) else event


@dataclass(frozen=True, slots=True)
class Stored:
    """What this store last read or wrote."""

    version: str
    state: StateFile


class RemoteStore:
    """Compare-and-swap state storage over a subclass's primitives."""

    def __init__(self, where: str, external_key: str | None, owner: Owner | None = None) -> None:
        self.where = where
        self.external_key = external_key
        self.owner = owner
        self._mutex = threading.Lock()
        self._stored: Stored | None = None
        self._lease: Lease | None = None
        # What `read` merged back from rescue copies, for the caller to report.
        self.notes: list[str] = []

    # primitives ----------------------------------------------------------------------------

    def _get(self) -> tuple[bytes, str] | None:
        """The stored bytes and their version; None if there is no state yet."""
        raise NotImplementedError

    def _put(self, data: bytes, expected: str | None) -> str:
        """Store `data` if the stored version is `expected` (None: only if there is none).
        Returns the new version; raises `Conflict` otherwise."""
        raise NotImplementedError

    def _put_rescue(self, name: str, data: bytes) -> str:
        """Keep `data` beside the state; returns where (for messages)."""
        raise NotImplementedError

    def _rescues(self) -> list[tuple[str, bytes]]:
        """Every rescue copy kept beside the state: (name, bytes)."""
        raise NotImplementedError

    def _drop_rescue(self, name: str) -> None:
        raise NotImplementedError

    # the contract ---------------------------------------------------------------------------

    def describe(self) -> str:
        return self.where

    def exists(self) -> bool:
        return self._get() is not None

    def version(self) -> str | None:
        stored = self._stored
        return None if stored is None else stored.version

    def read(self) -> StateFile:
        with self._mutex:
            got = self._get()
            if got is None:
                self._stored = None
                return StateFile.new(self.owner).with_external_key(self.external_key, self.where)
            raw, version = got
            state = decode(raw, self.where)
            if self.owner is not None:
                check_owner(state.owner, self.owner, self.where)
                if state.owner is None:  # an older state: claimed by its next write
                    state = replace(
                        state, manifest=self.owner.manifest, environment=self.owner.environment
                    )
            self._stored = Stored(version, state.copy())
            rescues = self._rescues()
            if rescues:
                state = self._reconcile(state, rescues)
            return state.with_external_key(self.external_key, self.where)

    def _reconcile(self, state: StateFile, rescues: list[tuple[str, bytes]]) -> StateFile:
        copies = []
        for name, raw in rescues:
            try:
                copies.append(decode(raw, f"{self.where} rescue copy {name}"))
            except StateCorruptError:
                continue  # a torn rescue copy: its twin is in the runner's local file
        merged, notes = reconcile(state, copies)
        if self._lease is None or not self._lease.healthy():
            return merged  # a read without the lock (plan): shown, not saved
        if notes or not merged.content_equal(state):
            merged = self._write_locked(merged)
        for name, _ in rescues:
            self._drop_rescue(name)
        self.notes.extend(notes)
        return merged

    def write(self, state: StateFile) -> StateFile:
        with self._mutex:
            return self._write_locked(state)

    def _write_locked(self, state: StateFile) -> StateFile:
        stored = self._stored
        if self._lease is not None and not self._lease.healthy():
            self._refuse(state, "this run lost its state lock")
        if stored is not None:
            if stored.state.lineage != state.lineage:
                raise StateCorruptError(
                    f"{self.where} belongs to another deployment (lineage "
                    f"{stored.state.lineage}, expected {state.lineage}): refusing to overwrite it"
                )
            if state.serial < stored.state.serial:
                self._refuse(state, f"stored serial {stored.state.serial}, ours {state.serial}")
            if state.content_equal(stored.state):
                return replace(state, serial=stored.state.serial)
        new = replace(state, serial=state.serial + 1)
        try:
            version = self._put(encode(new), None if stored is None else stored.version)
        except Conflict:
            self._refuse(state, "its version changed since this run read it")
        self._stored = Stored(version, new.copy())
        return new

    def _refuse(self, state: StateFile, why: str) -> None:
        """Keep `state` as a rescue copy (backend and local file), then raise."""
        name = (
            f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-{state.lineage[:8]}-"
            f"{uuid.uuid4().hex[:8]}"
        )
        data = encode(state)
        kept: list[str] = []
        try:
            kept.append(self._put_rescue(name, data))
        except Exception as exc:  # noqa: BLE001 - the local copy below must still be made
            kept.append(f"(not beside the state: {exc})")
        local = LOCAL_RESCUE_DIR / f"{name}.json"
        try:
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(data)
            kept.append(str(local))
        except OSError as exc:
            kept.append(f"(no local copy: {exc.strerror or exc})")
        raise StateConflictError(
            f"someone else changed the state {self.where} since this run read it, or took "
            f"its lock ({why}): refusing to overwrite it. Nothing is lost: this run's state "
            f"is kept in {' and '.join(kept)}, and the next apply merges it back. Run "
            "`provisioner plan` again."
        )

    def adopt_lease(self, lease: Lease | None) -> None:
        """Writes from now on need `lease` to be healthy (None: the lock was released)."""
        self._lease = lease


def encode_lock(info: LockInfo, **extra: Any) -> bytes:
    return json.dumps({"holder": info.to_dict(), **extra}, sort_keys=True).encode()


def decode_lock(raw: bytes) -> tuple[LockInfo, dict[str, Any]] | None:
    try:
        doc = json.loads(raw)
        return LockInfo.from_dict(doc["holder"]), doc
    except (ValueError, KeyError, TypeError):
        return None


def state_error(action: str, where: str, exc: Exception) -> StateError:
    return StateError(f"cannot {action} {where}: {exc}")
