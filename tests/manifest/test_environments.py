"""Environments, variables and overrides (#12) on plain manifests: selection, merge patches,
variable types, origins, diff-env and per-environment problems."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.errors import ProvisionerError
from provisioner.manifest.env_diff import MISSING, diff_environments, per_environment
from provisioner.manifest.environments import (
    Selected,
    merge_patch,
    parse_environments,
    select_environment,
)
from provisioner.manifest.loader import parse_manifest_text
from provisioner.manifest.origins import OriginKind

BASE = """\
environments:
  dev: {apiKey: "${env:VAPI_TOKEN_DEV}"}
  prod: {apiKey: "${env:VAPI_TOKEN_PROD}", protect: true, orgId: org-1}
variables:
  max: {default: 300, prod: 900}
  host: {default: dev.example, prod: api.example}
  tags: {default: [a, b]}
assistants:
  support:
    name: Support
    maxDurationSeconds: ${var.max}
    firstMessage: "Hello from ${var.host}, $${var.host} stays"
    metadata: {tags: "${var.tags}", team: voice, level: 1}
    endCallPhrases: [bye, goodbye]
  sandbox:
    environments: [dev]
    name: Dev only
overrides:
  prod:
    assistant.support:
      endCallPhrases: [farewell]
      metadata: {level: 2, team: null}
"""


def _select(text: str, env: str | None) -> tuple[Selected, list[str]]:
    loaded, diags = parse_manifest_text(text, "m.yaml", Path("m.yaml"))
    assert loaded is not None, [d.format() for d in diags]
    envs, d1 = parse_environments(loaded)
    chosen = envs.select(env)
    selected, d2 = select_environment(loaded, envs, chosen)
    return selected, [d.format() for d in (*d1, *d2)]


def test_dev_keeps_its_resources_and_default_variables() -> None:
    selected, problems = _select(BASE, "dev")
    assert problems == []
    doc = selected.loaded.data
    assert set(doc) == {"assistants"}
    support = doc["assistants"]["support"]
    assert support["maxDurationSeconds"] == 300  # a whole value keeps its type
    assert support["firstMessage"] == "Hello from dev.example, $${var.host} stays"
    assert support["metadata"] == {"tags": ["a", "b"], "team": "voice", "level": 1}
    assert doc["assistants"]["sandbox"] == {"name": "Dev only"}
    assert selected.environment is not None and selected.environment.api_key_var == "VAPI_TOKEN_DEV"


def test_prod_merges_the_patch_and_drops_dev_only_resources() -> None:
    selected, problems = _select(BASE, "prod")
    assert problems == []
    doc = selected.loaded.data
    assert "sandbox" not in doc["assistants"]
    support = doc["assistants"]["support"]
    assert support["maxDurationSeconds"] == 900
    assert support["endCallPhrases"] == ["farewell"]  # replaced whole, not merged by item
    assert support["metadata"] == {"tags": ["a", "b"], "level": 2}  # null removed team
    env = selected.environment
    assert env is not None and env.protect and env.org_id == "org-1"
    origin = selected.origins[("assistants", "support", "endCallPhrases")]
    assert origin.kind is OriginKind.OVERRIDE
    assert origin.describe() == "overrides.prod.assistant.support, m.yaml:21"
    var = selected.origins[("assistants", "support", "maxDurationSeconds")]
    assert var.kind is OriginKind.VARIABLE and var.per_environment
    assert var.describe() == "var.max (prod), m.yaml:5"
    # positions of overridden fields point at the override
    assert selected.loaded.source.locate(("assistants", "support", "endCallPhrases")).line == 21


def test_diff_env_shows_exactly_the_declared_differences() -> None:
    dev, _ = _select(BASE, "dev")
    prod, _ = _select(BASE, "prod")
    diffs = diff_environments(dev.loaded.data, dev.origins, prod.loaded.data, prod.origins)
    got = {d.dotted: (d.left, d.right) for d in diffs}
    assert got == {
        "assistants.support.maxDurationSeconds": (300, 900),
        "assistants.support.firstMessage": (
            "Hello from dev.example, $${var.host} stays",
            "Hello from api.example, $${var.host} stays",
        ),
        "assistants.support.metadata.team": ("voice", MISSING),
        "assistants.support.metadata.level": (1, 2),
        "assistants.support.endCallPhrases": (["bye", "goodbye"], ["farewell"]),
        "assistants.sandbox": ({"name": "Dev only"}, MISSING),
    }
    team = next(d for d in diffs if d.dotted.endswith("team"))
    assert team.right_origin is not None and team.right_origin.kind is OriginKind.OVERRIDE


def test_merge_patch_is_rfc_7386() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]}
    patch = {"a": "z", "c": {"f": None}, "l": [3], "n": {"x": None}}
    assert merge_patch(target, patch) == {"a": "z", "c": {"d": "e"}, "l": [3], "n": {}}
    assert target == {"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]}
    assert merge_patch({"a": 1}, ["x"]) == ["x"]


def test_env_is_required_and_unknown_names_are_listed() -> None:
    loaded, _ = parse_manifest_text(BASE, "m.yaml", Path("m.yaml"))
    assert loaded is not None
    envs, _ = parse_environments(loaded)
    with pytest.raises(ProvisionerError, match="declares environments \\(dev, prod\\)"):
        envs.select(None)
    with pytest.raises(ProvisionerError, match="unknown environment 'stage'.*dev, prod"):
        envs.select("stage")


def test_a_manifest_without_environments_is_unchanged() -> None:
    text = "assistants:\n  a: {name: A}\n"
    selected, problems = _select(text, None)
    assert problems == [] and selected.loaded.data == {"assistants": {"a": {"name": "A"}}}
    loaded, _ = parse_manifest_text(text, "m.yaml", Path("m.yaml"))
    assert loaded is not None
    with pytest.raises(ProvisionerError, match="declares no environments"):
        parse_environments(loaded)[0].select("dev")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ('apiKey: "${env:VAPI_TOKEN_DEV}"', None),
        ("apiKey: sk-live-123", "apiKey must be an environment variable"),
        ("colour: blue", "unknown environment setting 'colour'"),
    ],
)
def test_environment_settings_are_checked(change: str, message: str | None) -> None:
    text = f"environments:\n  dev: {{{change}}}\nassistants: {{}}\n"
    loaded, _ = parse_manifest_text(text, "m.yaml", Path("m.yaml"))
    assert loaded is not None
    _, diags = parse_environments(loaded)
    found = [d.format() for d in diags]
    assert (found == []) if message is None else any(message in f for f in found), found


def test_variable_problems_are_reported_at_their_use() -> None:
    text = """\
environments: {dev: {}, prod: {}}
variables:
  only_dev: {dev: 1}
  key: {default: "${env:SECRET}"}
  words: {default: [a]}
assistants:
  a:
    maxDurationSeconds: ${var.only_dev}
    name: "x ${var.words}"
    firstMessage: ${var.nope}
"""
    _, problems = _select(text, "prod")
    assert any("m.yaml:4:" in p and "secrets stay in ${env:}" in p for p in problems)
    assert any(
        "m.yaml:8:" in p and "only_dev has no value for environment prod and no default" in p
        for p in problems
    )
    assert any(
        "m.yaml:9:" in p and "is a list: it can only be used as a whole" in p for p in problems
    )
    assert any("m.yaml:10:" in p and "unknown variable 'nope'" in p for p in problems)


def test_overrides_of_unknown_things_are_errors() -> None:
    text = """\
environments: {dev: {}, prod: {}}
assistants:
  a: {name: A, environments: [dev, qa]}
overrides:
  staging: {}
  prod:
    assistant.a: {name: B}
    nothing.x: {}
"""
    _, problems = _select(text, "prod")
    assert any("unknown environment 'qa'" in p for p in problems)
    assert any("unknown environment 'staging'" in p for p in problems)
    assert any("assistant.a is not declared in environment prod" in p for p in problems)
    assert any("'nothing.x' is not a resource address" in p for p in problems)


def test_problems_name_their_environments_once() -> None:
    from provisioner.diagnostics import Diagnostics

    a, b = Diagnostics(), Diagnostics()
    a.error("same", file="m.yaml", line=1)
    b.error("same", file="m.yaml", line=1)
    b.error("prod only", file="m.yaml", line=2)
    out = [d.summary for d in per_environment({"dev": a, "prod": b})]
    assert out == ["[dev, prod] same", "[prod] prod only"]
