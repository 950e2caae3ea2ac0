"""The local file backend: today's `FileStateStore` and lock file, behind the backend
interface (the default). Its version token is the digest of the file, which every write
changes (the serial is in it)."""

from __future__ import annotations

import hashlib

from provisioner.errors import StateConflictError
from provisioner.state.config import BackendKind
from provisioner.state.model import StateFile
from provisioner.state.remote import LOCAL_RESCUE_DIR, encode
from provisioner.state.store import FileStateStore


class LocalBackend(FileStateStore):
    kind = BackendKind.LOCAL

    def version(self) -> str | None:
        """The digest of the file as it is now (a copy of it, as CI hands it over between
        jobs, keeps its version); None if there is none."""
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()[:32]
        except FileNotFoundError:
            return None

    def write(self, state: StateFile) -> StateFile:
        try:
            return super().write(state)
        except StateConflictError as exc:
            # Keep what could not be written, so that no created ID is lost.
            rescue = LOCAL_RESCUE_DIR / f"{self.path.stem}-serial-{state.serial}.json"
            try:
                rescue.parent.mkdir(parents=True, exist_ok=True)
                rescue.write_bytes(encode(state))
            except OSError:
                raise exc from None
            raise StateConflictError(
                f"{exc} This run's state was kept in {rescue}: compare it with {self.path} "
                "and carry over any ID the latter lacks."
            ) from None
