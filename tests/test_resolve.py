"""Resolution of ${env:}, ${file:} and ${KIND.KEY.id}; binding of references."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.manifest.loader import parse_manifest_text
from provisioner.manifest.model import build_manifest
from provisioner.resolve import RefString, bind, checkable_document, resolve_manifest
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


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("assistantId", "${assistant.a.id}", None),
        ("workflowId", "${assistant.a.id}", "workflowId takes the ID of something the manifest"),
        ("squadId", "${assistant.a.id}", "squadId takes a squad ID"),
        ("voiceId", "${assistant.a.id}", "voiceId takes the ID of something the manifest"),
        ("insightId", "${assistant.a.id}", "insightId takes an insight ID"),
        # Free-form metadata and fields that are not IDs may hold any ID.
        ("metadata: {insightId", "${assistant.a.id}", None),
        ("firstMessage", "call ${assistant.a.id}", None),
    ],
)
def test_id_fields_take_references_of_their_kind(
    tmp_path: Path, field: str, value: str, error: str | None
) -> None:
    closing = "}" if field.startswith("metadata") else ""
    _, diags = _resolve(
        tmp_path,
        f"""version: 1
assistants:
  a: {{name: A}}
phoneNumbers:
  n: {{provider: vapi, {field}: "{value}"{closing}}}
""",
    )
    if error is None:
        assert not diags, list(diags)
    else:
        [d] = list(diags)
        assert error in d.summary
        assert d.line == 5


def test_files_are_read_only_inside_the_repository(tmp_path: Path) -> None:
    """The repository is the nearest ancestor holding `.git`: `..` may climb to it, not
    beyond; without `.git` the manifest's own folder is the limit."""
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "shared.md").write_text("shared")
    (tmp_path / "secret.txt").write_text("outside")
    deploy = repo / "deploy"
    deploy.mkdir()
    resolved, diags = _resolve(
        deploy,
        'version: 1\nassistants:\n  a: {name: A, firstMessage: "${file:../shared.md}"}\n',
    )
    assert not diags
    assert resolved.resources["assistant.a"].body["firstMessage"] == "shared"

    (repo / "link.md").symlink_to(tmp_path / "secret.txt")
    for rel in ("../../secret.txt", "../link.md"):
        _, diags = _resolve(
            deploy, f'version: 1\nassistants:\n  a: {{name: A, firstMessage: "${{file:{rel}}}"}}\n'
        )
        [d] = list(diags)
        assert f"${{file:{rel}}} is outside the manifest's repository ({repo})" in d.summary

    _, diags = _resolve(
        tmp_path / "repo",
        'version: 1\nassistants:\n  a: {name: A, firstMessage: "${file:/etc/hostname}"}\n',
    )
    [d] = list(diags)
    assert "absolute paths are not allowed" in d.summary


@pytest.mark.parametrize(
    ("text", "unclosed"),
    [
        ("${file:p.md", "'${file:p.md'"),
        ("Hi ${env:T} and ${oops", "'${oops'"),
        ("${file:a ${env:T}", "'${file:a '"),
        ("$${ is a literal, ${", "'${'"),
    ],
)
def test_unclosed_interpolation_is_an_error(tmp_path: Path, text: str, unclosed: str) -> None:
    _, diags = _resolve(
        tmp_path, f'version: 1\nassistants:\n  a: {{name: A, firstMessage: "{text}"}}\n', {"T": "t"}
    )
    [d] = list(diags)
    assert d.summary.startswith(f"{unclosed}: `${{` without a matching `}}`")
    assert d.line == 3


def test_escape_alone_is_not_unclosed(tmp_path: Path) -> None:
    resolved, diags = _resolve(
        tmp_path, 'version: 1\nassistants:\n  a: {name: A, firstMessage: "cost $${x"}\n'
    )
    assert not diags
    assert resolved.resources["assistant.a"].body["firstMessage"] == "cost ${x"


def test_checkable_document_holds_only_interpolated_resources(tmp_path: Path) -> None:
    """The second schema check (of what `${env:}`/`${file:}` produced) sees only the
    resources that use them, resolved, so a large manifest is not checked twice."""
    text = (
        "version: 1\n"
        "assistants:\n"
        "  plain: {name: Plain}\n"
        "  greeted:\n"
        "    {name: Greeted, firstMessage: 'Hi ${env:WHO}', lifecycle: {preventDestroy: true}}\n"
        "phoneNumbers:\n"
        "  line: {provider: vapi, numberDesiredAreaCode: '415',\n"
        "         assistantId: '${assistant.plain.id}'}\n"
    )
    (tmp_path / "m.yaml").write_text(text)
    loaded, diags = parse_manifest_text(text, "m.yaml", tmp_path / "m.yaml")
    assert loaded is not None and not diags
    resolved, rdiags = resolve_manifest(build_manifest(loaded), {"WHO": "Ann"})
    assert not rdiags
    doc, sources = checkable_document(loaded.data, resolved)
    assert doc == {
        "version": 1,
        "assistants": {
            "greeted": {
                "name": "Greeted",
                "firstMessage": "Hi Ann",
                "lifecycle": {"preventDestroy": True},
            }
        },
    }
    assert sources == {("assistants", "greeted", "firstMessage"): ("${env:WHO}",)}
