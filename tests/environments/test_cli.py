"""One manifest, many environments (#12), through the CLI against the sandbox (and, for the
wrong-org guard, two emulated orgs on real sockets)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from provisioner.emulator import VapiEmulator, running_server
from provisioner.emulator.store import EmulatorStore
from tests.conftest import Cli

MANIFEST = "examples/environments.yaml"
STATES = Path("state/.sandbox/examples/environments")


def _json(text: str) -> dict[str, Any]:
    return dict(json.loads(text))


def _edit(old: str, new: str) -> None:
    path = Path(MANIFEST)
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_the_example_validates_plans_and_applies_in_two_orgs(run: Cli) -> None:
    result = run("validate", MANIFEST)
    assert result.exit_code == 0, result.output
    assert "is valid in dev (2 resources), prod (1 resource)." in result.output
    for env, count in (("dev", 2), ("prod", 1)):
        result = run("apply", MANIFEST, "--sandbox", "--env", env, "--auto-approve")
        assert result.exit_code == 0, result.output
        assert f"--env {env}` again" in result.output
        state = _json((STATES / f"{env}.json").read_text())
        assert state["environment"] == env and len(state["resources"]) == count
        again = run("plan", MANIFEST, "--sandbox", "--env", env, "--detailed-exitcode")
        assert again.exit_code == 0, again.output
        assert f"Environment: {env}" in again.output and "No changes." in again.output
    dev, prod = (_json((STATES / f"{e}.json").read_text()) for e in ("dev", "prod"))
    assert dev["org_id"] and prod["org_id"] and dev["org_id"] != prod["org_id"]  # two orgs
    data = Path("state/.sandbox/emulator")
    assert (data / "vapi.dev.json").is_file() and (data / "vapi.prod.json").is_file()


def test_diff_env_shows_exactly_the_declared_differences(run: Cli) -> None:
    result = run("diff-env", MANIFEST, "dev", "prod", "--json")
    assert result.exit_code == 0, result.output
    diffs = {d["path"]: d for d in _json(result.output)["differences"]}
    assert set(diffs) == {
        "assistants.support.name",
        "assistants.support.firstMessage",
        "assistants.support.maxDurationSeconds",
        "assistants.support.endCallPhrases",
        "assistants.support.model.model",
        "assistants.support.model.temperature",
        "assistants.playground",
    }
    phrases = diffs["assistants.support.endCallPhrases"]
    assert phrases["prod"] == {
        "present": True,
        "value": ["goodbye"],
        "origin": "overrides.prod.assistant.support, examples/environments.yaml:56",
    }
    assert diffs["assistants.support.maxDurationSeconds"]["prod"]["value"] == 900
    assert diffs["assistants.playground"]["prod"]["present"] is False
    text = run("diff-env", MANIFEST, "dev", "prod")
    assert "var.max_call (prod), examples/environments.yaml:23" in text.output


def test_config_prints_one_environments_merged_manifest(run: Cli) -> None:
    result = run("config", MANIFEST, "--env", "prod")
    assert result.exit_code == 0, result.output
    assert "maxDurationSeconds: 900" in result.output and "playground" not in result.output
    assert "environments:" not in result.output and "overrides:" not in result.output
    assert "${file:prompts/support.md}" in result.output  # text of files is not read here
    missing = run("config", MANIFEST)
    assert missing.exit_code == 1 and "--env NAME" in missing.output


@pytest.mark.parametrize(
    "args",
    [
        ("plan", MANIFEST, "--sandbox"),
        ("apply", MANIFEST, "--sandbox", "--auto-approve"),
        ("destroy", MANIFEST, "--sandbox", "--auto-approve"),
        ("drift", MANIFEST, "--sandbox"),
        ("import", MANIFEST, "assistant.support", "0b4c0b2e-7c5c-4d4e-9b1f-0a0a0a0a0a0a"),
        ("output", MANIFEST, "--sandbox"),
        ("state", "list", MANIFEST, "--sandbox"),
        ("force-unlock", MANIFEST, "abc", "--sandbox"),
    ],
)
def test_every_command_needs_env_once_environments_are_declared(
    run: Cli, args: tuple[str, ...]
) -> None:
    result = run(*args)
    assert result.exit_code == 1, result.output
    assert "declares environments (dev, prod): say which one with --env NAME" in result.output
    assert "Traceback" not in result.output
    assert not Path("state").exists()  # nothing read or written
    unknown = run(*args, "--env", "staging")
    assert unknown.exit_code == 1
    assert "unknown environment 'staging': this manifest declares dev, prod" in unknown.output


def test_graph_draws_one_environment(run: Cli) -> None:
    dev = run("graph", MANIFEST, "--env", "dev")
    prod = run("graph", MANIFEST, "--env", "prod")
    assert dev.exit_code == 0 and prod.exit_code == 0, dev.output + prod.output
    assert "assistant.playground" in dev.output and "assistant.playground" not in prod.output
    assert run("graph", MANIFEST).exit_code == 1


def test_env_on_a_manifest_without_environments_is_an_error(run: Cli) -> None:
    result = run("plan", "examples/small.yaml", "--sandbox", "--env", "dev")
    assert result.exit_code == 1 and "declares no environments" in result.output
    plain = run("plan", "examples/small.yaml", "--sandbox")
    assert plain.exit_code == 0, plain.output
    assert "Environment:" not in plain.output


def test_a_dev_plan_file_is_refused_in_prod(run: Cli) -> None:
    saved = run("plan", MANIFEST, "--sandbox", "--env", "dev", "--out", "dev.plan")
    assert saved.exit_code == 0, saved.output
    shown = run("show", "dev.plan")
    assert shown.exit_code == 0 and shown.output.startswith("Environment: dev\n")
    assert "# name set for this environment" not in shown.output  # dev uses the defaults
    result = run("apply", "dev.plan", "--sandbox", "--env", "prod")
    assert result.exit_code == 1, result.output
    assert "was planned for environment dev, and this apply has --env prod" in result.output
    assert not (STATES / "prod.json").exists()
    assert not Path("state/.sandbox/emulator/vapi.prod.json").exists()
    ok = run("apply", "dev.plan", "--sandbox", "--env", "dev")
    assert ok.exit_code == 0, ok.output


def test_a_list_replaced_by_an_override_is_shown_whole_with_its_origin(run: Cli) -> None:
    assert run("apply", MANIFEST, "--sandbox", "--env", "prod", "--auto-approve").exit_code == 0
    _edit("endCallPhrases: [goodbye]", "endCallPhrases: [goodbye, farewell]")
    result = run("plan", MANIFEST, "--sandbox", "--env", "prod", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = _json(result.output)
    assert doc["environment"] == "prod" and doc["format_version"] == "1.2"
    [change] = [c for c in doc["changes"] if c["action"] == "update"]
    assert change["fields"] == [
        {
            "path": "endCallPhrases",
            "path_parts": ["endCallPhrases"],
            "before": ["goodbye"],
            "after": ["goodbye", "farewell"],
            "drift": False,
            "forces_replace": False,
        }
    ]
    assert change["origins"] == [
        {
            "path": "endCallPhrases",
            "origin": "overrides.prod.assistant.support, examples/environments.yaml:56",
        }
    ]
    human = run("plan", MANIFEST, "--sandbox", "--env", "prod")
    assert '~ endCallPhrases: ["goodbye"] -> ["goodbye", "farewell"]' in human.output
    assert "# endCallPhrases set for this environment by overrides.prod" in human.output
    saved = run("plan", MANIFEST, "--sandbox", "--env", "prod", "--out", "prod.plan")
    shown = run("show", "prod.plan")
    assert saved.exit_code == 0 and shown.exit_code == 0
    assert shown.output == saved.output  # what plan printed, origins included
    assert shown.output.endswith("provisioner apply prod.plan --env prod\n")
    markdown = run("plan", MANIFEST, "--sandbox", "--env", "prod", "--format", "markdown")
    assert markdown.output.startswith("### Provisioner plan for prod")
    assert "set for this environment by overrides.prod.assistant.support" in markdown.output


def test_a_protected_environment_deletes_nothing(run: Cli) -> None:
    assert run("apply", MANIFEST, "--sandbox", "--env", "prod", "--auto-approve").exit_code == 0
    _edit("  support:\n    name:", "  support:\n    environments: [dev]\n    name:")
    _edit(
        "overrides:\n  prod:\n    assistant.support:", "overrides:\n  dev:\n    assistant.support:"
    )
    result = run("apply", MANIFEST, "--sandbox", "--env", "prod", "--auto-approve")
    assert result.exit_code == 1, result.output
    assert "environment prod is protected (protect: true)" in result.output
    destroy = run("destroy", MANIFEST, "--sandbox", "--env", "prod", "--auto-approve")
    assert destroy.exit_code == 1 and "is protected" in destroy.output
    assert len(_json((STATES / "prod.json").read_text())["resources"]) == 1
    dev = run("apply", MANIFEST, "--sandbox", "--env", "dev", "--auto-approve")
    assert dev.exit_code == 0, dev.output


def test_a_protected_environment_replaces_only_what_replace_names(run: Cli) -> None:
    assert run("apply", MANIFEST, "--sandbox", "--env", "prod", "--auto-approve").exit_code == 0
    before = _json((STATES / "prod.json").read_text())["resources"]["assistant.support"]["id"]
    asked = run(
        "apply",
        MANIFEST,
        "--sandbox",
        "--env",
        "prod",
        "--auto-approve",
        "--replace",
        "assistant.support",
    )
    assert asked.exit_code == 0, asked.output
    assert "replace requested" in asked.output
    after = _json((STATES / "prod.json").read_text())["resources"]["assistant.support"]["id"]
    assert after != before


def test_validate_prefixes_each_problem_with_its_environments(run: Cli) -> None:
    _edit("    prod: 900", "    prod: nine hundred")
    _edit("    voiceId: burt", "    voiceId: burt\n    silly: 1")
    result = run("validate", MANIFEST)
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if "examples/environments.yaml:" in line]
    assert any("[prod]" in line and "maxDurationSeconds" in line for line in lines), lines
    assert not any("[dev]" in line and "maxDurationSeconds" in line for line in lines), lines
    assert any("[dev, prod]" in line and "silly" in line for line in lines), lines
    one = run("validate", MANIFEST, "--env", "dev", "--strict")
    assert one.exit_code == 1 and "[dev" not in one.output  # one environment: no prefix


# The wrong-org guard: two orgs, each its own emulator and API key. ---------------------------


class _Orgs:
    def __init__(self, dev: tuple[VapiEmulator, str], prod: tuple[VapiEmulator, str]) -> None:
        self.apps = {"dev": dev[0], "prod": prod[0]}
        self.urls = {"dev": dev[1], "prod": prod[1]}

    def env(self, *, key_of: str, url_of: str) -> dict[str, str]:
        """The prod environment's key variable set to `key_of`'s key, the API at `url_of`'s
        org (a key reaches its own org only)."""
        return {"VAPI_BASE_URL": self.urls[url_of], "VAPI_TOKEN_PROD": f"key-{key_of}"}

    def writes(self, org: str) -> int:
        by = self.apps[org].stats()["by_method"]
        return sum(n for m, n in by.items() if m in ("POST", "PATCH", "DELETE"))


@pytest.fixture
def orgs(project: Path) -> Iterator[_Orgs]:
    dev = VapiEmulator(EmulatorStore(project / "org-dev.json"), token="key-dev")
    prod = VapiEmulator(EmulatorStore(project / "org-prod.json"), token="key-prod")
    with running_server(dev) as dev_url, running_server(prod) as prod_url:
        yield _Orgs((dev, dev_url), (prod, prod_url))


def test_prods_state_with_devs_key_is_refused_before_any_write(run: Cli, orgs: _Orgs) -> None:
    prod = orgs.env(key_of="prod", url_of="prod")
    assert run("apply", MANIFEST, "--env", "prod", "--auto-approve", env=prod).exit_code == 0
    state = _json(Path("state/examples/environments/prod.json").read_text())
    assert state["org_id"] and state["environment"] == "prod"
    wrong = orgs.env(key_of="dev", url_of="dev")
    for command in ("plan", "apply"):
        args = ("--auto-approve",) if command == "apply" else ()
        result = run(command, MANIFEST, "--env", "prod", *args, env=wrong)
        assert result.exit_code == 1, result.output
        assert "wrong org or deleted org?" in result.output
        assert "--allow-empty-org" in result.output
    assert orgs.writes("dev") == 0
    forced = run(
        "apply", MANIFEST, "--env", "prod", "--auto-approve", "--allow-empty-org", env=wrong
    )
    assert forced.exit_code == 0, forced.output  # said explicitly: created anew
    assert orgs.writes("dev") == 1


def test_a_pinned_org_is_checked_against_every_object(run: Cli, orgs: _Orgs) -> None:
    prod = orgs.env(key_of="prod", url_of="prod")
    assert run("apply", MANIFEST, "--env", "prod", "--auto-approve", env=prod).exit_code == 0
    org = _json(Path("state/examples/environments/prod.json").read_text())["org_id"]
    _edit("    protect: true", "    protect: true\n    orgId: not-this-org")
    result = run("plan", MANIFEST, "--env", "prod", env=prod)
    assert result.exit_code == 1, result.output
    assert f"is in Vapi org {org}, but the manifest pins org not-this-org" in result.output
    _edit("orgId: not-this-org", f"orgId: {org}")
    ok = run("plan", MANIFEST, "--env", "prod", "--detailed-exitcode", env=prod)
    assert ok.exit_code == 0, ok.output


def test_state_location_per_environment(run: Cli, orgs: _Orgs) -> None:
    _edit("    protect: true", "    protect: true\n    state: ../prod-state/vapi.json")
    prod = orgs.env(key_of="prod", url_of="prod")
    assert run("apply", MANIFEST, "--env", "prod", "--auto-approve", env=prod).exit_code == 0
    assert _json(Path("prod-state/vapi.json").read_text())["environment"] == "prod"
    # --state wins; the sandbox keeps its own state locally, whatever `state:` says.
    sandbox = run("apply", MANIFEST, "--sandbox", "--env", "prod", "--auto-approve")
    assert sandbox.exit_code == 0, sandbox.output
    assert (STATES / "prod.json").is_file()
    given = run(
        "apply", MANIFEST, "--sandbox", "--env", "dev", "--state", "mine.json", "--auto-approve"
    )
    assert given.exit_code == 0, given.output
    assert _json(Path("mine.json").read_text())["environment"] == "dev"
    assert not (STATES / "dev.json").exists()
    # A state of one environment is refused for another.
    other = run("plan", MANIFEST, "--sandbox", "--env", "prod", "--state", "mine.json")
    assert other.exit_code == 1 and "(environment dev)" in other.output


def test_a_shared_state_block_keeps_each_environment_apart(run: Cli, orgs: _Orgs) -> None:
    _edit("version: 1\n", "version: 1\nstate: {backend: local, path: ../shared/vapi.json}\n")
    prod = orgs.env(key_of="prod", url_of="prod")
    assert run("apply", MANIFEST, "--env", "prod", "--auto-approve", env=prod).exit_code == 0
    assert _json(Path("shared/vapi/prod.json").read_text())["environment"] == "prod"
    assert not Path("shared/vapi.json").exists()


def test_shared_remote_backends_get_a_key_or_row_per_environment() -> None:
    from provisioner.state.backend import BackendKind, StateConfig, per_environment

    s3 = per_environment(StateConfig(BackendKind.S3, bucket="b", key="teams/a/vapi.json"), "prod")
    assert s3.key == "teams/a/vapi/prod.json"
    pg = per_environment(
        StateConfig(BackendKind.POSTGRES, url="postgres://db/x", key="a/vapi"), "dev"
    )
    assert pg.key == "a/vapi/dev"


def test_text_included_by_file_is_taken_literally(run: Cli) -> None:
    Path("examples/prompts/support.md").write_text("Say ${var.company} as is.\n")
    result = run("plan", MANIFEST, "--sandbox", "--env", "prod", "--format", "json")
    assert result.exit_code == 0, result.output
    [support] = [c for c in _json(result.output)["changes"] if c["address"] == "assistant.support"]
    assert support["after"]["model"]["messages"][0]["content"] == "Say ${var.company} as is.\n"
    assert support["after"]["name"] == "Acme Support"  # while the manifest's own is replaced


def test_drift_and_import_work_per_environment(run: Cli) -> None:
    assert run("apply", MANIFEST, "--sandbox", "--env", "prod", "--auto-approve").exit_code == 0
    drift = run("drift", MANIFEST, "--sandbox", "--env", "prod")
    assert drift.exit_code == 0, drift.output
    state = _json((STATES / "prod.json").read_text())
    support = state["resources"]["assistant.support"]["id"]
    (STATES / "prod.json").unlink()
    (STATES / "prod.json.backup").unlink()
    imported = run("import", MANIFEST, "assistant.support", support, "--sandbox", "--env", "prod")
    assert imported.exit_code == 0, imported.output
    again = _json((STATES / "prod.json").read_text())
    assert again["environment"] == "prod" and again["org_id"] == state["org_id"]
    # The same ID is not in dev's org.
    other = run("import", MANIFEST, "assistant.support", support, "--sandbox", "--env", "dev")
    assert other.exit_code == 1, other.output


def test_numbers_list_reads_one_environments_org(run: Cli) -> None:
    assert run("apply", MANIFEST, "--sandbox", "--env", "dev", "--auto-approve").exit_code == 0
    missing = run("numbers", "list", MANIFEST, "--sandbox")
    assert missing.exit_code == 1 and "--env NAME" in missing.output
    listed = run("numbers", "list", MANIFEST, "--sandbox", "--env", "prod")
    assert listed.exit_code == 0, listed.output
    assert "No phone numbers in this Vapi org." in listed.output
