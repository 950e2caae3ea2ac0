"""The state lock: one run at a time may change a state.

Owns the lock file `<state path>.lock` and nothing else: who holds it (`LockInfo`), taking it
with a timeout, releasing it, and `force_unlock`. It never reads or writes the state itself
(that is `store.py`).

Design. The lock file is created with `O_CREAT | O_EXCL`, which is atomic: of two runs racing,
exactly one creates the file, so there is no window between "is it held?" and "take it" (we never
check first; we try to create and inspect the holder only when that fails). The one remaining
window is a reader seeing the file between its creation and the holder writing its content;
an unreadable lock file is therefore re-read for a short grace period before it is reported.

A holder on this host is alive if `os.kill(pid, 0)` finds its process. A lock left by a holder
on this host that is provably dead (killed, crashed) is taken over, and the caller is told
whose it was: unlike Terraform, a killed apply leaves nothing to repair by hand (the state
records each create's intent before the request, and the next run adopts what it finds), so
making the user clear the lock would only add a step. A holder on another host is assumed
alive: that lock is reported, and clearing it is the user's call (`provisioner force-unlock`).
A reused PID can make a dead holder look alive; that errs on the safe side (we wait, then
report the holder).

Every change to the lock file (create, take over, release, force-unlock) happens under a
short `flock` on the state directory, so that taking over a dead holder's lock can never
replace a lock another run has just created.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from provisioner.errors import StateError, StateLockedError

# How long an unreadable (empty or half-written) lock file is re-read before it is reported.
UNREADABLE_GRACE = 1.0
# Backoff between attempts while a live run holds the lock.
FIRST_DELAY = 0.05
MAX_DELAY = 2.0


def lock_path_for(state_path: Path) -> Path:
    """`state/full.json` -> `state/full.json.lock`."""
    return state_path.with_name(state_path.name + ".lock")


def _user_name() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError, AttributeError):
        # No passwd entry (containers running an arbitrary UID) or no pwd module.
        getuid = getattr(os, "getuid", None)
        return f"uid{getuid()}" if getuid is not None else "unknown"


@dataclass(frozen=True, slots=True)
class LockInfo:
    """Who holds a state lock; the lock file's content."""

    id: str
    who: str
    pid: int
    hostname: str
    # ISO 8601 UTC, seconds precision: "2026-11-25T10:00:00Z".
    created: str
    # The command line that took the lock, e.g. "provisioner apply full.yaml".
    command: str
    # What it is doing: "apply", "destroy", "import"...
    operation: str

    @classmethod
    def create(cls, command: str, operation: str, *, now: datetime | None = None) -> LockInfo:
        """A new lock record for this process, with a fresh random ID."""
        host = socket.gethostname()
        when = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
        return cls(
            id=str(uuid.uuid4()),
            who=f"{_user_name()}@{host}",
            pid=os.getpid(),
            hostname=host,
            created=when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            command=command,
            operation=operation,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> LockInfo:
        """Raises ValueError unless `data` has every field with the right type."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        values: dict[str, Any] = {}
        for name, kind in _FIELD_TYPES.items():
            value = data.get(name)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ValueError(f"field {name!r} missing or not a {kind.__name__}")
            values[name] = value
        return cls(**values)

    def describe(self) -> str:
        """'alice@ci-7 (pid 4242) running `provisioner apply x.yaml` since ... (lock ID ...)'."""
        return (
            f"{self.who} (pid {self.pid}) running `{self.command}` since {self.created} "
            f"(lock ID {self.id})"
        )


_FIELD_TYPES: dict[str, type] = {
    "id": str,
    "who": str,
    "pid": int,
    "hostname": str,
    "created": str,
    "command": str,
    "operation": str,
}


class Lock(Protocol):
    """A held state lock, whatever the backend."""

    @property
    def info(self) -> LockInfo: ...

    @property
    def replaced(self) -> LockInfo | None:
        """The lock of a dead run this one took over, if any."""
        ...


@dataclass(frozen=True, slots=True)
class FileLock:
    """A lock file this process created and holds."""

    path: Path
    info: LockInfo
    # The lock of a dead run on this host that this one took over, if any.
    replaced: LockInfo | None = None

    def release(self) -> bool:
        """Remove the lock file if it is still ours. Returns whether it was removed.

        If someone force-unlocked us (and maybe another run took the lock since), the file
        is left alone.
        """
        with _guard(self.path):
            holder = _read(self.path)
            if not isinstance(holder, LockInfo) or holder.id != self.info.id:
                return False
            try:
                self.path.unlink()
            except FileNotFoundError:
                return False
            return True


@contextlib.contextmanager
def _guard(path: Path) -> Iterator[None]:
    """Serialise changes to lock files in `path`'s directory (held for milliseconds; the
    kernel drops it if the process dies). A no-op where `flock` does not exist."""
    try:
        import fcntl
    except ImportError:  # Windows: O_EXCL alone; dead locks are then reported, not taken over
        yield
        return
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


class _Unreadable:
    """A lock file whose content cannot be parsed (still being written, or left broken)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _read(path: Path) -> LockInfo | _Unreadable | None:
    """The holder recorded in `path`, or None if there is no lock file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return _Unreadable(f"cannot be read ({exc.strerror or exc})")
    if not raw.strip():
        return _Unreadable("is empty")
    try:
        return LockInfo.from_dict(json.loads(raw))
    except (ValueError, UnicodeDecodeError) as exc:
        return _Unreadable(f"is not a valid lock record ({exc})")


def read_lock(path: Path) -> LockInfo | None:
    """The current holder of lock file `path`, or None if it is not locked.

    Raises:
        StateError: the lock file exists but cannot be understood.
    """
    holder = _read(path)
    if isinstance(holder, _Unreadable):
        raise StateError(_unreadable_message(path, holder))
    return holder


def is_alive(info: LockInfo) -> bool:
    """Whether the holder may still be running: checked for this host, assumed for others."""
    if info.hostname != socket.gethostname():
        return True
    if info.pid == os.getpid():
        return True
    if info.pid <= 0:
        return False
    try:
        os.kill(info.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        # Exists, owned by another user.
        return True
    except OSError:
        return True
    return True


def _encode(info: LockInfo) -> bytes:
    return json.dumps(info.to_dict(), indent=2, sort_keys=True).encode() + b"\n"


def _create(path: Path, info: LockInfo) -> bool:
    """Create the lock file holding `info`; False if it already exists."""
    with _guard(path):
        return _create_unguarded(path, info)


def _create_unguarded(path: Path, info: LockInfo) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    except OSError as exc:
        raise StateError(f"cannot create the lock file {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(_encode(info))
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise StateError(f"cannot write the lock file {path}: {exc.strerror or exc}") from exc
    return True


# Told once, before the first wait for a live holder: (the holder, the timeout in seconds).
LockWaitCallback = Callable[["LockInfo", float], None]


def acquire_lock(
    path: Path,
    info: LockInfo,
    timeout: float,
    *,
    subject: str,
    on_wait: LockWaitCallback | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> FileLock:
    """Take the lock file `path` for `info`, waiting up to `timeout` seconds for a live holder.

    Args:
        path: the lock file (`<state path>.lock`); its directory must exist.
        info: who we are; written into the lock file.
        timeout: seconds to wait while a live run holds the lock; 0 fails at once.
        subject: what the lock protects, for messages (the state path).
        on_wait: called once, before the first wait for a live holder, so that the
            caller can say why nothing happens.

    Raises:
        StateLockedError: a live run still holds the lock after `timeout`, or the lock file
            is unreadable. A dead holder on this host is replaced (see `FileLock.replaced`).
    """
    deadline = clock() + max(0.0, timeout)
    delay = FIRST_DELAY
    unreadable_since: float | None = None
    told = False
    while True:
        if _create(path, info):
            return FileLock(path, info)
        holder = _read(path)
        if holder is None:
            # Released between our attempt and the read: try again at once.
            continue
        if isinstance(holder, _Unreadable):
            now = clock()
            if unreadable_since is None:
                unreadable_since = now
            if now - unreadable_since >= UNREADABLE_GRACE:
                raise StateLockedError(_unreadable_message(path, holder, subject=subject))
            sleep(FIRST_DELAY)
            continue
        unreadable_since = None
        if not is_alive(holder):
            if _take_over(path, holder, info):
                return FileLock(path, info, replaced=holder)
            continue  # someone else changed the lock meanwhile: look again
        remaining = deadline - clock()
        if remaining <= 0:
            waited = f" (waited {timeout:g}s)" if timeout > 0 else ""
            raise StateLockedError(
                f"{subject} is locked by {holder.describe()}{waited}. Wait for it to finish "
                f"or retry with --lock-timeout."
            )
        if on_wait is not None and not told:
            on_wait(holder, timeout)
            told = True
        sleep(min(delay, remaining))
        delay = min(delay * 2, MAX_DELAY)


def _take_over(path: Path, dead: LockInfo, info: LockInfo) -> bool:
    """Replace the lock of `dead` (a dead process on this host) by `info`, atomically.

    False if the lock file no longer holds `dead` (released, force-unlocked, or another run
    took it over first)."""
    with _guard(path):
        current = _read(path)
        if not isinstance(current, LockInfo) or current.id != dead.id:
            return False
        tmp = path.with_name(f"{path.name}.{info.id}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(_encode(info))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StateError(f"cannot write the lock file {path}: {exc.strerror or exc}") from exc
        return True


def force_unlock(path: Path, lock_id: str, *, subject: str, force: bool = False) -> LockInfo | str:
    """Remove lock file `path` if its ID is `lock_id`. Returns the removed holder, or why
    the lock file could not be read (an unreadable one is removed whatever `lock_id`: it
    names no holder, and under the guard no live run can be halfway through writing it).

    A holder still running on this host is left alone unless `force`: removing its lock
    would let another run interleave with it.

    Raises:
        StateError: not locked, the lock has another ID (named), or its holder is alive
            on this host (without `force`).
    """
    holder = _read(path)
    if holder is None:
        raise StateError(f"{subject} is not locked (there is no {path}): nothing to unlock")
    if isinstance(holder, _Unreadable):
        with _guard(path):
            current = _read(path)
            if isinstance(current, _Unreadable):
                try:
                    path.unlink(missing_ok=True)
                except OSError as exc:
                    raise StateError(
                        f"{subject}: cannot remove the lock file {path}, which {current.reason}: "
                        f"{exc.strerror or exc}"
                    ) from exc
                return current.reason
        return force_unlock(path, lock_id, subject=subject, force=force)  # it changed: again
    if holder.id != lock_id:
        raise StateError(
            f"{subject} is locked with lock ID {holder.id}, not {lock_id}: nothing removed. "
            f"The holder is {holder.describe()}."
        )
    if not force and holder.hostname == socket.gethostname() and is_alive(holder):
        raise StateError(
            f"{subject} is locked by {holder.describe()}, which is still running on this "
            f"host: nothing removed. Wait for it to finish or stop it; to remove its lock "
            f"anyway (the two runs could then interleave), add --force."
        )
    with _guard(path):
        current = _read(path)
        if isinstance(current, LockInfo) and current.id == lock_id:
            path.unlink(missing_ok=True)
    return holder


def _unreadable_message(path: Path, holder: _Unreadable, *, subject: str | None = None) -> str:
    what = f"{subject} is locked, but its lock file {path}" if subject else f"The lock file {path}"
    return (
        f"{what} {holder.reason}: a run was probably killed while taking the lock. If no "
        f"other run is active, clear it with `provisioner force-unlock MANIFEST ANY_ID` "
        f"(an unreadable lock names no ID) or `rm {path}`."
    )
