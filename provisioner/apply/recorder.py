"""The state being applied: every change made durable before the engine goes on, in
O(1) per change rather than a rewrite of the whole state.

`Recorder.mutate(fn)` applies `fn` to the state (it replaces or removes whole entries,
never edits one in place), then returns once the change is durable (or at once for a
result, made durable by the next `sync()` before it is reported): for a store with a
journal (`JournalingStore`, the local file), its record is appended and fsynced; for any
other store (a remote backend), the whole state is written. Either way one flush serves
every change that arrived while the previous one was in progress (`GroupCommit`), and the
caller's lock is not held while it waits, so parallel changes share their fsyncs.

The journal is folded into the state file once it holds `FOLD_PER_ENTRY` records per
entry of the state (at least `FOLD_MIN_RECORDS`), after `FOLD_SECONDS`, and at the end.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any, Protocol, runtime_checkable

from provisioner.state.journal import STORE_CLOCK, GroupCommit, encode_record
from provisioner.state.model import ResourceState, ResourceStatus, StateFile

# A fold rewrites the whole state, holding the recorder's lock: rare enough to cost O(1)
# per record (a run creating N resources writes 2N records: it folds at its end only).
FOLD_MIN_RECORDS = 1000
FOLD_PER_ENTRY = 4
FOLD_SECONDS = 60.0


class StateWriter(Protocol):
    def write(self, state: StateFile) -> StateFile: ...


@runtime_checkable
class JournalingStore(Protocol):
    def write(self, state: StateFile) -> StateFile: ...
    def open_journal(self, state: StateFile) -> StateFile: ...
    def append_journal(self, data: bytes) -> None: ...
    def fold(self, state: StateFile) -> StateFile: ...
    def close_journal(self, state: StateFile) -> StateFile: ...
    def abandon_journal(self) -> None: ...


class _Tracked(dict[str, ResourceState]):
    """The state's entries, noting which addresses are set or removed."""

    def __init__(self, entries: Mapping[str, ResourceState]) -> None:
        super().__init__(entries)
        self.touched: set[str] = set()

    def __setitem__(self, key: str, value: ResourceState) -> None:
        self.touched.add(key)
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.touched.add(key)
        super().__delitem__(key)

    def pop(self, key: str, *default: Any) -> Any:
        self.touched.add(key)
        return super().pop(key, *default)

    def setdefault(self, key: str, default: Any = None) -> Any:
        self.touched.add(key)
        return super().setdefault(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        other = dict(*args, **kwargs)
        self.touched.update(other)
        super().update(other)

    def popitem(self) -> tuple[str, ResourceState]:
        key, value = super().popitem()
        self.touched.add(key)
        return key, value

    def clear(self) -> None:
        self.touched.update(self)
        super().clear()


class _CreatedIds(Mapping[str, str]):
    def __init__(self, entries: Mapping[str, ResourceState]) -> None:
        self._entries = entries

    def __getitem__(self, address: str) -> str:
        entry = self._entries[address]
        if entry.id and entry.status is ResourceStatus.CREATED:
            return entry.id
        raise KeyError(address)

    def __iter__(self) -> Iterator[str]:
        return (a for a in list(self._entries) if a in self)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class Recorder:
    """The state being applied, guarded by one lock; every mutation is made durable."""

    def __init__(self, store: StateWriter, state: StateFile) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._journal = store if isinstance(store, JournalingStore) else None
        if self._journal is not None:
            state = self._journal.open_journal(state)
        self._entries = _Tracked(state.resources)
        self._state = replace(state, resources=self._entries)
        # Records queued for the next flush (journal), and the last ticket given out.
        self._queue: list[bytes] = []
        self._queue_lock = threading.Lock()
        self._ticket = 0
        self._since_fold = 0
        self._folded_at = time.monotonic()
        self._commit = GroupCommit(self._flush_journal if self._journal else self._flush_state)

    @property
    def state(self) -> StateFile:
        return self._state

    @property
    def flushes(self) -> int:
        """How many flushes (fsyncs of the journal, or state writes) the run made."""
        return self._commit.flushes

    def ids(self) -> Mapping[str, str]:
        """address -> ID of what is created: a live view (O(1) to take; each lookup sees
        the entry as it is then, entries being replaced whole)."""
        return _CreatedIds(self._entries)

    def owned_ids(self) -> set[str | None]:
        with self._lock:
            return {r.id for r in self._state.resources.values() if r.id}

    def mutate(self, fn: Callable[[StateFile], None], *, wait: bool = True) -> None:
        """Apply `fn`; return once the change is durable, or (not `wait`: a result that
        is reported later) at once, leaving it to the next `sync()`. Durability is in
        order: a change made durable makes every earlier one durable too, so an intent
        waited for after a result covers the result as well."""
        with self._lock:
            self._entries.touched.clear()
            fn(self._state)
            touched = self._entries.touched
            if not touched:
                return
            changes = {a: self._entries.get(a) for a in touched}
            ticket = self._enqueue(changes)
        if wait:
            self._commit.wait(ticket)
            if self._journal is not None and self._fold_due():
                self._fold()

    def sync(self) -> None:
        """Return once every change made so far is durable."""
        with self._lock:
            ticket = self._ticket
        self._commit.wait(ticket)
        if self._journal is not None and self._fold_due():
            self._fold()

    def close(self) -> StateFile:
        """Make everything durable and fold the journal into the state file. After a
        failed flush (already reported as failed changes) nothing more is written: the
        state as it is in memory is returned."""
        if self._commit.failed:
            if self._journal is not None:
                self._journal.abandon_journal()
            return replace(self._state, resources=dict(self._entries))
        with self._lock:
            ticket = self._ticket
        self._commit.wait(ticket)
        if self._journal is not None:
            with self._lock:
                self._state = self._journal.close_journal(self._state)
        return replace(self._state, resources=dict(self._entries))

    # ----------------------------------------------------------------------------------------

    def _enqueue(self, changes: Mapping[str, ResourceState | None]) -> int:
        """Queue one change (with `_lock` held); its ticket."""
        if self._journal is not None:
            self._state.serial += 1
            with STORE_CLOCK.measure():
                record = encode_record(self._state.lineage, self._state.serial, changes)
            with self._queue_lock:
                self._queue.append(record)
                self._ticket += 1
                self._since_fold += 1
                return self._ticket
        self._ticket += 1
        return self._ticket

    def _flush_journal(self) -> int:
        assert self._journal is not None
        with self._queue_lock:
            batch, self._queue = self._queue, []
            covered = self._ticket
        if batch:
            self._journal.append_journal(b"".join(batch))
        return covered

    def _flush_state(self) -> int:
        # Entries are replaced whole, never edited, so a shallow copy is a consistent view.
        with self._lock:
            covered = self._ticket
            snapshot = replace(self._state, resources=dict(self._entries))
        written = self._store.write(snapshot)
        with self._lock:
            self._state.serial = max(self._state.serial, written.serial)
        return covered

    def _fold_due(self) -> bool:
        threshold = max(FOLD_MIN_RECORDS, FOLD_PER_ENTRY * len(self._entries))
        return self._since_fold >= threshold or time.monotonic() - self._folded_at >= FOLD_SECONDS

    def _fold(self) -> None:
        assert self._journal is not None
        with self._lock:
            if not self._fold_due():
                return  # another thread folded meanwhile
            # No change is queued while `_lock` is held: flush what is, then fold it all.
            self._commit.wait(self._ticket)
            self._state = replace(
                self._journal.fold(replace(self._state, resources=dict(self._entries))),
                resources=self._entries,
            )
            self._since_fold = 0
            self._folded_at = time.monotonic()
