"""The state lock: real lock files and real processes."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from provisioner.errors import StateError, StateLockedError
from provisioner.state import lock as lock_module
from provisioner.state.lock import LockInfo, acquire_lock, read_lock
from provisioner.state.store import FileStateStore


@pytest.fixture
def store(tmp_path: Path) -> FileStateStore:
    return FileStateStore(tmp_path / "state" / "full.json")


@pytest.fixture
def lock_file(store: FileStateStore) -> Path:
    return store.path.with_name("full.json.lock")


def info(command: str = "provisioner apply full.yaml") -> LockInfo:
    return LockInfo.create(command=command, operation="apply")


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    with pytest.raises(ProcessLookupError):
        os.kill(proc.pid, 0)
    return proc.pid


def plant(lock_file: Path, **fields: object) -> LockInfo:
    holder = LockInfo(
        **{
            **info().to_dict(),
            "who": "alice@ci-7",
            "created": "2026-11-25T10:00:00Z",
            **fields,
        }
    )
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    lock_file.write_text(json.dumps(holder.to_dict()))
    return holder


def test_lock_info_create() -> None:
    now = datetime(2026, 11, 25, 10, 0, 0, 123456, tzinfo=UTC)
    made = LockInfo.create(command="provisioner apply full.yaml", operation="apply", now=now)
    assert uuid.UUID(made.id).version == 4
    assert made.pid == os.getpid()
    assert made.hostname == socket.gethostname()
    assert made.who.endswith("@" + socket.gethostname())
    assert made.created == "2026-11-25T10:00:00Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info().created)
    assert LockInfo.from_dict(json.loads(json.dumps(made.to_dict()))) == made
    with pytest.raises(ValueError):
        LockInfo.from_dict({**made.to_dict(), "pid": "12"})


def test_lock_file_held_during_block_and_removed_after(
    store: FileStateStore, lock_file: Path
) -> None:
    me = info()
    with store.lock(me, timeout=0) as held:
        assert held.info == me
        assert read_lock(lock_file) == me
        assert json.loads(lock_file.read_text())["command"] == "provisioner apply full.yaml"
    assert not lock_file.exists()


def test_released_when_block_raises(store: FileStateStore, lock_file: Path) -> None:
    with pytest.raises(RuntimeError), store.lock(info(), timeout=0):
        raise RuntimeError("boom")
    assert not lock_file.exists()


def test_timeout_zero_fails_at_once_naming_holder(store: FileStateStore) -> None:
    first = info()
    with store.lock(first, timeout=0):
        started = time.monotonic()
        with pytest.raises(StateLockedError) as err, store.lock(info("other"), timeout=0):
            pass
        assert time.monotonic() - started < 0.5
    message = str(err.value)
    assert message == (
        f"{store.path} is locked by {first.who} (pid {os.getpid()}) running "
        f"`provisioner apply full.yaml` since {first.created} (lock ID {first.id}). "
        f"Wait for it to finish or retry with --lock-timeout."
    )


def test_waits_up_to_timeout(store: FileStateStore) -> None:
    with store.lock(info(), timeout=0):
        started = time.monotonic()
        with pytest.raises(StateLockedError, match=r"\(waited 0.4s\)"), store.lock(info(), 0.4):
            pass
        assert 0.4 <= time.monotonic() - started < 1.5


def test_acquires_once_released_during_wait(store: FileStateStore, lock_file: Path) -> None:
    held = store.lock(info(), timeout=0)
    held.__enter__()
    timer = threading.Timer(0.3, held.__exit__, args=(None, None, None))
    timer.start()
    try:
        with store.lock(info("second"), timeout=10) as second:
            assert read_lock(lock_file) == second.info
    finally:
        timer.join()


def test_backoff_grows_and_stops_at_deadline(store: FileStateStore, lock_file: Path) -> None:
    plant(lock_file, pid=os.getpid())
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    with pytest.raises(StateLockedError):
        acquire_lock(lock_file, info(), 10, subject="s", sleep=sleep, clock=lambda: now[0])
    assert sleeps[:4] == [0.05, 0.1, 0.2, 0.4]
    assert max(sleeps) == lock_module.MAX_DELAY
    assert sum(sleeps) == pytest.approx(10)


HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from provisioner.state.lock import LockInfo
    from provisioner.state.store import FileStateStore

    store = FileStateStore(Path(sys.argv[1]))
    me = LockInfo.create(command="provisioner apply full.yaml", operation="apply")
    with store.lock(me, timeout=0):
        print(me.id, flush=True)
        sys.stdin.read()  # hold until the parent closes our stdin
    """
)


def start_holder(store: FileStateStore) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(store.path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lock_id = proc.stdout.readline().strip()
    assert lock_id, "the holder process failed to take the lock"
    return proc, lock_id


def test_contention_between_processes(store: FileStateStore, lock_file: Path) -> None:
    proc, lock_id = start_holder(store)
    try:
        started = time.monotonic()
        with pytest.raises(StateLockedError) as err, store.lock(info(), timeout=0.3):
            pass
        assert time.monotonic() - started >= 0.3
        message = str(err.value)
        assert f"(pid {proc.pid}) running `provisioner apply full.yaml`" in message
        assert f"(lock ID {lock_id})" in message
        assert "retry with --lock-timeout" in message
    finally:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        proc.wait(timeout=10)
        proc.stdout.close()
    # The holder released on its way out.
    assert not lock_file.exists()
    with store.lock(info(), timeout=0):
        pass


def test_waiting_process_gets_lock_when_holder_finishes(store: FileStateStore) -> None:
    proc, _ = start_holder(store)
    assert proc.stdin is not None and proc.stdout is not None
    threading.Timer(0.3, proc.stdin.close).start()
    try:
        with store.lock(info(), timeout=10) as held:
            assert read_lock(store.lock_path) == held.info
    finally:
        proc.wait(timeout=10)
        proc.stdout.close()


def test_killed_holder_is_taken_over(store: FileStateStore, lock_file: Path) -> None:
    proc, lock_id = start_holder(store)
    proc.kill()
    proc.wait()
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.close()
    proc.stdout.close()

    started = time.monotonic()
    with store.lock(info(), timeout=30) as held:
        assert held.replaced is not None and held.replaced.id == lock_id
        assert read_lock(lock_file) == held.info
    assert time.monotonic() - started < 5
    assert not lock_file.exists()


def test_dead_holder_taken_over_once_by_racing_runs(store: FileStateStore, lock_file: Path) -> None:
    """Several runs find the same dead lock at once: exactly one takes it over, the others
    see the new (live) holder."""
    plant(lock_file, pid=dead_pid())
    script = (
        "import sys, time\n"
        "from provisioner.state.store import FileStateStore\n"
        "from provisioner.state.lock import LockInfo\n"
        "from provisioner.errors import StateLockedError\n"
        "store = FileStateStore(__import__('pathlib').Path(sys.argv[1]))\n"
        "try:\n"
        "    with store.lock(LockInfo.create('t', 'apply'), timeout=0) as held:\n"
        "        print('took', held.replaced is not None, flush=True)\n"
        "        time.sleep(3.0)\n"
        "except StateLockedError:\n"
        "    print('locked', flush=True)\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(store.path)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert sorted(outs) == ["locked", "locked", "locked", "took True"], outs


def test_force_unlock(store: FileStateStore, lock_file: Path) -> None:
    holder = plant(lock_file, hostname="ci-7.elsewhere")
    with pytest.raises(StateLockedError) as err, store.lock(info(), timeout=0):
        pass
    message = str(err.value)
    assert message.startswith(f"{store.path} is locked by alice@ci-7 (pid {holder.pid})")
    assert holder.id in message

    wrong = str(uuid.uuid4())
    with pytest.raises(StateError) as unlock_err:
        store.force_unlock(wrong)
    assert f"locked with lock ID {holder.id}, not {wrong}" in str(unlock_err.value)
    assert lock_file.exists()

    store.force_unlock(holder.id)
    assert not lock_file.exists()
    with pytest.raises(StateError, match="is not locked"):
        store.force_unlock(holder.id)


def test_holder_on_other_host_assumed_alive(store: FileStateStore, lock_file: Path) -> None:
    plant(lock_file, pid=dead_pid(), hostname="ci-7.elsewhere")
    with pytest.raises(StateLockedError) as err, store.lock(info(), timeout=0):
        pass
    assert "retry with --lock-timeout" in str(err.value)
    assert "no longer running" not in str(err.value)


def test_release_leaves_a_lock_that_is_no_longer_ours(
    store: FileStateStore, lock_file: Path
) -> None:
    with store.lock(info(), timeout=0) as first:
        store.force_unlock(first.info.id, force=True)  # our own lock: alive, so forced
        second = plant(lock_file, pid=os.getpid())
    assert read_lock(lock_file) == second


def test_unreadable_lock_file(
    store: FileStateStore, lock_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lock_module, "UNREADABLE_GRACE", 0.2)
    lock_file.parent.mkdir(parents=True)
    lock_file.write_text("")
    with pytest.raises(StateLockedError) as err, store.lock(info(), timeout=0):
        pass
    assert f"its lock file {lock_file} is empty" in str(err.value)
    assert "`provisioner force-unlock MANIFEST ANY_ID`" in str(err.value)
    assert f"`rm {lock_file}`" in str(err.value)
    # It names no holder, so force-unlock clears it whatever ID it is given.
    assert store.force_unlock("anything") == "is empty"
    assert not lock_file.exists()
    with store.lock(info(), timeout=0):
        pass


def test_force_unlock_refuses_a_holder_still_running_here(
    store: FileStateStore, lock_file: Path
) -> None:
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        holder = plant(lock_file, pid=alive.pid, hostname=socket.gethostname())
        with pytest.raises(StateError) as err:
            store.force_unlock(holder.id)
        message = str(err.value)
        assert f"locked by alice@ci-7 (pid {alive.pid})" in message and holder.id in message
        assert "still running on this host" in message and "add --force" in message
        assert read_lock(lock_file) == holder
        assert store.force_unlock(holder.id, force=True) == holder
        assert not lock_file.exists()
    finally:
        alive.kill()
        alive.wait()


def test_force_unlock_clears_a_dead_holder_here_without_force(
    store: FileStateStore, lock_file: Path
) -> None:
    holder = plant(lock_file, pid=dead_pid(), hostname=socket.gethostname())
    assert store.force_unlock(holder.id) == holder
    assert not lock_file.exists()


def test_waiting_for_a_live_holder_is_told_once(store: FileStateStore, lock_file: Path) -> None:
    holder = plant(lock_file, pid=os.getpid(), hostname=socket.gethostname())
    told: list[tuple[LockInfo, float]] = []
    with pytest.raises(StateLockedError, match="waited 0.3s"):
        acquire_lock(lock_file, info(), 0.3, subject="s", on_wait=lambda h, t: told.append((h, t)))
    assert told == [(holder, 0.3)]
    with pytest.raises(StateLockedError):  # no timeout: fails at once, nothing to tell
        acquire_lock(lock_file, info(), 0, subject="s", on_wait=lambda h, t: told.append((h, t)))
    assert len(told) == 1


def test_half_written_lock_file_is_read_again(store: FileStateStore, lock_file: Path) -> None:
    # A holder between its exclusive create and its write: the content arrives shortly.
    lock_file.parent.mkdir(parents=True)
    lock_file.write_text("")
    timer = threading.Timer(0.1, plant, args=(lock_file,), kwargs={"pid": os.getpid()})
    timer.start()
    try:
        with pytest.raises(StateLockedError) as err, store.lock(info(), timeout=0):
            pass
    finally:
        timer.join()
    assert "is locked by alice@ci-7" in str(err.value)


def test_lock_creates_state_directory(store: FileStateStore) -> None:
    assert not store.path.parent.exists()
    with store.lock(info(), timeout=0):
        assert store.lock_path.exists()
