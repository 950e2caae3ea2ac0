"""The S3 state backend (boto3): any S3-compatible store (AWS, MinIO, R2) through an endpoint.

Objects, all under the configured key:

- `KEY`: the state. Written with `IfMatch` on the ETag read (`IfNoneMatch="*"` for the
  first write), so a run whose lock was broken can never overwrite a newer state;
- `KEY.lock`: the run lock, created with `IfNoneMatch="*"` and holding the holder's info and
  its lifetime. A live run renews it (re-put with `IfMatch` on its own ETag, which moves its
  LastModified) from a background thread. Whether it has expired is judged on the store's
  clock: the LastModified of the lock against the Date of the store's own answer, never
  the runner's clock. An expired lock is taken over (put with `IfMatch` on the expired
  lock's ETag: of two runs, one wins); a live one never;
- `KEY.rescue/NAME.json`: states whose write was refused (see `remote.py`).

Credentials come only from the usual AWS environment or config files (boto3's chain).
"""

from __future__ import annotations

import email.utils
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from provisioner.errors import StateError, StateLockedError
from provisioner.state.config import BackendKind, StateConfig
from provisioner.state.identity import Owner
from provisioner.state.lock import LockInfo, LockWaitCallback, is_alive
from provisioner.state.remote import (
    Conflict,
    Lease,
    RemoteStore,
    decode_lock,
    encode_lock,
    state_error,
)

# S3 dates have one-second resolution: an expiry is counted only past this much more.
_CLOCK_SLACK = 1.0
_CONFLICT_CODES = {"PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "404", "412"}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _server_date(answer: Mapping[str, Any]) -> datetime | None:
    headers = answer.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    value = headers.get("date")
    return email.utils.parsedate_to_datetime(value) if value else None


class S3Backend(RemoteStore):
    kind = BackendKind.S3

    def __init__(
        self,
        config: StateConfig,
        *,
        environ: Mapping[str, str],
        external_key: str | None,
        owner: Owner | None = None,
    ) -> None:
        super().__init__(f"s3://{config.bucket}/{config.key}", external_key, owner)
        self.config = config
        self.bucket = config.bucket
        self.key = config.key
        self.lock_key = f"{config.key}.lock"
        self.rescue_prefix = f"{config.key}.rescue/"
        self.expiry = config.lock_expiry
        region = (
            config.region or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
        ) or "us-east-1"
        self._s3: Any = _session().client(
            "s3",
            region_name=region,
            endpoint_url=config.endpoint or environ.get("AWS_ENDPOINT_URL") or None,
            config=Config(
                connect_timeout=5,
                read_timeout=10,
                retries={"max_attempts": 3, "mode": "standard"},
            ),
        )

    def __repr__(self) -> str:
        return f"S3Backend({self.where!r})"

    # primitives ----------------------------------------------------------------------------

    def _call(self, action: str, fn: Any, **kwargs: Any) -> Any:
        try:
            return fn(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            if _code(exc) in _CONFLICT_CODES and ("IfMatch" in kwargs or "IfNoneMatch" in kwargs):
                raise Conflict(_code(exc)) from exc
            raise state_error(action, self.where, exc) from exc
        except BotoCoreError as exc:
            raise state_error(action, self.where, exc) from exc

    def _get_object(self, key: str) -> dict[str, Any] | None:
        try:
            answer: dict[str, Any] = self._s3.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            raise state_error("read", f"s3://{self.bucket}/{key}", exc) from exc
        except BotoCoreError as exc:
            raise state_error("read", f"s3://{self.bucket}/{key}", exc) from exc
        answer["Data"] = answer["Body"].read()
        return answer

    def _get(self) -> tuple[bytes, str] | None:
        answer = self._get_object(self.key)
        return None if answer is None else (answer["Data"], str(answer["ETag"]))

    def _put(self, data: bytes, expected: str | None) -> str:
        condition = {"IfNoneMatch": "*"} if expected is None else {"IfMatch": expected}
        answer = self._call("write", self._s3.put_object, Key=self.key, Body=data, **condition)
        return str(answer["ETag"])

    def _put_rescue(self, name: str, data: bytes) -> str:
        key = f"{self.rescue_prefix}{name}.json"
        self._call("write a rescue copy beside", self._s3.put_object, Key=key, Body=data)
        return f"s3://{self.bucket}/{key}"

    def _rescues(self) -> list[tuple[str, bytes]]:
        answer = self._call(
            "list the rescue copies of", self._s3.list_objects_v2, Prefix=self.rescue_prefix
        )
        out = []
        for item in answer.get("Contents", []):
            got = self._get_object(item["Key"])
            if got is not None:
                out.append((str(item["Key"]), got["Data"]))
        return out

    def _drop_rescue(self, name: str) -> None:
        self._call("remove a rescue copy of", self._s3.delete_object, Key=name)

    # the lock ------------------------------------------------------------------------------

    def _read_lock(self) -> tuple[LockInfo | None, str, float, float] | None:
        """(holder or None if unreadable, ETag, its age on the store's clock, its expiry)."""
        answer = self._get_object(self.lock_key)
        if answer is None:
            return None
        decoded = decode_lock(answer["Data"])
        now = _server_date(answer)
        modified = answer.get("LastModified")
        age = (now - modified).total_seconds() if now and modified else 0.0
        expiry = self.expiry
        if decoded is not None:
            recorded = decoded[1].get("expiry")
            if isinstance(recorded, int | float) and not isinstance(recorded, bool):
                expiry = float(recorded)
        holder = decoded[0] if decoded is not None else None
        return holder, str(answer["ETag"]), age, expiry

    @contextmanager
    def lock(
        self, info: LockInfo, timeout: float, on_wait: LockWaitCallback | None = None
    ) -> Iterator[Lease]:
        lease = self._acquire(info, timeout, on_wait)
        self.adopt_lease(lease)
        try:
            yield lease
        finally:
            self.adopt_lease(None)
            lease.release()

    def _acquire(self, info: LockInfo, timeout: float, on_wait: LockWaitCallback | None) -> Lease:
        body = encode_lock(info, expiry=self.expiry)
        deadline = time.monotonic() + max(0.0, timeout)
        delay = 0.1
        told = False
        while True:
            started = time.monotonic()
            replaced: LockInfo | None = None
            try:
                answer = self._call(
                    "lock", self._s3.put_object, Key=self.lock_key, Body=body, IfNoneMatch="*"
                )
                return self._new_lease(info, str(answer["ETag"]), body, started, None)
            except Conflict:
                pass
            current = self._read_lock()
            if current is None:
                continue  # released meanwhile: try again at once
            holder, etag, age, expiry = current
            if holder is None or age > expiry + _CLOCK_SLACK:
                replaced = holder
                try:
                    answer = self._call(
                        "lock", self._s3.put_object, Key=self.lock_key, Body=body, IfMatch=etag
                    )
                except Conflict:
                    continue  # another run took it over first
                return self._new_lease(info, str(answer["ETag"]), body, started, replaced)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                waited = f" (waited {timeout:g}s)" if timeout > 0 else ""
                left = max(0.0, expiry + _CLOCK_SLACK - age)
                raise StateLockedError(
                    f"{self.where} is locked by {holder.describe()}{waited}; its lock "
                    f"expires {left:.0f} s from now unless that run renews it. Wait for it "
                    "to finish, retry with --lock-timeout, or if that run is gone, "
                    f"`provisioner force-unlock MANIFEST {holder.id}`."
                )
            if on_wait is not None and not told:
                on_wait(holder, timeout)
                told = True
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 1.0)

    def _new_lease(
        self, info: LockInfo, etag: str, body: bytes, started: float, replaced: LockInfo | None
    ) -> Lease:
        # The ETag of our lock object, as of the last write (with SSE-KMS an ETag is not the
        # content's MD5: each renewal may change it).
        current = [etag]

        def renew() -> None:
            answer = self._call(
                "renew the lock of",
                self._s3.put_object,
                Key=self.lock_key,
                Body=body,
                IfMatch=current[0],
            )
            current[0] = str(answer["ETag"])

        def release() -> bool:
            try:
                self._call("unlock", self._s3.delete_object, Key=self.lock_key, IfMatch=current[0])
            except Conflict:
                return False
            return True

        lease = Lease(info, self.expiry, renew, release, replaced=replaced)
        lease.mark_renewed(started)
        return lease.start()

    def force_unlock(self, lock_id: str, *, force: bool = False) -> LockInfo | str:
        current = self._read_lock()
        if current is None:
            raise StateError(f"{self.where} is not locked: nothing to unlock")
        holder, etag, _, _ = current
        if holder is None:
            self._call("unlock", self._s3.delete_object, Key=self.lock_key, IfMatch=etag)
            return "is not a valid lock record"
        if holder.id != lock_id:
            raise StateError(
                f"{self.where} is locked with lock ID {holder.id}, not {lock_id}: nothing "
                f"removed. The holder is {holder.describe()}."
            )
        if not force and is_alive(holder) and holder.hostname == _hostname():
            raise StateError(
                f"{self.where} is locked by {holder.describe()}, which is still running on "
                "this host: nothing removed. Wait for it to finish or stop it; to remove its "
                "lock anyway (the two runs could then interleave), add --force."
            )
        try:
            self._call("unlock", self._s3.delete_object, Key=self.lock_key, IfMatch=etag)
        except Conflict:
            raise StateError(f"{self.where}: the lock changed meanwhile; look again") from None
        return holder


_SESSION: list[Any] = []
_SESSION_MUTEX = threading.Lock()


def _session() -> Any:
    """One boto3 session per process: it caches the service model, which is slow to load."""
    with _SESSION_MUTEX:
        if not _SESSION:
            _SESSION.append(boto3.session.Session())
        return _SESSION[0]


def _hostname() -> str:
    import socket

    return socket.gethostname()
