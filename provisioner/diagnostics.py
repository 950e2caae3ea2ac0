"""Diagnostics: user mistakes collected and reported together. Never prints.

A diagnostic knows where it points (file, line, column, field path) and renders as
`FILE:LINE:COL: PATH: message`, the form editors and CI annotations understand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    severity: Severity
    summary: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    path: str | None = None
    detail: str | None = None

    def format(self, mark: Callable[[str], str] = str) -> str:
        """One line: `FILE:LINE:COL: PATH: message` (parts that are unknown are left out),
        with `warning: ` before the path of a warning. `mark` styles that word (colour)."""
        where = ""
        if self.file:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
            where += ": "
        path = f"{self.path}: " if self.path else ""
        prefix = mark("warning:") + " " if self.severity is Severity.WARNING else ""
        text = f"{where}{prefix}{path}{self.summary}"
        if self.detail:
            text += f" ({self.detail})"
        return text

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.file or "", self.line or 0, self.column or 0, self.path or "")


class Diagnostics:
    """An ordered collection of diagnostics; `has_errors()` decides the exit code."""

    def __init__(self, items: Iterable[Diagnostic] = ()) -> None:
        self._items: list[Diagnostic] = list(items)

    def append(self, diag: Diagnostic) -> None:
        self._items.append(diag)

    def extend(self, other: Iterable[Diagnostic]) -> None:
        self._items.extend(other)

    def error(self, summary: str, **where: object) -> None:
        self._items.append(Diagnostic(Severity.ERROR, summary, **where))  # type: ignore[arg-type]

    def warning(self, summary: str, **where: object) -> None:
        self._items.append(Diagnostic(Severity.WARNING, summary, **where))  # type: ignore[arg-type]

    def has_errors(self) -> bool:
        return any(d.severity is Severity.ERROR for d in self._items)

    def errors(self) -> list[Diagnostic]:
        return [d for d in self._items if d.severity is Severity.ERROR]

    def sorted(self) -> list[Diagnostic]:
        return sorted(self._items, key=Diagnostic.sort_key)

    def __iter__(self) -> Iterator[Diagnostic]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)
