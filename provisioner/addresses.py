"""Resource addresses: `KIND.KEY`, immutable, one string form. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass

KEY_PATTERN = r"[a-z0-9][a-z0-9_-]*"
_KEY_RE = re.compile(rf"^{KEY_PATTERN}$")


@dataclass(frozen=True, slots=True, order=True)
class ResourceAddress:
    """`assistant.support`: the kind (singular, as in `kinds.KINDS`) and the manifest key."""

    kind: str
    key: str

    def __str__(self) -> str:
        return f"{self.kind}.{self.key}"

    @classmethod
    def parse(cls, text: str) -> ResourceAddress:
        """Parse `KIND.KEY`; raises ValueError naming what is wrong."""
        from provisioner.kinds import KINDS

        kind, sep, key = text.partition(".")
        if not sep or kind not in KINDS:
            raise ValueError(
                f"{text!r} is not a resource address: expected KIND.KEY with KIND one of "
                + ", ".join(sorted(KINDS))
            )
        if not _KEY_RE.match(key):
            raise ValueError(f"{text!r}: key {key!r} must match {KEY_PATTERN}")
        return cls(kind, key)


def is_valid_key(key: str) -> bool:
    return bool(_KEY_RE.match(key))
