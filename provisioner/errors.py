"""The exception tree. Imports nothing from the project.

Exceptions are for aborts; user mistakes that can be collected are `Diagnostics`.

    ProvisionerError (exit 1)
     +-- ManifestError            the manifest cannot be read at all
     +-- StateError               the state file cannot be trusted or written
     |    +-- StateLockedError    another live run holds the lock
     |    +-- StateCorruptError   unparseable / newer format / foreign lineage
     |    +-- StalePlanError      a saved plan no longer matches state or remote
     |    +-- StateConflictError  another writer changed the state since it was read
     +-- RemoteError              the API answered with an error (method, path, status, message)
     |    +-- RemoteTransportError   no usable answer: timeout, connection error
     |    |    +-- RequestInterrupted   Ctrl-C came before the request could be sent (again)
     |    +-- AmbiguousCreateError   a POST may or may not have created the resource
     +-- ApplyError               apply finished with failed changes
     +-- Aborted                  the user declined, or Ctrl-C
"""

from __future__ import annotations

from typing import Any, ClassVar


class ProvisionerError(Exception):
    """Root of every error the tool raises on purpose."""

    exit_code: ClassVar[int] = 1


class ManifestError(ProvisionerError):
    """The manifest file is missing or unreadable."""


class StateError(ProvisionerError):
    """The state cannot be read, trusted or written."""


class StateLockedError(StateError):
    """Another run holds the state lock."""


class StateCorruptError(StateError):
    """The state file is unparseable, from a newer version, or from another lineage."""


class StalePlanError(StateError):
    """A saved plan was made against a state or remote that has since changed."""


class StateConflictError(StateError):
    """The stored state changed since this run read it (compare-and-swap failed), or this
    run lost its lock: its write was refused and its state kept as a rescue copy."""


class RemoteError(ProvisionerError):
    """The remote API answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        path: str = "",
        status: int | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.path = path
        self.status = status
        self.body = body

    @property
    def retryable(self) -> bool:
        return self.status is not None and (self.status == 429 or self.status >= 500)


class RemoteTransportError(RemoteError):
    """No usable HTTP answer: timeout, refused or dropped connection."""

    def __init__(
        self, message: str, *, method: str = "", path: str = "", sent: bool = True
    ) -> None:
        super().__init__(message, method=method, path=path)
        # False only when the request provably never reached the server (connect failed).
        self.sent = sent

    @property
    def retryable(self) -> bool:
        return True


class RequestInterrupted(RemoteTransportError):
    """The run was interrupted before this request was sent, or while waiting to retry it.

    `sent` is False when no attempt can have had an effect (none left this process, or
    each was turned away with 429), so the request counts as never made."""


class AmbiguousCreateError(RemoteError):
    """A create was sent but its outcome is unknown (5xx after send, timeout, lost connection)."""


class ApplyError(ProvisionerError):
    """Apply finished, but some changes failed or were skipped."""


class Aborted(ProvisionerError):
    """The user declined the confirmation, or interrupted the run."""
