"""Generate the JSON Schemas the provisioner ships, from Vapi's OpenAPI 3.0 spec.

Owns the OpenAPI 3.0 -> JSON Schema 2020-12 conversion and the three generated files:

* `provisioner/data/vapi-api.schema.json`: the Create/Update DTOs named in `provisioner.kinds`
  and their whole `$ref` closure under `$defs`, keyed by the OpenAPI component names. The
  emulator validates request bodies against `{"$ref": "#/$defs/<DTO>"}` inside it.
* `schemas/manifest.schema.json` and its byte-identical packaged copy
  `provisioner/data/manifest.schema.json`: the manifest format (the installed package never
  reads the spec).

Conversion rules, and why:

* NestJS's whitelist rejects unknown properties, so every DTO object with `properties` gets
  `additionalProperties: false`. Free-form objects (no `properties`) stay open, and so do the
  DTOs that carry user-written JSON Schema (`OPEN_SCHEMAS`).
* `{"allOf": [{"$ref": X}], ...}` (the spec's way of describing a single ref) becomes
  `{"$ref": X, ...}`; 2020-12 allows siblings next to `$ref`.
* `oneOf` unions whose branches are all objects with an enum-valued property (`provider`,
  `type`, ...) become an `if`/`then` dispatch on that property, so a typo in the
  discriminator yields one "not one of" error and a mistake inside a branch yields that
  branch's errors only. Every other union, including branches that share a discriminator
  value, becomes `anyOf`: the API (class-validator) has no "exactly one" rule, and a literal
  `oneOf` would reject e.g. a preset `voiceId`, which is also a valid free-form string.
* A few spec mistakes are corrected (`_SPEC_FIXES`, JavaScript-only regex syntax), each
  reported as a note when the script runs.
* Descriptions keep their first paragraph (editor hovers); examples, titles, discriminator
  objects and `x-*` extensions are dropped.

Run: `python scripts/gen_schemas.py [--openapi PATH]` from anywhere.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from provisioner.addresses import KEY_PATTERN
from provisioner.kinds import KINDS, ResourceKind
from provisioner.manifest.schema import ERROR_MESSAGE, TWILIO_CREDENTIALS_NEEDED
from provisioner.numbers.rules import (
    ACCOUNT_SID,
    AREA_CODE,
    AREA_CODE_COUNTRIES,
    CONTAINS,
    COUNTRY,
    E164,
    E164_PROVIDERS,
    NANP_TOLL_FREE,
    PURCHASE_TYPES,
    SIP_URI,
    NumberType,
)

REPO = Path(__file__).resolve().parents[1]
# Vapi's OpenAPI spec, vendored (see spec/vapi-openapi.SOURCE.txt) so that generation is
# reproducible from the repository alone.
DEFAULT_OPENAPI = REPO / "spec" / "vapi-openapi.json"
API_SCHEMA = Path("provisioner/data/vapi-api.schema.json")
MANIFEST_SCHEMAS = (
    Path("schemas/manifest.schema.json"),
    Path("provisioner/data/manifest.schema.json"),
)
DIALECT = "https://json-schema.org/draft/2020-12/schema"

# DTOs that describe a JSON Schema the user writes (structured outputs, tool parameters).
# The spec lists a handful of keywords, but these are passed on to LLM providers that accept
# the rest of JSON Schema too; closing them would reject valid schemas with no workaround.
OPEN_SCHEMAS = frozenset({"JsonSchema", "OpenAIFunctionParameters"})

# JavaScript-only regex syntax in the spec -> an equivalent both ECMA-262 and Python accept.
_PATTERN_FIXES = {r"\p{L}[\p{L}\d]*": r"[^\W\d_][^\W_]*"}
# Properties the spec types wrongly as `type: object` (its own descriptions and examples say
# otherwise); a literal conversion would reject every valid value. `None` drops the keyword.
_SPEC_FIXES: dict[tuple[str, str], dict[str, Any]] = {
    # "ISO 8601 date-time string or relative time string", e.g. "-7d", "now".
    **{
        (t, p): {"type": "string"}
        for t in ("InsightTimeRange", "InsightTimeRangeWithStep")
        for p in ("start", "end")
    },
    # ISO 639-1 code, example "en".
    ("NeuphonicVoice", "language"): {"type": "string"},
    ("FallbackNeuphonicVoice", "language"): {"type": "string"},
    # "The value type depends on the structured output type being filtered."
    ("FilterStructuredOutputColumnOnCallTable", "value"): {"type": None},
    # A MathJS expression per its description, though other insights wrap it in an object.
    ("CreateTextInsightFromCallTableDTO", "formula"): {"type": None},
    ("UpdateTextInsightFromCallTableDTO", "formula"): {"type": None},
}
# Patterns that are obviously unexpanded placeholders in the spec rather than regexes.
_PLACEHOLDER_PATTERN = re.compile(r"^[A-Z][A-Z0-9_]*_PATTERN$")

# Keywords copied as they are (after the checks in `_convert`).
_PLAIN_KEYWORDS = (
    "default",
    "deprecated",
    "enum",
    "format",
    "maxItems",
    "maxLength",
    "maximum",
    "minItems",
    "minLength",
    "minimum",
    "multipleOf",
    "uniqueItems",
    "maxProperties",
    "minProperties",
)
# Keywords dropped on purpose: documentation noise or OpenAPI-only.
_DROPPED_KEYWORDS = frozenset(
    {"example", "examples", "discriminator", "title", "readOnly", "writeOnly", "xml"}
)

# Reserved manifest keys that are ours and never sent to the API.
LIFECYCLE = {
    "type": "object",
    "description": "How the provisioner treats this resource; never sent to Vapi.",
    "additionalProperties": False,
    "properties": {
        "preventDestroy": {
            "type": "boolean",
            "description": "Refuse any plan that would delete or replace this resource.",
        },
        "ignoreChanges": {
            "type": "array",
            "description": "Field paths (e.g. `model.temperature`) left out of diffs.",
            "items": {"type": "string", "minLength": 1},
            "uniqueItems": True,
        },
    },
}
# JSON has no tuples.
TOLL_FREE_AREA_CODES = list(NANP_TOLL_FREE)
PURCHASE = {
    "type": "object",
    "description": "Buy a number from Twilio instead of importing `number`; never sent to Vapi.",
    "additionalProperties": False,
    "properties": {
        "country": {
            "type": "string",
            "description": "ISO 3166-1 alpha-2 country code, e.g. US.",
            "pattern": COUNTRY.pattern,
        },
        "areaCode": {
            "type": "string",
            "description": "Three-digit US/Canadian area code to search in, e.g. 415.",
            "pattern": AREA_CODE.pattern,
        },
        "type": {"type": "string", "enum": [t.value for t in PURCHASE_TYPES]},
        "contains": {
            "type": "string",
            "description": "Digits the number must contain; `*` for any one digit.",
            "pattern": CONTAINS.pattern,
        },
        "release": {
            "type": "boolean",
            "description": "Release the number at Twilio when the resource is destroyed.",
        },
    },
    # Combinations Twilio refuses only when the number is bought (so at apply).
    "allOf": [
        {
            # Twilio's AreaCode is US/CA only; `country` defaults to US.
            "if": {"required": ["areaCode"]},
            "then": {
                "properties": {
                    "country": {
                        "enum": list(AREA_CODE_COUNTRIES),
                        ERROR_MESSAGE: "an areaCode can only be asked for in "
                        + " or ".join(AREA_CODE_COUNTRIES),
                    }
                }
            },
        },
        {
            "if": {
                "required": ["areaCode", "type"],
                "properties": {"type": {"const": NumberType.TOLL_FREE.value}},
            },
            "then": {
                "properties": {
                    "areaCode": {
                        "enum": TOLL_FREE_AREA_CODES,
                        ERROR_MESSAGE: "a toll-free number's area code is one of "
                        + ", ".join(TOLL_FREE_AREA_CODES),
                    }
                }
            },
            "else": {
                "properties": {
                    "areaCode": {
                        "not": {"enum": TOLL_FREE_AREA_CODES},
                        ERROR_MESSAGE: "a toll-free area code: add `type: toll-free`",
                    }
                }
            },
        },
    ],
}
# Phone-number providers whose entries may carry `purchase` (then `number` is optional).
PURCHASE_PROVIDERS = frozenset({"twilio"})
# Address prefixes for `moved` and interpolation, from the kinds registry.
ADDRESS_PATTERN = f"^({'|'.join(KINDS)})\\.{KEY_PATTERN}$"

# Environments (#12): the top-level keys that select one environment's manifest
# (provisioner/manifest/environments.py checks them; this is for editors).
ENV_NAME_PATTERN = "^[a-z][a-z0-9_-]{0,31}$"
ENVIRONMENT_KEYS = {
    "environments": {
        "type": "object",
        "description": "Declared environments: each needs --env NAME on the command line.",
        "propertyNames": {"pattern": ENV_NAME_PATTERN, "not": {"const": "default"}},
        "minProperties": 1,
        "additionalProperties": {
            "type": ["object", "null"],
            "additionalProperties": False,
            "properties": {
                "apiKey": {
                    "type": "string",
                    "pattern": r"^\$\{env:[A-Za-z_][A-Za-z0-9_]*\}$",
                    "description": "${env:NAME} holding this environment's Vapi key "
                    "(default VAPI_TOKEN).",
                },
                "baseUrl": {"type": "string", "pattern": "^https?://"},
                "state": {
                    "description": "This environment's state: a local path, or a block as "
                    "the top-level `state:` (backend local, s3 or postgres).",
                    "anyOf": [{"type": "string", "minLength": 1}, {"type": "object"}],
                },
                "protect": {"type": "boolean", "description": "No resource may be deleted."},
                "orgId": {"type": "string", "minLength": 1, "description": "Vapi org pinned."},
            },
        },
    },
    "variables": {
        "type": "object",
        "description": "${var.NAME} values: per environment name, or `default`.",
        "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
        "additionalProperties": {"type": "object", "minProperties": 1},
    },
    "overrides": {
        "type": "object",
        "description": "Per environment: JSON Merge Patches (RFC 7386) by address KIND.KEY.",
        "additionalProperties": {
            "type": "object",
            "propertyNames": {"pattern": ADDRESS_PATTERN},
            "additionalProperties": {"type": "object"},
        },
    },
}
RESOURCE_ENVIRONMENTS = {
    "type": "array",
    "description": "The environments this resource exists in (default: all).",
    "items": {"type": "string", "pattern": ENV_NAME_PATTERN},
    "minItems": 1,
    "uniqueItems": True,
}


class SpecError(Exception):
    """The OpenAPI document has a shape this converter does not understand."""


def _ref_name(ref: str) -> str:
    prefix = "#/components/schemas/"
    if not ref.startswith(prefix):
        raise SpecError(f"unsupported $ref {ref!r}")
    return ref[len(prefix) :]


def _short_description(text: str) -> str:
    """The first paragraph, on one line."""
    para = text.strip().split("\n\n", 1)[0]
    return " ".join(line.strip() for line in para.splitlines() if line.strip())


def _fix_pattern(pattern: str, where: str, notes: list[str]) -> str | None:
    """A Python- and ECMA-compatible regex for a spec pattern (which may be `/re/flags`)."""
    if _PLACEHOLDER_PATTERN.match(pattern):
        notes.append(f"{where}: dropped placeholder pattern {pattern!r}")
        return None
    m = re.fullmatch(r"/(.*)/([a-z]*)", pattern, re.DOTALL)
    if m:
        pattern = m.group(1)
    for js, py in _PATTERN_FIXES.items():
        pattern = pattern.replace(js, py)
    try:
        re.compile(pattern)
    except re.error as exc:
        notes.append(f"{where}: dropped pattern {pattern!r} ({exc})")
        return None
    return pattern


class Converter:
    """Converts components on demand; `defs` collects the `$ref` closure of what was asked for."""

    def __init__(self, components: Mapping[str, Any]) -> None:
        self.components = components
        self.defs: dict[str, Any] = {}
        self.notes: list[str] = []
        self._queue: list[str] = []

    def add(self, names: Iterable[str]) -> None:
        self._queue.extend(names)
        while self._queue:
            name = self._queue.pop()
            if name in self.defs:
                continue
            if name not in self.components:
                raise SpecError(f"component {name!r} is not in the spec")
            self.defs[name] = {}  # placeholder: breaks cycles
            self.defs[name] = self._convert(self.components[name], name, top=name)

    def _fixed(self, component: str | None, prop: str, schema: Any) -> Any:
        fix = _SPEC_FIXES.get((component or "", prop))
        if fix is None or not isinstance(schema, Mapping):
            return schema
        self.notes.append(f"{component}.{prop}: spec fix {fix}")
        fixed = dict(schema, **fix)
        return {k: v for k, v in fixed.items() if v is not None}

    def _ref(self, ref: str) -> dict[str, Any]:
        name = _ref_name(ref)
        if name not in self.defs:
            self._queue.append(name)
        return {"$ref": f"#/$defs/{name}"}

    def _convert(self, node: Any, where: str, top: str | None = None) -> Any:
        if isinstance(node, bool):
            return node
        if not isinstance(node, Mapping):
            raise SpecError(f"{where}: schema is not an object")
        out: dict[str, Any] = {}
        if "$ref" in node:
            out.update(self._ref(node["$ref"]))
        all_of = [self._convert(s, f"{where}/allOf") for s in node.get("allOf", [])]
        one_of = [self._convert(s, f"{where}/oneOf") for s in node.get("oneOf", [])]
        any_of = [self._convert(s, f"{where}/anyOf") for s in node.get("anyOf", [])]
        # The spec sometimes states one ref both as allOf and as a one-branch oneOf.
        one_of = [s for s in one_of if s not in all_of]
        if len(one_of) == 1:
            all_of.append(one_of.pop())
        # A single member (the spec's `allOf: [{$ref}]` wrapper, or a one-branch oneOf) is
        # the schema itself; the node's own keywords (description, ...) apply beside it.
        own = set(node) - {"allOf", "oneOf", "description", "deprecated", "nullable"}
        if len(all_of) == 1 and "$ref" not in out and not set(all_of[0]) & own:
            out.update(all_of.pop())
        if all_of:
            # Only the single-ref wrapper occurs in the spec. Real composition of closed DTOs
            # would need their properties merged (each one's additionalProperties: false
            # rejects the others'), so fail loudly rather than emit a schema that rejects all.
            raise SpecError(f"{where}: allOf composition is not supported: {all_of}")
        if one_of:
            out["oneOf"] = one_of
        if any_of:
            out["anyOf"] = any_of
        if "not" in node:
            out["not"] = self._convert(node["not"], f"{where}/not")

        for key, value in node.items():
            if key in _DROPPED_KEYWORDS or key.startswith("x-"):
                continue
            if key in _PLAIN_KEYWORDS:
                out[key] = copy.deepcopy(value)
            elif key == "description" and isinstance(value, str):
                short = _short_description(value)
                if short:
                    out["description"] = short
            elif key == "pattern" and isinstance(value, str):
                fixed = _fix_pattern(value, where, self.notes)
                if fixed is not None:
                    out["pattern"] = fixed
            elif key == "type":
                out["type"] = value
            elif key == "required":
                out["required"] = list(value)
            elif key == "items":
                out["items"] = self._convert(value, f"{where}/items")
            elif key == "properties":
                out["properties"] = {
                    p: self._convert(self._fixed(top, p, s), f"{where}.{p}")
                    for p, s in value.items()
                }
            elif key == "additionalProperties":
                out["additionalProperties"] = self._convert(value, f"{where}/additionalProperties")
            elif key in {"$ref", "allOf", "oneOf", "anyOf", "not", "nullable"}:
                pass  # handled above/below
            elif key in {"exclusiveMinimum", "exclusiveMaximum"}:
                pass  # below
            else:
                raise SpecError(f"{where}: unsupported keyword {key!r}")

        # OpenAPI 3.0's boolean exclusiveMinimum/Maximum qualify minimum/maximum.
        for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
            if node.get(exclusive) is True and bound in out:
                out[exclusive] = out.pop(bound)
        if out.get("type") == "object" and any(isinstance(v, str) for v in out.get("enum", ())):
            # e.g. TransferPlan.sipVerb: `type: object` with enum ["refer", "bye", "dial"].
            out["type"] = "string"
            self.notes.append(f"{where}: string enum typed as object; typed as string")
        if "properties" in out and "type" not in out:
            out["type"] = "object"
        if "properties" in out and "additionalProperties" not in out and top not in OPEN_SCHEMAS:
            # NestJS whitelist: unknown properties are a 400.
            out["additionalProperties"] = False
        if node.get("nullable") is True:
            out = _nullable(out)
        return out


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` or null."""
    t = schema.get("type")
    if isinstance(t, str) and not {"$ref", "allOf", "oneOf", "anyOf"} & set(schema):
        out = dict(schema, type=[t, "null"])
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
        return out
    annotations: dict[str, Any] = {
        k: schema[k] for k in ("description", "deprecated", "default") if k in schema
    }
    inner = {k: v for k, v in schema.items() if k not in annotations}
    return {**annotations, "anyOf": [inner, {"type": "null"}]}


# ---------------------------------------------------------------------------------------
# Discriminated unions


def _resolve(schema: Any, defs: Mapping[str, Any]) -> Any:
    seen = 0
    while isinstance(schema, Mapping) and set(schema) - {"description"} == {"$ref"}:
        schema = defs[schema["$ref"].rsplit("/", 1)[1]]
        seen += 1
        if seen > 50:
            break
    return schema


def _enum_values(prop: Any, defs: Mapping[str, Any]) -> list[Any] | None:
    prop = _resolve(prop, defs)
    if not isinstance(prop, Mapping):
        return None
    if "const" in prop:
        return [prop["const"]]
    values = prop.get("enum")
    if isinstance(values, list) and values and None not in values:
        return list(values)
    return None


def _is_object(schema: Any) -> bool:
    return isinstance(schema, Mapping) and schema.get("type") == "object" and "properties" in schema


def _discriminate(
    branches: list[Any], defs: Mapping[str, Any], components: Mapping[str, Any]
) -> dict[str, Any] | None:
    """An if/then dispatch accepting what any of `branches` accepts, or None if no property
    is declared by every branch with an enum of values (the discriminator)."""
    resolved = [_resolve(b, defs) for b in branches]
    if len(branches) < 2 or not all(_is_object(r) for r in resolved):
        return None
    candidates: set[str] = set.intersection(*(set(r["properties"]) for r in resolved))
    best: tuple[tuple[int, int, int], str, list[list[Any]]] | None = None
    for prop in sorted(candidates):
        values = [_enum_values(r["properties"][prop], defs) for r in resolved]
        if any(v is None for v in values):
            continue
        per_branch = [v for v in values if v is not None]
        if len(_groups(per_branch)) == 1:
            per_branch = _examples(branches, prop, per_branch, components) or per_branch
        groups = len(_groups(per_branch))
        if groups < 2:
            continue
        required = all(prop in r.get("required", ()) for r in resolved)
        # Prefer a required property, then the one separating most branches, then the usual
        # names (ties are broken by name, so the output is stable).
        score = (int(required), groups, int(prop in {"provider", "type"}))
        if best is None or score > best[0]:
            best = (score, prop, per_branch)
    if best is None:
        return None
    _, prop, per_branch = best
    all_values: list[Any] = []
    for vs in per_branch:
        all_values.extend(v for v in vs if v not in all_values)
    dispatch = []
    for values, members in _groups(per_branch):
        cond: dict[str, Any] = {"const": values[0]} if len(values) == 1 else {"enum": values}
        then = _any_of([branches[i] for i in members])
        dispatch.append({"if": {"properties": {prop: cond}, "required": [prop]}, "then": then})
    out: dict[str, Any] = {"type": "object", "properties": {prop: {"enum": all_values}}}
    optional = [
        b for b, r in zip(branches, resolved, strict=True) if prop not in r.get("required", ())
    ]
    if optional:
        # Branches that may omit the discriminator are the only candidates when it is absent.
        dispatch.append({"if": {"not": {"required": [prop]}}, "then": _any_of(optional)})
    else:
        out["required"] = [prop]
    out["allOf"] = dispatch
    return out


def _any_of(branches: list[Any]) -> Any:
    return branches[0] if len(branches) == 1 else {"anyOf": branches}


def _examples(
    branches: list[Any], prop: str, per_branch: list[list[Any]], components: Mapping[str, Any]
) -> list[list[Any]] | None:
    """Per-branch discriminator values taken from the spec's `example`s.

    Some unions (e.g. `smartEndpointingPlan`) let every branch's `provider` take every value,
    so a literal `oneOf` would reject `{provider: vapi}` (it matches two branches). The
    example on each branch says which value that branch is for; NestJS dispatches the same
    way. Used only when the examples are distinct and within the enums.
    """
    out: list[list[Any]] = []
    for branch, allowed in zip(branches, per_branch, strict=True):
        ref = branch.get("$ref", "") if isinstance(branch, Mapping) else ""
        original = components.get(ref.rsplit("/", 1)[-1], {})
        example = original.get("properties", {}).get(prop, {}).get("example")
        if example is None or example not in allowed:
            return None
        out.append([example])
    return out if len({json.dumps(v) for v in out}) == len(out) else None


def _groups(per_branch: list[list[Any]]) -> list[tuple[list[Any], list[int]]]:
    """Discriminator values grouped by the set of branches that accept them, in order."""
    by_members: dict[tuple[int, ...], list[Any]] = {}
    seen: list[Any] = []
    for vs in per_branch:
        for v in vs:
            if v in seen:
                continue
            seen.append(v)
            members = tuple(i for i, other in enumerate(per_branch) if v in other)
            by_members.setdefault(members, []).append(v)
    return [(values, list(members)) for members, values in by_members.items()]


def _union(branches: list[Any], defs: Mapping[str, Any], components: Mapping[str, Any]) -> Any:
    """The 2020-12 form of an OpenAPI `oneOf`.

    The API validates with class-validator, which has no "exactly one" rule: a body valid
    for two overlapping branches (a preset `voiceId` is also a string) is accepted. So what
    cannot be dispatched on a discriminator becomes `anyOf`, never `oneOf`.
    """
    objects = [b for b in branches if _is_object(_resolve(b, defs))]
    others = [b for b in branches if not _is_object(_resolve(b, defs))]
    # `"off"` or one of several plans: scalars and objects never overlap, so dispatch the
    # objects and keep the scalars beside them.
    if len(objects) >= 2 and all(_is_scalar(_resolve(b, defs)) for b in others):
        dispatch = _discriminate(objects, defs, components)
        if dispatch is not None:
            return _any_of([*others, dispatch])
    return _any_of(branches)


def _is_scalar(schema: Any) -> bool:
    t = schema.get("type") if isinstance(schema, Mapping) else None
    types = t if isinstance(t, list) else [t]
    return t is not None and "object" not in types


def _subschemas(schema: Any) -> Iterator[Any]:
    if not isinstance(schema, dict):
        return
    for key in ("items", "additionalProperties", "not", "if", "then", "else"):
        if key in schema:
            yield schema[key]
    for key in ("allOf", "oneOf", "anyOf"):
        yield from schema.get(key, ())
    yield from schema.get("properties", {}).values()


def rewrite_unions(defs: dict[str, Any], components: Mapping[str, Any]) -> int:
    """Replace every `oneOf` in `defs` in place (see `_union`); returns how many were
    dispatched on a discriminator."""
    count = 0

    def visit(schema: Any) -> None:
        nonlocal count
        if not isinstance(schema, dict):
            return
        if "oneOf" in schema:
            union = _union(schema.pop("oneOf"), defs, components)
            count += _dispatched(union)
            if {"type", "properties", "allOf", "anyOf", "$ref"} & set(schema) or not isinstance(
                union, dict
            ):
                schema.setdefault("allOf", []).append(union)
            else:
                schema.update(union)
        for sub in list(_subschemas(schema)):
            visit(sub)

    for schema in defs.values():
        visit(schema)
    return count


def _dispatched(union: Any) -> bool:
    if not isinstance(union, dict):
        return False
    return any("if" in s for s in union.get("allOf", ())) or any(
        _dispatched(s) for s in union.get("anyOf", ())
    )


def _closure(roots: Iterable[str], defs: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in out:
            continue
        out[name] = defs[name]
        todo.extend(_refs(defs[name]))
    return out


def _refs(schema: Any) -> Iterator[str]:
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            yield ref[len("#/$defs/") :]
        for value in schema.values():
            yield from _refs(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _refs(value)


# ---------------------------------------------------------------------------------------
# The two documents


def api_schema(spec: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The API document and notes about what the conversion had to change."""
    components = spec.get("components", {}).get("schemas", {})
    conv = Converter(components)
    roots = sorted(
        {
            n
            for k in KINDS.values()
            for n in (*k.create_schemas.values(), *k.update_schemas.values())
        }
    )
    conv.add(roots)
    defs = conv.defs
    count = rewrite_unions(defs, components)
    conv.notes.append(f"{count} oneOf unions rewritten as discriminated dispatch")
    doc = {
        "$schema": DIALECT,
        "$id": "https://provisioner.local/schemas/vapi-api.schema.json",
        "title": "Vapi API request bodies",
        "description": (
            "Create/Update DTOs of the Vapi API converted from its OpenAPI spec by "
            "scripts/gen_schemas.py. Validate a body against {'$ref': '#/$defs/<DTO>'}."
        ),
        "$defs": defs,
        # The spec's own routes of every kind (parameters, body and answer shapes, refs
        # as in the spec): the sandbox derives what it serves from these, not from kinds.py.
        "paths": {
            route: _routes(spec, route)
            for k in KINDS.values()
            for route in (k.api_path, k.api_path + "/{id}")
        },
    }
    return doc, conv.notes


# Collections the live API serves that the spec's `paths` leave out, and the stem of the
# DTOs their routes are built from (docs/credential-api.md says what we assume and why).
UNLISTED_COLLECTIONS = {"/credential": "Credential"}
_DATE_PARAMS = [
    {"name": f"{column}{op}", "in": "query"}
    for column in ("createdAt", "updatedAt")
    for op in ("Gt", "Lt", "Ge", "Le")
]


def _unlisted_routes(spec: Mapping[str, Any], route: str) -> dict[str, Any] | None:
    """Routes for a collection missing from the spec's paths, built from its schemas alone:
    `Create<X><Stem>DTO` per `provider` (the enum of its `provider` property), PATCH with
    the `Update<X><Stem>DTO` of the same X where there is one, a bare-array list taking
    `limit` and the date filters, and answers of the read model `<X><Stem>`."""
    collection = route.removesuffix("/{id}")
    stem = UNLISTED_COLLECTIONS.get(collection)
    if stem is None:
        return None
    components = spec.get("components", {}).get("schemas", {})
    creates: dict[str, str] = {}
    updates: dict[str, str] = {}
    for name, schema in components.items():
        if not (name.startswith("Create") and name.endswith(f"{stem}DTO")):
            continue
        values = schema.get("properties", {}).get("provider", {}).get("enum") or ()
        if len(values) != 1:
            continue
        creates[values[0]] = name
        update = "Update" + name.removeprefix("Create")
        if update in components:
            updates[values[0]] = update

    def union(dtos: Mapping[str, str]) -> dict[str, Any]:
        refs = {v: f"#/components/schemas/{d}" for v, d in dtos.items()}
        return {
            "oneOf": [{"$ref": r} for r in refs.values()],
            "discriminator": {"propertyName": "provider", "mapping": refs},
        }

    def answer(dtos: Mapping[str, str]) -> dict[str, Any]:
        reads = [n.removeprefix("Create").removesuffix("DTO") for n in dtos.values()]
        return {"oneOf": [{"$ref": f"#/components/schemas/{r}"} for r in reads if r in components]}

    op = {"parameters": [], "requestBody": None, "response": answer(creates)}
    if route == collection:
        return {
            "post": {**op, "requestBody": union(creates)},
            "get": {
                **op,
                "parameters": [{"name": "limit", "in": "query"}, *_DATE_PARAMS],
                "response": {"type": "array", "items": answer(creates)},
            },
        }
    return {"get": op, "patch": {**op, "requestBody": union(updates)}, "delete": op}


def _routes(spec: Mapping[str, Any], route: str) -> dict[str, Any]:
    """The operations of one spec path, trimmed to what an emulator needs."""
    item = spec.get("paths", {}).get(route)
    if not isinstance(item, Mapping):
        unlisted = _unlisted_routes(spec, route)
        if unlisted is not None:
            return unlisted
        raise SystemExit(f"the spec has no path {route} (see provisioner/kinds.py)")
    out: dict[str, Any] = {}
    for method, op in item.items():
        if not isinstance(op, Mapping) or "responses" not in op:
            continue
        answer = next(
            (r for code, r in sorted(op["responses"].items()) if str(code).startswith("2")), {}
        )
        body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
        out[method] = {
            "parameters": [
                {"name": p["name"], "in": p["in"]} for p in op.get("parameters", ()) if "name" in p
            ],
            "requestBody": copy.deepcopy(body.get("schema")),
            "response": copy.deepcopy(
                answer.get("content", {}).get("application/json", {}).get("schema")
            ),
        }
    return out


def _entry(kind: ResourceKind, variant: str, dto: str, defs: Mapping[str, Any]) -> dict[str, Any]:
    """A manifest entry: the Create DTO plus the reserved keys and the checks the API makes
    that its spec does not state (API.md: E.164 numbers for imported numbers)."""
    entry: dict[str, Any] = copy.deepcopy(defs[dto])
    props = entry.setdefault("properties", {})
    props["lifecycle"] = {"$ref": "#/$defs/Lifecycle"}
    props["environments"] = RESOURCE_ENVIRONMENTS
    if kind.name == "phoneNumber" and variant in E164_PROVIDERS and "number" in props:
        props["number"] = {**props["number"], "pattern": E164.pattern}
    if kind.name == "phoneNumber" and variant == "byo-phone-number" and "number" in props:
        # E.164 unless the entry turns the check off, as the API does.
        entry["if"] = {
            "properties": {"numberE164CheckEnabled": {"const": False}},
            "required": ["numberE164CheckEnabled"],
        }
        entry["else"] = {"properties": {"number": {"pattern": E164.pattern}}}
    if kind.name == "phoneNumber" and "sipUri" in props:
        props["sipUri"] = {**props["sipUri"], "pattern": SIP_URI.pattern}
    if kind.name == "phoneNumber" and variant in PURCHASE_PROVIDERS:
        props["purchase"] = {"$ref": "#/$defs/Purchase"}
        required = [r for r in entry.get("required", []) if r != "number"]
        entry["required"] = required
        # Without `purchase` the number to import must be given; with it, not.
        entry["if"] = {"not": {"required": ["purchase"]}}
        entry["then"] = {"required": ["number"]}
        entry["else"] = {
            "properties": {
                "number": {
                    "not": {},
                    ERROR_MESSAGE: "give either `number` (a number you own) or `purchase` "
                    "(to buy one), not both: apply would ignore one of them",
                }
            }
        }
    if kind.name == "phoneNumber" and variant == "twilio":
        props["twilioAccountSid"] = {
            **props["twilioAccountSid"],
            "pattern": ACCOUNT_SID.pattern,
        }
        # API.md: Vapi needs the auth token or an API key and its secret to import a
        # number. A bought number is always imported; one given by `number` may already
        # be (`import --generate` cannot read the token back), so the plan checks those.
        entry["allOf"] = [
            {
                "if": {"required": ["purchase"]},
                "then": {
                    "anyOf": [
                        {"required": ["twilioAuthToken"]},
                        {"required": ["twilioApiKey", "twilioApiSecret"]},
                    ],
                    ERROR_MESSAGE: TWILIO_CREDENTIALS_NEEDED,
                },
            }
        ]
    if kind.name == "phoneNumber" and variant == "vapi" and "numberDesiredAreaCode" in props:
        # Vapi's spec says only "3 characters"; API.md: the free numbers are US only.
        props["numberDesiredAreaCode"] = {
            **props["numberDesiredAreaCode"],
            "pattern": AREA_CODE.pattern,
        }
    return entry


def manifest_schema(api: Mapping[str, Any]) -> dict[str, Any]:
    api_defs: Mapping[str, Any] = api["$defs"]
    roots = sorted({n for k in KINDS.values() for n in k.create_schemas.values()})
    defs = copy.deepcopy(_closure(roots, api_defs))
    defs["Lifecycle"] = LIFECYCLE
    defs["Purchase"] = PURCHASE
    defs["Lookup"] = LOOKUP
    sections: dict[str, Any] = {}
    for kind in KINDS.values():
        kind_def = f"Manifest{kind.name[0].upper()}{kind.name[1:]}"
        about = f"One {kind.label}: the Vapi create body plus `lifecycle`."
        if len(kind.create_schemas) == 1:
            [(variant, dto)] = kind.create_schemas.items()
            defs[kind_def] = {**_entry(kind, variant, dto, api_defs), "description": about}
        else:
            branches = []
            for variant, dto in kind.create_schemas.items():
                name = f"{kind_def}.{variant}"
                defs[name] = _entry(kind, variant, dto, api_defs)
                branches.append({"$ref": f"#/$defs/{name}"})
            defs[kind_def] = {**_union(branches, defs, {}), "description": about}
        section: dict[str, Any] = {
            "type": "object",
            "description": f"{kind.label.capitalize()}s by key; address `{kind.name}.KEY`.",
            "propertyNames": {"pattern": f"^{KEY_PATTERN}$"},
            "additionalProperties": {"$ref": f"#/$defs/{kind_def}"},
        }
        parent = sections
        for part in kind.section[:-1]:
            parent = parent.setdefault(
                part, {"type": "object", "additionalProperties": False, "properties": {}}
            )["properties"]
        parent[kind.section[-1]] = section
    return {
        **_manifest_document(sections, _data_sections()),
        "$defs": defs,
    }


# A `data:` lookup: an existing object named by its name (provisioner/lookups.py).
LOOKUP = {
    "type": "object",
    "description": "An existing object this manifest reads but does not own, found by its name.",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {
            "type": "string",
            "minLength": 1,
            "description": "Its name (a tool's function.name, a phone number's number).",
        }
    },
}


def _data_sections() -> dict[str, Any]:
    """The `data:` section: the kinds' sections, each mapping a key to a lookup."""
    sections: dict[str, Any] = {}
    for kind in KINDS.values():
        parent = sections
        for part in kind.section[:-1]:
            parent = parent.setdefault(
                part, {"type": "object", "additionalProperties": False, "properties": {}}
            )["properties"]
        parent[kind.section[-1]] = {
            "type": "object",
            "description": f"{kind.label.capitalize()}s to look up: "
            f"`${{data.{kind.name}.KEY.id}}`.",
            "propertyNames": {"pattern": f"^{KEY_PATTERN}$"},
            "additionalProperties": {"$ref": "#/$defs/Lookup"},
        }
    return {
        "type": "object",
        "description": "Existing objects the manifest reads (never changes): lookups by name.",
        "additionalProperties": False,
        "properties": sections,
    }


def _manifest_document(sections: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "$schema": DIALECT,
        "$id": "https://provisioner.local/schemas/manifest.schema.json",
        "title": "provisioner manifest",
        "description": (
            "Vapi assistants, phone numbers and analytics declared as code. Values may contain "
            "${KIND.KEY.id}, ${env:NAME} and ${file:path} interpolations."
        ),
        "type": "object",
        "required": ["version"],
        "additionalProperties": False,
        "properties": {
            "version": {"const": 1, "description": "Manifest format version; must be 1."},
            **sections,
            "state": STATE_SCHEMA,
            "data": data,
            **ENVIRONMENT_KEYS,
            "moved": {
                "type": "array",
                "description": "Renamed resources: keep the remote object, change its address.",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["from", "to"],
                    "properties": {
                        "from": {"type": "string", "pattern": ADDRESS_PATTERN},
                        "to": {"type": "string", "pattern": ADDRESS_PATTERN},
                    },
                },
            },
            "removed": {
                "type": "array",
                "description": (
                    "Resources to stop managing without deleting them: each leaves the state, "
                    "its remote object stays (its ownership marker cleared)."
                ),
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["from"],
                    "properties": {"from": {"type": "string", "pattern": ADDRESS_PATTERN}},
                },
            },
        },
    }


# Where the state lives (provisioner/state/backend.py reads it; README: State).
STATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Where the state lives: the local file (default), S3 or PostgreSQL.",
    "required": ["backend"],
    "additionalProperties": False,
    "properties": {
        "backend": {"enum": ["local", "s3", "postgres"]},
        "path": {
            "type": "string",
            "description": "local: the state file, relative to the manifest.",
        },
        "bucket": {"type": "string", "description": "s3: the bucket."},
        "key": {"type": "string", "description": "s3: the object key; postgres: the row's key."},
        "region": {"type": "string", "description": "s3: the bucket's region."},
        "endpoint": {"type": "string", "description": "s3: an S3-compatible endpoint URL."},
        "lockExpiry": {
            "type": "number",
            "minimum": 1,
            "description": "s3: seconds a lock lives without renewal (default 30).",
        },
        "url": {
            "type": "string",
            "description": "postgres: the connection string, e.g. ${env:PROVISIONER_PG_URL}.",
        },
        "schema": {"type": "string", "description": "postgres: the schema (default provisioner)."},
    },
}


def dump(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def generate(spec: Mapping[str, Any]) -> tuple[dict[Path, str], list[str]]:
    """Text of every generated file (repo-relative path -> content), plus conversion notes."""
    api, notes = api_schema(spec)
    manifest = dump(manifest_schema(api))
    files = {API_SCHEMA: dump(api)}
    files.update({p: manifest for p in MANIFEST_SCHEMAS})
    return files, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--openapi", type=Path, default=DEFAULT_OPENAPI, help="Vapi openapi.json")
    args = parser.parse_args(argv)
    spec = json.loads(args.openapi.read_text(encoding="utf-8"))
    files, notes = generate(spec)
    for rel, text in files.items():
        target = REPO / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        sys.stderr.write(f"wrote {rel} ({len(text.encode()) // 1024} KB)\n")
    for note in notes:
        sys.stderr.write(f"note: {note}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
