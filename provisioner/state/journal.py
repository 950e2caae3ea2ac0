"""The state journal: the changes of a run, appended beside the state file, then folded.

Rewriting the whole state after every change costs O(N) per change, O(N^2) per run. The
apply engine appends instead one record per change (an intent before its request, a
result after it) to `<state>.journal`, and the store folds the journal into the state
file every so often and at the end of the run (`FileStateStore.fold`).

A record is one line: the CRC-32 of its JSON (8 hex digits), a space, the JSON, "\\n":

    {"c": {address: resource or null (removed)}, "l": lineage, "s": serial}

Each record takes the serial one further than the one before it (the state file's serial
for the first after a fold), so the serial advances with every durable change and saved
plans see it. Replaying on read (`replay`) applies the records newer than the state file,
in order:

- a record at or below the file's serial is already in it (the run was killed between
  writing the folded file and emptying the journal): skipped;
- a bad last record is a write torn by a crash before its fsync returned: nothing was
  reported for it (the change waited for the fsync), so it is dropped, with a notice;
- a bad record followed by good ones, a gap in the serials, or another lineage is
  corruption: refused, like a corrupt state file.

`GroupCommit` makes one flush (an fsync, or one write to a remote backend) serve every
change that arrived while the previous flush was in progress.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from provisioner.errors import StateCorruptError, StateError
from provisioner.state.model import ResourceState, StateFile

_COMPACT = json.JSONEncoder(sort_keys=True, separators=(",", ":"))

# Set to a file path, the process writes there at exit how long it spent in the state
# store ({"seconds": ...}): the benchmark's state-store column.
TIMINGS_ENV = "PROVISIONER_STATE_TIMINGS"


class StoreClock:
    """Seconds spent reading, appending to, fsyncing and writing the state, summed."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._lock = threading.Lock()

    @contextmanager
    def measure(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            spent = time.perf_counter() - start
            with self._lock:
                self.seconds += spent


STORE_CLOCK = StoreClock()


def _dump_timings(path: str) -> None:
    try:
        Path(path).write_text(json.dumps({"seconds": STORE_CLOCK.seconds}), encoding="utf-8")
    except OSError:
        pass  # a benchmark aid only


if os.environ.get(TIMINGS_ENV):
    atexit.register(_dump_timings, os.environ[TIMINGS_ENV])


def journal_path_for(state_path: Path) -> Path:
    return state_path.with_name(state_path.name + ".journal")


def encode_record(lineage: str, serial: int, changes: Mapping[str, ResourceState | None]) -> bytes:
    """One journal line for `changes` (an address mapped to its new entry, or None: removed)."""
    body = _COMPACT.encode(
        {
            "c": {a: None if r is None else r.to_dict(deep=False) for a, r in changes.items()},
            "l": lineage,
            "s": serial,
        }
    ).encode()
    return b"%08x %s\n" % (zlib.crc32(body), body)


@dataclass(frozen=True, slots=True)
class Replayed:
    """The state with the journal applied, and what was found on the way."""

    state: StateFile
    records: int  # applied
    notice: str | None = None  # a torn last record dropped


def _decode(line: bytes) -> dict[str, Any] | None:
    """The record on `line` (without its newline), or None if it fails its checksum."""
    crc, sep, body = line.partition(b" ")
    if not sep or len(crc) != 8:
        return None
    try:
        if int(crc, 16) != zlib.crc32(body):
            return None
        record = json.loads(body)
    except ValueError:
        return None
    ok = (
        isinstance(record, dict)
        and isinstance(record.get("s"), int)
        and isinstance(record.get("l"), str)
        and isinstance(record.get("c"), dict)
    )
    return record if ok else None


def replay(state: StateFile, raw: bytes, where: Path) -> Replayed:
    """`state` (as read from its file) with the journal's bytes `raw` applied.

    Raises:
        StateCorruptError: a record other than the last is bad, the serials have a gap, or
            a record belongs to another lineage.
    """
    lines = raw.split(b"\n")
    # The last element is what follows the last newline: empty, or a torn record.
    complete, tail = lines[:-1], lines[-1]
    resources: dict[str, ResourceState] | None = None
    serial = state.serial
    applied = 0
    notice = None
    for number, line in enumerate(complete, start=1):
        record = _decode(line)
        if record is None:
            if number == len(complete) and not tail:
                notice = _torn(where, number)
                break
            raise _corrupt(where, f"record {number} fails its checksum", good_after=True)
        if record["l"] != state.lineage:
            raise _corrupt(
                where, f"record {number} belongs to another state (lineage {record['l']})"
            )
        if record["s"] <= serial:
            continue  # already folded into the state file
        if record["s"] != serial + 1:
            raise _corrupt(
                where,
                f"record {number} has serial {record['s']} but the state is at serial "
                f"{serial}: records are missing",
            )
        if resources is None:
            resources = dict(state.resources)
        for address, data in record["c"].items():
            if data is None:
                resources.pop(address, None)
                continue
            try:
                if not isinstance(data, dict):
                    raise ValueError("not an object")
                resources[address] = ResourceState.from_dict(data)
            except (KeyError, ValueError, TypeError) as exc:
                problem = f"record {number}: {address} is malformed ({exc!r})"
                raise _corrupt(where, problem) from None
        serial = record["s"]
        applied += 1
    if tail:
        notice = _torn(where, len(complete) + 1)
    if resources is None:
        return Replayed(state, 0, notice)
    return Replayed(replace(state, serial=serial, resources=resources), applied, notice)


def _torn(where: Path, number: int) -> str:
    return (
        f"{where}: record {number}, the last, is incomplete (a run was killed while writing "
        "it, or is writing it now, before the change it records was sent or reported); it "
        "was dropped"
    )


def _corrupt(where: Path, problem: str, *, good_after: bool = False) -> StateCorruptError:
    after = " and is followed by good records, so it is not a torn last write" if good_after else ""
    return StateCorruptError(
        f"{where}: {problem}{after}: refusing to continue, since a change it records could "
        "otherwise be lost or made twice. Inspect the journal (one JSON record per line, "
        "after its checksum); once the objects it names are accounted for, remove it, then "
        "run `provisioner plan` to check."
    )


class FileJournal:
    """The open journal file of a run: appends, fsyncs, empties."""

    def __init__(self, path: Path, *, durable: bool) -> None:
        self.path = path
        self.durable = durable
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StateError(f"cannot open {path}: {exc.strerror or exc}") from exc

    def append(self, data: bytes) -> None:
        """Write `data` and make it durable (one fsync, whatever its size)."""
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
            if self.durable:
                # (data and the size it needs, without the timestamps: enough for an append)
                _datasync(self._fd)
        except OSError as exc:
            raise StateError(f"cannot write {self.path}: {exc.strerror or exc}") from exc

    def reset(self) -> None:
        """Empty it: every record is in the state file now. (Not fsynced: records left by
        a lost truncation are at or below the folded serial, and skipped on replay.)"""
        try:
            os.ftruncate(self._fd, 0)
        except OSError as exc:
            raise StateError(f"cannot empty {self.path}: {exc.strerror or exc}") from exc

    def close(self, *, remove: bool) -> None:
        os.close(self._fd)
        if remove:
            self.path.unlink(missing_ok=True)


_datasync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)


class GroupCommit:
    """Leader/follower group commit.

    A change is given a ticket (a sequence number) when its record is queued; `wait(ticket)`
    returns once a flush covered it. The first waiter to find no flush in progress runs
    `flush()`, which persists everything queued so far and returns the last ticket it
    covered; the others wait for it, and most find their ticket covered when it ends.
    A failed flush fails every later wait: records it took may not be on disk.
    """

    def __init__(self, flush: Callable[[], int]) -> None:
        self._flush = flush
        self._cond = threading.Condition()
        self._durable = 0
        self._flushing = False
        self._failed: BaseException | None = None
        self.flushes = 0

    @property
    def failed(self) -> bool:
        return self._failed is not None

    def wait(self, ticket: int) -> None:
        while True:
            with self._cond:
                while True:
                    if self._failed is not None:
                        raise StateError(f"the state could not be saved: {self._failed}")
                    if self._durable >= ticket:
                        return
                    if not self._flushing:
                        self._flushing = True
                        break
                    self._cond.wait()
            covered = 0
            try:
                covered = self._flush()
            except BaseException as exc:
                with self._cond:
                    self._failed = exc
                raise
            finally:
                with self._cond:
                    self._durable = max(self._durable, covered)
                    self._flushing = False
                    self.flushes += 1
                    self._cond.notify_all()
