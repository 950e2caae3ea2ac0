"""The generated schema files are committed: they must match what scripts/gen_schemas.py
makes from the vendored OpenAPI spec (spec/vapi-openapi.json), and the two manifest schema
copies must be identical."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest
from jsonschema import Draft202012Validator

REPO = Path(__file__).resolve().parent.parent
GENERATOR = REPO / "scripts" / "gen_schemas.py"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_schemas", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_manifest_schema_copies_are_identical() -> None:
    user = (REPO / "schemas" / "manifest.schema.json").read_bytes()
    packaged = (REPO / "provisioner" / "data" / "manifest.schema.json").read_bytes()
    assert user == packaged, "run: python scripts/gen_schemas.py"


@pytest.mark.parametrize(
    "rel", ["schemas/manifest.schema.json", "provisioner/data/vapi-api.schema.json"]
)
def test_generated_schema_is_valid_2020_12(rel: str) -> None:
    schema = json.loads((REPO / rel).read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_generated_files_are_up_to_date() -> None:
    gen = _generator()
    openapi: Path = gen.DEFAULT_OPENAPI
    files, _notes = gen.generate(json.loads(openapi.read_text(encoding="utf-8")))
    stale = [str(rel) for rel, text in files.items() if (REPO / rel).read_text("utf-8") != text]
    assert not stale, f"out of date: {stale}; run: python scripts/gen_schemas.py"
