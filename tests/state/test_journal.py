"""The state journal against real files: records appended per change and group-committed,
folded into the state file, replayed on read; a torn last record dropped with a notice, a
corrupt one in the middle refused."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from provisioner.apply import recorder as recorder_module
from provisioner.apply.recorder import Recorder
from provisioner.errors import StateCorruptError
from provisioner.state.model import ResourceState, ResourceStatus, StateFile
from provisioner.state.store import FileStateStore


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "m.json"


def entry(n: int, *, created: bool = True) -> ResourceState:
    if created:
        return ResourceState(kind="assistant", id=f"asst-{n}", applied={"name": f"A {n}"})
    return ResourceState(
        kind="assistant", id=None, status=ResourceStatus.CREATING, intent={"name": f"A {n}"}
    )


def put(address: str, value: ResourceState):  # type: ignore[no-untyped-def]
    def fn(state: StateFile) -> None:
        state.resources[address] = value

    return fn


def journal_lines(path: Path) -> list[bytes]:
    return path.with_name(path.name + ".journal").read_bytes().splitlines(keepends=True)


def started(path: Path) -> tuple[FileStateStore, Recorder, int]:
    """A recorder on a fresh store; the serial of the state file it starts from."""
    store = FileStateStore(path)
    rec = Recorder(store, store.read())
    return store, rec, rec.state.serial


def test_changes_are_journaled_not_rewritten_and_replayed_on_read(path: Path) -> None:
    store, rec, base = started(path)
    file_before = path.read_bytes()
    rec.mutate(put("assistant.a0", entry(0, created=False)))  # intent
    rec.mutate(put("assistant.a0", entry(0)))  # result
    rec.mutate(put("assistant.a1", entry(1, created=False)))
    # The state file is not rewritten per change; the journal holds one record per change.
    assert path.read_bytes() == file_before
    assert len(journal_lines(path)) == 3
    # Another reader (the next run, after a kill) sees every change, and the serial counts
    # each record, so a saved plan made before any of them is stale.
    seen = FileStateStore(path).read()
    assert seen.serial == base + 3
    assert seen.resources["assistant.a0"].id == "asst-0"
    assert seen.resources["assistant.a1"].status is ResourceStatus.CREATING
    final = rec.close()
    assert final.serial == base + 3
    on_disk = json.loads(path.read_text())
    assert on_disk["serial"] == base + 3
    assert on_disk["resources"]["assistant.a0"]["id"] == "asst-0"
    assert not path.with_name("m.json.journal").exists()
    del store


def test_removal_is_journaled(path: Path) -> None:
    _, rec, _ = started(path)
    rec.mutate(put("assistant.a0", entry(0)))
    rec.mutate(lambda s: s.resources.pop("assistant.a0", None))
    assert "assistant.a0" not in FileStateStore(path).read().resources
    # A mutation that changes nothing writes nothing.
    rec.mutate(lambda s: None)
    assert len(journal_lines(path)) == 2
    rec.close()


def test_next_run_folds_what_a_killed_run_left(path: Path) -> None:
    _, rec, base = started(path)
    rec.mutate(put("assistant.a0", entry(0)))
    rec.mutate(put("assistant.a1", entry(1)))
    # Killed here: no close, no fold. The next run replays, then folds before journaling.
    store = FileStateStore(path)
    state = store.read()
    assert state.serial == base + 2
    rec2 = Recorder(store, state)
    assert json.loads(path.read_text())["serial"] == base + 2
    rec2.mutate(put("assistant.a2", entry(2)))
    assert len(journal_lines(path)) == 1
    final = rec2.close()
    assert sorted(final.resources) == ["assistant.a0", "assistant.a1", "assistant.a2"]
    assert final.serial == base + 3
    assert FileStateStore(path).read().serial == base + 3


def test_folded_every_so_often(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recorder_module, "FOLD_MIN_RECORDS", 5)
    monkeypatch.setattr(recorder_module, "FOLD_PER_ENTRY", 0.5)
    _, rec, base = started(path)
    for n in range(12):
        rec.mutate(put(f"assistant.a{n}", entry(n)))
    # Folded at 5 and 10 records: the file has the first ten, the journal the last two.
    on_disk = json.loads(path.read_text())
    assert len(on_disk["resources"]) == 10 and on_disk["serial"] == base + 10
    assert len(journal_lines(path)) == 2
    assert FileStateStore(path).read().serial == base + 12
    assert rec.close().serial == base + 12


def test_a_record_is_durable_before_mutate_returns_and_fsyncs_are_shared(path: Path) -> None:
    _, rec, base = started(path)
    threads, per_thread = 10, 30
    barrier = threading.Barrier(threads)
    seen_after: list[bool] = []

    def worker(t: int) -> None:
        barrier.wait()
        for n in range(per_thread):
            address = f"assistant.t{t}n{n}"
            rec.mutate(put(address, entry(t * 1000 + n)))
            # Once mutate returns, a reader (a rerun after a kill) finds the change.
            if n == per_thread - 1:
                seen_after.append(address in FileStateStore(path).read().resources)

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    assert seen_after == [True] * threads
    records = threads * per_thread
    assert len(journal_lines(path)) == records
    # Group commit: records that arrived during an fsync shared the next one.
    assert rec.flushes < records
    final = rec.close()
    assert len(final.resources) == records and final.serial == base + records


def test_torn_last_record_is_dropped_with_a_notice(path: Path) -> None:
    _, rec, base = started(path)
    rec.mutate(put("assistant.a0", entry(0)))
    rec.mutate(put("assistant.a1", entry(1)))
    journal = path.with_name("m.json.journal")
    whole = journal.read_bytes()
    last = journal_lines(path)[-1]
    # A crash while writing the second record: half of it reached the disk.
    journal.write_bytes(whole[: len(whole) - len(last) // 2])
    notices: list[str] = []
    store = FileStateStore(path, notify=notices.append)
    state = store.read()
    assert sorted(state.resources) == ["assistant.a0"] and state.serial == base + 1
    assert len(notices) == 1 and "record 2, the last, is incomplete" in notices[0]
    assert str(journal) in notices[0]
    # The next run starts a clean journal: the torn bytes never precede a new record.
    rec2 = Recorder(store, state)
    rec2.mutate(put("assistant.a2", entry(2)))
    assert FileStateStore(path).read().resources.keys() == {"assistant.a0", "assistant.a2"}
    rec2.close()


def test_bad_checksum_on_the_last_complete_record_counts_as_torn(path: Path) -> None:
    _, rec, _ = started(path)
    rec.mutate(put("assistant.a0", entry(0)))
    rec.mutate(put("assistant.a1", entry(1)))
    journal = path.with_name("m.json.journal")
    lines = journal_lines(path)
    journal.write_bytes(lines[0] + lines[1].replace(b"asst-1", b"asst-X"))
    notices: list[str] = []
    state = FileStateStore(path, notify=notices.append).read()
    assert "assistant.a1" not in state.resources and notices


@pytest.mark.parametrize(
    "damage",
    ["checksum", "serial gap", "other lineage"],
)
def test_corrupt_record_in_the_middle_is_refused(path: Path, damage: str) -> None:
    _, rec, _ = started(path)
    for n in range(3):
        rec.mutate(put(f"assistant.a{n}", entry(n)))
    journal = path.with_name("m.json.journal")
    lines = journal_lines(path)
    if damage == "checksum":
        lines[0] = lines[0].replace(b"asst-0", b"asst-9")
    elif damage == "serial gap":
        del lines[1]
    else:
        other = Recorder(FileStateStore(path.with_name("other.json")), StateFile.new())
        other.mutate(put("assistant.a0", entry(0)))
        lines[1] = journal_lines(path.with_name("other.json"))[0]
        other.close()
    journal.write_bytes(b"".join(lines))
    with pytest.raises(StateCorruptError) as info:
        FileStateStore(path).read()
    message = str(info.value)
    assert str(journal) in message and "refusing to continue" in message


def test_journal_without_its_state_file_is_refused(path: Path) -> None:
    _, rec, _ = started(path)
    rec.mutate(put("assistant.a0", entry(0)))
    path.unlink()
    path.with_name("m.json.backup").unlink(missing_ok=True)
    with pytest.raises(StateCorruptError, match="journal"):
        FileStateStore(path).read()


def test_a_write_folds_the_journal(path: Path) -> None:
    _, rec, base = started(path)
    rec.mutate(put("assistant.a0", entry(0)))
    # (a killed run; the next one changes the state with a plain write under its lock)
    store = FileStateStore(path)
    state = store.read()
    state.resources["assistant.a1"] = entry(1)
    written = store.write(state)
    assert written.serial == base + 2
    assert not path.with_name("m.json.journal").exists()
    assert FileStateStore(path).read().resources.keys() == {"assistant.a0", "assistant.a1"}


class _WholeStateWrites:
    """A store with no journal (as a remote backend): whole-state writes, counted."""

    def __init__(self) -> None:
        self.writes = 0
        self.stored: StateFile | None = None
        self.lock = threading.Lock()

    def write(self, state: StateFile) -> StateFile:
        with self.lock:
            time.sleep(0.005)  # a round trip to S3 or PostgreSQL
            self.writes += 1
            self.stored = StateFile.from_dict(state.to_dict())
            self.stored.serial = state.serial + 1
            return self.stored


def test_a_store_without_journal_gets_group_committed_whole_writes() -> None:
    backend = _WholeStateWrites()
    rec = Recorder(backend, StateFile.new())
    threads = 10
    barrier = threading.Barrier(threads)

    def worker(t: int) -> None:
        barrier.wait()
        for n in range(20):
            rec.mutate(put(f"assistant.t{t}n{n}", entry(n)))

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    final = rec.close()
    assert backend.stored is not None and len(backend.stored.resources) == 200
    assert len(final.resources) == 200
    # Changes that arrived during a write shared the next one.
    assert backend.writes == rec.flushes < 100
