"""Where a value of one environment's manifest came from (#12): an override, a variable, or
a resource's own `environments: [..]`. Plain data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from provisioner.manifest.loader import JsonPath

# A variable's value for every environment that has none of its own.
DEFAULT_VALUE = "default"


class OriginKind(StrEnum):
    OVERRIDE = "override"
    VARIABLE = "variable"
    # A resource's own `environments: [dev]`: it exists in those environments only.
    LIMITED = "environments"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a value of one environment's manifest was set: an override or a variable."""

    kind: OriginKind
    name: str  # `overrides.prod.assistant.support` or `var.api_base`
    environment: str | None  # the value's environment; None for a variable's default
    file: str
    line: int

    def describe(self) -> str:
        which = self.environment or DEFAULT_VALUE
        what = self.name if self.kind is not OriginKind.VARIABLE else f"{self.name} ({which})"
        return f"{what}, {self.file}:{self.line}"

    @property
    def per_environment(self) -> bool:
        """Set for this environment only (an override, or a variable's own value)."""
        return self.environment is not None


Origins = Mapping[JsonPath, Origin]
