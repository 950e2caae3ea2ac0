"""A state file's text, built fast: each resource's JSON kept as last stored and
re-rendered only when it changed, the whole file byte-identical to
`json.dumps(doc, indent=2, sort_keys=True)`. Pure (the store does the I/O)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from typing import Any

from provisioner.state.model import StateFile


class Entry:
    """One resource as last stored: its compact JSON (the comparison key) and its lines,
    rendered when first needed (a read that is never followed by a write, as a plan's,
    renders none)."""

    __slots__ = ("address", "key", "_text")

    def __init__(self, address: str, key: str, text: str | None = None) -> None:
        self.address = address
        self.key = key
        self._text = text

    @classmethod
    def of(cls, address: str, view: dict[str, Any], key: str) -> Entry:
        return cls(address, key, _lines(address, view))

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = _lines(self.address, json.loads(self.key))
        return self._text


def _lines(address: str, view: dict[str, Any]) -> str:
    # The lines json.dumps(indent=2) gives it at depth 2 ("resources" -> address). JSON
    # strings never hold a raw newline, so re-indenting by replacing "\n" is exact.
    body = _PRETTY.encode(view).replace("\n", "\n    ")
    return f"    {_PRETTY.encode(address)}: {body}"


@dataclass(frozen=True, slots=True)
class Stored:
    """What this store last read or wrote, and the file identity it came from.

    If the file on disk no longer has `identity`, someone else replaced it and it is re-read.
    """

    identity: tuple[int, int, int, int]
    lineage: str
    serial: int
    head_key: str
    entries: dict[str, Entry]


def file_identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


# Built once: json.dumps() with options builds a new encoder on every call, which costs
# more than encoding a small resource.
COMPACT = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
_PRETTY = json.JSONEncoder(sort_keys=True, indent=2)

_RESOURCES_SLOT = '\n  "resources": {}'


def head_of(state: StateFile) -> dict[str, Any]:
    """The top-level fields (serial included), resources left empty."""
    return replace(state, resources={}).to_dict()


def render(head: dict[str, Any], entries: dict[str, Entry]) -> str:
    """The whole file: exactly `json.dumps(doc, indent=2, sort_keys=True) + "\\n"`."""
    text = _PRETTY.encode(head)
    if not entries:
        return text + "\n"
    before, slot, after = text.partition(_RESOURCES_SLOT)
    assert slot and _RESOURCES_SLOT not in after
    body = ",\n".join([entries[address].text for address in sorted(entries)])
    return f'{before}\n  "resources": {{\n{body}\n  }}{after}\n'


def snapshot(state: StateFile, identity: tuple[int, int, int, int]) -> Stored:
    head = head_of(state)
    head.pop("serial")
    entries: dict[str, Entry] = {}
    for address, resource in state.resources.items():
        entries[address] = Entry(address, COMPACT.encode(resource.to_dict(deep=False)))
    return Stored(identity, state.lineage, state.serial, COMPACT.encode(head), entries)
