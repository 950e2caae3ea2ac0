"""Request-body validation for the emulator, with NestJS class-validator messages.

Owns: loading the packaged JSON Schema document (`provisioner/data/vapi-api.schema.json`,
whose `$defs` hold the API's Create*/Update* DTOs converted from OpenAPI), compiling one
`Draft202012Validator` per DTO lazily (cached, shared by threads), and turning
jsonschema errors into the strings the real API puts in a 400's `message` array:
`property foo should not exist`, `name must be shorter than or equal to 40 characters`,
`model.messages.0.role must be one of the following values: ...`.

Choices where the real validator cannot be reproduced exactly:
* `null` is accepted for any property (class-validator's `@IsOptional` skips null);
  a required property sent as null is not reported.
* `oneOf`/`anyOf` unions report the errors of the branch the value's discriminator
  (`provider`, `type`, ...) picks; an unknown discriminator value is reported as
  `<path>.<key> must be one of the following values: ...`. Without a discriminator the
  branch with the fewest errors is reported.
* `format` is not checked (the spec declares formats the API does not enforce, such as
  date-time for relative insight times like "-7d").

Also hands the document to `routes`, which derives the kinds served from its `paths`.

Must not touch: /work/shared (the document ships in the package), the store, HTTP.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator  # type: ignore[import-untyped, unused-ignore]
from jsonschema.exceptions import (  # type: ignore[import-untyped, unused-ignore]
    ValidationError,
)
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

__all__ = [
    "SCHEMA_RESOURCE",
    "SchemaUnavailableError",
    "api_document",
    "dto_names",
    "validate_body",
]

# Package data file with the API's DTOs under `$defs`.
SCHEMA_RESOURCE = "vapi-api.schema.json"
_FALLBACK_URI = "urn:provisioner:vapi-api-schema"
_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'")
_lock = threading.Lock()
_validators: dict[str, Draft202012Validator] = {}


class SchemaUnavailableError(RuntimeError):
    """The packaged API schema is missing, unreadable, or lacks the DTO asked for."""


@cache
def _document() -> tuple[dict[str, Any], Registry[Any], str]:
    try:
        text = resources.files("provisioner").joinpath("data", SCHEMA_RESOURCE).read_text("utf-8")
    except (FileNotFoundError, OSError) as exc:
        raise SchemaUnavailableError(
            f"the packaged API schema provisioner/data/{SCHEMA_RESOURCE} is missing ({exc}); "
            "reinstall the package"
        ) from None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise SchemaUnavailableError(f"provisioner/data/{SCHEMA_RESOURCE}: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("$defs"), dict):
        raise SchemaUnavailableError(f"provisioner/data/{SCHEMA_RESOURCE} has no $defs")
    resource: Resource[Any] = Resource.from_contents(doc, default_specification=DRAFT202012)
    uri = resource.id() or _FALLBACK_URI
    registry: Registry[Any] = Registry().with_resource(uri, resource)
    return doc, registry, uri


def api_document() -> dict[str, Any]:
    """The packaged API document (`$defs` and the spec's `paths`); do not mutate it.

    Raises:
        SchemaUnavailableError: it is missing or unreadable.
    """
    return _document()[0]


def dto_names() -> frozenset[str]:
    """Every schema name under the document's `$defs`."""
    return frozenset(_document()[0]["$defs"])


def _validator(dto: str) -> Draft202012Validator:
    with _lock:
        found = _validators.get(dto)
        if found is not None:
            return found
        doc, registry, uri = _document()
        if dto not in doc["$defs"]:
            raise SchemaUnavailableError(f"the API schema has no DTO named {dto!r}")
        validator = Draft202012Validator({"$ref": f"{uri}#/$defs/{dto}"}, registry=registry)
        _validators[dto] = validator
        return validator


def validate_body(dto: str, body: Any) -> list[str]:
    """class-validator style messages for `body` against the DTO; empty when valid.

    Raises:
        SchemaUnavailableError: the packaged schema is missing or lacks `dto`.
    """
    if not isinstance(body, dict):
        return ["body must be an object"]
    errors = _validator(dto).iter_errors(body)
    return _dedupe(_messages(errors))


def _dedupe(messages: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(messages))


def _messages(errors: Iterable[ValidationError]) -> list[str]:
    out: list[str] = []
    for error in sorted(errors, key=_order):
        out.extend(_translate(error))
    return out


def _order(error: ValidationError) -> tuple[str, ...]:
    return tuple(str(p) for p in error.absolute_path)


def _path(error: ValidationError, extra: Sequence[Any] = ()) -> str:
    return ".".join(str(p) for p in [*error.absolute_path, *extra])


def _prefix(error: ValidationError) -> str:
    parent = _path(error)
    return f"{parent}." if parent else ""


def _translate(error: ValidationError) -> list[str]:
    kind = error.validator
    value = error.validator_value
    if error.instance is None and kind != "required":
        return []  # null = not set (class-validator's @IsOptional)
    if kind in ("additionalProperties", "unevaluatedProperties"):
        return [f"{_prefix(error)}property {key} should not exist" for key in _extra_keys(error)]
    if kind == "required":
        return _missing(error)
    if kind in ("oneOf", "anyOf"):
        return _union(error)
    where = _path(error) or "body"
    return [f"{where} {_constraint(str(kind), value, error.instance)}"]


def _extra_keys(error: ValidationError) -> list[str]:
    instance = error.instance if isinstance(error.instance, dict) else {}
    if error.validator == "additionalProperties":
        schema = error.schema if isinstance(error.schema, Mapping) else {}
        declared = set(schema.get("properties", {}))
        patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
        keys = [k for k in instance if k not in declared and not any(p.search(k) for p in patterns)]
        if keys:
            return keys
    quoted = _QUOTED.findall(error.message)
    return [k for k in instance if k in quoted] or quoted


def _missing(error: ValidationError) -> list[str]:
    instance = error.instance if isinstance(error.instance, dict) else {}
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    missing = [k for k in error.validator_value if k not in instance]
    out: list[str] = []
    for key in missing:
        where = f"{_prefix(error)}{key}"
        prop = schema.get("properties", {}).get(key, {})
        out.extend(f"{where} {text}" for text in _missing_texts(prop))
    return out


def _missing_texts(prop: Any) -> list[str]:
    """What class-validator says about a required property that was not sent."""
    if not isinstance(prop, Mapping):
        return ["should not be null or undefined"]
    texts: list[str] = []
    for key in ("enum", "const", "maxLength", "minLength", "maximum", "minimum", "type"):
        if key in prop:
            if key == "type" and prop[key] in ("object", ["object"]):
                continue
            texts.append(_constraint(key, prop[key], None))
    return texts or ["should not be null or undefined"]


def _union(error: ValidationError) -> list[str]:
    """Errors of the branch the discriminator picks (see the module docstring)."""
    branches: dict[int, list[ValidationError]] = {}
    for sub in error.context or ():
        branches.setdefault(int(sub.relative_schema_path[0]), []).append(sub)
    if not branches:
        return []  # more than one branch matched: accept, the API would not tell
    base = len(error.absolute_path)
    # Per branch: the top-level keys whose value the branch rejects by enum/const/required.
    rejects: dict[int, dict[str, list[Any]]] = {}
    for index, subs in branches.items():
        found: dict[str, list[Any]] = {}
        for sub in subs:
            rel = list(sub.absolute_path)[base:]
            if len(rel) == 1 and sub.validator in ("const", "enum"):
                values = sub.validator_value if sub.validator == "enum" else [sub.validator_value]
                found.setdefault(str(rel[0]), []).extend(values)
            elif not rel and sub.validator == "required":
                for key in sub.validator_value:
                    if isinstance(error.instance, dict) and key not in error.instance:
                        found.setdefault(str(key), [])
        rejects[index] = found
    counts: dict[str, int] = {}
    for found in rejects.values():
        for key in found:
            counts[key] = counts.get(key, 0) + 1
    total = len(error.validator_value) if isinstance(error.validator_value, list) else 0
    discriminator = max(counts, key=lambda k: counts[k]) if counts else None
    if discriminator is not None and total >= 2 and counts[discriminator] >= total - 1:
        chosen = [i for i in branches if discriminator not in rejects[i]]
        if not chosen and len(branches) == total:
            allowed: list[Any] = []
            for found in rejects.values():
                allowed.extend(v for v in found.get(discriminator, []) if v not in allowed)
            where = f"{_path(error)}.{discriminator}" if _path(error) else discriminator
            return [f"{where} {_constraint('enum', allowed, None)}"]
        if chosen:
            best = min(chosen, key=lambda i: len(branches[i]))
            return _dedupe(_messages(branches[best]))
    best = min(branches, key=lambda i: len(branches[i]))
    return _dedupe(_messages(branches[best]))


def _constraint(kind: str, value: Any, instance: Any) -> str:
    """class-validator's wording for one failed constraint (without the property name)."""
    if kind == "type":
        types = [value] if isinstance(value, str) else [t for t in value if t != "null"]
        return _TYPE_TEXT.get(types[0] if types else "", "is invalid")
    if kind == "enum":
        return "must be one of the following values: " + ", ".join(_plain(v) for v in value)
    if kind == "const":
        return f"must be one of the following values: {_plain(value)}"
    if kind == "maxLength":
        return f"must be shorter than or equal to {value} characters"
    if kind == "minLength":
        return f"must be longer than or equal to {value} characters"
    if kind == "maximum":
        return f"must not be greater than {_plain(value)}"
    if kind == "minimum":
        return f"must not be less than {_plain(value)}"
    if kind == "exclusiveMaximum":
        return f"must be less than {_plain(value)}"
    if kind == "exclusiveMinimum":
        return f"must be greater than {_plain(value)}"
    if kind == "maxItems":
        return f"must contain no more than {value} elements"
    if kind == "minItems":
        return f"must contain at least {value} elements"
    if kind == "uniqueItems":
        return "must contain unique elements"
    if kind == "pattern":
        return f"must match /{value}/ regular expression"
    if kind == "multipleOf":
        return f"must be divisible by {_plain(value)}"
    if kind in ("maxProperties", "minProperties"):
        bound = "at most" if kind == "maxProperties" else "at least"
        return f"must have {bound} {value} properties"
    if kind == "not":
        return "is not allowed"
    return "is invalid"


_TYPE_TEXT: Mapping[str, str] = {
    "string": "must be a string",
    "number": "must be a number conforming to the specified constraints",
    "integer": "must be an integer number",
    "boolean": "must be a boolean value",
    "array": "must be an array",
    "object": "must be an object",
}


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str | int | float):
        return str(value)
    return json.dumps(value)
