"""Manifest schema validation: every mistake reported at its exact line and field, and
valid manifests (including interpolated strings) accepted without noise."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from provisioner.diagnostics import Diagnostic
from provisioner.kinds import KINDS
from provisioner.manifest.loader import load_manifest
from provisioner.manifest.schema import validate_schema

VALID = """\
version: 1
assistants:
  support:
    name: Acme Support
    firstMessage: Hi, thanks for calling Acme.
    model:
      provider: openai
      model: gpt-4o
      temperature: 0.3
      messages:
        - role: system
          content: ${file:prompts/support.md}
    voice: {provider: 11labs, voiceId: burt}
    transcriber: {provider: deepgram, language: en}
    startSpeakingPlan: {smartEndpointingPlan: {provider: livekit}}
    metadata: {team: support, anything: [1, 2]}
    lifecycle: {preventDestroy: true, ignoreChanges: [model.temperature]}
  sales:
    name: ${env:SALES_NAME_THAT_MAY_BE_LONGER_THAN_FORTY_CHARACTERS}
    model: {provider: anthropic, model: claude-3-5-sonnet-20241022}
    voice: {provider: vapi, voiceId: Elliot}
    maxDurationSeconds: 600
phoneNumbers:
  test-line:
    provider: vapi
    numberDesiredAreaCode: "415"
    assistantId: ${assistant.support.id}
  main-line:
    provider: twilio
    number: "+14155550100"
    twilioAccountSid: AC0123456789abcdef0123456789abcdef
    twilioAuthToken: ${env:TWILIO_AUTH_TOKEN}
    assistantId: ${assistant.support.id}
    lifecycle: {preventDestroy: true}
  bought:
    provider: twilio
    twilioAccountSid: AC0123456789abcdef0123456789abcdef
    twilioAuthToken: ${env:TWILIO_AUTH_TOKEN}
    purchase: {country: US, areaCode: "415", type: local, contains: "555", release: true}
  uk-line:
    provider: vonage
    number: "+442079460000"
    credentialId: 6f1a3c52-8d4e-4b7a-9c3e-2f5d6a7b8c9d
  sales-line:
    provider: telnyx
    number: "+13125550199"
    credentialId: ${env:TELNYX_CREDENTIAL_ID}
  pbx-line:
    provider: byo-phone-number
    number: "1001"
    numberE164CheckEnabled: false
    credentialId: 3c4d5e6f-7a8b-4c9d-8e1f-2a3b4c5d6e7f
    fallbackDestination: {type: number, number: "+14155550123"}
analytics:
  structuredOutputs:
    call-summary:
      name: Call summary
      type: ai
      schema: {type: object, properties: {summary: {type: string}}}
      assistantIds: ["${assistant.support.id}"]
  insights:
    calls-per-day:
      type: line
      name: Calls per day
      queries: [{type: vapiql-json, table: call, column: id, operation: count, name: calls}]
      timeRange: {start: "-7d", end: now, step: day}
    cost:
      type: bar
      groupBy: assistantId
      queries: [{type: vapiql-json, table: call, column: cost, operation: sum, name: cost}]
      timeRange: {start: "-30d", end: now, step: week}
    reasons:
      type: pie
      groupBy: endedReason
      queries: [{type: vapiql-json, table: call, column: id, operation: count, name: calls}]
      timeRange: {start: "-30d", end: now}
    total:
      type: text
      queries: [{type: vapiql-json, table: call, column: duration, operation: sum, name: d}]
  boards:
    overview:
      name: Support overview
      layout: {columns: 6}
      items:
        - type: insight
          insightId: ${insight.calls-per-day.id}
          position: {x: 0, y: 0}
          size: {width: 6, height: 2}
        - {type: concurrency_chart, position: {x: 0, y: 2}, size: {width: 3, height: 2}}
moved:
  - {from: assistant.old-support, to: assistant.support}
"""

# A small base for the broken cases; line numbers below refer to it.
BASE = """\
version: 1
assistants:
  support:
    name: Acme Support
    firstMessage: Hi there
    model:
      provider: openai
      model: gpt-4o
    voice: {provider: 11labs, voiceId: burt}
phoneNumbers:
  line:
    provider: vapi
    assistantId: ${assistant.support.id}
"""
ANALYTICS = """\
analytics:
  insights:
    calls:
      type: line
      queries: [{type: vapiql-json, table: call, column: id, operation: count}]
"""


def _validate(tmp_path: Path, text: str) -> list[Diagnostic]:
    (tmp_path / "m.yaml").write_text(text, encoding="utf-8")
    loaded, diags = load_manifest(Path("m.yaml"))
    assert loaded is not None and not diags, [d.format() for d in diags]
    return validate_schema(loaded).sorted()


# (case id, manifest text, "LINE:COL", dotted path, words the message must contain)
BROKEN: list[tuple[str, str, str, str, str]] = [
    ("unknown-top-level", BASE + "extras: {}\n", "14:1", "extras", "unknown field 'extras'"),
    (
        "unknown-in-assistant",
        BASE.replace("    firstMessage", "    nmae: x\n    firstMessage"),
        "5:5",
        "assistants.support.nmae",
        "unknown field 'nmae' (the Vapi API does not accept it here; did you mean 'name'?)",
    ),
    (
        "unknown-nested-in-model",
        BASE.replace("      model: gpt-4o", "      model: gpt-4o\n      temprature: 1"),
        "9:7",
        "assistants.support.model.temprature",
        "unknown field 'temprature'",
    ),
    (
        "name-too-long",
        BASE.replace("Acme Support", "A" * 41),
        "4:5",
        "assistants.support.name",
        "is longer than 40 characters",
    ),
    (
        "model-provider-enum",
        BASE.replace("provider: openai", "provider: opneai"),
        "7:7",
        "assistants.support.model.provider",
        "'opneai' is not one of anthropic, ",
    ),
    (
        "voice-provider-enum",
        BASE.replace("provider: 11labs", "provider: elevenlabs"),
        "9:13",
        "assistants.support.voice.provider",
        "'elevenlabs' is not one of azure, cartesia",
    ),
    (
        "phone-provider-enum",
        BASE.replace("provider: vapi", "provider: twillio"),
        "12:5",
        "phoneNumbers.line.provider",
        "'twillio' is not one of vapi, twilio, vonage, telnyx, byo-phone-number",
    ),
    (
        "insight-type-enum",
        BASE + ANALYTICS.replace("type: line", "type: donut"),
        "17:7",
        "analytics.insights.calls.type",
        "'donut' is not one of bar, pie, line, text",
    ),
    (
        "twilio-missing-account-sid",
        BASE.replace("provider: vapi", "provider: twilio\n    number: '+14155550100'"),
        "12:5",
        "phoneNumbers.line",
        "missing required field 'twilioAccountSid'",
    ),
    (
        "vonage-missing-credential",
        BASE.replace("provider: vapi", "provider: vonage\n    number: '+14155550100'"),
        "12:5",
        "phoneNumbers.line",
        "missing required field 'credentialId'",
    ),
    (
        "twilio-missing-number-without-purchase",
        BASE.replace("provider: vapi", "provider: twilio\n    twilioAccountSid: AC1"),
        "12:5",
        "phoneNumbers.line",
        "missing required field 'number' (or add `purchase` to buy a number)",
    ),
    (
        "error-inside-branch-only",
        BASE.replace("      model: gpt-4o", "      model: gpt-4o\n      temperature: 7"),
        "9:7",
        "assistants.support.model.temperature",
        "7 is greater than the maximum of 2",
    ),
    (
        "wrong-type",
        BASE.replace("    firstMessage", "    maxDurationSeconds: long\n    firstMessage"),
        "5:5",
        "assistants.support.maxDurationSeconds",
        "expected a number, got a string ('long')",
    ),
    (
        "wrong-type-object",
        BASE.replace("    voice: {provider: 11labs, voiceId: burt}", "    voice: burt"),
        "9:5",
        "assistants.support.voice",
        "expected a mapping, got a string ('burt')",
    ),
    (
        "bad-key",
        BASE.replace("  support:", "  Support Bot:"),
        "3:3",
        "assistants.Support Bot",
        "'Support Bot' is not a valid key",
    ),
    (
        "bad-version",
        BASE.replace("version: 1", "version: 2"),
        "1:1",
        "version",
        "2 is not allowed here: must be 1",
    ),
    (
        "missing-version",
        BASE.replace("version: 1\n", ""),
        "1:1",
        "",
        "missing required field 'version'",
    ),
    (
        "lifecycle-typo",
        BASE + "    lifecycle: {preventDestory: true}\n",
        "14:17",
        "phoneNumbers.line.lifecycle.preventDestory",
        "unknown field 'preventDestory' (did you mean 'preventDestroy'?)",
    ),
    (
        "purchase-bad-type",
        BASE.replace("provider: vapi", "provider: twilio\n    twilioAccountSid: AC1")
        + "    purchase: {type: cheap}\n",
        "15:16",
        "phoneNumbers.line.purchase.type",
        "'cheap' is not one of local, toll-free, mobile",
    ),
    (
        "purchase-on-vapi-number",
        BASE + "    purchase: {type: local}\n",
        "14:5",
        "phoneNumbers.line.purchase",
        "unknown field 'purchase'",
    ),
    (
        "moved-bad-address",
        BASE + "moved: [{from: assistant.a, to: robot.b}]\n",
        "14:29",
        "moved[0].to",
        "'robot.b' is not a resource address",
    ),
    (
        "board-item-type",
        BASE
        + "analytics:\n  boards:\n    b: {name: B, layout: {columns: 6}, items: [{type: x}]}\n",
        "16:49",
        "analytics.boards.b.items[0].type",
        "'x' is not one of insight, failed_calls_list",
    ),
]


@pytest.mark.parametrize(
    ("case", "text", "line_col", "path", "words"), BROKEN, ids=[c[0] for c in BROKEN]
)
def test_broken_manifest_is_reported_precisely(
    tmp_path: Path, case: str, text: str, line_col: str, path: str, words: str
) -> None:
    diags = _validate(tmp_path, text)
    rendered = [d.format() for d in diags]
    expected = f"m.yaml:{line_col}: {path + ': ' if path else ''}"
    assert any(r.startswith(expected) and words in r for r in rendered), rendered


def test_valid_full_manifest_has_no_diagnostics(tmp_path: Path) -> None:
    assert [d.format() for d in _validate(tmp_path, VALID)] == []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("name: Acme Support", "name: ${env:A_VERY_LONG_VARIABLE_NAME_FOR_THE_ASSISTANT_NAME}"),
        ("firstMessage: Hi there", "voicemailMessage: ${file:prompts/voicemail.md}"),
        ("firstMessage: Hi there", "firstMessageMode: ${env:MODE}"),
        ("provider: 11labs, voiceId: burt", "provider: '${env:VOICE}', voiceId: burt"),
        ("provider: vapi", "provider: vapi\n    numberDesiredAreaCode: ${env:AREA_CODE}"),
    ],
)
def test_interpolated_strings_are_not_reported(tmp_path: Path, old: str, new: str) -> None:
    text = BASE.replace(old, new)
    assert text != BASE
    assert [d.format() for d in _validate(tmp_path, text)] == []


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        (
            "firstMessage: Hi there",
            "maxDurationSeconds: ${env:MAX_DURATION}",
            "expected a number, got a string ('${env:MAX_DURATION}') (an interpolation always",
        ),
        (
            "firstMessage: Hi there",
            "transcriber: ${env:TRANSCRIBER}",
            "expected a mapping, got a string",
        ),
    ],
)
def test_interpolation_where_no_string_is_allowed(
    tmp_path: Path, old: str, new: str, words: str
) -> None:
    diags = _validate(tmp_path, BASE.replace(old, new))
    assert [d.line for d in diags] == [5]
    assert words in diags[0].summary


def test_unquoted_yaml_date_is_explained(tmp_path: Path) -> None:
    """The loader refuses it (no JSON value), saying how to write it."""
    (tmp_path / "m.yaml").write_text(BASE + ANALYTICS + "      timeRange: {start: 2025-01-01}\n")
    _, diags = load_manifest(Path("m.yaml"))
    assert [d.format() for d in diags] == [
        "m.yaml:19:19: analytics.insights.calls.timeRange.start: 2025-01-01 is a YAML date, "
        "which JSON has no type for; quote it to keep it as text ('2025-01-01')"
    ]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = (
        BASE.replace("Acme Support", "A" * 41)
        .replace("provider: vapi", "provider: twillio")
        .replace("    firstMessage", "    nmae: x\n    firstMessage")
    )
    diags = _validate(tmp_path, text)
    assert [d.line for d in diags] == [4, 5, 13]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("- a\n- list\n", "the manifest must be a mapping"),
        ("just text\n", "the manifest must be a mapping"),
        ("# nothing\n", "the manifest is empty"),
    ],
)
def test_not_a_mapping(tmp_path: Path, text: str, words: str) -> None:
    diags = _validate(tmp_path, text)
    assert len(diags) == 1
    assert words in diags[0].summary
    assert diags[0].line == 1


def test_examples_validate(tmp_path: Path) -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    from provisioner.manifest.environments import parse_environments, select_environment

    for file in sorted(examples.glob("*.yaml")):
        loaded, diags = load_manifest(file)
        assert loaded is not None
        # The schema checks each environment's manifest (`${var.x}` replaced), as validate.
        envs, _ = parse_environments(loaded)
        for env in envs.declared.values() or [None]:
            selected, _ = select_environment(loaded, envs, env)
            assert [d.format() for d in validate_schema(selected.loaded)] == [], (file, env)


# ---------------------------------------------------------------------------------------
# The API schema the emulator validates request bodies with.

MINIMAL_BODIES: dict[str, dict[str, Any]] = {
    "CreateAssistantDTO": {},
    "UpdateAssistantDTO": {"name": "x"},
    "CreateVapiPhoneNumberDTO": {"provider": "vapi"},
    "CreateTwilioPhoneNumberDTO": {
        "provider": "twilio",
        "number": "+14155550100",
        "twilioAccountSid": "AC1",
    },
    "CreateVonagePhoneNumberDTO": {"provider": "vonage", "number": "+1", "credentialId": "c"},
    "CreateTelnyxPhoneNumberDTO": {"provider": "telnyx", "number": "+1", "credentialId": "c"},
    "CreateByoPhoneNumberDTO": {"provider": "byo-phone-number", "credentialId": "c"},
    "UpdateTwilioPhoneNumberDTO": {"name": "x"},
    "CreateStructuredOutputDTO": {"name": "x", "schema": {"type": "string"}},
    "CreateBoardDTO": {"name": "x", "layout": {"columns": 6}},
    **{
        f"Create{t}InsightFromCallTableDTO": {
            "type": t.lower(),
            "queries": [
                {"type": "vapiql-json", "table": "call", "column": "id", "operation": "count"}
            ],
        }
        for t in ("Bar", "Pie", "Line", "Text")
    },
}


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Diagnostics name the file relative to the working directory.
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def api_schema() -> dict[str, Any]:
    text = resources.files("provisioner").joinpath("data/vapi-api.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def _api_errors(api_schema: dict[str, Any], dto: str, body: Any) -> list[str]:
    validator = Draft202012Validator({**api_schema, "$ref": f"#/$defs/{dto}"})
    return [e.message for e in validator.iter_errors(body)]


def test_api_schema_holds_every_kind_dto(api_schema: dict[str, Any]) -> None:
    names = {
        n for k in KINDS.values() for n in (*k.create_schemas.values(), *k.update_schemas.values())
    }
    assert names <= set(api_schema["$defs"])
    Draft202012Validator.check_schema(api_schema)


@pytest.mark.parametrize(("dto", "body"), MINIMAL_BODIES.items(), ids=list(MINIMAL_BODIES))
def test_api_dto_accepts_minimal_body(api_schema: dict[str, Any], dto: str, body: Any) -> None:
    assert _api_errors(api_schema, dto, body) == []


@pytest.mark.parametrize(("dto", "body"), MINIMAL_BODIES.items(), ids=list(MINIMAL_BODIES))
def test_api_dto_rejects_unknown_property(api_schema: dict[str, Any], dto: str, body: Any) -> None:
    errors = _api_errors(api_schema, dto, {**body, "customer": {}})
    assert errors and all("'customer' was unexpected" in e for e in errors), errors


@pytest.mark.parametrize(
    ("dto", "body", "words"),
    [
        ("CreateAssistantDTO", {"model": {"provider": "openai"}}, "'model' is a required"),
        ("CreateAssistantDTO", {"voice": {"provider": "11labs", "voiceId": "x", "y": 1}}, "'y'"),
        ("CreateAssistantDTO", {"name": "x" * 41}, "is too long"),
        ("CreateTwilioPhoneNumberDTO", {"provider": "twilio", "number": "+1"}, "twilioAccountSid"),
        ("CreateVapiPhoneNumberDTO", {"provider": "vapi", "numberDesiredAreaCode": "41"}, "short"),
        ("CreateBoardDTO", {"name": "x", "layout": {"columns": 5}}, "minimum of 6"),
    ],
)
def test_api_dto_rejects_invalid_body(
    api_schema: dict[str, Any], dto: str, body: Any, words: str
) -> None:
    errors = _api_errors(api_schema, dto, body)
    assert any(words in e for e in errors), errors


@pytest.mark.parametrize(
    "body",
    [
        # A preset voice id is also "any string": both branches match; the API accepts it.
        {"voice": {"provider": "11labs", "voiceId": "burt"}},
        {"voice": {"provider": "11labs", "voiceId": "my-cloned-voice"}},
        # Every smart-endpointing branch allows every provider value in the spec.
        {"startSpeakingPlan": {"smartEndpointingPlan": {"provider": "vapi"}}},
        {"startSpeakingPlan": {"smartEndpointingPlan": {"provider": "livekit"}}},
        {"voicemailDetection": "off"},
        {"voicemailDetection": {"provider": "vapi"}},
        {"metadata": {"free": {"form": [1, None]}}},
    ],
)
def test_api_dto_accepts_overlapping_unions(api_schema: dict[str, Any], body: Any) -> None:
    assert _api_errors(api_schema, "CreateAssistantDTO", body) == []
