"""The emulator's object store: every emulated Vapi object, per kind, in memory or in a file.

Owns: the objects (in their stored form, secrets included), the org id, the clock that
stamps `createdAt`/`updatedAt` (strictly increasing, even within one millisecond and
across processes, so ordering by `createdAt` is total), and counters such as the next
Vapi number. With `path`, the data lives in one JSON file so that separate processes
(each CLI run hosts its own in-process emulator) see the same objects: every
transaction takes an exclusive `fcntl.flock` on a side lock file (`<path>.lock`),
reloads the file if another process replaced it, and writes it back atomically
(temporary file + `os.replace`) if anything changed.

Must not touch: HTTP, validation, or what the API shows (secrets are hidden by the app).
Safe to share between threads and processes: one thread lock plus the file lock.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from provisioner.emulator.routes import emulated_kinds
from provisioner.errors import ProvisionerError

__all__ = ["EmulatorStore", "SandboxDataError", "StoreTransaction", "format_timestamp"]

_FORMAT_VERSION = 1


def format_timestamp(epoch_ms: int) -> str:
    """ISO-8601 with milliseconds and `Z`, as the API writes `createdAt`."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


class SandboxDataError(ProvisionerError):
    """The sandbox's data file cannot be used (not JSON, or not the sandbox's format)."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(
            f"{path} is not a usable sandbox data file ({problem}). It holds only the "
            "emulated Vapi objects: delete it to reset the sandbox to empty."
        )
        self.path = path


class _Data:
    """Everything the store holds; what the JSON file contains."""

    def __init__(self, org_id: str) -> None:
        self.org_id = org_id
        self.clock_ms = 0
        self.sequences: dict[str, int] = {}
        self.objects: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in emulated_kinds()}

    def to_json(self) -> dict[str, Any]:
        return {
            "format": _FORMAT_VERSION,
            "orgId": self.org_id,
            "clockMs": self.clock_ms,
            "sequences": self.sequences,
            "objects": {kind: list(objs.values()) for kind, objs in self.objects.items()},
        }

    @classmethod
    def from_json(cls, raw: Any, source: Path) -> _Data:
        """The data in `raw`, checked all the way down (a request must never trip on it).

        Raises:
            SandboxDataError: `raw` is not the sandbox's data.
        """
        if not isinstance(raw, dict) or raw.get("format") != _FORMAT_VERSION:
            raise SandboxDataError(
                source, f"expected a sandbox data file, format {_FORMAT_VERSION}"
            )
        try:
            data = cls(str(raw["orgId"]))
            data.clock_ms = int(raw.get("clockMs", 0))
            data.sequences = {str(k): int(v) for k, v in dict(raw.get("sequences", {})).items()}
            for kind, items in dict(raw.get("objects", {})).items():
                if kind not in data.objects:
                    continue
                if not isinstance(items, list) or not all(
                    isinstance(obj, dict) and isinstance(obj.get("id"), str) for obj in items
                ):
                    raise ValueError(f"the {kind} objects are not a list of objects with an id")
                data.objects[kind] = {obj["id"]: obj for obj in items}
        except (KeyError, TypeError, ValueError) as exc:
            raise SandboxDataError(source, f"bad content: {exc}") from None
        return data


class StoreTransaction:
    """Exclusive access to the store's data for one request; see `EmulatorStore.transaction`.

    Objects handed out are the stored ones: mutate them only through `put`.
    """

    def __init__(self, data: _Data, now: Callable[[], float]) -> None:
        self._data = data
        self._now = now
        self.dirty = False

    @property
    def org_id(self) -> str:
        return self._data.org_id

    def objects(self, kind: str) -> Mapping[str, dict[str, Any]]:
        """The objects of `kind` by id, in creation order (read-only view)."""
        return self._data.objects[_check_kind(kind)]

    def get(self, kind: str, object_id: str) -> dict[str, Any] | None:
        return self._data.objects[_check_kind(kind)].get(object_id)

    def exists(self, kind: str, object_id: str) -> bool:
        return object_id in self._data.objects[_check_kind(kind)]

    def timestamp(self) -> str:
        """The next timestamp: now, or one millisecond after the last one if that is later."""
        ms = max(int(self._now() * 1000), self._data.clock_ms + 1)
        self._data.clock_ms = ms
        self.dirty = True
        return format_timestamp(ms)

    def next_sequence(self, name: str) -> int:
        """1, 2, 3, ... per name; never reused, even after a reset."""
        value = self._data.sequences.get(name, 0) + 1
        self._data.sequences[name] = value
        self.dirty = True
        return value

    def insert(self, kind: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Store a new object: `body` plus `id`, `orgId`, `createdAt`, `updatedAt`.

        No validation and no kind-specific read fields (the app adds those to `body`).
        """
        stamp = self.timestamp()
        obj = {"id": str(uuid.uuid4()), "orgId": self.org_id, **copy.deepcopy(dict(body))}
        obj["createdAt"] = stamp
        obj["updatedAt"] = stamp
        self.put(kind, obj)
        return obj

    def put(self, kind: str, obj: dict[str, Any]) -> None:
        """Store `obj` (new or replacing the object with its id)."""
        self._data.objects[_check_kind(kind)][str(obj["id"])] = obj
        self.dirty = True

    def delete(self, kind: str, object_id: str) -> dict[str, Any] | None:
        removed = self._data.objects[_check_kind(kind)].pop(object_id, None)
        if removed is not None:
            self.dirty = True
        return removed

    def clear(self) -> None:
        """Remove every object (the org id, clock and sequences stay)."""
        for objs in self._data.objects.values():
            objs.clear()
        self.dirty = True


class EmulatorStore:
    """Thread-safe (and, with `path`, process-safe) store of emulated Vapi objects.

    Args:
        path: JSON file to keep the data in (created on first write; its parent must
            exist). None keeps everything in memory.
        now: wall clock in epoch seconds, for timestamps.
    """

    def __init__(self, path: Path | None = None, *, now: Callable[[], float] = time.time) -> None:
        self._path = path
        self._now = now
        self._lock = threading.RLock()
        self._data = _Data(str(uuid.uuid4()))
        # (inode, mtime, size) of the file as last read or written; None = not in sync.
        self._signature: tuple[int, int, int] | None = None
        if path is not None and path.exists():
            # Check the file now, so that a damaged one is one clear error up front
            # rather than a failure in every request.
            with self.transaction():
                pass

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def org_id(self) -> str:
        with self.transaction() as tx:
            return tx.org_id

    @contextlib.contextmanager
    def transaction(self) -> Iterator[StoreTransaction]:
        """Exclusive access to the data, fresh from the file; written back if changed.

        Raises:
            SandboxDataError: the data file exists but is not a sandbox data file.
        """
        with self._lock:
            if self._path is None:
                yield StoreTransaction(self._data, self._now)
                return
            lock_path = self._path.with_name(self._path.name + ".lock")
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._sync()
                tx = StoreTransaction(self._data, self._now)
                try:
                    yield tx
                except BaseException:
                    # Half-applied changes must not linger: reread the file next time.
                    self._signature = None
                    raise
                if tx.dirty:
                    self._write()
            finally:
                os.close(fd)  # also releases the flock

    def seed(self, objects: Iterable[tuple[str, Mapping[str, Any]]], created_at: str) -> None:
        """Start a store that never held anything with `objects` (kind, body): in memory
        until the first write, with IDs derived from kind and name, so that every process
        starting from no file sees the same objects and reads never create the file."""
        with self._lock:
            if self._path is not None and self._path.exists():
                return
            for kind, body in objects:
                oid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"sandbox:{kind}:{body.get('name')}"))
                obj = {"id": oid, "orgId": self._data.org_id, **copy.deepcopy(dict(body))}
                obj["createdAt"] = obj["updatedAt"] = created_at
                self._data.objects[_check_kind(kind)][oid] = obj

    def insert(self, kind: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Store one object as is (see `StoreTransaction.insert`); returns a copy."""
        with self.transaction() as tx:
            return copy.deepcopy(tx.insert(kind, body))

    def get(self, kind: str, object_id: str) -> dict[str, Any] | None:
        """A copy of the stored object (secrets included), or None."""
        with self.transaction() as tx:
            obj = tx.get(kind, object_id)
            return copy.deepcopy(obj) if obj is not None else None

    def objects(self, kind: str) -> list[dict[str, Any]]:
        """Copies of the stored objects of `kind` (secrets included), oldest first."""
        with self.transaction() as tx:
            return copy.deepcopy(list(tx.objects(kind).values()))

    def counts(self) -> dict[str, int]:
        """Number of stored objects per kind."""
        with self.transaction() as tx:
            return {kind: len(tx.objects(kind)) for kind in emulated_kinds()}

    def reset(self) -> None:
        """Remove every object."""
        with self.transaction() as tx:
            tx.clear()

    # -- file ------------------------------------------------------------------------

    def _sync(self) -> None:
        assert self._path is not None
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            if self._signature is not None:
                # The file was removed behind our back: start again, empty.
                self._data = _Data(str(uuid.uuid4()))
                self._signature = None
            return
        signature = (st.st_ino, st.st_mtime_ns, st.st_size)
        if signature == self._signature:
            return
        try:
            raw = json.loads(self._path.read_text(encoding="utf-8"))
        except (ValueError, OSError) as exc:  # UnicodeDecodeError is a ValueError
            raise SandboxDataError(self._path, f"unreadable: {exc}") from None
        self._data = _Data.from_json(raw, self._path)
        self._signature = signature

    def _write(self) -> None:
        assert self._path is not None
        tmp = self._path.with_name(f".{self._path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        text = json.dumps(self._data.to_json(), ensure_ascii=False, separators=(",", ":"))
        try:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, self._path)
        finally:
            tmp.unlink(missing_ok=True)
        st = os.stat(self._path)
        self._signature = (st.st_ino, st.st_mtime_ns, st.st_size)


def _check_kind(kind: str) -> str:
    known = emulated_kinds()
    if kind not in known:
        raise KeyError(f"unknown kind {kind!r} (known: {', '.join(known)})")
    return kind
