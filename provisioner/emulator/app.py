"""The Vapi REST API emulator ("the sandbox"): one WSGI app, faithful to shared/vapi/API.md.

Owns: the HTTP behaviour of every kind `routes` derives from the spec's paths, on the
live API's paths (`/assistant`, `/phone-number`, `/structured-output`,
`/reporting/insight`, `/reporting/board`, ..., each with `/{id}`):

* Bearer auth (401 with the live "Invalid Key" body); `token=None` accepts any key.
* POST validates against the Create DTO (variant by `provider`/`type`), answers 201 with
  the stored object plus `id`, `orgId`, `createdAt`, `updatedAt` (and `isServerUrlSecretSet`
  on assistants, `status` on phone numbers, the assigned `number` of Vapi numbers).
* 400s in the NestJS shape, with class-validator strings (`property foo should not
  exist`, E.164 numbers, `name must be shorter than or equal to 40 characters`).
* Lists: bare arrays (`limit` <= 1000, newest first, createdAt/updatedAt filters) for
  assistants and phone numbers; `{results, metadata}` pages for the analytics kinds.
* PATCH is partial at the top level only: nested objects and arrays are replaced whole;
  a top-level `null` removes the field. A phone number's variant is its stored provider.
* DELETE answers 200 with the deleted object; malformed ids 400 (UUID pipe); unknown 404.
* References (`assistantId`, `assistantIds`, board `insightId`) must name existing
  objects; Vapi numbers are limited (5 free per account by default).
* Write-only secrets (`twilioAuthToken`, `twilioApiSecret`, `authentication.password`)
  are never shown, and kept only as a digest (`sha256:...`): the API never returns them,
  nothing here needs them in clear, and the sandbox's data file must not hold them.
* Faults from a `FaultProfile` (see `faults`), and an admin API outside the Vapi
  namespace: `GET /__emulator/stats`, `GET|PUT /__emulator/faults`,
  `POST /__emulator/reset`, `PUT /__emulator/hold` + `POST /__emulator/release` (hold
  the n-th next request before or after it is processed, for kill tests).

Must not touch: sockets (see `server`), files other than through the store, or
/work/shared. Safe to share between threads: the store and every counter are locked.
"""

from __future__ import annotations

import copy
import hashlib
import http
import json
import math
import re
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl
from wsgiref.types import StartResponse, WSGIEnvironment

from provisioner.emulator.faults import (
    CLIENT_READ_TIMEOUT,
    ConnectionDropped,
    ConnectionRefused,
    FaultDecision,
    FaultInjector,
    FaultProfile,
    RequestTimedOut,
)
from provisioner.emulator.routes import EmulatedKind, emulated_kinds
from provisioner.emulator.store import EmulatorStore, SandboxDataError, StoreTransaction
from provisioner.emulator.validation import SchemaUnavailableError, validate_body

__all__ = [
    "DEFAULT_AREA_CODE",
    "FREE_VAPI_NUMBERS",
    "INVALID_KEY_MESSAGE",
    "VapiEmulator",
]

INVALID_KEY_MESSAGE = (
    "Invalid Key. Hot tip, you may be using the private key instead of the public key, "
    "or vice versa."
)
E164_MESSAGE = (
    "number must be a valid phone number in the E.164 format. "
    "Hot tip, you may be missing the country code (Eg. US: +1)."
)
# API.md: 5 free Vapi numbers per account.
FREE_VAPI_NUMBERS = 5
# Area code of a Vapi number created without `numberDesiredAreaCode`.
DEFAULT_AREA_CODE = "415"
MAX_LIST_LIMIT = 1000
DEFAULT_LIST_LIMIT = 100
ADMIN_PREFIX = "/__emulator"

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
_DATE_FILTERS = tuple(
    f"{column}{op}" for column in ("createdAt", "updatedAt") for op in ("Gt", "Lt", "Ge", "Le")
)
_E164_PROVIDERS = frozenset({"twilio", "vonage", "telnyx"})
_DIGEST_PREFIX = "sha256:"
# Secret-named keys at any depth of a credential (never shown, stored as a digest).
_SECRET_KEY = re.compile(r"(?i)(?<!public)(token|secret|password|key|connectionstring)$")
# How long a held request waits for `/__emulator/release` at most.
_HOLD_LIMIT = 120.0


class _Pinned(Exception):
    """409 with the spec's own error body for a pinned tool (`tool_pinned`)."""


class _Fail(Exception):
    """An error answer, raised from anywhere inside a handler."""

    def __init__(
        self, status: int, message: str | list[str], headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = list(headers)


@dataclass(slots=True)
class _Answer:
    status: int
    body: Any
    headers: list[tuple[str, str]] = field(default_factory=list)
    text: bool = False  # body is a plain-text string, not JSON


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    path: str
    query: list[tuple[str, str]]
    authorization: str
    body: bytes

    @property
    def params(self) -> dict[str, str]:
        return dict(self.query)  # the last value of a repeated parameter wins


def _nest_error(status: int, message: str | list[str]) -> dict[str, Any]:
    if status >= 500:
        return {"statusCode": status, "message": message}
    return {"message": message, "error": http.HTTPStatus(status).phrase, "statusCode": status}


def _parse_time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class _Stats:
    """Counters for `/__emulator/stats` (Vapi routes only, admin calls excluded)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.by_method: dict[str, int] = {}
        self.by_status: dict[str, int] = {}
        self.creates: dict[str, int] = {kind: 0 for kind in emulated_kinds()}
        self.dropped = 0
        self.hung = 0
        self.ambiguous_posts = 0  # creates performed, then answered 502 or dropped

    def arrive(self, method: str) -> int:
        with self.lock:
            self.requests += 1
            self.by_method[method] = self.by_method.get(method, 0) + 1
            return self.requests

    def answer(self, status: int | None) -> None:
        with self.lock:
            if status is None:
                self.dropped += 1
            else:
                key = str(status)
                self.by_status[key] = self.by_status.get(key, 0) + 1

    def created(self, kind: str) -> None:
        with self.lock:
            self.creates[kind] += 1

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": self.requests,
                "by_method": dict(self.by_method),
                "by_status": dict(self.by_status),
                "rate_limited": self.by_status.get("429", 0),
                "dropped": self.dropped,
                "hung": self.hung,
                "ambiguous_posts": self.ambiguous_posts,
                "creates": dict(self.creates),
            }


class _Holds:
    """`PUT /__emulator/hold`: make one future request wait until released."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.target: int | None = None
        self.phase = "before"
        self.held = 0
        self.generation = 0

    def arm(self, target: int, phase: str) -> None:
        with self.cond:
            self.target = target
            self.phase = phase

    def release(self) -> None:
        with self.cond:
            self.target = None
            self.generation += 1
            self.cond.notify_all()

    def wait_if_due(self, number: int, phase: str) -> bool:
        """Block while request `number` is held at `phase`; True if it was held."""
        with self.cond:
            if self.target != number or self.phase != phase:
                return False
            self.target = None
            generation = self.generation
            self.held += 1
            try:
                self.cond.wait_for(lambda: self.generation != generation, timeout=_HOLD_LIMIT)
            finally:
                self.held -= 1
            return True


class VapiEmulator:
    """The Vapi REST API as a WSGI application (see the module docstring).

    Args:
        store: where objects live; a fresh in-memory store if None.
        token: the only API key accepted; None accepts any non-empty bearer token.
        faults: the fault profile to start with (none if None).
        free_vapi_numbers: how many Vapi numbers (with digits) the account may hold.
        sleep: how to wait (latency, hangs); injected for tests.
        clock: monotonic seconds, for the rate-limit bucket.
    """

    def __init__(
        self,
        store: EmulatorStore | None = None,
        *,
        token: str | None = None,
        faults: FaultProfile | None = None,
        free_vapi_numbers: int = FREE_VAPI_NUMBERS,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store if store is not None else EmulatorStore()
        self.token = token
        self.free_vapi_numbers = free_vapi_numbers
        self._sleep = sleep
        self._faults = FaultInjector(faults, clock=clock)
        self._stats = _Stats()
        self._holds = _Holds()
        # Vapi requests being handled now (kept across `reset`): a test that killed a
        # client waits for its last requests to land before it looks or starts again.
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()
        self._routes = sorted(emulated_kinds().values(), key=lambda k: -len(k.api_path))

    # -- public -------------------------------------------------------------------------

    @property
    def faults(self) -> FaultProfile:
        return self._faults.profile

    def set_faults(self, profile: FaultProfile) -> None:
        """Replace the fault profile (the random source is reseeded from it)."""
        self._faults.replace(profile)

    def stats(self) -> dict[str, Any]:
        """Counters since start or the last reset, as `GET /__emulator/stats` shows them."""
        out = self._stats.snapshot()
        with self._holds.cond:
            out["held"] = self._holds.held
        with self._in_flight_lock:
            out["in_flight"] = self._in_flight
        out["objects"] = self.store.counts()
        out["faults"] = self.faults.to_dict()
        return out

    def reset(self) -> None:
        """Delete every object and zero the counters (the fault profile stays)."""
        self.store.reset()
        self._stats = _Stats()
        self._holds.release()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = _read_request(environ)
        if request.path == ADMIN_PREFIX or request.path.startswith(ADMIN_PREFIX + "/"):
            answer = self._admin(request)
        else:
            with self._in_flight_lock:
                self._in_flight += 1
            try:
                answer = self._vapi(request, environ)
            finally:
                with self._in_flight_lock:
                    self._in_flight -= 1
        return _respond(answer, start_response)

    # -- the Vapi namespace -------------------------------------------------------------

    def _vapi(self, request: _Request, environ: WSGIEnvironment) -> _Answer:
        stats = self._stats
        number = stats.arrive(request.method)
        if self._holds.wait_if_due(number, "before"):
            stats.answer(None)
            raise ConnectionDropped("held before processing, then abandoned")
        decision = self._faults.decide(request.method)
        if decision.latency > 0:
            self._sleep(decision.latency)
        if decision.early:
            return self._early_fault(decision, stats)
        try:
            answer = self._route(request)
        except _Fail as fail:
            answer = _Answer(fail.status, _nest_error(fail.status, fail.message), fail.headers)
        except _Pinned as pinned:
            answer = _Answer(409, {"error": "tool_pinned", "message": str(pinned)})
        except SchemaUnavailableError as exc:
            answer = _Answer(500, _nest_error(500, f"Internal server error ({exc})"))
        except SandboxDataError:
            raise  # the host says it once (see `server`); no request can succeed
        except Exception:
            traceback.print_exc(file=environ.get("wsgi.errors"))
            answer = _Answer(500, _nest_error(500, "Internal server error"))
        self._holds.wait_if_due(number, "after")
        if decision.ambiguous is not None and request.method == "POST" and answer.status == 201:
            with stats.lock:
                stats.ambiguous_posts += 1
            if decision.ambiguous == "drop":
                stats.answer(None)
                raise ConnectionDropped("create performed, answer dropped")
            answer = _gateway_error(502)
        stats.answer(answer.status)
        return answer

    def _early_fault(self, decision: FaultDecision, stats: _Stats) -> _Answer:
        """The answer to a fault that comes before any processing (or raise to drop)."""
        if decision.status == 429:
            stats.answer(429)
            retry = str(decision.retry_after or 1)
            body = _nest_error(429, "Rate limit exceeded")
            return _Answer(429, body, [("Retry-After", retry)])
        if decision.status is not None:
            stats.answer(decision.status)
            return _gateway_error(decision.status)
        stats.answer(None)
        if decision.hang:
            with stats.lock:
                stats.hung += 1
            hang = self.faults.hang_seconds
            limit = CLIENT_READ_TIMEOUT.get()
            if limit is not None and limit < hang:
                self._sleep(limit)
                raise RequestTimedOut(limit)
            self._sleep(hang)
            raise ConnectionDropped("hung, then closed")
        if decision.refuse:
            raise ConnectionRefused("refused by the fault profile")
        raise ConnectionDropped("dropped by the fault profile")

    def _route(self, request: _Request) -> _Answer:
        path = request.path.rstrip("/") or "/"
        for kind in self._routes:
            if path == kind.api_path:
                if request.method == "GET":
                    self._authenticate(request)
                    return self._list(kind, request)
                if request.method == "POST":
                    self._authenticate(request)
                    return self._create(kind, request)
                break
            prefix = kind.api_path + "/"
            if path.startswith(prefix) and "/" not in path[len(prefix) :]:
                object_id = path[len(prefix) :]
                handler = {"GET": self._get, "PATCH": self._update, "DELETE": self._delete}.get(
                    request.method
                )
                if handler is None:
                    break
                self._authenticate(request)
                if not _UUID.match(object_id):
                    raise _Fail(400, "Validation failed (uuid is expected)")
                return handler(kind, object_id, request)
        raise _Fail(404, f"Cannot {request.method} {request.path}")

    def _authenticate(self, request: _Request) -> None:
        scheme, _, token = request.authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _Fail(401, INVALID_KEY_MESSAGE)
        if self.token is not None and token != self.token:
            raise _Fail(401, INVALID_KEY_MESSAGE)

    # -- handlers -----------------------------------------------------------------------

    def _create(self, kind: EmulatedKind, request: _Request) -> _Answer:
        body = _json_body(request)
        variant = ""
        if kind.discriminator is not None:
            value = body.get(kind.discriminator)
            if not isinstance(value, str) or value not in kind.create_schemas:
                allowed = ", ".join(kind.create_schemas)
                raise _Fail(
                    400, [f"{kind.discriminator} must be one of the following values: {allowed}"]
                )
            variant = value
        messages = validate_body(kind.create_schemas[variant], body)
        messages += _number_messages(kind, variant, body, None)
        if messages:
            raise _Fail(400, messages)
        name = body.get("name")
        if isinstance(name, str) and name in self.faults.reject_create_names:
            raise _Fail(400, f"{kind.label.capitalize()} {name!r} was refused (sandbox fault)")
        fields = {k: v for k, v in body.items() if v is not None}
        with self.store.transaction() as tx:
            _check_references(kind, fields, tx)
            fields = self._read_fields(kind, variant, fields, tx)
            obj = tx.insert(kind.name, _seal(kind, fields))
            shown = _render(kind, obj)
        self._stats.created(kind.name)
        return _Answer(201, shown)

    def _read_fields(
        self, kind: EmulatedKind, variant: str, fields: dict[str, Any], tx: StoreTransaction
    ) -> dict[str, Any]:
        """`fields` plus what the server adds on create for this kind."""
        if kind.name == "assistant":
            return {**fields, "isServerUrlSecretSet": False}
        if kind.name != "phoneNumber":
            return fields
        out = {**fields, "status": "active"}
        if variant == "vapi" and not fields.get("sipUri"):
            numbers = tx.objects(kind.name).values()
            held = sum(1 for o in numbers if o.get("provider") == "vapi" and o.get("number"))
            if held >= self.free_vapi_numbers:
                raise _Fail(
                    400,
                    f"Free Vapi number limit reached: this account already has {held} of "
                    f"{self.free_vapi_numbers} free Vapi numbers. Delete one, or import a "
                    "number from Twilio, Vonage or Telnyx.",
                )
            out["number"] = _assign_number(fields.get("numberDesiredAreaCode"), tx)
        return out

    def _get(self, kind: EmulatedKind, object_id: str, request: _Request) -> _Answer:
        with self.store.transaction() as tx:
            return _Answer(200, _render(kind, _find(kind, object_id, tx)))

    def _update(self, kind: EmulatedKind, object_id: str, request: _Request) -> _Answer:
        body = _json_body(request)
        with self.store.transaction() as tx:
            stored = _find(kind, object_id, tx)
            variant = ""
            if kind.discriminator is not None:
                variant = str(stored.get(kind.discriminator, ""))
            dto = kind.update_schemas.get(variant)
            if dto is None:
                raise _Fail(400, f"{kind.label} {object_id} has an unknown {kind.discriminator}")
            messages = validate_body(dto, body)
            if kind.discriminator is not None and kind.discriminator in body:
                if body[kind.discriminator] != variant:
                    messages.append(
                        f"{kind.discriminator} must be one of the following values: {variant}"
                    )
            messages += _number_messages(kind, variant, body, stored)
            if messages:
                raise _Fail(400, list(dict.fromkeys(messages)))
            _check_references(kind, {k: v for k, v in body.items() if v is not None}, tx)
            updated = copy.deepcopy(stored)
            for key, value in _seal(kind, body).items():
                if value is None:
                    updated.pop(key, None)
                else:
                    updated[key] = copy.deepcopy(value)  # replaced whole, never merged
            updated["updatedAt"] = tx.timestamp()
            tx.put(kind.name, updated)
            return _Answer(200, _render(kind, updated))

    def _delete(self, kind: EmulatedKind, object_id: str, request: _Request) -> _Answer:
        with self.store.transaction() as tx:
            _find(kind, object_id, tx)
            if kind.name == "tool":
                _check_not_pinned(object_id, tx)
            removed = tx.delete(kind.name, object_id)
            assert removed is not None
            return _Answer(200, _render(kind, removed))

    def _list(self, kind: EmulatedKind, request: _Request) -> _Answer:
        params = request.params
        allowed = kind.list_params
        messages = [f"property {key} should not exist" for key in params if key not in allowed]
        limit = _number_param(params, "limit", DEFAULT_LIST_LIMIT, 0, MAX_LIST_LIMIT, messages)
        page = _number_param(params, "page", 1, 1, None, messages)
        order = params.get("sortOrder", "DESC")
        if order not in ("ASC", "DESC"):
            messages.append("sortOrder must be one of the following values: ASC, DESC")
        sort_by = params.get("sortBy", "createdAt")
        if sort_by not in ("createdAt", "duration", "cost"):
            messages.append("sortBy must be one of the following values: createdAt, duration, cost")
        bounds: list[tuple[str, str, datetime]] = []
        for key in _DATE_FILTERS:
            if key in params:
                moment = _parse_time(params[key])
                if moment is None:
                    messages.append(f"{key} must be a valid ISO 8601 date string")
                else:
                    bounds.append((key[:9], key[9:], moment))
        if messages:
            raise _Fail(400, list(dict.fromkeys(messages)))
        with self.store.transaction() as tx:
            found = [
                obj
                for obj in tx.objects(kind.name).values()
                if _matches(obj, bounds)
                and ("id" not in params or obj.get("id") == params["id"])
                and ("name" not in params or obj.get("name") == params["name"])
            ]
            found.sort(key=lambda o: str(o.get("createdAt", "")), reverse=order == "DESC")
            if not kind.paged:
                return _Answer(200, [_render(kind, o) for o in found[:limit]])
            start = (page - 1) * limit
            results = [_render(kind, o) for o in found[start : start + limit]]
        total = len(found)
        metadata = {
            "itemsPerPage": limit,
            "totalItems": total,
            "currentPage": page,
            "totalPages": math.ceil(total / limit) if limit else 0,
        }
        return _Answer(200, {"results": results, "metadata": metadata})

    # -- admin --------------------------------------------------------------------------

    def _admin(self, request: _Request) -> _Answer:
        action = request.path[len(ADMIN_PREFIX) :].rstrip("/")
        try:
            if (request.method, action) == ("GET", "/stats"):
                return _Answer(200, self.stats())
            if (request.method, action) == ("GET", "/faults"):
                return _Answer(200, self.faults.to_dict())
            if (request.method, action) == ("PUT", "/faults"):
                try:
                    profile = FaultProfile.from_dict(_json_body(request))
                except ValueError as exc:
                    raise _Fail(400, str(exc)) from None
                self.set_faults(profile)
                return _Answer(200, profile.to_dict())
            if (request.method, action) == ("POST", "/reset"):
                self.reset()
                return _Answer(200, {"reset": True})
            if (request.method, action) == ("PUT", "/hold"):
                return self._arm_hold(_json_body(request))
            if (request.method, action) == ("POST", "/release"):
                self._holds.release()
                return _Answer(200, {"released": True})
        except _Fail as fail:
            return _Answer(fail.status, _nest_error(fail.status, fail.message))
        return _Answer(404, _nest_error(404, f"Cannot {request.method} {request.path}"))

    def _arm_hold(self, body: dict[str, Any]) -> _Answer:
        after = body.get("after", 0)
        phase = body.get("phase", "before")
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise _Fail(400, "after must be a whole number >= 0")
        if phase not in ("before", "after"):
            raise _Fail(400, "phase must be one of the following values: before, after")
        with self._stats.lock:
            target = self._stats.requests + after + 1
        self._holds.arm(target, phase)
        return _Answer(200, {"request": target, "phase": phase})


# -- helpers ---------------------------------------------------------------------------


def _read_request(environ: WSGIEnvironment) -> _Request:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    # Read the whole body first: closing a connection with unread input resets it.
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    raw_path = environ.get("PATH_INFO") or "/"
    # PEP 3333 hands PATH_INFO over as latin-1 decoded bytes.
    path = raw_path.encode("latin-1").decode("utf-8", "replace")
    query = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    return _Request(
        method=str(environ.get("REQUEST_METHOD", "GET")).upper(),
        path=path,
        query=query,
        authorization=str(environ.get("HTTP_AUTHORIZATION", "")),
        body=body,
    )


def _respond(answer: _Answer, start_response: StartResponse) -> list[bytes]:
    if answer.text:
        data = str(answer.body).encode("utf-8")
        content_type = "text/plain; charset=utf-8"
    else:
        data = json.dumps(answer.body, ensure_ascii=False).encode("utf-8")
        content_type = "application/json; charset=utf-8"
    status = http.HTTPStatus(answer.status)
    headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(len(data))),
        *answer.headers,
    ]
    start_response(f"{status.value} {status.phrase}", headers)
    return [data]


def _gateway_error(status: int) -> _Answer:
    """A 5xx as the API's front answers it: NestJS JSON for 500, the proxy's text else."""
    if status == 500:
        return _Answer(500, _nest_error(500, "Internal server error"))
    return _Answer(status, f"error code: {status}", text=True)


def _json_body(request: _Request) -> dict[str, Any]:
    if not request.body.strip():
        return {}
    try:
        body = json.loads(request.body)
    except ValueError as exc:
        pos = getattr(exc, "pos", 0)
        raise _Fail(400, f"Unexpected token in JSON at position {pos}") from None
    if not isinstance(body, dict):
        raise _Fail(400, ["body must be an object"])
    return body


def _find(kind: EmulatedKind, object_id: str, tx: StoreTransaction) -> dict[str, Any]:
    obj = tx.get(kind.name, object_id)
    if obj is None:
        raise _Fail(404, f"{kind.label.capitalize()} not found")
    return obj


def _nested_secrets(value: Any, change: Callable[[str], Any | None]) -> Any:
    """`value` with every string under a secret-named key (any depth) changed by `change`
    (None drops the key): a credential's `authenticationPlan.token`, whatever its variant."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if isinstance(v, str) and _SECRET_KEY.search(k):
                changed = change(v)
                if changed is not None:
                    out[k] = changed
            else:
                out[k] = _nested_secrets(v, change)
        return out
    if isinstance(value, list):
        return [_nested_secrets(v, change) for v in value]
    return value


def _seal(kind: EmulatedKind, obj: Mapping[str, Any]) -> dict[str, Any]:
    """`obj` as stored: each write-only secret replaced by its digest (`sha256:<hex>`)."""
    sealed = dict(obj)
    if kind.name == "credential":
        # (credentials hold secrets deep inside unions the spec-derived paths do not reach)
        sealed = _nested_secrets(sealed, _digest)
    for path in kind.secret_fields:
        if len(path) == 1 and isinstance(sealed.get(path[0]), str):
            sealed[path[0]] = _digest(sealed[path[0]])
        elif len(path) == 2:
            outer = sealed.get(path[0])
            if isinstance(outer, dict) and path[1] in outer:
                sealed[path[0]] = {**outer, path[1]: _digest(str(outer[path[1]]))}
    return sealed


def _digest(secret: str) -> str:
    return _DIGEST_PREFIX + hashlib.sha256(secret.encode()).hexdigest()


def _render(kind: EmulatedKind, obj: Mapping[str, Any]) -> dict[str, Any]:
    """What the API shows of a stored object: a copy without write-only secrets."""
    shown = copy.deepcopy(dict(obj))
    if kind.name == "credential":
        shown = _nested_secrets(shown, lambda _: None)
    for path in kind.secret_fields:
        if len(path) == 1:
            shown.pop(path[0], None)
        else:
            outer = shown.get(path[0])
            if isinstance(outer, dict):
                outer.pop(path[1], None)
    return shown


def _number_messages(
    kind: EmulatedKind, variant: str, body: Mapping[str, Any], stored: Mapping[str, Any] | None
) -> list[str]:
    """The E.164 rule for phone numbers (imports always; BYO unless switched off)."""
    if kind.name != "phoneNumber":
        return []
    if variant == "vapi":
        area = body.get("numberDesiredAreaCode")
        if isinstance(area, str) and len(area) == 3 and not re.fullmatch(r"[2-9]\d\d", area):
            return ["numberDesiredAreaCode must be a valid US area code"]
        return []
    merged = {**(stored or {}), **body}
    number = merged.get("number")
    if not isinstance(number, str):
        return []
    if variant in _E164_PROVIDERS:
        check = "number" in body
    elif variant == "byo-phone-number":
        touched = "number" in body or "numberE164CheckEnabled" in body
        check = touched and merged.get("numberE164CheckEnabled") is not False
    else:
        check = False
    return [E164_MESSAGE] if check and not _E164.match(number) else []


def _check_not_pinned(tool_id: str, tx: StoreTransaction) -> None:
    """409 `tool_pinned` (the spec's error body) while an assistant pins a version of the
    tool (`model.toolRefs[].toolId`); a plain `model.toolIds` entry does not pin it."""
    for assistant in tx.objects("assistant").values():
        model = assistant.get("model")
        refs = model.get("toolRefs") if isinstance(model, dict) else None
        for ref in refs if isinstance(refs, list) else ():
            if isinstance(ref, dict) and ref.get("toolId") == tool_id:
                raise _Pinned(
                    f"Tool is pinned by assistant {assistant['id']} (model.toolRefs); "
                    "remove the reference first"
                )


def _handoff_references(fields: Mapping[str, Any]) -> Iterable[tuple[str, str, Any]]:
    """(where, kind, id) of each ID a handoff tool's destinations name."""
    for i, dest in enumerate(fields.get("destinations") or ()):
        if not isinstance(dest, dict):
            continue
        if "assistantId" in dest:
            yield f"destinations.{i}.assistantId", "assistant", dest["assistantId"]
        if "squadId" in dest:
            yield f"destinations.{i}.squadId", "squad", dest["squadId"]


def _references(kind: EmulatedKind, fields: Mapping[str, Any]) -> Iterable[tuple[str, str, Any]]:
    """(where, kind, id) of each reference to an object the sandbox holds."""
    if kind.name == "phoneNumber":
        # (a squad made elsewhere may be named by a literal ID: not checked, as before)
        yield "assistantId", "assistant", fields.get("assistantId")
    elif kind.name == "squad":
        for i, member in enumerate(fields.get("members") or ()):
            if isinstance(member, dict):
                yield f"members.{i}.assistantId", "assistant", member.get("assistantId")
    elif kind.name == "assistant":
        model = fields.get("model")
        if isinstance(model, dict):
            for i, ref in enumerate(model.get("toolIds") or ()):
                yield f"model.toolIds.{i}", "tool", ref
            for i, pin in enumerate(model.get("toolRefs") or ()):
                if isinstance(pin, dict):
                    yield f"model.toolRefs.{i}.toolId", "tool", pin.get("toolId")
    elif kind.name == "tool" and fields.get("type") == "handoff":
        yield from _handoff_references(fields)


def _check_references(kind: EmulatedKind, fields: Mapping[str, Any], tx: StoreTransaction) -> None:
    """400 unless every referenced object exists (ordering bugs must show)."""
    missing: list[str] = []
    for where, target, ref in _references(kind, fields):
        if isinstance(ref, str) and not tx.exists(target, ref):
            missing.append(f"{where}: {target} {ref} does not exist")
    if kind.name == "structuredOutput":
        for i, ref in enumerate(fields.get("assistantIds") or []):
            if isinstance(ref, str) and not tx.exists("assistant", ref):
                missing.append(f"assistantIds.{i}: assistant {ref} does not exist")
    elif kind.name == "board":
        for i, item in enumerate(fields.get("items") or []):
            ref = item.get("insightId") if isinstance(item, dict) else None
            if isinstance(ref, str) and not tx.exists("insight", ref):
                missing.append(f"items.{i}.insightId: insight {ref} does not exist")
    if missing:
        raise _Fail(400, "; ".join(missing))


def _assign_number(area_code: Any, tx: StoreTransaction) -> str:
    """Digits for a new Vapi number: +1, the area code, 555, four digits never reused."""
    area = area_code if isinstance(area_code, str) and area_code else DEFAULT_AREA_CODE
    taken = {o.get("number") for o in tx.objects("phoneNumber").values()}
    while True:
        candidate = f"+1{area}555{(2000 + tx.next_sequence('vapiNumber')) % 10000:04d}"
        if candidate not in taken:
            return candidate


def _number_param(
    params: Mapping[str, str],
    name: str,
    default: int,
    low: int,
    high: int | None,
    messages: list[str],
) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        messages.append(f"{name} must be a number conforming to the specified constraints")
        return default
    if value < low:
        messages.append(f"{name} must not be less than {low}")
        return default
    if high is not None and value > high:
        messages.append(f"{name} must not be greater than {high}")
        return default
    return int(value)


def _matches(obj: Mapping[str, Any], bounds: list[tuple[str, str, datetime]]) -> bool:
    for column, op, bound in bounds:
        moment = _parse_time(str(obj.get(column, "")))
        if moment is None:
            return False
        if op == "Gt" and not moment > bound:
            return False
        if op == "Lt" and not moment < bound:
            return False
        if op == "Ge" and not moment >= bound:
            return False
        if op == "Le" and not moment <= bound:
            return False
    return True
