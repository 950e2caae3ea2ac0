"""A new resource's values as Terraform shows a create: nested maps and lists as indented
blocks, multi-line strings (a system prompt) as heredocs (`<<-EOT` ... `EOT`), not JSON
with `\\n` escapes. Pure; shared by the human and Markdown plans, which only indent and
prefix the lines their own way.

Values arrive already redacted: a secret is the `(sensitive)` placeholder, never its value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from provisioner.plan.model import MISSING, FieldChange
from provisioner.render.escape import visible
from provisioner.values import KNOWN_AFTER_APPLY, SENSITIVE_TEXT, Sensitive, Unknown

__all__ = ["BlockLine", "create_lines"]

# A list of plain values this short stays on one line: `assistantIds: ["a", "b"]`.
_INLINE_WIDTH = 80
_BARE_KEY = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$-]*$")


@dataclass(frozen=True, slots=True)
class BlockLine:
    depth: int  # nesting level, 0 for a top-level field
    text: str
    # True for a value's own line (Terraform's `+`); False for a closing bracket or a
    # heredoc's text.
    entry: bool = True


def create_lines(fields: Iterable[FieldChange]) -> list[BlockLine]:
    """The lines of a create's fields (each a top-level key, MISSING before)."""
    out: list[BlockLine] = []
    for f in fields:
        if f.after is not MISSING:
            out.extend(_value(f.dotted, f.after, 0, key=True))
    return out


def _value(label: str, value: Any, depth: int, *, key: bool, comma: str = "") -> list[BlockLine]:
    head = f"{_key(label)}: " if key else ""
    if isinstance(value, Mapping) and value:
        inner = [line for k, v in value.items() for line in _value(str(k), v, depth + 1, key=True)]
        return [BlockLine(depth, head + "{"), *inner, BlockLine(depth, "}" + comma, entry=False)]
    if isinstance(value, list | tuple) and value:
        inline = _inline_list(value)
        if inline is not None and len(head + inline) <= _INLINE_WIDTH:
            return [BlockLine(depth, head + inline + comma)]
        items = [line for v in value for line in _value("", v, depth + 1, key=False, comma=",")]
        return [BlockLine(depth, head + "["), *items, BlockLine(depth, "]" + comma, entry=False)]
    if isinstance(value, str) and "\n" in value:
        # Escaped as everywhere else, so no prompt can drive the terminal or hide text.
        lines = [visible(line) for line in value.splitlines()]
        end = _delimiter(lines)
        return [
            BlockLine(depth, f"{head}<<-{end}"),
            *(BlockLine(depth + 1, line, entry=False) for line in lines),
            BlockLine(depth, end + comma, entry=False),
        ]
    return [BlockLine(depth, head + scalar(value) + comma)]


def scalar(value: Any) -> str:
    """A plain value as one line: JSON, except the placeholders, which are never quoted."""
    if isinstance(value, Unknown) or value == KNOWN_AFTER_APPLY:
        return KNOWN_AFTER_APPLY
    if isinstance(value, Sensitive) or value == SENSITIVE_TEXT:
        return SENSITIVE_TEXT
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, list | tuple):
        return "[]"
    return visible(json.dumps(value, ensure_ascii=False))


def _inline_list(values: Iterable[Any]) -> str | None:
    items = list(values)
    if any(isinstance(v, Mapping | list | tuple) or _multiline(v) for v in items):
        return None
    return "[" + ", ".join(scalar(v) for v in items) + "]"


def _multiline(value: Any) -> bool:
    return isinstance(value, str) and "\n" in value


def _key(label: str) -> str:
    return label if _BARE_KEY.match(label) else visible(json.dumps(label, ensure_ascii=False))


def _delimiter(lines: list[str]) -> str:
    """`EOT`, unless the text holds a line that would read as its end."""
    end = "EOT"
    while any(line.strip() == end for line in lines):
        end += "_"
    return end
