"""Redaction, the last line of defence (issue #10, item 2 and "Done when" 3): a secret that
reaches a message by any path (here: the API echoing a field set from `${env:}`, an HTTP
library quoting a header) is scrubbed; and nothing any run wrote holds a secret."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from provisioner.redact import forget_all, register_secret, scrub
from tests.conftest import SECRET, Cli
from tests.hardening.conftest import LiveApi

NAME_SECRET = "Acme-Secret-Name-42"
TEXT = """version: 1
assistants:
  support:
    name: ${env:ASSISTANT_NAME}
    firstMessage: Hi there
"""


def test_scrub_catches_escaped_forms() -> None:
    forget_all()
    register_secret("goodtoken-0123\n")
    register_secret("tökén-secret-ü")
    register_secret("short")  # under 8 characters: would match ordinary words
    text = (
        "Illegal header value b'Bearer goodtoken-0123\\n' / tökén-secret-ü / "
        't\\xc3\\xb6k\\xc3\\xa9n-secret-\\xc3\\xbc / "t\\u00f6k\\u00e9n-secret-\\u00fc" / short'
    )
    out = scrub(text)
    assert "goodtoken" not in out and "secret" not in out, out
    assert out.endswith("/ short")
    forget_all()


def test_an_api_error_echoing_an_env_value_is_scrubbed(run: Cli, project: Path) -> None:
    """The sandbox refuses the create and quotes the name: the name came from `${env:}`."""
    (project / "m.yaml").write_text(TEXT)
    env = {"ASSISTANT_NAME": NAME_SECRET, "PROVISIONER_SANDBOX_FAULTS": f"reject={NAME_SECRET}"}
    result = run("apply", "m.yaml", "--sandbox", "--auto-approve", env=env)
    assert result.exit_code == 1, result.output
    assert "was refused (sandbox fault)" in result.output
    assert "'(sensitive)' was refused" in result.output, result.output
    assert NAME_SECRET not in result.output
    as_json = run("apply", "m.yaml", "--sandbox", "--auto-approve", "--json", env=env)
    assert as_json.exit_code == 1
    assert "(sensitive)" in as_json.output and NAME_SECRET not in as_json.output


# Tokens as CI secrets often are: with a trailing newline or spaces, or non-ASCII.
BAD_TOKENS = ["live-token-0123456789\n", "  live-token-0123456789  ", "tökén-0123456789-ü"]


@pytest.mark.parametrize("token", BAD_TOKENS, ids=["newline", "spaces", "non-ascii"])
def test_a_malformed_token_is_never_echoed(
    run: Cli, project: Path, live_api: LiveApi, token: str
) -> None:
    result = run("plan", "examples/small.yaml", env={**live_api.env, "VAPI_TOKEN": token})
    assert token.strip() not in result.output
    assert token.strip().encode("unicode_escape").decode() not in result.output


def _everything_written(project: Path, cache: Path) -> list[tuple[str, str]]:
    """(name, text) of every file under the project and the cache folder; gzip (saved
    plans) decompressed."""
    out = []
    for folder in (project, cache):
        for path in folder.rglob("*"):
            parts = path.relative_to(folder).parts
            # The examples are our input; the emulators' data stands for Vapi's side,
            # which holds what was sent to it (as the real API does).
            if not path.is_file() or parts[:1] in (("examples",), ("org",)) or "emulator" in parts:
                continue
            raw = path.read_bytes()
            if raw.startswith(b"\x1f\x8b"):
                raw = gzip.decompress(raw)
            out.append((str(path), raw.decode("utf-8", errors="replace")))
    return out


def test_no_secret_in_anything_written(
    run: Cli, project: Path, live_api: LiveApi, own_cache: Path
) -> None:
    """Validate, plan (every format, saved), apply (text and JSON), a refused create, the
    outputs, and runs with malformed tokens: then every file those runs wrote and every
    captured output is searched for every secret value."""
    (project / "m.yaml").write_text(
        TEXT + "phoneNumbers:\n  line:\n    provider: twilio\n    number: '+14155550100'\n"
        "    twilioAccountSid: AC0123456789abcdef0123456789abcdef\n"
        "    twilioAuthToken: ${env:TWILIO_AUTH_TOKEN}\n"
        "    assistantId: ${assistant.support.id}\n"
    )
    env = {"ASSISTANT_NAME": NAME_SECRET}
    captured: list[str] = []

    def step(*args: str, extra: dict[str, str] | None = None) -> str:
        result = run(*args, env={**env, **(extra or {})})
        captured.append(result.output)
        return result.output

    step("validate", "m.yaml")
    step("validate", "examples/full.yaml")
    for fmt in ("human", "json", "markdown"):
        (project / f"plan.{fmt}").write_text(step("plan", "m.yaml", "--sandbox", "--format", fmt))
    step("plan", "m.yaml", "--sandbox", "--out", "plan.bin")
    step("apply", "plan.bin", "--sandbox", "--json")
    step("apply", "examples/full.yaml", "--sandbox", "--auto-approve")
    (project / "pr-comment.md").write_text(
        step("plan", "examples/full.yaml", "--sandbox", "--format", "markdown")
    )
    step("output", "m.yaml", "--sandbox", "--json")
    step("state", "show", "m.yaml", "phoneNumber.line", "--sandbox")
    faults = {"PROVISIONER_SANDBOX_FAULTS": f"reject={NAME_SECRET}"}
    step("destroy", "m.yaml", "--sandbox", "--auto-approve")
    step("apply", "m.yaml", "--sandbox", "--auto-approve", extra=faults)
    for token in BAD_TOKENS:
        step("plan", "m.yaml", extra={**live_api.env, "VAPI_TOKEN": token})
    (project / "captured.txt").write_text("\n".join(captured))

    secrets = [NAME_SECRET, SECRET, *(t.strip() for t in BAD_TOKENS)]
    written = _everything_written(project, own_cache)
    assert any(name.endswith("m.json") for name, _ in written)  # the state was written
    for name, text in written:
        for secret in secrets:
            assert secret not in text, f"{secret!r} found in {name}"
            assert json.dumps(secret)[1:-1] not in text, f"{secret!r} (escaped) in {name}"
