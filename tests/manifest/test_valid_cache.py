"""Validation results are cached per resource body, under the packaged schema's digest:
a body already known to pass is not checked again; anything new or changed is."""

from __future__ import annotations

import json
from pathlib import Path

from provisioner.manifest.schema import schema_digest
from provisioner.manifest.valid_cache import FILE_NAME, ValidCache
from tests.conftest import Cli

GOOD = "version: 1\nassistants:\n  support: {name: Acme Support}\n"
TOO_LONG = "version: 1\nassistants:\n  support: {name: " + "A" * 41 + "}\n"


def cached(cache: Path) -> list[str]:
    doc = json.loads((cache / "provisioner" / FILE_NAME).read_text())
    assert doc["schema"] == schema_digest()
    return list(doc["valid"])


def test_valid_bodies_are_remembered_and_only_new_ones_checked(
    run: Cli, project: Path, own_cache: Path
) -> None:
    Path("m.yaml").write_text(GOOD)
    assert run("validate", "m.yaml").exit_code == 0
    first = cached(own_cache)
    assert first == [ValidCache.digest(("assistants", "support"), {"name": "Acme Support"})]

    # A broken edit is reported (and not remembered); the good body stays known.
    Path("m.yaml").write_text(TOO_LONG)
    result = run("validate", "m.yaml")
    assert result.exit_code == 1 and "is longer than 40 characters" in result.output
    assert cached(own_cache) == first

    # A new valid body is added.
    Path("m.yaml").write_text(GOOD + "  sales: {name: Acme Sales}\n")
    assert run("validate", "m.yaml").exit_code == 0
    assert len(cached(own_cache)) == 2


def test_a_known_body_is_not_checked_again_under_the_same_schema(
    run: Cli, project: Path, own_cache: Path
) -> None:
    """What the cache says is trusted only under the schema it was made with."""
    Path("m.yaml").write_text(TOO_LONG)
    body = {"name": "A" * 41}
    planted = ValidCache(own_cache / "provisioner" / FILE_NAME, "another schema")
    planted.add([ValidCache.digest(("assistants", "support"), body)])
    planted.save()
    assert run("validate", "m.yaml").exit_code == 1  # another schema's word is not taken

    trusted = ValidCache(own_cache / "provisioner" / FILE_NAME, schema_digest())
    trusted.add([ValidCache.digest(("assistants", "support"), body)])
    trusted.save()
    assert run("validate", "m.yaml").exit_code == 0  # skipped: known to pass


def test_an_unwritable_cache_folder_is_no_cache(run: Cli, project: Path, own_cache: Path) -> None:
    (own_cache / "provisioner").write_text("a file where the folder should be")
    Path("m.yaml").write_text(GOOD)
    result = run("validate", "m.yaml")
    assert result.exit_code == 0, result.output
    assert "Error" not in result.output
