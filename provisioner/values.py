"""Value wrappers that travel inside resource bodies. Pure.

`Sensitive` wraps a secret (anything that came from `${env:...}`). It is not a `str`, so
`json.dumps` refuses it and it cannot slip into a plan file, state or log by accident:
every place that serialises a body must decide what to do with it (`to_wire` for the
API, `redact` for display, `keyed_hash` for state).

`Unknown` stands for a value that exists only after apply (the ID of a resource the
same plan creates); renderers show it as "(known after apply)".
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SENSITIVE_TEXT = "(sensitive)"
KNOWN_AFTER_APPLY = "(known after apply)"
HASH_PREFIX = "hmac-sha256:"


@dataclass(frozen=True, slots=True)
class Sensitive:
    value: str

    def __repr__(self) -> str:
        return "Sensitive(***)"

    __str__ = __repr__


class SecretText(str):
    """A secret as a `str`, for checks that need its text (the schema check of resolved
    values): the text is there for `len` and `re`, but every way of printing it shows
    `(sensitive)`, so a message built from it cannot reveal it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return SENSITIVE_TEXT

    def __str__(self) -> str:
        return SENSITIVE_TEXT

    def __format__(self, spec: str) -> str:
        return format(SENSITIVE_TEXT, spec)


@dataclass(frozen=True, slots=True)
class Unknown:
    """A value known only after apply: the remote ID of `address`."""

    address: str

    def __repr__(self) -> str:
        return f"Unknown({self.address})"


def keyed_hash(value: str, key: str) -> str:
    """HMAC-SHA256 of a secret under the state's key: lets a later plan see that a
    write-only secret changed without ever storing it."""
    return HASH_PREFIX + hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()


def walk(obj: Any, leaf: Any) -> Any:
    """Rebuild `obj` (dicts/lists) with `leaf(value)` applied to every non-container value."""
    if isinstance(obj, Mapping):
        return {k: walk(v, leaf) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [walk(v, leaf) for v in obj]
    return leaf(obj)


def to_wire(obj: Any) -> Any:
    """The body as sent to the API: secrets in clear. Unknown values are a bug here."""

    def leaf(v: Any) -> Any:
        if isinstance(v, Sensitive):
            return v.value
        if isinstance(v, Unknown):
            raise ValueError(f"value of {v.address} is not known yet")
        return v

    return walk(obj, leaf)


def redact(obj: Any) -> Any:
    """The body as shown to people and written to plan files: secrets as `(sensitive)`."""

    def leaf(v: Any) -> Any:
        if isinstance(v, Sensitive):
            return SENSITIVE_TEXT
        if isinstance(v, Unknown):
            return KNOWN_AFTER_APPLY
        return v

    return walk(obj, leaf)


def hash_secrets(obj: Any, key: str) -> Any:
    """The body as stored in state: each secret replaced by its keyed hash."""

    def leaf(v: Any) -> Any:
        if isinstance(v, Sensitive):
            return keyed_hash(v.value, key)
        if isinstance(v, Unknown):
            raise ValueError(f"value of {v.address} is not known yet")
        return v

    return walk(obj, leaf)


def contains(obj: Any, cls: type) -> bool:
    if isinstance(obj, cls):
        return True
    if isinstance(obj, Mapping):
        return any(contains(v, cls) for v in obj.values())
    if isinstance(obj, list | tuple):
        return any(contains(v, cls) for v in obj)
    return False
