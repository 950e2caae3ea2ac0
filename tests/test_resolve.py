"""Resolution of ${env:}, ${file:} and ${KIND.KEY.id}; binding of references."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.manifest.loader import parse_manifest_text
from provisioner.manifest.model import build_manifest
from provisioner.resolve import RefString, bind, resolve_manifest
from provisioner.values import Sensitive, Unknown


def _resolve(tmp_path: Path, text: str, environ: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    path = tmp_path / "m.yaml"
    path.write_text(text)
    loaded, diags = parse_manifest_text(text, "m.yaml", path)
    assert loaded is not None and not diags
    return resolve_manifest(build_manifest(loaded), environ or {})


def test_env_file_and_refs(tmp_path: Path) -> None:
    (tmp_path / "p.md").write_text("be nice\n")
    resolved, diags = _resolve(
        tmp_path,
        """version: 1
assistants:
  a: {name: A, firstMessage: "${file:p.md}"}
phoneNumbers:
  n: {provider: twilio, number: "+14155550100", twilioAccountSid: AC1,
      twilioAuthToken: "${env:TOK}", assistantId: "${assistant.a.id}", name: "x $${literal}"}
""",
        {"TOK": "s3cret"},
    )
    assert not diags
    a = resolved.resources["assistant.a"].body
    assert a["firstMessage"] == "be nice\n"
    n = resolved.resources["phoneNumber.n"]
    assert n.body["twilioAuthToken"] == Sensitive("s3cret")
    assert isinstance(n.body["assistantId"], RefString)
    assert n.body["name"] == "x ${literal}"
    assert n.depends_on == {"assistant.a"}
    assert bind(n.body, {})["assistantId"] == Unknown("assistant.a")
    assert bind(n.body, {"assistant.a": "id-1"})["assistantId"] == "id-1"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("${env:MISSING}", "environment variable MISSING is not set"),
        ("${file:nope.md}", "file not found: nope.md"),
        ("${assistant.ghost.id}", "reference to undeclared resource assistant.ghost"),
        ("${widget.a.id}", "unknown resource kind 'widget'"),
        ("${assistant.a.name}", "only .id can be referenced"),
        ("${whatever}", "cannot understand ${whatever}"),
    ],
)
def test_resolution_errors_name_the_field(tmp_path: Path, value: str, message: str) -> None:
    _, diags = _resolve(
        tmp_path,
        f"""version: 1
assistants:
  a: {{name: A}}
  b:
    name: B
    firstMessage: "{value}"
""",
    )
    [d] = list(diags)
    assert message in d.summary
    assert (d.line, d.path) == (6, "assistants.b.firstMessage")


def test_secret_inside_reference_string_stays_sensitive(tmp_path: Path) -> None:
    resolved, diags = _resolve(
        tmp_path,
        """version: 1
assistants:
  a: {name: A}
  b: {name: B, firstMessage: "${env:T}/${assistant.a.id}"}
""",
        {"T": "tok"},
    )
    assert not diags
    value = bind(resolved.resources["assistant.b"].body, {"assistant.a": "42"})["firstMessage"]
    assert value == Sensitive("tok/42")
