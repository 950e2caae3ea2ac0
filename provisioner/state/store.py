"""State storage: the only code that reads or writes state files.

Owns the `StateStore` interface (so another backend, e.g. PostgreSQL, can come later) and
`FileStateStore`, a JSON file with:

- refusal, never guessing: a file that is empty, truncated, not JSON, not an object, missing
  `format_version`/`lineage`/`serial`, or from a newer format is refused with
  `StateCorruptError` naming the file and its backup. Treating a bad file as empty would
  create every resource again;
- format checks and upgrades on read (`state/parse.py`);
- Terraform's serial/lineage rules on write: `serial` is bumped only when the content
  changed; a state of another lineage, or with a serial lower than the stored one (another
  writer got in between), is never written over the stored one;
- atomic, crash-safe writes: temp file in the same directory, flush + fsync, the previous
  version kept as `<path>.backup` (a hard link, so no copying), then `os.replace`. A crash at
  any instant leaves the old or the new complete file;
- thread safety and speed: writes are serialised by a mutex; each resource's JSON text is
  cached and re-rendered only when that resource changed (`file_text.py`), so a write costs
  one comparison per resource plus the I/O;
- the journal (`journal.py`, `<path>.journal`): during an apply, changes are appended to it
  (`open_journal`, `append_journal`) and folded into the file every so often and at the end
  (`fold`, `close_journal`); `read()` replays what a killed run left in it.

Locking is `lock.py`; `read()` never locks (a plan without apply takes no lock; the caller
decides). Nothing here knows about plans, the remote API or the manifest.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from provisioner.errors import StateConflictError, StateCorruptError, StateError
from provisioner.state.file_text import (
    COMPACT,
    Entry,
    Stored,
    file_identity,
    head_of,
    render,
    snapshot,
)
from provisioner.state.identity import Owner, check_owner
from provisioner.state.journal import STORE_CLOCK, FileJournal, journal_path_for, replay
from provisioner.state.lock import (
    FileLock,
    Lock,
    LockInfo,
    LockWaitCallback,
    acquire_lock,
    force_unlock,
    lock_path_for,
)
from provisioner.state.model import StateFile
from provisioner.state.parse import parse_state


class StateStore(Protocol):
    """Where a deployment's state lives."""

    def read(self) -> StateFile:
        """The stored state, upgraded to the current format; `StateFile.new()` if none yet.

        Raises:
            StateCorruptError: the stored state cannot be trusted.
        """
        ...

    def write(self, state: StateFile) -> StateFile:
        """Persist `state`; bump its serial only if the content differs from what is stored.

        Returns:
            The state as stored (the argument is not modified).

        Raises:
            StateCorruptError: the stored state belongs to another lineage or is unreadable.
            StateError: the stored serial is higher (someone else wrote in between).
        """
        ...

    def lock(
        self, info: LockInfo, timeout: float, on_wait: LockWaitCallback | None = None
    ) -> AbstractContextManager[Lock]:
        """Hold the state lock for the `with` block; waits up to `timeout` seconds
        (`on_wait(holder, timeout)` is told once, when it starts waiting).

        Raises:
            StateLockedError: another run holds it (or left it behind).
        """
        ...

    def force_unlock(self, lock_id: str, *, force: bool = False) -> LockInfo | str:
        """Remove the lock, only if its ID is `lock_id` and (unless `force`) its holder is
        not running on this host; an unreadable lock is removed whatever the ID. Returns
        the removed holder, or why the lock file was unreadable.

        Raises:
            StateError: not locked, locked under another ID (named in the message), or
                held by a live process on this host.
        """
        ...

    def describe(self) -> str:
        """Where the state is, for messages (e.g. the file path)."""
        ...

    def exists(self) -> bool:
        """Whether a state has been stored yet (`read()` would not return a new one)."""
        ...


class FileStateStore:
    """A state kept in one JSON file, with `<path>.backup` and `<path>.lock` beside it.

    Args:
        path: the state file; its directory is created on the first write or lock.
        durable: fsync the file and its directory on every write. Turning it off is only
            safe where losing the last writes on a power cut is acceptable (tests); a
            crashed process loses nothing either way.
        external_key: `PROVISIONER_STATE_KEY`, if set: the hash key is derived from it
            and never written (see `StateFile.with_external_key`).
        owner: the manifest (and environment) being run: a state recording another is
            refused on read; one recording none is claimed (docs/state-identity.md).
        notify: told of what reading repaired (a torn last journal record dropped);
            default: a note on stderr.
    """

    def __init__(
        self,
        path: Path,
        *,
        durable: bool = True,
        external_key: str | None = None,
        owner: Owner | None = None,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.journal_path = journal_path_for(self.path)
        self._notify = notify or _note
        self._journal: FileJournal | None = None
        self.external_key = external_key
        self.owner = owner
        self.backup_path = self.path.with_name(self.path.name + ".backup")
        self.lock_path = lock_path_for(self.path)
        self.durable = durable
        self._mutex = threading.Lock()
        self._stored: Stored | None = None

    def describe(self) -> str:
        return str(self.path)

    def exists(self) -> bool:
        return self.path.exists()

    def __repr__(self) -> str:
        return f"FileStateStore({str(self.path)!r})"

    # reading -------------------------------------------------------------------------------

    def read(self) -> StateFile:
        """The stored state, upgraded; `StateFile.new()` if the file does not exist yet.

        Raises:
            StateCorruptError: the file cannot be trusted (see the module docstring), or it is
                missing while its backup exists.
        """
        with STORE_CLOCK.measure(), self._mutex:
            loaded = self._load()
            if loaded is not None:
                loaded = (self._replay(loaded[0]), loaded[1])
            if loaded is None:
                self._stored = None
                new = StateFile.new(self.owner)
                return new.with_external_key(self.external_key, str(self.path))
            state, self._stored = loaded
            if self.owner is not None:
                check_owner(state.owner, self.owner, str(self.path))
                if state.owner is None:
                    state = replace(
                        state, manifest=self.owner.manifest, environment=self.owner.environment
                    )
            return state.with_external_key(self.external_key, str(self.path))

    def _replay(self, state: StateFile) -> StateFile:
        """`state` with what the journal holds beyond it (left by a killed run)."""
        try:
            raw = self.journal_path.read_bytes()
        except FileNotFoundError:
            return state
        except OSError as exc:
            raise StateError(f"cannot read {self.journal_path}: {exc.strerror or exc}") from exc
        replayed = replay(state, raw, self.journal_path)
        if replayed.notice:
            self._notify(replayed.notice)
        return replayed.state

    def _load(self) -> tuple[StateFile, Stored] | None:
        try:
            with open(self.path, "rb") as f:
                identity = file_identity(os.fstat(f.fileno()))
                raw = f.read()
        except FileNotFoundError:
            if self.journal_path.exists() and self.journal_path.stat().st_size:
                raise StateCorruptError(
                    f"{self.path} does not exist, but its journal {self.journal_path} does: "
                    f"the state file was removed. Refusing to start from an empty state, "
                    f"since that would create every resource again. Restore the state file "
                    f"(its backup is {self.backup_path}); to really start over, delete the "
                    f"journal and the backup too."
                ) from None
            if self.backup_path.exists():
                raise StateCorruptError(
                    f"{self.path} does not exist, but its backup {self.backup_path} does: the "
                    f"state file was removed. Refusing to start from an empty state, since "
                    f"that would create every resource again. Restore it with "
                    f"`cp {self.backup_path} {self.path}`; to really start over, delete the "
                    f"backup too."
                ) from None
            return None
        except OSError as exc:
            raise StateError(f"cannot read {self.path}: {exc.strerror or exc}") from exc
        state = parse_state(raw, self.path, self._corrupt)
        return state, snapshot(state, identity)

    def _corrupt(self, problem: str) -> StateCorruptError:
        message = (
            f"{problem}: refusing to continue, since treating it as empty would create every "
            f"resource again. "
        )
        if self.backup_path.exists():
            message += (
                f"The previous version is in {self.backup_path} (one write older); restore it "
                f"with `cp {self.backup_path} {self.path}`, then run `provisioner plan` to check."
            )
        else:
            message += (
                f"There is no backup ({self.backup_path}); restore the file from version "
                f"control or repair it by hand."
            )
        return StateCorruptError(message)

    def _current(self) -> Stored | None:
        """What is stored now: the cached snapshot if the file is still the one we saw."""
        try:
            identity = file_identity(os.stat(self.path))
        except FileNotFoundError:
            # Removed under us (or never written): nothing to protect.
            return None
        if self._stored is not None and self._stored.identity == identity:
            return self._stored
        loaded = self._load()
        self._stored = None if loaded is None else loaded[1]
        return self._stored

    # writing -------------------------------------------------------------------------------

    def write(self, state: StateFile) -> StateFile:
        """Persist `state`, atomically; bump the serial only if the content changed.

        Thread-safe. `state` must not be mutated by another thread during the call.

        Returns:
            A StateFile with the stored serial, sharing `state`'s resources (not a copy);
            `state` itself is not modified.

        Raises:
            StateCorruptError: the stored file belongs to another lineage, or is unreadable.
            StateError: the stored serial is higher than `state.serial` (another writer got
                in between), or the file cannot be written.
        """
        return self._write(state, fold=False)

    def _write(self, state: StateFile, *, fold: bool) -> StateFile:
        """`write`, or with `fold` a fold of the journal: the file takes `state`'s serial
        (which counts the journal's records) instead of one more."""
        with STORE_CLOCK.measure(), self._mutex:
            stored = self._current()
            if stored is not None:
                if stored.lineage != state.lineage:
                    raise StateCorruptError(
                        f"{self.path} belongs to another deployment (lineage {stored.lineage}, "
                        f"expected {state.lineage}): refusing to overwrite it. Check the "
                        f"--state path and the manifest name."
                    )
                if state.serial < stored.serial:
                    raise StateConflictError(
                        f"{self.path} was changed by another writer in the meantime (stored "
                        f"serial {stored.serial}, ours {state.serial}): refusing to overwrite "
                        f"its changes. Run `provisioner plan` again."
                    )
            head = head_of(state)
            head.pop("serial")
            head_key = COMPACT.encode(head)
            old = stored.entries if stored is not None else {}
            changed = (
                stored is None
                or head_key != stored.head_key
                or len(old) != len(state.resources)
                or (fold and state.serial != stored.serial)
            )
            entries: dict[str, Entry] = {}
            for address, resource in state.resources.items():
                view = resource.to_dict(deep=False)
                key = COMPACT.encode(view)
                previous = old.get(address)
                if previous is not None and previous.key == key:
                    entries[address] = previous
                else:
                    entries[address] = Entry.of(address, view, key)
                    changed = True
            if not changed:
                assert stored is not None
                return replace(state, serial=stored.serial)
            serial = state.serial if fold and stored is not None else state.serial + 1
            head["serial"] = serial
            identity = self._replace(render(head, entries).encode())
            self._stored = Stored(identity, state.lineage, serial, head_key, entries)
            # Every record of the journal is in the file now (at or below its serial).
            if self._journal is not None:
                self._journal.reset()
            else:
                try:
                    self.journal_path.unlink(missing_ok=True)
                except OSError as exc:
                    raise StateError(f"cannot remove {self.journal_path}: {exc}") from exc
            return replace(state, serial=serial)

    # the journal ---------------------------------------------------------------------------

    def open_journal(self, state: StateFile) -> StateFile:
        """Start journaling the changes to `state` (with the lock held): what a killed run
        left in the journal (already replayed into `state` by `read`) is folded first, and
        a state never stored is written, so that every record has a file to apply to."""
        state = self._write(state, fold=True)
        # What is left is in the file now, or a torn record that must not precede new ones.
        self.journal_path.unlink(missing_ok=True)
        self._journal = FileJournal(self.journal_path, durable=self.durable)
        return state

    def append_journal(self, data: bytes) -> None:
        """Make records durable (encoded by `journal.encode_record`)."""
        assert self._journal is not None, "open_journal first"
        with STORE_CLOCK.measure():
            self._journal.append(data)

    def fold(self, state: StateFile) -> StateFile:
        """Write `state`, whose serial counts the journal's records, and empty the journal."""
        return self._write(state, fold=True)

    def abandon_journal(self) -> None:
        """Stop journaling without a fold (a write failed): what is in the journal stays,
        for the next read to replay."""
        journal, self._journal = self._journal, None
        if journal is not None:
            journal.close(remove=False)

    def close_journal(self, state: StateFile) -> StateFile:
        """The last fold of the run; the journal file goes."""
        folded = False
        try:
            state = self.fold(state)
            folded = True
        finally:
            journal, self._journal = self._journal, None
            if journal is not None:
                # Kept if the fold failed: the next read replays it.
                journal.close(remove=folded)
        return state

    def _replace(self, data: bytes) -> tuple[int, int, int, int]:
        """Atomically make `data` the file's content, keeping the old one as the backup."""
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(
                dir=directory, prefix=f".{self.path.name}.", suffix=".tmp"
            )
        except OSError as exc:
            raise StateError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                if self.durable:
                    os.fsync(f.fileno())
                try:
                    # Keep the mode the user gave the file; new files stay 0600 (mkstemp).
                    os.fchmod(f.fileno(), stat.S_IMODE(os.stat(self.path).st_mode))
                except FileNotFoundError:
                    pass
                identity = file_identity(os.fstat(f.fileno()))
            self._keep_backup()
            os.replace(tmp, self.path)
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise StateError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
            raise
        if self.durable:
            _fsync_directory(directory)
        return identity

    def _keep_backup(self) -> None:
        """Make `<path>.backup` the current file (atomically; a hard link, no copy)."""
        unique = f"{os.getpid()}.{threading.get_ident()}"
        tmp = self.backup_path.with_name(f".{self.backup_path.name}.{unique}.tmp")
        tmp.unlink(missing_ok=True)
        try:
            os.link(self.path, tmp)
        except FileNotFoundError:
            return
        except OSError:
            # A file system without hard links.
            try:
                shutil.copy2(self.path, tmp)
            except FileNotFoundError:
                return
        os.replace(tmp, self.backup_path)

    # locking -------------------------------------------------------------------------------

    @contextmanager
    def lock(
        self, info: LockInfo, timeout: float, on_wait: LockWaitCallback | None = None
    ) -> Iterator[FileLock]:
        """Hold `<path>.lock` for the `with` block; see `lock.acquire_lock`."""
        try:
            self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(f"cannot create {self.lock_path.parent}: {exc}") from exc
        held = acquire_lock(self.lock_path, info, timeout, subject=str(self.path), on_wait=on_wait)
        try:
            self._remove_leftovers()
            yield held
        finally:
            held.release()

    def _remove_leftovers(self) -> None:
        """Delete the temporary files a killed run left beside the state (`_replace`'s and
        `_keep_backup`'s). Only with the lock held: no other writer can be using them."""
        prefixes = (f".{self.path.name}.", f".{self.backup_path.name}.")
        try:
            leftovers = [
                p
                for p in self.path.parent.iterdir()
                if p.name.startswith(prefixes) and p.name.endswith(".tmp")
            ]
        except OSError:
            return
        for p in leftovers:
            try:
                p.unlink(missing_ok=True)
            except OSError:
                pass  # not ours to remove, or read-only: harmless, tried again next run

    def force_unlock(self, lock_id: str, *, force: bool = False) -> LockInfo | str:
        return force_unlock(self.lock_path, lock_id, subject=str(self.path), force=force)


def _note(message: str) -> None:
    sys.stderr.write(f"Note: {message}\n")


def _fsync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
