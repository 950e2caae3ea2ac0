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

The HTTP plumbing is `wsgi`, the admin counters and holds `counters`, the rules for
stored objects (secrets sealed, rendering, references, Vapi numbers, list filters)
`objects`.

Must not touch: sockets (see `server`), files other than through the store, or
/work/shared. Safe to share between threads: the store and every counter are locked.
"""

from __future__ import annotations

import copy
import math
import re
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from wsgiref.types import StartResponse, WSGIEnvironment

from provisioner.emulator.counters import Holds, Stats
from provisioner.emulator.faults import (
    CLIENT_READ_TIMEOUT,
    ConnectionDropped,
    ConnectionRefused,
    FaultDecision,
    FaultInjector,
    FaultProfile,
    RequestTimedOut,
)
from provisioner.emulator.objects import (
    DEFAULT_AREA_CODE,
    E164_MESSAGE,
    assign_number,
    check_references,
    find_object,
    matches,
    number_messages,
    number_param,
    parse_time,
    render,
    seal,
)
from provisioner.emulator.routes import EmulatedKind, emulated_kinds
from provisioner.emulator.store import EmulatorStore, SandboxDataError, StoreTransaction
from provisioner.emulator.validation import SchemaUnavailableError, validate_body
from provisioner.emulator.wsgi import (
    Answer,
    Fail,
    Request,
    gateway_error,
    json_body,
    nest_error,
    read_request,
    respond,
)

__all__ = [
    "DEFAULT_AREA_CODE",
    "E164_MESSAGE",
    "FREE_VAPI_NUMBERS",
    "INVALID_KEY_MESSAGE",
    "VapiEmulator",
]

INVALID_KEY_MESSAGE = (
    "Invalid Key. Hot tip, you may be using the private key instead of the public key, "
    "or vice versa."
)
# API.md: 5 free Vapi numbers per account.
FREE_VAPI_NUMBERS = 5
MAX_LIST_LIMIT = 1000
DEFAULT_LIST_LIMIT = 100
ADMIN_PREFIX = "/__emulator"

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_DATE_FILTERS = tuple(
    f"{column}{op}" for column in ("createdAt", "updatedAt") for op in ("Gt", "Lt", "Ge", "Le")
)


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
        self._stats = Stats()
        self._holds = Holds()
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
        self._stats = Stats()
        self._holds.release()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = read_request(environ)
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
        return respond(answer, start_response)

    # -- the Vapi namespace -------------------------------------------------------------

    def _vapi(self, request: Request, environ: WSGIEnvironment) -> Answer:
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
        except Fail as fail:
            answer = Answer(fail.status, nest_error(fail.status, fail.message), fail.headers)
        except SchemaUnavailableError as exc:
            answer = Answer(500, nest_error(500, f"Internal server error ({exc})"))
        except SandboxDataError:
            raise  # the host says it once (see `server`); no request can succeed
        except Exception:
            traceback.print_exc(file=environ.get("wsgi.errors"))
            answer = Answer(500, nest_error(500, "Internal server error"))
        self._holds.wait_if_due(number, "after")
        if decision.ambiguous is not None and request.method == "POST" and answer.status == 201:
            with stats.lock:
                stats.ambiguous_posts += 1
            if decision.ambiguous == "drop":
                stats.answer(None)
                raise ConnectionDropped("create performed, answer dropped")
            answer = gateway_error(502)
        stats.answer(answer.status)
        return answer

    def _early_fault(self, decision: FaultDecision, stats: Stats) -> Answer:
        """The answer to a fault that comes before any processing (or raise to drop)."""
        if decision.status == 429:
            stats.answer(429)
            retry = str(decision.retry_after or 1)
            body = nest_error(429, "Rate limit exceeded")
            return Answer(429, body, [("Retry-After", retry)])
        if decision.status is not None:
            stats.answer(decision.status)
            return gateway_error(decision.status)
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

    def _route(self, request: Request) -> Answer:
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
                    raise Fail(400, "Validation failed (uuid is expected)")
                return handler(kind, object_id, request)
        raise Fail(404, f"Cannot {request.method} {request.path}")

    def _authenticate(self, request: Request) -> None:
        scheme, _, token = request.authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Fail(401, INVALID_KEY_MESSAGE)
        if self.token is not None and token != self.token:
            raise Fail(401, INVALID_KEY_MESSAGE)

    # -- handlers -----------------------------------------------------------------------

    def _create(self, kind: EmulatedKind, request: Request) -> Answer:
        body = json_body(request)
        variant = ""
        if kind.discriminator is not None:
            value = body.get(kind.discriminator)
            if not isinstance(value, str) or value not in kind.create_schemas:
                allowed = ", ".join(kind.create_schemas)
                raise Fail(
                    400, [f"{kind.discriminator} must be one of the following values: {allowed}"]
                )
            variant = value
        messages = validate_body(kind.create_schemas[variant], body)
        messages += number_messages(kind, variant, body, None)
        if messages:
            raise Fail(400, messages)
        name = body.get("name")
        if isinstance(name, str) and name in self.faults.reject_create_names:
            raise Fail(400, f"{kind.label.capitalize()} {name!r} was refused (sandbox fault)")
        fields = {k: v for k, v in body.items() if v is not None}
        with self.store.transaction() as tx:
            check_references(kind, fields, tx)
            fields = self._read_fields(kind, variant, fields, tx)
            obj = tx.insert(kind.name, seal(kind, fields))
            shown = render(kind, obj)
        self._stats.created(kind.name)
        return Answer(201, shown)

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
                raise Fail(
                    400,
                    f"Free Vapi number limit reached: this account already has {held} of "
                    f"{self.free_vapi_numbers} free Vapi numbers. Delete one, or import a "
                    "number from Twilio, Vonage or Telnyx.",
                )
            out["number"] = assign_number(fields.get("numberDesiredAreaCode"), tx)
        return out

    def _get(self, kind: EmulatedKind, object_id: str, request: Request) -> Answer:
        with self.store.transaction() as tx:
            return Answer(200, render(kind, find_object(kind, object_id, tx)))

    def _update(self, kind: EmulatedKind, object_id: str, request: Request) -> Answer:
        body = json_body(request)
        with self.store.transaction() as tx:
            stored = find_object(kind, object_id, tx)
            variant = ""
            if kind.discriminator is not None:
                variant = str(stored.get(kind.discriminator, ""))
            dto = kind.update_schemas.get(variant)
            if dto is None:
                raise Fail(400, f"{kind.label} {object_id} has an unknown {kind.discriminator}")
            messages = validate_body(dto, body)
            if kind.discriminator is not None and kind.discriminator in body:
                if body[kind.discriminator] != variant:
                    messages.append(
                        f"{kind.discriminator} must be one of the following values: {variant}"
                    )
            messages += number_messages(kind, variant, body, stored)
            if messages:
                raise Fail(400, list(dict.fromkeys(messages)))
            check_references(kind, {k: v for k, v in body.items() if v is not None}, tx)
            updated = copy.deepcopy(stored)
            for key, value in seal(kind, body).items():
                if value is None:
                    updated.pop(key, None)
                else:
                    updated[key] = copy.deepcopy(value)  # replaced whole, never merged
            updated["updatedAt"] = tx.timestamp()
            tx.put(kind.name, updated)
            return Answer(200, render(kind, updated))

    def _delete(self, kind: EmulatedKind, object_id: str, request: Request) -> Answer:
        with self.store.transaction() as tx:
            find_object(kind, object_id, tx)
            removed = tx.delete(kind.name, object_id)
            assert removed is not None
            return Answer(200, render(kind, removed))

    def _list(self, kind: EmulatedKind, request: Request) -> Answer:
        params = request.params
        allowed = kind.list_params
        messages = [f"property {key} should not exist" for key in params if key not in allowed]
        limit = number_param(params, "limit", DEFAULT_LIST_LIMIT, 0, MAX_LIST_LIMIT, messages)
        page = number_param(params, "page", 1, 1, None, messages)
        order = params.get("sortOrder", "DESC")
        if order not in ("ASC", "DESC"):
            messages.append("sortOrder must be one of the following values: ASC, DESC")
        sort_by = params.get("sortBy", "createdAt")
        if sort_by not in ("createdAt", "duration", "cost"):
            messages.append("sortBy must be one of the following values: createdAt, duration, cost")
        bounds: list[tuple[str, str, datetime]] = []
        for key in _DATE_FILTERS:
            if key in params:
                moment = parse_time(params[key])
                if moment is None:
                    messages.append(f"{key} must be a valid ISO 8601 date string")
                else:
                    bounds.append((key[:9], key[9:], moment))
        if messages:
            raise Fail(400, list(dict.fromkeys(messages)))
        with self.store.transaction() as tx:
            found = [
                obj
                for obj in tx.objects(kind.name).values()
                if matches(obj, bounds)
                and ("id" not in params or obj.get("id") == params["id"])
                and ("name" not in params or obj.get("name") == params["name"])
            ]
            found.sort(key=lambda o: str(o.get("createdAt", "")), reverse=order == "DESC")
            if not kind.paged:
                return Answer(200, [render(kind, o) for o in found[:limit]])
            start = (page - 1) * limit
            results = [render(kind, o) for o in found[start : start + limit]]
        total = len(found)
        metadata = {
            "itemsPerPage": limit,
            "totalItems": total,
            "currentPage": page,
            "totalPages": math.ceil(total / limit) if limit else 0,
        }
        return Answer(200, {"results": results, "metadata": metadata})

    # -- admin --------------------------------------------------------------------------

    def _admin(self, request: Request) -> Answer:
        action = request.path[len(ADMIN_PREFIX) :].rstrip("/")
        try:
            if (request.method, action) == ("GET", "/stats"):
                return Answer(200, self.stats())
            if (request.method, action) == ("GET", "/faults"):
                return Answer(200, self.faults.to_dict())
            if (request.method, action) == ("PUT", "/faults"):
                try:
                    profile = FaultProfile.from_dict(json_body(request))
                except ValueError as exc:
                    raise Fail(400, str(exc)) from None
                self.set_faults(profile)
                return Answer(200, profile.to_dict())
            if (request.method, action) == ("POST", "/reset"):
                self.reset()
                return Answer(200, {"reset": True})
            if (request.method, action) == ("PUT", "/hold"):
                return self._arm_hold(json_body(request))
            if (request.method, action) == ("POST", "/release"):
                self._holds.release()
                return Answer(200, {"released": True})
        except Fail as fail:
            return Answer(fail.status, nest_error(fail.status, fail.message))
        return Answer(404, nest_error(404, f"Cannot {request.method} {request.path}"))

    def _arm_hold(self, body: dict[str, Any]) -> Answer:
        after = body.get("after", 0)
        phase = body.get("phase", "before")
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise Fail(400, "after must be a whole number >= 0")
        if phase not in ("before", "after"):
            raise Fail(400, "phase must be one of the following values: before, after")
        with self._stats.lock:
            target = self._stats.requests + after + 1
        self._holds.arm(target, phase)
        return Answer(200, {"request": target, "phase": phase})


# -- helpers ---------------------------------------------------------------------------
