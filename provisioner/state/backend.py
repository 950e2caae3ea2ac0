"""Where a state lives: the backend interface, its configuration, and choosing one.

A backend stores one state and its lock. Every backend offers the same contract, so that
everything above the state package (planner, apply engine, saved plans, `force-unlock`,
`state list/show`) works the same on each:

- `read()` returns the state; `version()` then names what was read: an opaque token (the
  file's digest for a local file, the ETag on S3, the row version in PostgreSQL);
- `write()` succeeds only if the stored state is still the version this store last read
  or wrote (compare-and-swap). Otherwise it raises `StateConflictError` and loses nothing:
  the unsaved state is kept as a rescue copy beside the state in the backend and in a local
  file, and the next apply (holding the lock) merges it back (`remote.reconcile`);
- `lock()` holds the run lock, carrying the holder's `LockInfo`; `force_unlock()` clears it.

Backends: the local file (`local.py`, the default: today's `FileStateStore` and lock file),
S3 (`s3.py`, boto3) and PostgreSQL (`postgres.py`, psycopg 3). The last two need an extra
(`pip install 'vapi-provisioner[s3]'` / `[postgres]`) and are imported only when used.

Configuration, most specific first: `--state PATH|s3://bucket/key|postgres://...`, then the
manifest's top-level `state:` block, then the default file.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from provisioner.errors import ProvisionerError, StateError
from provisioner.state.config import (
    DEFAULT_LOCK_EXPIRY,
    DEFAULT_PG_SCHEMA,
    MIN_LOCK_EXPIRY,
    PG_URL_ENV,
    BackendKind,
    StateConfig,
)
from provisioner.state.identity import Owner
from provisioner.state.lock import Lock, LockInfo, LockWaitCallback
from provisioner.state.model import StateFile

_ENV_REF = re.compile(r"^\$\{env:\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}$")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")

# The extra that installs each remote backend's client library, and the module it provides.
_EXTRAS: dict[BackendKind, tuple[str, str]] = {
    BackendKind.S3: ("s3", "boto3"),
    BackendKind.POSTGRES: ("postgres", "psycopg"),
}


class HeldLock(Lock, Protocol):
    """A held lock, whatever the backend."""

    def release(self) -> bool: ...


class Backend(Protocol):
    """A state store (see the module docstring for the contract)."""

    @property
    def kind(self) -> BackendKind: ...

    def read(self) -> StateFile: ...

    def write(self, state: StateFile) -> StateFile: ...

    def version(self) -> str | None:
        """The version token of the state this store last read or wrote (None: none yet)."""
        ...

    def lock(
        self, info: LockInfo, timeout: float, on_wait: LockWaitCallback | None = None
    ) -> AbstractContextManager[Lock]: ...

    def force_unlock(self, lock_id: str, *, force: bool = False) -> LockInfo | str: ...

    def describe(self) -> str: ...

    def exists(self) -> bool: ...


class BackendConfigError(ProvisionerError):
    """The state configuration is wrong (bad URL, missing field, missing extra)."""


def from_cli(value: str, manifest: Path, default_key: str | None = None) -> StateConfig:
    """`--state`: a file path, `s3://bucket/key` or `postgres://...` (without a password).

    Raises:
        BackendConfigError: a URL without bucket or key, or one that holds a password.
    """
    scheme = value.partition("://")[0].lower() if "://" in value else ""
    if scheme == "s3":
        parts = urlsplit(value)
        key = unquote(parts.path.lstrip("/"))
        if not parts.netloc or not key:
            raise BackendConfigError(f"--state {value}: expected s3://BUCKET/KEY")
        return StateConfig(BackendKind.S3, bucket=parts.netloc, key=key)
    if scheme in ("postgres", "postgresql"):
        if urlsplit(value).password is not None or re.search(r"password=", value, re.I):
            raise BackendConfigError(
                "--state: the PostgreSQL URL holds a password, which would be visible to "
                "every user of this machine (ps) and in shell history. Give it in PGPASSWORD "
                f"or ~/.pgpass, or in the manifest's state.url as ${{env:{PG_URL_ENV}}}"
            )
        return StateConfig(BackendKind.POSTGRES, url=value, key=default_key or manifest.stem)
    if scheme:
        raise BackendConfigError(
            f"--state {value}: unknown scheme {scheme}:// (use a file path, s3:// or postgres://)"
        )
    return StateConfig(BackendKind.LOCAL, path=Path(value))


def from_manifest(
    block: Any, manifest: Path, environ: Mapping[str, str], default_key: str | None = None
) -> StateConfig | None:
    """The manifest's `state:` block (None when there is none or it names the local file).

    Raises:
        BackendConfigError: a field is missing, of the wrong type, or an `${env:}` is unset.
    """
    if block is None:
        return None
    where = f"{manifest}: state"
    if not isinstance(block, Mapping):
        raise BackendConfigError(f"{where}: expected a mapping with `backend:`")

    def text(name: str, *, required: bool = False) -> str | None:
        value = block.get(name)
        if value is None:
            if required:
                raise BackendConfigError(f"{where}.{name} is required for backend {kind}")
            return None
        if not isinstance(value, str) or not value:
            raise BackendConfigError(f"{where}.{name}: expected a non-empty string")
        return _env(value, f"{where}.{name}", environ)

    kind_text = block.get("backend", BackendKind.LOCAL.value)
    try:
        kind = BackendKind(kind_text)
    except ValueError:
        known = ", ".join(k.value for k in BackendKind)
        raise BackendConfigError(
            f"{where}.backend: unknown backend {kind_text!r} (known: {known})"
        ) from None
    if kind is BackendKind.LOCAL:
        path = text("path")
        return None if path is None else StateConfig(kind, path=manifest.parent / path)
    if kind is BackendKind.S3:
        expiry = block.get("lockExpiry", DEFAULT_LOCK_EXPIRY)
        if isinstance(expiry, bool) or not isinstance(expiry, int | float):
            raise BackendConfigError(f"{where}.lockExpiry: expected a number of seconds")
        if expiry < MIN_LOCK_EXPIRY:
            raise BackendConfigError(f"{where}.lockExpiry: at least {MIN_LOCK_EXPIRY:g} s")
        return StateConfig(
            kind,
            bucket=text("bucket", required=True) or "",
            key=text("key", required=True) or "",
            region=text("region"),
            endpoint=text("endpoint"),
            lock_expiry=float(expiry),
        )
    url = text("url") or environ.get(PG_URL_ENV) or ""
    if not url:
        raise BackendConfigError(
            f'{where}.url is required for backend postgres (e.g. "${{env:{PG_URL_ENV}}}")'
        )
    schema = text("schema") or DEFAULT_PG_SCHEMA
    if not _IDENTIFIER.match(schema):
        raise BackendConfigError(
            f"{where}.schema: {schema!r} is not a plain lower-case SQL identifier"
        )
    return StateConfig(
        kind, url=url, schema=schema, key=text("key") or default_key or manifest.stem
    )


def _env(value: str, where: str, environ: Mapping[str, str]) -> str:
    """A whole-value `${env:NAME}`, resolved; any other string as it is."""
    match = _ENV_REF.match(value.strip())
    if match is None:
        return value
    resolved = environ.get(match.group(1))
    if not resolved:
        raise BackendConfigError(f"{where}: the environment variable {match.group(1)} is not set")
    return resolved


def require_extra(kind: BackendKind) -> None:
    """Raise a clear error when the client library of `kind` is not installed."""
    extra = _EXTRAS.get(kind)
    if extra is None:
        return
    name, module = extra
    try:
        importlib.import_module(module)
    except ImportError:
        raise BackendConfigError(
            f"the {kind.value} state backend needs {module}, which is not installed: "
            f"pip install 'vapi-provisioner[{name}]'"
        ) from None


def open_backend(
    config: StateConfig,
    *,
    environ: Mapping[str, str],
    external_key: str | None,
    owner: Owner | None = None,
) -> Backend:
    """The store for `config`; `owner` (docs/state-identity.md): a state recording another
    manifest or environment is refused when read.

    Raises:
        BackendConfigError: its extra is not installed.
        StateError: the backend cannot be reached or set up.
    """
    require_extra(config.kind)
    if config.kind is BackendKind.S3:
        from provisioner.state.s3 import S3Backend

        return S3Backend(config, environ=environ, external_key=external_key, owner=owner)
    if config.kind is BackendKind.POSTGRES:
        from provisioner.state.postgres import PostgresBackend

        return PostgresBackend(config, environ=environ, external_key=external_key, owner=owner)
    from provisioner.state.local import LocalBackend

    if config.path is None:
        raise StateError("a local state backend needs a path")
    return LocalBackend(config.path, external_key=external_key, owner=owner)


def manifest_block(manifest: Path) -> Any:
    """The manifest's top-level `state:` value, or None (also when it cannot be read:
    validation reports that, and a destroy may run without the manifest)."""
    try:
        text = manifest.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if not re.search(r"^state\s*:", text, re.MULTILINE):
        return None  # most manifests: no second parse of the whole file
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    return data.get("state") if isinstance(data, dict) else None


def configured(
    manifest: Path,
    *,
    state_path: Path | None,
    state_url: str | None,
    sandbox: bool,
    default: Path,
    environ: Mapping[str, str],
    default_key: str | None = None,
    environment: str | None = None,
    environment_block: Any = None,
) -> StateConfig:
    """Where the state of `manifest` is: `--state`, else the environment's own `state:`
    (`environments.NAME.state`, #12), else the manifest's `state:` block (one key or row
    per environment), else `default`. Sandbox runs always keep a local state (never a
    team's backend)."""
    if state_url is not None:
        return from_cli(state_url, manifest, default_key)
    if state_path is not None:
        return StateConfig(BackendKind.LOCAL, path=state_path)
    if not sandbox:
        if environment_block is not None:
            own = from_manifest(environment_block, manifest, environ, default_key)
            if own is not None:
                return own
        config = from_manifest(manifest_block(manifest), manifest, environ, default_key)
        if config is not None:
            return config if environment is None else per_environment(config, environment)
    return StateConfig(BackendKind.LOCAL, path=default)


def per_environment(config: StateConfig, environment: str) -> StateConfig:
    """A `state:` shared by several environments keeps each apart, the environment one more
    path component (docs/state-identity.md): `vapi.json` -> `vapi/prod.json` (a local file
    or an S3 key), row `teams/a/vapi` -> `teams/a/vapi/prod` (PostgreSQL)."""
    import dataclasses

    def split(name: str) -> str:
        stem, dot, ext = name.rpartition(".")
        return (
            f"{stem}/{environment}.{ext}"
            if dot and stem and "/" not in ext
            else f"{name}/{environment}"
        )

    if config.kind is BackendKind.LOCAL and config.path is not None:
        return dataclasses.replace(config, path=Path(split(config.path.as_posix())))
    return dataclasses.replace(config, key=split(config.key))
