"""Fault injection for the Vapi emulator: what can go wrong, and when it does.

Owns: `FaultProfile`, the frozen description of the faults to inject (parsed from the
compact `--faults` / `PROVISIONER_SANDBOX_FAULTS` string or from the admin endpoint's
JSON), and `FaultInjector`, which turns a profile into one `FaultDecision` per request:
a token-bucket rate limit, random 429s and 5xx, added latency, hangs, dropped
connections and ambiguous creates, and a script of exact outcomes for the next requests
(`script`, for tests that need one particular sequence). Decisions come from one seeded
`random.Random`, and every request draws the same number of values whatever the outcome,
so the same seed and the same request sequence give the same faults (a failing test
replays).

Also owns the exceptions the app raises to ask its host for a fault no WSGI response
can express: `ConnectionDropped` (close the connection without writing anything),
`ConnectionRefused` (in-process: the connection was never made) and `RequestTimedOut`
(an in-process hang that outlived the client's read timeout).

Must not touch: requests, responses, the store, or the clock and sleep of the caller
(both are injected). Safe to share between threads: one lock guards the RNG and bucket.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

__all__ = [
    "CLIENT_READ_TIMEOUT",
    "ConnectionDropped",
    "ConnectionRefused",
    "FaultDecision",
    "FaultInjector",
    "FaultProfile",
    "RequestTimedOut",
]

# The read timeout of the in-process client whose request is being handled, when known
# (set by `SandboxTransport`); a hang longer than this ends as `RequestTimedOut`.
CLIENT_READ_TIMEOUT: ContextVar[float | None] = ContextVar(
    "provisioner_emulator_client_read_timeout", default=None
)

# Compact-string keys -> field names.
_ALIASES: Mapping[str, str] = {
    "rps": "rate_limit_rps",
    "rate_limit_rps": "rate_limit_rps",
    "p429": "p_429",
    "p_429": "p_429",
    "p5xx": "p_5xx",
    "p_5xx": "p_5xx",
    "latency": "latency_ms",
    "latency_ms": "latency_ms",
    "phang": "p_hang",
    "p_hang": "p_hang",
    "hang": "hang_seconds",
    "hang_s": "hang_seconds",
    "hang_seconds": "hang_seconds",
    "pdrop": "p_drop",
    "p_drop": "p_drop",
    "pambiguous": "p_ambiguous_post",
    "p_ambiguous": "p_ambiguous_post",
    "p_ambiguous_post": "p_ambiguous_post",
    "seed": "seed",
    "reject": "reject_create_names",
    "reject_create_names": "reject_create_names",
    "script": "script",
}
_COMPACT_KEYS = (
    "rps, p429, p5xx, latency_ms, p_hang, hang_seconds, p_drop, p_ambiguous, seed, reject, script"
)
_PROBABILITIES = ("p_429", "p_5xx", "p_hang", "p_drop", "p_ambiguous_post")
_SERVER_ERRORS = (500, 502, 503)
# Scripted outcomes other than a status code.
_SCRIPT_OUTCOMES = ("ambiguous", "ambiguous-drop", "drop", "refuse")
_SCRIPT_METHODS = ("GET", "POST", "PATCH", "DELETE", "*")


class ConnectionDropped(Exception):
    """Raised by the app: close the connection without sending any response."""


class ConnectionRefused(ConnectionDropped):
    """Raised by the app: in-process, the connection was refused (nothing was sent); over a
    socket the connection exists already, so it is dropped like `ConnectionDropped`."""


class RequestTimedOut(Exception):
    """Raised by the app in-process: the request hung past the client's read timeout."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no response within {seconds:g} s")
        self.seconds = seconds


@dataclass(frozen=True, slots=True)
class FaultProfile:
    """The faults the emulator injects. The default profile injects none.

    Attributes:
        rate_limit_rps: token bucket (capacity one second's worth, at least 1); a request
            finding it empty gets 429 with `Retry-After`. None = no limit.
        p_429: probability of a random 429 (`Retry-After: 1`).
        p_5xx: probability of a random 500/502/503, before the request does anything.
        latency_ms: added to every request.
        p_hang: probability that a request hangs `hang_seconds` (then the connection is
            closed without a response; in-process it ends at the client's read timeout).
        p_drop: probability that the connection is closed without any response, before
            the request does anything.
        p_ambiguous_post: probability that a successful create is performed and then
            answered with 502 or a dropped connection, so the client cannot know.
        seed: seeds the random source; None = a fresh random seed.
        reject_create_names: creates whose `name` is in this list answer 400 (a create
            the API refuses, for partial-failure tests).
        script: exact outcomes for the next requests, in order, each `METHOD:OUTCOME` or
            `METHOD:OUTCOME*N` (N requests). Each request of that METHOD (`*`: any) takes
            the first step left for it. OUTCOME is a status (answered without doing
            anything), `ambiguous` (a create performed, then answered 502),
            `ambiguous-drop` (performed, then the connection dropped), `drop` (dropped
            before anything) or `refuse` (see `ConnectionRefused`). Takes precedence over
            the random faults; restarts whenever the profile is set.
    """

    rate_limit_rps: float | None = None
    p_429: float = 0.0
    p_5xx: float = 0.0
    latency_ms: float = 0.0
    p_hang: float = 0.0
    hang_seconds: float = 30.0
    p_drop: float = 0.0
    p_ambiguous_post: float = 0.0
    seed: int | None = None
    reject_create_names: tuple[str, ...] = field(default=())
    script: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        for step in self.script:
            _parse_step(step)
        for name in _PROBABILITIES:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"fault {name} must be a probability from 0 to 1, got {value:g}")
        if self.rate_limit_rps is not None and self.rate_limit_rps <= 0:
            raise ValueError(f"fault rate_limit_rps must be above 0, got {self.rate_limit_rps:g}")
        if self.latency_ms < 0:
            raise ValueError(f"fault latency_ms must not be negative, got {self.latency_ms:g}")
        if self.hang_seconds < 0:
            raise ValueError(f"fault hang_seconds must not be negative, got {self.hang_seconds:g}")

    @property
    def active(self) -> bool:
        """Whether the profile injects anything at all."""
        return bool(
            self.rate_limit_rps
            or self.latency_ms
            or any(getattr(self, name) for name in _PROBABILITIES)
            or self.reject_create_names
            or self.script
        )

    @classmethod
    def parse(cls, text: str) -> FaultProfile:
        """Parse the compact form, e.g. `"rps=5,p429=0.2,p5xx=0.1,latency_ms=50,seed=7"`.

        Keys: rps (rate_limit_rps), p429, p5xx, latency_ms, p_hang, hang_seconds, p_drop,
        p_ambiguous (p_ambiguous_post), seed, reject (names separated by `|`), script
        (steps separated by `|`, e.g. `script=POST:ambiguous|GET:403*8`). The long
        field names are accepted too. An empty string or `none` is the quiet profile.

        Raises:
            ValueError: unknown key, missing `=`, unparseable or out-of-range value.
        """
        stripped = text.strip()
        if not stripped or stripped.lower() == "none":
            return cls()
        values: dict[str, Any] = {}
        for part in stripped.split(","):
            item = part.strip()
            if not item:
                continue
            key, sep, raw = item.partition("=")
            key = key.strip().lower()
            if not sep:
                raise ValueError(f"fault profile {text!r}: expected key=value, got {item!r}")
            name = _ALIASES.get(key)
            if name is None:
                raise ValueError(
                    f"fault profile {text!r}: unknown fault {key!r} (known: {_COMPACT_KEYS})"
                )
            if name in values:
                raise ValueError(f"fault profile {text!r}: {key!r} given twice")
            values[name] = _convert(name, raw.strip(), text)
        try:
            return cls(**values)
        except ValueError as exc:
            raise ValueError(f"fault profile {text!r}: {exc}") from None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultProfile:
        """Build from JSON (field names or the compact keys); missing keys take defaults.

        Raises:
            ValueError: unknown key or a value of the wrong type or range.
        """
        if not isinstance(data, Mapping):
            raise ValueError("fault profile must be a JSON object")
        values: dict[str, Any] = {}
        for key, value in data.items():
            name = _ALIASES.get(str(key).lower())
            if name is None:
                known = ", ".join(f.name for f in fields(cls))
                raise ValueError(f"unknown fault {key!r} (known: {known})")
            if value is None and name in ("rate_limit_rps", "seed"):
                values[name] = None
            elif name in ("reject_create_names", "script"):
                if isinstance(value, str):
                    value = [value]
                if not isinstance(value, list | tuple) or not all(
                    isinstance(v, str) for v in value
                ):
                    raise ValueError(f"fault {name} must be a list of strings")
                values[name] = tuple(value)
            elif name == "seed":
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValueError(f"fault seed must be an integer, got {value!r}")
                values[name] = value
            else:
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ValueError(f"fault {name} must be a number, got {value!r}")
                values[name] = float(value)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (field names), as `from_dict` reads it."""
        out = asdict(self)
        out["reject_create_names"] = list(self.reject_create_names)
        out["script"] = list(self.script)
        return out


def _parse_step(step: str) -> tuple[str, str, int]:
    """`"GET:403*8"` -> ("GET", "403", 8); ValueError naming the step if malformed."""
    method, sep, rest = step.strip().partition(":")
    outcome, star, count_text = rest.strip().partition("*")
    method, outcome = method.strip().upper(), outcome.strip().lower()
    problem = None
    if not sep or method not in _SCRIPT_METHODS:
        problem = f"expected METHOD:OUTCOME with METHOD one of {', '.join(_SCRIPT_METHODS)}"
    elif outcome not in _SCRIPT_OUTCOMES and not (outcome.isdigit() and 400 <= int(outcome) <= 599):
        named = ", ".join(_SCRIPT_OUTCOMES)
        problem = f"OUTCOME must be a status from 400 to 599 or one of {named}"
    elif star and not (count_text.strip().isdigit() and int(count_text) >= 1):
        problem = "the count after * must be a whole number of at least 1"
    if problem:
        raise ValueError(f"fault script step {step!r}: {problem}")
    return method, outcome, int(count_text) if star else 1


def _convert(name: str, raw: str, text: str) -> Any:
    if name in ("reject_create_names", "script"):
        return tuple(n.strip() for n in raw.split("|") if n.strip())
    if name == "seed":
        try:
            return int(raw)
        except ValueError:
            raise ValueError(
                f"fault profile {text!r}: seed must be an integer, got {raw!r}"
            ) from None
    if name == "rate_limit_rps" and raw.lower() in ("", "none", "off"):
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"fault profile {text!r}: {name} must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"fault profile {text!r}: {name} must be finite, got {raw!r}")
    return value


@dataclass(frozen=True, slots=True)
class FaultDecision:
    """What to do to one request. At most one of the early outcomes applies.

    Attributes:
        latency: seconds to wait before anything else.
        status: answer this status at once (429 or 5xx) without doing anything.
        retry_after: `Retry-After` seconds for a 429.
        hang: hang instead of answering.
        drop: close the connection without answering, before doing anything.
        refuse: refuse the connection (see `ConnectionRefused`), before doing anything.
        ambiguous: for a successful create: perform it, then answer 502 or drop.
    """

    latency: float = 0.0
    status: int | None = None
    retry_after: int | None = None
    hang: bool = False
    drop: bool = False
    refuse: bool = False
    ambiguous: Literal["502", "drop"] | None = None

    @property
    def early(self) -> bool:
        """Whether the request is answered (or dropped) without being processed."""
        return self.status is not None or self.hang or self.drop or self.refuse


class FaultInjector:
    """Turns a `FaultProfile` into per-request decisions, in arrival order.

    Args:
        profile: the faults to inject.
        clock: monotonic seconds, for the token bucket.
    """

    def __init__(
        self, profile: FaultProfile | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._profile = profile or FaultProfile()
        self._rng = random.Random(self._profile.seed)
        self._script = _steps(self._profile.script)
        self._tokens = 0.0
        self._stamp = 0.0
        self._reset_bucket()

    @property
    def profile(self) -> FaultProfile:
        return self._profile

    def replace(self, profile: FaultProfile) -> None:
        """Switch to another profile; the RNG is reseeded and the bucket refilled."""
        with self._lock:
            self._profile = profile
            self._rng = random.Random(profile.seed)
            self._script = _steps(profile.script)
            self._reset_bucket()

    def decide(self, method: str) -> FaultDecision:
        """The faults for the next request (call once per request, in arrival order)."""
        with self._lock:
            p = self._profile
            # Always draw the same values, so one outcome never shifts the next ones.
            u_429, u_5xx, u_hang, u_drop, u_amb = (self._rng.random() for _ in range(5))
            code = self._rng.choice(_SERVER_ERRORS)
            amb_mode: Literal["502", "drop"] = "502" if self._rng.random() < 0.5 else "drop"
            limited_after = self._take_token()
            scripted = self._next_step(method)
        latency = p.latency_ms / 1000.0
        if scripted is not None:
            return _scripted(scripted, latency)
        if limited_after is not None:
            return FaultDecision(latency, status=429, retry_after=limited_after)
        if u_429 < p.p_429:
            return FaultDecision(latency, status=429, retry_after=1)
        if u_5xx < p.p_5xx:
            return FaultDecision(latency, status=code)
        if u_hang < p.p_hang:
            return FaultDecision(latency, hang=True)
        if u_drop < p.p_drop:
            return FaultDecision(latency, drop=True)
        if method == "POST" and u_amb < p.p_ambiguous_post:
            return FaultDecision(latency, ambiguous=amb_mode)
        return FaultDecision(latency)

    def _next_step(self, method: str) -> str | None:
        """Take the first scripted outcome left for `method`, if any."""
        for i, (wanted, outcome) in enumerate(self._script):
            if wanted in ("*", method.upper()):
                del self._script[i]
                return outcome
        return None

    def _reset_bucket(self) -> None:
        rps = self._profile.rate_limit_rps
        self._tokens = max(1.0, rps) if rps else 0.0
        self._stamp = self._clock()

    def _take_token(self) -> int | None:
        """None if the request may pass, else the whole seconds until a token is back."""
        rps = self._profile.rate_limit_rps
        if not rps:
            return None
        capacity = max(1.0, rps)
        now = self._clock()
        self._tokens = min(capacity, self._tokens + (now - self._stamp) * rps)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        return max(1, math.ceil((1.0 - self._tokens) / rps))


def _steps(script: tuple[str, ...]) -> list[tuple[str, str]]:
    """The script as one (method, outcome) per request, in order."""
    out: list[tuple[str, str]] = []
    for step in script:
        method, outcome, count = _parse_step(step)
        out.extend([(method, outcome)] * count)
    return out


def _scripted(outcome: str, latency: float) -> FaultDecision:
    if outcome == "ambiguous":
        return FaultDecision(latency, ambiguous="502")
    if outcome == "ambiguous-drop":
        return FaultDecision(latency, ambiguous="drop")
    if outcome == "drop":
        return FaultDecision(latency, drop=True)
    if outcome == "refuse":
        return FaultDecision(latency, refuse=True)
    status = int(outcome)
    return FaultDecision(latency, status=status, retry_after=1 if status == 429 else None)
