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
        "reference-to-wrong-kind",
        BASE + "analytics:\n  insights:\n    calls:\n      type: line\n      name: Calls\n"
        "      queries: [{type: vapiql-json, table: call, column: id, operation: count, "
        "name: calls}]\n      timeRange: {start: '-7d', end: now, step: day}\n"
        "  boards:\n    b:\n      name: B\n      layout: {columns: 6}\n      items:\n"
        "        - {type: insight, insightId: '${assistant.support.id}', "
        "position: {x: 0, y: 0}, size: {width: 6, height: 2}}\n",
        "23:",
        "insightId takes an insight ID, but ${assistant.support.id} is the ID of assistant.support",
    ),
    (
        "phone-number-to-an-insight",
        BASE.replace("${assistant.support.id}", "${insight.calls.id}")
        + "analytics:\n  insights:\n    calls:\n      type: line\n      name: Calls\n"
        "      queries: [{type: vapiql-json, table: call, column: id, operation: count, "
        "name: calls}]\n      timeRange: {start: '-7d', end: now, step: day}\n",
        "10:",
        "assistantId takes an assistant ID, but ${insight.calls.id} is the ID of insight.calls",
    ),
    (
        "reference-in-an-unmanaged-id-field",
        BASE.replace("    assistantId:", "    workflowId:"),
        "10:",
        "workflowId takes the ID of something the manifest cannot declare",
    ),
    *(
        (
            case,
            BASE.replace(
                "provider: vapi",
                f"provider: twilio\n    {line10}\n"
                "    twilioAccountSid: AC0123456789abcdef0123456789abcdef\n    twilioAuthToken: t",
            ),
            where,
            words,
        )
        for case, line10, where, words in (
            (
                "purchase-area-code-not-nanp",
                "purchase: {country: US, areaCode: '015'}",
                "10:",
                "'015' is not a US/Canadian area code",
            ),
            (
                "purchase-area-code-outside-us",
                "purchase: {country: GB, areaCode: '415'}",
                "10:",
                "an areaCode can only be asked for in US or CA",
            ),
            (
                "purchase-toll-free-local-area-code",
                "purchase: {type: toll-free, areaCode: '415'}",
                "10:",
                "a toll-free number's area code is one of 800",
            ),
            (
                "purchase-contains",
                "purchase: {contains: 'x!'}",
                "10:",
                "'x!' is not a Twilio number pattern",
            ),
            (
                "purchase-and-number",
                "number: '+14155550100'\n    purchase: {areaCode: '212'}",
                "10:",
                "give either `number` (a number you own) or `purchase`",
            ),
        )
    ),
    (
        "twilio-account-sid-malformed",
        BASE.replace(
            "provider: vapi",
            "provider: twilio\n    number: '+14155550100'\n    twilioAccountSid: AC0123\n"
            "    twilioAuthToken: t",
        ),
        "11:",
        "'AC0123' is not a Twilio Account SID",
    ),
    (
        "twilio-purchase-no-credentials",
        BASE.replace(
            "provider: vapi",
            "provider: twilio\n    purchase: {areaCode: '415'}\n"
            "    twilioAccountSid: AC0123456789abcdef0123456789abcdef",
        ),
        "9:",
        "a Twilio number needs twilioAuthToken (or twilioApiKey and twilioApiSecret)",
    ),
    (
        "vapi-area-code-not-nanp",
        BASE.replace("provider: vapi", "provider: vapi\n    numberDesiredAreaCode: '115'"),
        "10:",
        "'115' is not a US/Canadian area code",
    ),
    (
        "unclosed-interpolation",
        BASE.replace("Hi there", "${file:prompts/support.md"),
        "5:",
        "`${` without a matching `}`",
    ),
    (
        "absolute-file-path",
        BASE.replace("Hi there", "${file:/proc/self/environ}"),
        "5:",
        "${file:/proc/self/environ}: absolute paths are not allowed",
    ),
    (
        "file-outside-the-repository",
        BASE.replace("Hi there", "${file:../../etc/hostname}"),
        "5:",
        "${file:../../etc/hostname} is outside the manifest's repository",
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
    # An unset ${env:} is only a warning without --strict (validating needs no secrets).
    strict = ["--strict"] if case == "missing-env" else []
    result = run("validate", *strict, "m.yaml")
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
    result = run("validate", "--strict", "m.yaml")
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
    result = run("validate", "--strict", "m.yaml", env={"PROVISIONER_TEST_EMPTY": ""})
    assert result.exit_code == 1
    assert "m.yaml:5:" in result.output
    assert "environment variable PROVISIONER_TEST_EMPTY is empty" in result.output


RESOLVED_SECRET = "notanumber-s3cr3t-and-long-enough-to-overflow"
# (case id, manifest text, files to write, expected "LINE:COL:" and words in the message)
RESOLVED_CASES = [
    (
        "name-from-file-too-long",
        BASE.replace("name: Acme Support", "name: ${file:name.txt}"),
        {"name.txt": "Acme Support Desk for the Greater Bay Area"},
        "4:5:",
        "is longer than 40 characters (42) (the value of ${file:name.txt})",
    ),
    (
        "number-from-env-not-e164",
        BASE.replace(
            "provider: vapi",
            "provider: twilio\n    number: ${env:NUM}\n"
            "    twilioAccountSid: AC0123456789abcdef0123456789abcdef\n    twilioAuthToken: t",
        ),
        {},
        "10:5:",
        "(sensitive) is not an E.164 phone number",
    ),
    (
        # RESOLVED_SECRET is over 40 characters: neither it nor its length is shown.
        "name-from-env-too-long",
        BASE.replace("name: Acme Support", "name: ${env:NUM}"),
        {},
        "4:5:",
        "(sensitive) is longer than 40 characters (the value of ${env:NUM})",
    ),
    (
        "enum-from-env",
        BASE.replace("provider: openai", "provider: '${env:NUM}'"),
        {},
        "6:13:",
        "(the value of ${env:NUM})",
    ),
]


@pytest.mark.parametrize(
    ("case", "text", "files", "line", "words"),
    RESOLVED_CASES,
    ids=[c[0] for c in RESOLVED_CASES],
)
def test_resolved_values_are_schema_checked(
    run: Cli, project: Path, case: str, text: str, files: dict[str, str], line: str, words: str
) -> None:
    """What `${env:}` and `${file:}` produce is checked like any value, before any request;
    a secret is never shown in the message."""
    (project / "m.yaml").write_text(text)
    for name, content in files.items():
        (project / name).write_text(content)
    env = {"NUM": RESOLVED_SECRET}
    result = run("validate", "m.yaml", env=env)
    assert result.exit_code == 1, result.output
    assert f"m.yaml:{line}" in result.output, result.output
    assert words in result.output, result.output
    assert RESOLVED_SECRET not in result.output
    assert "notanumber" not in result.output

    applied = run("apply", "m.yaml", "--sandbox", "--auto-approve", env=env)
    assert applied.exit_code == 1, applied.output
    assert "Nothing was changed." in applied.output
    assert RESOLVED_SECRET not in applied.output
    assert not (project / "state/.sandbox/emulator/vapi.json").exists()


def test_diagnostics_are_exactly_file_line_col_path_message(run: Cli, project: Path) -> None:
    """The form editors and CI annotations parse: no `Error:` in front."""
    (project / "m.yaml").write_text(BASE.replace("Acme Support", "A" * 41))
    result = run("validate", "m.yaml", "--sandbox")  # --sandbox is accepted, and changes nothing
    assert result.exit_code == 1
    first = result.output.splitlines()[0]
    name = "'" + "A" * 37 + "…'"
    assert first == f"m.yaml:4:5: assistants.support.name: {name} is longer than 40 characters (41)"


def test_validate_accepts_sandbox(run: Cli, project: Path) -> None:
    result = run("validate", "examples/small.yaml", "--sandbox")
    assert result.exit_code == 0, result.output
    assert "is valid" in result.output


def test_buy_hint_only_on_a_phone_numbers_own_number(run: Cli, project: Path) -> None:
    (project / "m.yaml").write_text(
        BASE.replace(
            "provider: vapi",
            "provider: twilio\n    number: '+14155550100'\n"
            "    twilioAccountSid: AC0123456789abcdef0123456789abcdef\n    twilioAuthToken: t\n"
            "    fallbackDestination: {type: number}",
        )
    )
    result = run("validate", "m.yaml")
    assert result.exit_code == 1
    line = "phoneNumbers.line.fallbackDestination: missing required field 'number'"
    assert line + "\n" in result.output, result.output
    assert "purchase" not in result.output
