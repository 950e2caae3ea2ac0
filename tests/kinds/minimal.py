"""Minimal valid manifest bodies for a kind, built from the generated manifest schema alone.

Nothing here names a kind: the registry says where a kind sits and what it replaces on,
the schema says what its body needs. A string with a `pattern` gets a value generated
from the pattern itself; `variant` picks different values, so a test can change one.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from re import _parser as sre  # type: ignore[attr-defined]
from typing import Any

from jsonschema import Draft202012Validator

from provisioner.kinds import ID_FIELD_KINDS, KINDS, ResourceKind

_ID_FIELD = re.compile(r"[a-z0-9]Ids?$")
# Secrets must come from `${env:}` (a literal one is refused); the CLI fixture sets this one.
SECRET_LEAVES = frozenset(f for k in KINDS.values() for f in k.secret_leaves)
SECRET_VALUE = "${env:TWILIO_AUTH_TOKEN}"


@functools.cache
def manifest_schema() -> dict[str, Any]:
    text = resources.files("provisioner").joinpath("data/manifest.schema.json").read_text()
    doc: dict[str, Any] = json.loads(text)
    return doc


def kind_def(kind: ResourceKind) -> str:
    return f"Manifest{kind.name[0].upper()}{kind.name[1:]}"


def variant_defs(kind: ResourceKind) -> dict[str, dict[str, Any]]:
    """Discriminator value ("" when none) -> the manifest entry's schema, in registry order."""
    defs = manifest_schema()["$defs"]
    if len(kind.create_schemas) == 1:
        return {v: defs[kind_def(kind)] for v in kind.create_schemas}
    return {v: defs[f"{kind_def(kind)}.{v}"] for v in kind.create_schemas}


def check(kind: ResourceKind, body: Mapping[str, Any]) -> list[str]:
    """Schema errors of `body` as a manifest entry of `kind` (references as placeholders)."""
    doc = manifest_schema()
    schema = {"$ref": f"#/$defs/{kind_def(kind)}", "$defs": doc["$defs"]}
    plain = json.loads(
        re.sub(r"\$\{[^}]*\}", "00000000-0000-4000-8000-000000000000", json.dumps(body))
    )
    return [e.message for e in Draft202012Validator(schema).iter_errors(plain)]


@dataclass
class Built:
    """A minimal body, and the minimal resources it references (kind name -> body)."""

    body: dict[str, Any]
    needs: dict[str, dict[str, Any]] = field(default_factory=dict)


def minimal(kind: ResourceKind, *, variant: int = 0, skip: frozenset[str] = frozenset()) -> Built:
    """The first variant (in registry order) that needs no purchase and whose required
    fields can all be built; raises if none can."""
    problems: list[str] = []
    for value, schema in variant_defs(kind).items():
        builder = Builder(variant, skip | {kind.name})
        try:
            body = builder.value(schema, "")
        except CannotBuild as exc:
            problems.append(f"{value or kind.name}: {exc}")
            continue
        if not check(kind, body):
            return Built(body, builder.needs)
        problems.append(f"{value or kind.name}: {check(kind, body)}")
    raise AssertionError(f"no buildable variant of {kind.name}: {problems}")


class CannotBuild(Exception):
    pass


class Builder:
    def __init__(self, variant: int, skip: frozenset[str]) -> None:
        self.variant = variant
        self.skip = skip
        self.needs: dict[str, dict[str, Any]] = {}
        self.defs = manifest_schema()["$defs"]

    def value(self, schema: Any, name: str) -> Any:
        schema = self.deref(schema)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return schema["enum"][0]
        for key in ("anyOf", "oneOf"):
            if key in schema:
                for branch in schema[key]:
                    try:
                        return self.value(branch, name)
                    except CannotBuild:
                        continue
                raise CannotBuild(f"{name}: no branch can be built")
        types = schema.get("type")
        kind = next((t for t in types if t != "null"), None) if isinstance(types, list) else types
        if kind == "object" or (kind is None and "properties" in schema):
            return self._object(schema, name)
        if kind == "array":
            count = int(schema.get("minItems", 0))
            return [self.value(schema.get("items", {}), f"{name}.{i}") for i in range(count)]
        if kind == "string":
            return self._string(schema, name)
        if kind in ("integer", "number"):
            number = schema.get("minimum", 0) + self.variant
            return min(number, schema.get("maximum", number))
        if kind == "boolean":
            return bool(self.variant % 2)
        raise CannotBuild(f"{name}: cannot build {schema}")

    def deref(self, schema: Any) -> dict[str, Any]:
        while isinstance(schema, Mapping) and "$ref" in schema:
            schema = {
                **self.defs[schema["$ref"].rsplit("/", 1)[-1]],
                **{k: v for k, v in schema.items() if k not in ("$ref", "description")},
            }
        return dict(schema) if isinstance(schema, Mapping) else {}

    def _object(self, schema: Mapping[str, Any], name: str) -> dict[str, Any]:
        props = schema.get("properties", {})
        out: dict[str, Any] = {}
        for key in schema.get("required", ()):
            if key == "purchase":
                raise CannotBuild("needs a purchase")
            out[key] = self.value(props.get(key, {}), f"{name}.{key}".lstrip("."))
        # A conditional branch (if discriminator then DTO) applies to what was built.
        for part in schema.get("allOf", ()):
            cond, then = part.get("if"), part.get("then")
            if then is not None and cond is not None and _holds(cond, out):
                extra = self.value(then, name)
                if isinstance(extra, dict):
                    out = {**extra, **out}
        if "if" in schema and _holds(schema["if"], out) and "then" in schema:
            then = self.deref(schema["then"])
            if "purchase" in then.get("required", ()):
                raise CannotBuild("needs a purchase")
            for key in then.get("required", ()):
                out.setdefault(key, self.value(props.get(key, {}), key))
        return out

    def _string(self, schema: Mapping[str, Any], name: str) -> str:
        field_name = name.rsplit(".", 1)[-1]
        if field_name in SECRET_LEAVES:
            return SECRET_VALUE
        if _ID_FIELD.search(field_name):
            target = ID_FIELD_KINDS.get(field_name)
            if target is None or target in self.skip:
                raise CannotBuild(f"{name} takes the ID of something no kind declares")
            if target not in self.needs:
                self.needs[target] = minimal(KINDS[target], skip=self.skip).body
            return "${" + target + ".needed.id}"
        if "pattern" in schema:
            return from_pattern(schema["pattern"], self.variant)
        size = max(int(schema.get("minLength", 1)), 1)
        text = f"min-{self.variant}"
        text = (text * size)[: max(size, len(text))]
        return text[: int(schema.get("maxLength", len(text)))]


def _holds(cond: Mapping[str, Any], value: Mapping[str, Any]) -> bool:
    if any(k not in value for k in cond.get("required", ())):
        return False
    for key, rule in cond.get("properties", {}).items():
        if key not in value:
            continue
        if "const" in rule and value[key] != rule["const"]:
            return False
        if "enum" in rule and value[key] not in rule["enum"]:
            return False
    return True


def from_pattern(pattern: str, variant: int) -> str:
    """A string matching `pattern`; another `variant` gives another string where it can."""
    out = "".join(_emit(sre.parse(pattern), variant))
    assert re.search(pattern, out), (pattern, out)
    return out


def _emit(parsed: Any, variant: int) -> list[str]:
    out: list[str] = []
    for op, arg in parsed:
        name = str(op)
        if name == "LITERAL":
            out.append(chr(arg))
        elif name == "NOT_LITERAL":
            out.append("a" if chr(arg) != "a" else "b")
        elif name == "ANY":
            out.append("a")
        elif name == "IN":
            out.append(_member(arg, variant))
        elif name in ("MAX_REPEAT", "MIN_REPEAT"):
            low, _high, sub = arg
            for _ in range(max(low, 1) if low == 0 and variant else low):
                out.extend(_emit(sub, variant))
        elif name == "SUBPATTERN":
            out.extend(_emit(arg[-1], variant))
        elif name == "BRANCH":
            out.extend(_emit(arg[1][variant % len(arg[1])], variant))
        elif name == "AT":
            continue
        else:
            raise CannotBuild(f"pattern element {name} in {parsed}")
    return out


def _member(items: Any, variant: int) -> str:
    negated = any(str(op) == "NEGATE" for op, _ in items)
    if negated:
        banned = {chr(a) for op, a in items if str(op) == "LITERAL"}
        return next(c for c in "abcdefgh" if c not in banned)
    choices: list[str] = []
    for op, arg in items:
        if str(op) == "LITERAL":
            choices.append(chr(arg))
        elif str(op) == "RANGE":
            choices.extend(chr(c) for c in range(arg[0], arg[1] + 1))
        elif str(op) == "CATEGORY":
            choices.extend("0123456789" if "DIGIT" in str(arg) else "a")
    return choices[variant % len(choices)]
