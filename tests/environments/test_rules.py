"""The wrong-org guard, `protect` and plan origins (#12) on plain data."""

from __future__ import annotations

import pytest

from provisioner.errors import StateError
from provisioner.manifest.environments import Environment
from provisioner.manifest.origins import Origin, OriginKind
from provisioner.org_guard import check_org
from provisioner.plan.model import MISSING, Action, ActionReason, FieldChange, Plan, ResourceChange
from provisioner.plan.origins import with_origins
from provisioner.plan.protection import check_protected
from provisioner.state.model import ResourceState, StateFile


def _state(*ids: str | None, org: str | None = None, env: str | None = "prod") -> StateFile:
    state = StateFile(lineage="l", environment=env, org_id=org)
    for i, rid in enumerate(ids):
        state.resources[f"assistant.a{i}"] = ResourceState(kind="assistant", id=rid)
    return state


def test_objects_found_in_the_recorded_org_pass_and_name_it() -> None:
    state = _state("1", "2")
    objects = {"assistant.a0": {"id": "1", "orgId": "org-p"}, "assistant.a1": None}
    assert check_org(state, objects) == "org-p"


def test_every_managed_object_missing_is_refused_unless_allowed() -> None:
    state = _state("1", "2", org="org-p")
    with pytest.raises(StateError, match="wrong org or deleted org\\?.*--allow-empty-org"):
        check_org(state, {"assistant.a0": None, "assistant.a1": None}, environment="prod")
    assert check_org(state, {"assistant.a0": None}, allow_empty=True) == "org-p"


def test_an_empty_state_is_not_a_wrong_org() -> None:
    assert check_org(_state(), {}) is None


def test_an_object_of_another_org_is_refused() -> None:
    state = _state("1", org="org-p")
    with pytest.raises(StateError, match="is in Vapi org org-d, but the state records org org-p"):
        check_org(state, {"assistant.a0": {"id": "1", "orgId": "org-d"}})


def test_a_pinned_org_is_checked_against_every_object_read() -> None:
    state = _state("1")
    with pytest.raises(StateError, match="the manifest pins org org-x"):
        check_org(state, {"assistant.a0": {"id": "1", "orgId": "org-p"}}, pinned="org-x")
    assert check_org(state, {"assistant.a0": {"id": "1", "orgId": "org-x"}}, pinned="org-x")


def _change(action: Action, fields: tuple[FieldChange, ...] = ()) -> ResourceChange:
    return ResourceChange("assistant.support", "assistant", action, ActionReason.NEW, fields=fields)


@pytest.mark.parametrize("action", [Action.DELETE, Action.REPLACE])
def test_protected_environments_refuse_deletes_and_replaces(action: Action) -> None:
    plan = Plan(changes=(_change(action), _change(Action.UPDATE)))
    prod = Environment("prod", protect=True)
    problems = [d.summary for d in check_protected(plan, prod)]
    assert len(problems) == 1 and "environment prod is protected" in problems[0]
    if action is Action.REPLACE:
        assert "--replace assistant.support" in problems[0]
    assert not check_protected(plan, Environment("dev"))


def test_a_protected_environment_takes_a_replace_asked_for_with_replace() -> None:
    asked = ResourceChange(
        "assistant.support", "assistant", Action.REPLACE, ActionReason.REPLACE_REQUESTED
    )
    assert not check_protected(Plan(changes=(asked,)), Environment("prod", protect=True))


def test_plan_marks_fields_an_environment_set_with_their_origin() -> None:
    fields = (
        FieldChange(("endCallPhrases",), MISSING, ["farewell"]),
        FieldChange(("name",), MISSING, "Support"),
        FieldChange(("metadata",), MISSING, {"level": 2}),
    )
    plan = Plan(changes=(_change(Action.CREATE, fields),))
    over = Origin(OriginKind.OVERRIDE, "overrides.prod.assistant.support", "prod", "m.yaml", 21)
    default = Origin(OriginKind.VARIABLE, "var.x", None, "m.yaml", 4)
    origins = {
        ("assistants", "support", "endCallPhrases"): over,
        ("assistants", "support", "metadata", "level"): over,
        ("assistants", "support", "name"): default,  # the same everywhere: not marked
        ("assistants", "other", "name"): over,
    }
    marked = with_origins(plan, origins, "prod")
    assert marked.environment == "prod"
    assert marked.changes[0].origins == (
        ("endCallPhrases", "overrides.prod.assistant.support, m.yaml:21"),
        ("metadata.level", "overrides.prod.assistant.support, m.yaml:21"),
    )
    assert with_origins(plan, origins, None) is plan


def test_each_environment_reads_its_own_key_and_url() -> None:
    from provisioner.settings import Settings

    environ = {"VAPI_TOKEN": "default-key", "VAPI_TOKEN_PROD": "prod-key"}
    prod = Environment("prod", api_key_var="VAPI_TOKEN_PROD", base_url="https://api.eu.vapi.ai/")
    assert Settings(environ=environ, environment=prod).token == "prod-key"
    assert Settings(environ=environ, environment=prod).base_url == "https://api.eu.vapi.ai"
    assert Settings(environ=environ, environment=Environment("dev")).token == "default-key"
    missing = Environment("qa", api_key_var="VAPI_TOKEN_QA")
    assert Settings(environ=environ, environment=missing).token is None
    assert Settings(environ=environ, environment=missing).token_var == "VAPI_TOKEN_QA"
