"""Where a state lives, as data: the backend kinds and one backend's settings. Pure.

`state/backend.py` reads it from `--state` and the manifest and opens the store; the
stores (`local`, `s3`, `postgres`) take it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

# The S3 lock's default lifetime without renewal (seconds); a live run renews it well before.
DEFAULT_LOCK_EXPIRY = 30.0
MIN_LOCK_EXPIRY = 1.0
DEFAULT_PG_SCHEMA = "provisioner"
PG_URL_ENV = "PROVISIONER_PG_URL"


class BackendKind(StrEnum):
    LOCAL = "local"
    S3 = "s3"
    POSTGRES = "postgres"


@dataclass(frozen=True, slots=True)
class StateConfig:
    """Where the state is: a local file, an S3 object or a PostgreSQL row."""

    kind: BackendKind
    path: Path | None = None  # local
    bucket: str = ""  # s3
    key: str = ""  # s3: the object key; postgres: the row's key
    region: str | None = None
    endpoint: str | None = None
    lock_expiry: float = DEFAULT_LOCK_EXPIRY
    url: str = ""  # postgres: the connection string (may hold a password: never shown)
    schema: str = DEFAULT_PG_SCHEMA

    def describe(self) -> str:
        """Where the state is, for messages and saved plans (never a password)."""
        if self.kind is BackendKind.S3:
            return f"s3://{self.bucket}/{self.key}"
        if self.kind is BackendKind.POSTGRES:
            return f"{redact_url(self.url)} ({self.schema}, state {self.key})"
        return str(self.path)


def redact_url(url: str) -> str:
    """`postgres://alice:secret@db/x` -> `postgres://alice@db/x`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    user = f"{parts.username}@" if parts.username else ""
    return parts._replace(netloc=user + host).geturl()
