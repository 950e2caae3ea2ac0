"""Readable creates: a new resource's nested values as indented blocks and its prompt as
a heredoc, in the human and Markdown plans; secrets stay `(sensitive)`."""

from __future__ import annotations

from pathlib import Path

from provisioner.plan.model import MISSING, FieldChange
from provisioner.render.blocks import create_lines
from provisioner.values import SENSITIVE_TEXT
from tests.conftest import SECRET, Cli
from tests.gitops import FULL, ok
from tests.toolkit import TRICKY

SUPPORT_HUMAN = """\
  + assistant.support (Acme Support) will be created: new in the manifest
      + name: "Acme Support"
      + firstMessage: "Hi, thanks for calling Acme. How can I help?"
      + model: {
          + provider: "openai"
          + model: "gpt-4o"
          + temperature: 0.3
          + messages: [
              + {
                  + role: "system"
                  + content: <<-EOT
                        You are the phone support assistant for Acme Inc.

                        - Greet the caller and ask how you can help.
"""


def test_human_plan_shows_blocks_and_heredocs(run: Cli, project: Path) -> None:
    text = ok(run("plan", FULL, "--sandbox"))
    assert SUPPORT_HUMAN in text
    assert "                        - Never ask for full card numbers or passwords.\n" in text
    assert "                    EOT\n                },\n            ]\n        }\n" in text
    assert '      + endCallPhrases: ["goodbye", "talk to you later"]\n' in text
    assert "      + twilioAuthToken: (sensitive)\n" in text
    assert "\\n" not in text  # no JSON escapes left
    assert SECRET not in text


def test_markdown_plan_shows_the_same_in_a_diff_block(run: Cli, project: Path) -> None:
    Path("tricky.yaml").write_text(TRICKY)
    text = ok(run("plan", "tricky.yaml", "--sandbox", "--format", "markdown"))
    assert (
        "```diff\n"
        '+ name: "Say \\"hi\\" [now] | #1"\n'
        '+ firstMessage: "Hi"\n'
        "+ model: {\n"
        '+     provider: "openai"\n'
        '+     model: "gpt-4o"\n'
        "+     messages: [\n"
        "+         {\n"
        '+             role: "system"\n'
        "+             content: <<-EOT\n"
        "+                 First line of the prompt.\n"
        '+                 Second line, with "quotes".\n'
        "+             EOT\n"
        "+         },\n"
        "+     ]\n"
        "+ }\n"
        "```\n"
    ) in text
    assert "Line diff of" not in text


def test_heredoc_edge_cases() -> None:
    fields = [
        FieldChange(("prompt",), MISSING, "EOT\nends early?\n\x1b[31mred\n"),
        FieldChange(("headers",), MISSING, {"X-Key": SENSITIVE_TEXT, "a b": {}}),
        FieldChange(("ids",), MISSING, []),
    ]
    lines = [("    " * b.depth) + b.text for b in create_lines(fields)]
    assert lines == [
        "prompt: <<-EOT_",
        "    EOT",
        "    ends early?",
        "    \\u001b[31mred",  # a control character cannot reach the terminal
        "EOT_",
        "headers: {",
        "    X-Key: (sensitive)",
        '    "a b": {}',
        "}",
        "ids: []",
    ]
