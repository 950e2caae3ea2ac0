"""FileStateStore against real files: round trip, serial/lineage rules, backup, refusals,
atomicity under SIGKILL, and concurrent writers."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from provisioner.errors import StateCorruptError, StateError
from provisioner.state import parse as parse_module
from provisioner.state.model import FORMAT_VERSION, ResourceState, ResourceStatus, StateFile
from provisioner.state.store import FileStateStore, StateStore


def sample_state() -> StateFile:
    state = StateFile.new()
    state.resources["assistant.support"] = ResourceState(
        kind="assistant",
        id="asst-1",
        applied={"name": "Support", "model": {"provider": "openai", "temperature": 0.2}},
        depends_on=["board.lookup"],
        remote_updated_at="2026-11-25T10:00:00Z",
    )
    state.resources["board.lookup"] = ResourceState(
        kind="board",
        id=None,
        status=ResourceStatus.CREATING,
        applied={"type": "function", "description": 'quotes " and \\ and\nnewline, ünïcode ☎'},
        intent={"name": "lookup", "marker": "prov-123"},
        extra={"twilio_sid": "PN123"},
    )
    return state


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "full.json"


@pytest.fixture
def store(path: Path) -> FileStateStore:
    return FileStateStore(path)


def test_is_a_state_store(store: FileStateStore) -> None:
    backend: StateStore = store
    assert backend.describe() == str(store.path)
    assert not backend.exists()
    backend.write(backend.read())
    assert backend.exists()


def test_read_without_file_gives_new_state_and_creates_nothing(
    store: FileStateStore, path: Path
) -> None:
    state = store.read()
    assert state.serial == 0
    assert state.resources == {}
    assert state.lineage and state.hash_key
    assert not path.parent.exists()


def test_round_trip(store: FileStateStore, path: Path) -> None:
    state = sample_state()
    written = store.write(state)
    assert written.serial == 1
    assert path.exists()
    again = FileStateStore(path).read()
    assert again.to_dict() == written.to_dict()
    assert again.resources["board.lookup"].status is ResourceStatus.CREATING


def test_file_is_sorted_indented_json(store: FileStateStore, path: Path) -> None:
    # The incremental renderer must produce exactly what json.dumps would.
    for state in (StateFile.new(), sample_state()):
        path.unlink(missing_ok=True)
        written = FileStateStore(path).write(state)
        text = path.read_text()
        assert text == json.dumps(written.to_dict(), indent=2, sort_keys=True) + "\n"
    store.read()
    written = store.read()
    written.resources['assistant.ä "odd" name'] = ResourceState(kind="assistant", id="x")
    del written.resources["board.lookup"]
    written = store.write(written)
    assert path.read_text() == json.dumps(written.to_dict(), indent=2, sort_keys=True) + "\n"


def test_write_does_not_modify_argument(store: FileStateStore) -> None:
    state = sample_state()
    written = store.write(state)
    assert state.serial == 0
    assert written is not state
    assert written.serial == 1


def test_serial_bumps_only_on_change(store: FileStateStore, path: Path) -> None:
    state = store.write(sample_state())
    assert state.serial == 1
    before = os.stat(path)
    for _ in range(3):
        state = store.write(state)
    assert state.serial == 1
    after = os.stat(path)
    # Nothing was written at all.
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    # A copy with equal content is no change either.
    assert store.write(state.copy()).serial == 1

    state.resources["assistant.support"].applied["name"] = "Support v2"
    state = store.write(state)
    assert state.serial == 2
    assert json.loads(path.read_text())["serial"] == 2

    del state.resources["board.lookup"]
    state = store.write(state)
    assert state.serial == 3
    state.hash_key = "another"
    assert store.write(state).serial == 4


def test_type_only_change_counts_as_change(store: FileStateStore, path: Path) -> None:
    # 1 == True in Python, but not in the file: such a change must still be written.
    state = sample_state()
    state.resources["assistant.support"].applied["flag"] = 1
    state = store.write(state)
    state.resources["assistant.support"].applied["flag"] = True
    state = store.write(state)
    assert state.serial == 2
    assert json.loads(path.read_text())["resources"]["assistant.support"]["applied"]["flag"] is True


def test_mutating_after_write_is_still_detected(store: FileStateStore) -> None:
    # The store must not keep references into the caller's state.
    state = store.write(sample_state())
    state.resources["assistant.support"].applied["model"]["temperature"] = 0.9
    state = store.write(state)
    assert state.serial == 2
    assert FileStateStore(store.path).read().resources["assistant.support"].applied["model"] == {
        "provider": "openai",
        "temperature": 0.9,
    }


def test_backup_holds_previous_version(store: FileStateStore, path: Path) -> None:
    backup = path.with_name("full.json.backup")
    state = store.write(sample_state())
    assert not backup.exists()
    first = path.read_bytes()
    state.resources["assistant.support"].id = "asst-2"
    state = store.write(state)
    assert backup.read_bytes() == first
    second = path.read_bytes()
    state.resources["assistant.support"].id = "asst-3"
    store.write(state)
    assert backup.read_bytes() == second
    assert json.loads(backup.read_text())["serial"] == 2
    # No write, no backup churn.
    store.write(store.read())
    assert backup.read_bytes() == second


def test_file_mode_kept_and_new_files_private(store: FileStateStore, path: Path) -> None:
    state = store.write(sample_state())
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    os.chmod(path, 0o640)
    state.resources["assistant.support"].id = "asst-2"
    store.write(state)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def test_no_temp_files_left(store: FileStateStore, path: Path) -> None:
    state = store.write(sample_state())
    state.resources["assistant.support"].id = "asst-2"
    store.write(state)
    assert sorted(p.name for p in path.parent.iterdir()) == ["full.json", "full.json.backup"]


def test_read_does_not_lock(store: FileStateStore, path: Path) -> None:
    store.write(sample_state())
    store.read()
    assert not path.with_name("full.json.lock").exists()


# refusals ------------------------------------------------------------------------------------

VALID = json.dumps(sample_state().to_dict(), indent=2, sort_keys=True)

BAD_FILES = {
    "empty": (b"", "is empty"),
    "blank": (b"  \n\n", "is empty"),
    "truncated": (VALID[: len(VALID) // 2].encode(), "is not valid JSON (line"),
    "garbage": (b"\x00\x01 not json", "is not valid JSON"),
    "not utf-8": (b'{"lineage": "\xff\xfe"}', "is not UTF-8"),
    "list": (b"[1, 2]", "does not hold a JSON object (found list)"),
    "no lineage": (
        b'{"format_version": 1, "serial": 3, "resources": {}}',
        "lacks lineage",
    ),
    "no serial or version": (
        b'{"lineage": "abc", "resources": {}}',
        "lacks format_version, serial",
    ),
    "bad serial": (
        b'{"format_version": 1, "lineage": "abc", "serial": "3"}',
        "invalid serial",
    ),
    "version zero": (
        b'{"format_version": 0, "lineage": "abc", "serial": 3}',
        "invalid format_version",
    ),
    "newer version": (
        json.dumps({"format_version": FORMAT_VERSION + 1, "lineage": "abc", "serial": 3}).encode(),
        f"uses state format {FORMAT_VERSION + 1}, but this provisioner reads formats up to "
        f"{FORMAT_VERSION}",
    ),
    "bad resource": (
        b'{"format_version": 1, "lineage": "abc", "serial": 3, "resources": {"tool.x": {}}}',
        "resource tool.x is malformed",
    ),
    "resources not object": (
        b'{"format_version": 1, "lineage": "abc", "serial": 3, "resources": []}',
        "'resources' is not an object",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_refused_naming_backup(case: str, store: FileStateStore, path: Path) -> None:
    content, problem = BAD_FILES[case]
    store.write(sample_state())
    state = store.read()
    state.resources["assistant.support"].id = "asst-2"
    store.write(state)  # full.json.backup now holds serial 1
    path.write_bytes(content)

    with pytest.raises(StateCorruptError) as err:
        FileStateStore(path).read()
    message = str(err.value)
    assert message.startswith(str(path))
    assert problem in message
    assert "refusing to continue" in message
    assert "would create every resource again" in message
    backup = f"{path}.backup"
    assert f"The previous version is in {backup}" in message
    assert f"`cp {backup} {path}`" in message

    # Writing over it is refused too, and leaves it as it was.
    with pytest.raises(StateCorruptError):
        store.write(state)
    assert path.read_bytes() == content


def test_bad_file_without_backup(store: FileStateStore, path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_text('{"format_version": 1, "lin')
    with pytest.raises(StateCorruptError) as err:
        store.read()
    assert f"There is no backup ({path}.backup)" in str(err.value)


def test_missing_file_with_backup_refused(store: FileStateStore, path: Path) -> None:
    state = store.write(sample_state())
    state.resources["assistant.support"].id = "asst-2"
    store.write(state)
    path.unlink()
    with pytest.raises(StateCorruptError) as err:
        FileStateStore(path).read()
    assert "does not exist, but its backup" in str(err.value)
    assert f"cp {path}.backup {path}" in str(err.value)


def test_upgrades_older_formats_step_by_step(
    store: FileStateStore, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def one_to_two(doc: dict[str, object]) -> dict[str, object]:
        return {**doc, "format_version": 2, "steps": ["1->2"]}

    def two_to_three(doc: dict[str, object]) -> dict[str, object]:
        steps = doc["steps"]
        assert isinstance(steps, list)
        return {**doc, "format_version": 3, "steps": [*steps, "2->3"]}

    seen: list[object] = []

    def record(doc: dict[str, object]) -> dict[str, object]:
        seen.append(doc["steps"])
        return two_to_three(doc)

    store.write(sample_state())
    monkeypatch.setattr(parse_module, "FORMAT_VERSION", 3)
    monkeypatch.setattr(parse_module, "_UPGRADES", {1: one_to_two, 2: record})
    upgraded = FileStateStore(path).read()
    assert upgraded.format_version == 3
    assert seen == [["1->2"]]
    assert upgraded.resources.keys() == sample_state().resources.keys()

    monkeypatch.setattr(parse_module, "_UPGRADES", {2: record})
    with pytest.raises(StateCorruptError, match="state format 1, which has no upgrade"):
        FileStateStore(path).read()


def test_foreign_lineage_not_overwritten(store: FileStateStore, path: Path) -> None:
    mine = store.write(sample_state())
    other = sample_state()
    with pytest.raises(StateCorruptError) as err:
        store.write(other)
    assert (
        f"belongs to another deployment (lineage {mine.lineage}, expected {other.lineage})"
        in str(err.value)
    )
    # Also when the foreign file appears under a store that already knows its own.
    other_store = FileStateStore(path.with_name("other.json"))
    other_store.write(other)
    os.replace(other_store.path, path)
    with pytest.raises(StateCorruptError, match="belongs to another deployment"):
        store.write(mine)
    assert json.loads(path.read_text())["lineage"] == other.lineage


def test_lower_serial_refused(store: FileStateStore, path: Path) -> None:
    base = store.write(sample_state())
    # Another run (another store object, as in another process) writes in between.
    theirs = FileStateStore(path).read()
    theirs.resources["assistant.support"].id = "theirs"
    FileStateStore(path).write(theirs)

    base.resources["assistant.support"].id = "ours"
    with pytest.raises(StateError) as err:
        store.write(base)
    assert not isinstance(err.value, StateCorruptError)
    assert "stored serial 2, ours 1" in str(err.value)
    assert json.loads(path.read_text())["resources"]["assistant.support"]["id"] == "theirs"


def test_file_removed_under_us_is_written_again(store: FileStateStore, path: Path) -> None:
    state = store.write(sample_state())
    path.unlink()
    state.resources["assistant.support"].id = "asst-2"
    assert store.write(state).serial == 2
    assert FileStateStore(path).read().resources["assistant.support"].id == "asst-2"


# crashes and concurrency ---------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from provisioner.state.model import ResourceState
    from provisioner.state.store import FileStateStore

    store = FileStateStore(Path(sys.argv[1]))
    state = store.read()
    i = 0
    while True:
        i += 1
        # The file grows and shrinks, so a torn write could not pass for a complete one.
        state.resources[f"assistant.a{i % 300}"] = ResourceState(
            kind="assistant", id=f"id-{i}", applied={"pad": "x" * (i % 4000)}
        )
        state = store.write(state)
        if i == 20:
            print("writing", flush=True)
    """
)


def test_sigkill_mid_write_leaves_a_complete_file(store: FileStateStore, path: Path) -> None:
    store.write(sample_state())
    for delay in (0.05, 0.13, 0.29, 0.41, 0.6):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        assert proc.stdout.readline() == "writing\n"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        state = FileStateStore(path).read()
        doc = json.loads(path.read_text())
        assert doc["serial"] == state.serial > 1
        assert "assistant.support" in state.resources
        backup = json.loads(path.with_name("full.json.backup").read_text())
        # Killed between refreshing the backup and replacing the file: both hold the same.
        assert backup["serial"] in (state.serial - 1, state.serial)
    # A temp file may be left by a kill; it is ignored and never read as the state.
    for leftover in path.parent.glob(".full.json.*.tmp"):
        leftover.unlink()


def test_concurrent_writers_lose_nothing(path: Path) -> None:
    store = FileStateStore(path, durable=False)
    threads, per_thread = 4, 12
    latest = store.write(StateFile.new())
    latest_lock = threading.Lock()
    serials: list[int] = []
    refused = 0
    errors: list[BaseException] = []
    done = threading.Event()
    observed: list[int] = []

    def writer(t: int) -> None:
        nonlocal latest, refused
        try:
            for i in range(per_thread):
                while True:
                    with latest_lock:
                        base = latest.copy()
                    base.resources[f"board.t{t}_{i}"] = ResourceState(kind="board", id=f"{t}-{i}")
                    try:
                        written = store.write(base)
                    except StateError:
                        with latest_lock:
                            refused += 1
                        continue  # someone wrote in between: start again from the newest
                    with latest_lock:
                        serials.append(written.serial)
                        if written.serial > latest.serial:
                            latest = written
                    break
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader() -> None:
        other = FileStateStore(path)
        try:
            while not done.is_set():
                observed.append(other.read().serial)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    watcher = threading.Thread(target=reader)
    watcher.start()
    pool = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    done.set()
    watcher.join()

    assert errors == []
    total = threads * per_thread
    # Every accepted write got its own serial: no two writers replaced the same version.
    assert sorted(serials) == list(range(2, total + 2))
    final = FileStateStore(path).read()
    assert final.serial == total + 1
    assert len(final.resources) == total
    assert observed == sorted(observed)
    assert observed


def test_shared_state_written_from_many_threads(path: Path) -> None:
    # The apply engine's way: one state, each change recorded and written under its lock.
    store = FileStateStore(path, durable=False)
    holder = [store.write(StateFile.new())]
    guard = threading.Lock()

    def record(t: int) -> None:
        for i in range(20):
            with guard:
                holder[0].resources[f"board.t{t}_{i}"] = ResourceState(kind="board", id="x")
                holder[0] = store.write(holder[0])

    pool = [threading.Thread(target=record, args=(t,)) for t in range(8)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    final = FileStateStore(path).read()
    assert final.serial == 161
    assert len(final.resources) == 160
