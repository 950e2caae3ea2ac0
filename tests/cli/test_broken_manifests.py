"""Every class of manifest mistake: exit 1, a message naming the file, line and field,
no traceback, and nothing touched remotely or in state."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Cli

BASE = """version: 1
assistants:
  support:
    name: Acme Support
    firstMessage: Hi there
    model: {provider: openai, model: gpt-4o}
phoneNumbers:
  line:
    provider: vapi
    assistantId: ${assistant.support.id}
"""

# (case id, manifest text, expected "LINE:" prefix after the file name, words in the message)
CASES = [
    ("yaml-syntax", BASE + "  broken: [1, 2\n", "12:", "YAML syntax error"),
    ("duplicate-key", BASE + "  line:\n    provider: vapi\n", "11:", "duplicate key 'line'"),
    ("unknown-top-level", BASE + "extras: {}\n", "11:", "extras"),
    (
        "unknown-field",
        BASE.replace("    firstMessage", "    nmae: x\n    firstMessage"),
        "5:",
        "nmae",
    ),
    ("name-too-long", BASE.replace("Acme Support", "A" * 41), "4:", "40"),
    ("model-provider-enum", BASE.replace("provider: openai", "provider: opneai"), "6:", "opneai"),
    ("phone-provider-enum", BASE.replace("provider: vapi", "provider: twillio"), "9:", "twillio"),
    (
        "twilio-missing-sid",
        BASE.replace("provider: vapi", "provider: twilio\n    number: '+14155550100'"),
        "9:",
        "twilioAccountSid",
    ),
    (
        "bad-key",
        BASE.replace("  support:", "  Support Bot:").replace("assistant.support", "assistant.x"),
        "3:",
        "Support Bot",
    ),
    ("bad-version", BASE.replace("version: 1", "version: 2"), "1:", "version"),
    (
        "wrong-type",
        BASE.replace("    firstMessage", "    maxDurationSeconds: long\n    firstMessage"),
        "5:",
        "maxDurationSeconds",
    ),
    (
        "unknown-reference",
        BASE.replace("assistant.support.id", "assistant.ghost.id"),
        "10:",
        "assistant.ghost",
    ),
    (
        "bad-reference-attribute",
        BASE.replace("assistant.support.id", "assistant.support.name"),
        "10:",
        ".id",
    ),
    (
        "missing-env",
        BASE.replace("Hi there", "${env:PROVISIONER_TEST_UNSET}"),
        "5:",
        "PROVISIONER_TEST_UNSET",
    ),
    ("missing-file", BASE.replace("Hi there", "${file:prompts/nope.md}"), "5:", "prompts/nope.md"),
    (
        "cycle",
        BASE.replace("Hi there", "${assistant.other.id}").replace(
            "phoneNumbers:",
            "  other:\n    name: Other\n    firstMessage: ${assistant.support.id}\nphoneNumbers:",
        ),
        "3:",
        "cycle",
    ),
    (
        "insight-type",
        BASE + "analytics:\n  insights:\n    x: {type: donut, queries: []}\n",
        "13:",
        "donut",
    ),
    ("lifecycle-typo", BASE + "    lifecycle: {preventDestory: true}\n", "11:", "preventDestory"),
    ("not-a-mapping", "- just\n- a list\n", "1:", "mapping"),
    (
        "twilio-number-not-e164",
        BASE.replace(
            "provider: vapi",
            "provider: twilio\n    number: '4155550100'\n    twilioAccountSid: AC1",
        ),
        "10:",
        "not an E.164 phone number",
    ),
    (
        "byo-number-not-e164",
        BASE.replace(
            "provider: vapi", "provider: byo-phone-number\n    number: '1001'\n    credentialId: c"
        ),
        "10:",
        "not an E.164 phone number",
    ),
    (
        "sip-uri",
        BASE.replace("provider: vapi", "provider: vapi\n    sipUri: support"),
        "10:",
        "SIP",
    ),
    (
        "purchase-area-code",
        BASE.replace(
            "provider: vapi",
            "provider: twilio\n    purchase: {areaCode: '41'}\n    twilioAccountSid: AC1",
        ),
        "10:",
        "areaCode",
    ),
    (
        "voice-missing-voice-id",
        BASE.replace("    model:", "    voice: {provider: 11labs}\n    model:"),
        "6:13:",
        "voiceId",
    ),
]


@pytest.mark.parametrize(("case", "text", "line", "words"), CASES, ids=[c[0] for c in CASES])
def test_broken_manifest(
    run: Cli, project: Path, case: str, text: str, line: str, words: str
) -> None:
    (project / "m.yaml").write_text(text)
    result = run("validate", "m.yaml")
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert f"m.yaml:{line}" in result.output, result.output
    assert words in result.output, result.output

    applied = run("apply", "m.yaml", "--sandbox", "--auto-approve")
    assert applied.exit_code == 1
    assert "Nothing was changed." in applied.output
    assert not (project / "state/.sandbox/m.json").exists()
    assert not (project / "state/.sandbox/emulator/vapi.json").exists()


def test_all_problems_reported_at_once(run: Cli, project: Path) -> None:
    text = BASE.replace("Acme Support", "A" * 41).replace("provider: vapi", "provider: twillio")
    text = text.replace("Hi there", "${env:PROVISIONER_TEST_UNSET}")
    (project / "m.yaml").write_text(text)
    result = run("validate", "m.yaml")
    assert result.exit_code == 1
    assert "3 problems found" in result.output
    for line in ("m.yaml:4:", "m.yaml:5:", "m.yaml:9:"):
        assert line in result.output


def test_missing_manifest_file(run: Cli) -> None:
    result = run("validate", "nope.yaml")
    assert result.exit_code == 1
    assert "manifest file not found: nope.yaml" in result.output


def test_usage_error_exits_1(run: Cli) -> None:
    result = run("plan")
    assert result.exit_code == 1
    assert "Missing argument" in result.output


def test_empty_secret_is_refused(run: Cli, project: Path) -> None:
    """CI expands an undefined secret to "": that must not be sent as the secret."""
    (project / "m.yaml").write_text(BASE.replace("Hi there", "${env:PROVISIONER_TEST_EMPTY}"))
    result = run("validate", "m.yaml", env={"PROVISIONER_TEST_EMPTY": ""})
    assert result.exit_code == 1
    assert "m.yaml:5:" in result.output
    assert "environment variable PROVISIONER_TEST_EMPTY is empty" in result.output
