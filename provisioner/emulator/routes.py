"""The kinds of object the sandbox serves, derived from Vapi's OpenAPI spec alone.

The sandbox is a second, independent witness of the API: it never reads the tool's kind
registry (`provisioner/kinds.py`). What it serves comes from the `paths` that
`scripts/gen_schemas.py` copies out of the vendored spec into the packaged API document:

* a kind per collection path with `GET`/`POST` and an item path `{path}/{id}`; its name
  is the path's last segment in camelCase (`/phone-number` -> `phoneNumber`);
* the list's query parameters (anything else is a 400, as live) and its shape: a bare
  array, or a `{results, metadata}` page;
* the Create/Update DTO per discriminator value (`provider`, `type`), from the request
  bodies' `discriminator.mapping`;
* the write-only secrets: the spec marks almost none `writeOnly` (API.md), so a field
  of a Create DTO named like a secret (`...Token`, `...Secret`, `password`), at the top
  or one object down, is one. The sandbox never shows it and stores only its digest.

Pure once the document is loaded (cached; shared by threads).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from provisioner.emulator.validation import SchemaUnavailableError, api_document

__all__ = ["EmulatedKind", "emulated_kinds"]

_SECRET_NAME = re.compile(r"(?i)(?<!public)(token|secret|password|key)$")


@dataclass(frozen=True, slots=True)
class EmulatedKind:
    name: str  # camelCase of the path's last segment: phoneNumber
    label: str  # for messages: "phone number"
    api_path: str
    paged: bool  # `{results, metadata}` pages rather than a bare array
    list_params: frozenset[str]
    # Field whose value picks the DTO (`provider`, `type`), if the body is a union.
    discriminator: str | None
    create_schemas: Mapping[str, str]  # discriminator value ("" when none) -> DTO name
    update_schemas: Mapping[str, str]
    # Write-only secrets: a top-level field, or (field, nested field).
    secret_fields: tuple[tuple[str, ...], ...]


@functools.cache
def emulated_kinds() -> dict[str, EmulatedKind]:
    """Every kind the packaged document has routes for, by name.

    Raises:
        SchemaUnavailableError: the packaged document is missing or has no paths.
    """
    doc = api_document()
    paths = doc.get("paths")
    if not isinstance(paths, Mapping) or not paths:
        raise SchemaUnavailableError("the packaged API schema has no paths: regenerate it")
    defs: Mapping[str, Any] = doc["$defs"]
    out: dict[str, EmulatedKind] = {}
    for path, ops in paths.items():
        item = paths.get(path + "/{id}")
        if "/{" in path or not isinstance(item, Mapping) or "post" not in ops:
            continue
        kind = _kind(path, ops, item, defs)
        out[kind.name] = kind
    return out


def _kind(
    path: str, ops: Mapping[str, Any], item: Mapping[str, Any], defs: Mapping[str, Any]
) -> EmulatedKind:
    segment = path.rstrip("/").rsplit("/", 1)[-1]
    words = segment.split("-")
    listing = ops.get("get", {})
    response = listing.get("response") or {}
    discriminator, creates = _dtos(ops["post"].get("requestBody"))
    _, updates = _dtos(item.get("patch", {}).get("requestBody"))
    return EmulatedKind(
        name=words[0] + "".join(w.capitalize() for w in words[1:]),
        label=" ".join(words),
        api_path=path,
        paged=response.get("type") != "array",
        list_params=frozenset(
            p["name"] for p in listing.get("parameters", ()) if p.get("in") == "query"
        ),
        discriminator=discriminator,
        create_schemas=creates,
        update_schemas=updates,
        secret_fields=_secrets(creates.values(), defs),
    )


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _dtos(body: Any) -> tuple[str | None, dict[str, str]]:
    """(discriminator, value -> DTO) of a request body: one DTO under "" if no union."""
    if not isinstance(body, Mapping):
        return None, {}
    if "$ref" in body:
        return None, {"": _ref_name(body["$ref"])}
    disc = body.get("discriminator")
    if isinstance(disc, Mapping) and isinstance(disc.get("mapping"), Mapping):
        by_dto = {_ref_name(str(ref)): str(v) for v, ref in disc["mapping"].items()}
        # In the order of the union's branches, as the spec lists them.
        order = [_ref_name(str(b.get("$ref", ""))) for b in body.get("oneOf", ())]
        dtos = [d for d in order if d in by_dto] + [d for d in by_dto if d not in order]
        return str(disc.get("propertyName")), {by_dto[d]: d for d in dtos}
    return None, {}


def _secrets(dtos: Any, defs: Mapping[str, Any]) -> tuple[tuple[str, ...], ...]:
    found: dict[tuple[str, ...], None] = {}
    for dto in dtos:
        for name, prop in _properties(defs.get(dto), defs).items():
            if _SECRET_NAME.search(name):
                found[(name,)] = None
            for inner in _properties(prop, defs):
                if _SECRET_NAME.search(inner):
                    found[(name, inner)] = None
    return tuple(sorted(found))


def _properties(schema: Any, defs: Mapping[str, Any]) -> Mapping[str, Any]:
    """The properties of an object schema, through a `$ref` or a one-branch `allOf`."""
    for _ in range(3):
        if not isinstance(schema, Mapping):
            return {}
        if "$ref" in schema:
            schema = defs.get(_ref_name(str(schema["$ref"])))
        elif isinstance(schema.get("allOf"), list) and len(schema["allOf"]) == 1:
            schema = schema["allOf"][0]
        else:
            break
    props = schema.get("properties") if isinstance(schema, Mapping) else None
    return props if isinstance(props, Mapping) else {}
