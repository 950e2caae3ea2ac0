"""Reading a state file's bytes: refused, never guessed (empty, truncated, not JSON, not
an object, missing `format_version`/`lineage`/`serial`, from a newer format, a hand-edited
entry that cannot be used), and upgraded from an older format one version step at a time
(`_UPGRADES`). Pure."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from provisioner.errors import StateCorruptError
from provisioner.kinds import KINDS
from provisioner.state.model import FORMAT_VERSION, ResourceState, ResourceStatus, StateFile

# One function per format step: _UPGRADES[n] turns a version-n document into version n + 1
# (and sets "format_version" accordingly). Empty while version 1 is the only one.
_UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}

_REQUIRED_KEYS = ("format_version", "lineage", "serial")


def parse_state(
    raw: bytes, path: Path | str, corrupt: Callable[[str], StateCorruptError]
) -> StateFile:
    """The state file's bytes, checked and upgraded to the current format. `corrupt`
    makes the error for a problem (the store adds where its backup is)."""
    if not raw.strip():
        raise corrupt(f"{path} is empty")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise corrupt(f"{path} is not UTF-8 text (byte {exc.start})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise corrupt(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    if not isinstance(doc, dict):
        raise corrupt(f"{path} does not hold a JSON object (found {type(doc).__name__})")
    missing = [k for k in _REQUIRED_KEYS if k not in doc]
    if missing:
        raise corrupt(f"{path} lacks {', '.join(missing)}")
    version = doc["format_version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise corrupt(f"{path} has an invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise corrupt(
            f"{path} uses state format {version}, but this provisioner reads formats up "
            f"to {FORMAT_VERSION}: it was written by a newer provisioner. Upgrade "
            f"provisioner"
        )
    while version < FORMAT_VERSION:
        upgrade = _UPGRADES.get(version)
        if upgrade is None:
            raise corrupt(f"{path} uses state format {version}, which has no upgrade")
        doc = upgrade(doc)
        version = doc["format_version"]
    lineage, serial = doc["lineage"], doc["serial"]
    if not isinstance(lineage, str) or not lineage:
        raise corrupt(f"{path} has an invalid lineage {lineage!r}")
    if not isinstance(serial, int) or isinstance(serial, bool) or serial < 0:
        raise corrupt(f"{path} has an invalid serial {serial!r}")
    resources = doc.get("resources")
    if resources is None:
        resources = {}
    if not isinstance(resources, dict):
        raise corrupt(f"{path}: 'resources' is not an object")
    parsed: dict[str, ResourceState] = {}
    for address, data in resources.items():
        try:
            if not isinstance(data, dict):
                raise ValueError("not an object")
            parsed[address] = ResourceState.from_dict(data)
        except (KeyError, ValueError, TypeError) as exc:
            raise corrupt(f"{path}: resource {address} is malformed ({exc!r})") from None
        problem = _entry_problem(address, parsed[address])
        if problem:
            raise corrupt(f"{path}: resource {address} {problem}")
    hash_key = doc.get("hash_key", "")
    if not isinstance(hash_key, str):
        raise corrupt(f"{path} has an invalid hash_key")
    key_check = doc.get("key_check")
    if key_check is not None and not isinstance(key_check, str):
        raise corrupt(f"{path} has an invalid key_check")
    owner = {k: doc.get(k) for k in ("manifest", "environment", "org_id")}
    for name, value in owner.items():
        if value is not None and (not isinstance(value, str) or not value):
            raise corrupt(f"{path} has an invalid {name} {value!r}")
    return StateFile(
        lineage=lineage,
        serial=serial,
        format_version=version,
        hash_key=hash_key,
        resources=parsed,
        key_check=key_check,
        manifest=owner["manifest"],
        environment=owner["environment"],
        org_id=owner["org_id"],
    )


def _entry_problem(address: str, entry: ResourceState) -> str | None:
    """What makes a (hand-edited) entry unusable: an unknown kind, or a created object
    without an ID, which a plan would otherwise silently create again."""
    if entry.kind not in KINDS:
        return f"has an unknown kind {entry.kind!r} (expected one of {', '.join(KINDS)})"
    if not address.startswith(f"{entry.kind}."):
        return f"has kind {entry.kind!r}, which does not match its address"
    if entry.status is ResourceStatus.CREATED and (not isinstance(entry.id, str) or not entry.id):
        return (
            f"is recorded as created but has no id ({json.dumps(entry.id)}); put its ID back, or "
            "remove the entry if the object no longer exists"
        )
    return None
