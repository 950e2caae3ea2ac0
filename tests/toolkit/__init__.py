"""The operator's toolkit (issue 15): `show`, `graph`, the Markdown plan's Mermaid graph,
readable creates and shell completion, through the CLI against the sandbox.

`TRICKY` is a manifest whose names hold what breaks diagrams and Markdown: quotes,
brackets, pipes, `#`, `<`, `&`, `%%`, backticks and a newline.
"""

from __future__ import annotations

import re

TRICKY = """\
version: 1
assistants:
  quoted:
    name: 'Say "hi" [now] | #1'
    firstMessage: Hi
    model:
      provider: openai
      model: gpt-4o
      messages:
        - role: system
          content: |
            First line of the prompt.
            Second line, with "quotes".
  angle:
    name: "a <b> & c %% d `e` {f}\\nline two"
    firstMessage: Hello
phoneNumbers:
  line:
    provider: vapi
    name: "x]; y --> z"
    numberDesiredAreaCode: "415"
    assistantId: ${assistant.quoted.id}
"""
# The names as people read them (a newline in a label becomes a space).
TRICKY_NAMES = ('Say "hi" [now] | #1', "a <b> & c %% d `e` {f} line two", "x]; y --> z")


def mermaid_blocks(markdown: str) -> list[str]:
    """The ```mermaid blocks of a Markdown text."""
    return re.findall(r"^```mermaid\n(.*?)^```$", markdown, flags=re.S | re.M)
