"""The plan as GitHub-flavoured Markdown: what a bot posts on a pull request.

Layout: a title, the summary line ("**Plan:** 2 to create, ..." or "No changes"),
warnings as a blockquote, a table of pending changes, then one collapsible `<details>`
block per change holding its field diff in a fenced ```diff block (each multi-line
string, such as a system prompt, as a line diff in a block of its own), and a "Changed
outside the manifest" section for drift.

Presentation only: takes a Plan, returns a string. Values arrive already redacted
(secrets as "(sensitive)"); `ResourceChange.body` is never read. Text from the
manifest or the remote is escaped for the context it lands in: table cells (`|`,
backticks, Markdown punctuation), HTML (`<summary>`), and fenced blocks (the fence is
made longer than any backtick run inside).
"""

from __future__ import annotations

import difflib
import html
import json
import re
from collections.abc import Iterable
from typing import Any

from provisioner.plan.model import MISSING, Action, FieldChange, Plan, ResourceChange
from provisioner.render.blocks import create_lines
from provisioner.render.costs import describe_purchase, format_cost
from provisioner.render.escape import visible
from provisioner.render.graph import markdown_section
from provisioner.render.human import (  # the terminal's marks and words
    SYMBOLS,
    partial_notice,
    summary_counts,
)
from provisioner.render.json import as_json_data
from provisioner.values import KNOWN_AFTER_APPLY, SENSITIVE_TEXT, Sensitive, Unknown

__all__ = ["DEFAULT_MAX_CHARS", "SYMBOLS", "drift_to_markdown", "escape_cell", "plan_to_markdown"]

_VERBS = {
    Action.CREATE: "create",
    Action.UPDATE: "update",
    Action.REPLACE: "replace",
    Action.DELETE: "delete",
    Action.RELEASE: "release",
    Action.FORGET: "forget",
    Action.NO_OP: "no change",
}
# GitHub refuses comments over 65,536 characters; leave room for a bot's own text.
DEFAULT_MAX_CHARS = 60_000
_DEFAULT_TITLE = "Provisioner plan"
_DRIFT_TITLE = "Provisioner drift check"
_CELL_SPECIAL = re.compile(r"([\\`*_\[\]|<>#~])")
_COMPACT_WIDTH = 80


def plan_to_markdown(
    plan: Plan, *, title: str | None = None, max_chars: int | None = DEFAULT_MAX_CHARS
) -> str:
    """Render `plan` for a pull-request comment.

    Args:
        plan: the plan to render.
        title: heading text (plain text, escaped); "Provisioner plan" by default.
        max_chars: if the full rendering is longer, field diffs are left out (the table,
            drift list and warnings stay) with a note saying so; None never shortens.

    Returns:
        Markdown text ending with a newline.
    """
    full = visible(_render(plan, title, details=True))
    if max_chars is None or len(full) <= max_chars:
        return full
    return visible(_render(plan, title, details=False))


def drift_to_markdown(
    plan: Plan, *, title: str | None = None, max_chars: int | None = DEFAULT_MAX_CHARS
) -> str:
    """Only the drift of `plan` (`drift --format markdown`, e.g. for an issue a scheduled
    job opens): what was changed outside the manifest, field by field. Same arguments as
    `plan_to_markdown`; ends with a newline."""
    full = visible(_render_drift(plan, title, details=True))
    if max_chars is None or len(full) <= max_chars:
        return full
    return visible(_render_drift(plan, title, details=False))


def _render_drift(plan: Plan, title: str | None, *, details: bool) -> str:
    out: list[str] = [f"### {_escape_text(title or _DRIFT_TITLE)}", ""]
    drifted = plan.drifted()
    if not drifted:
        out.append("**No drift.** The remote matches what was last applied.")
        return "\n".join(out) + "\n"
    out.append(f"**Drift:** {len(drifted)} resource(s) changed outside the manifest.")
    out.append("")
    out.extend(_drift_section(drifted, details=details))
    return "\n".join(out).rstrip("\n") + "\n"


def _drift_section(drifted: Iterable[ResourceChange], *, details: bool) -> list[str]:
    out = [
        "#### Changed outside the manifest",
        "",
        "These were edited remotely (for example in the dashboard) since the last apply:",
        "",
    ]
    for c in drifted:
        out.extend(_drift_entry(c, details=details))
    out.append("")
    return out


def _render(plan: Plan, title: str | None, *, details: bool) -> str:
    heading = title or _DEFAULT_TITLE
    if plan.environment is not None:
        heading += f" for {plan.environment}"
    out: list[str] = [f"### {_escape_text(heading)}", ""]
    if plan.partial:
        for i, line in enumerate(partial_notice(plan)):
            out.append(
                f"> **Warning:** {_escape_text(line)}" if i == 0 else f"> {_escape_text(line)}"
            )
        out.append("")
    pending = plan.pending()
    if pending:
        out.append(_summary(plan))
    else:
        out.append("**No changes.** The remote matches the manifest.")
    out.append("")
    if plan.cost is not None and (pending or plan.cost.get("numbers")):
        out.extend(_escape_text(line.strip()) for line in format_cost(plan.cost)[:1])
        out.append("")
    if plan.moved:
        for m in plan.moved:
            source, _, target = m.partition(" -> ")
            out.append(f"- `{source}` has moved to `{target}`")
        out.append("")
    for r in plan.reads:
        named = f" ({_escape_text(r.name)})" if r.name else ""
        out.append(f"- `{r.address}`{named} read: `{r.id}` (looked up, never changed)")
    if plan.reads:
        out.append("")
    if plan.warnings:
        for i, w in enumerate(plan.warnings):
            if i:
                out.append(">")
            out.append(f"> **Warning:** {_escape_text(w)}")
        out.append("")
    if pending:
        out.extend(_table(pending))
        out.append("")
        out.extend([*markdown_section(plan), ""])
        if details:
            for c in pending:
                out.extend(_change_details(c))
                out.append("")
        else:
            out.append(
                "_Field diffs left out: the plan is too long for one comment. "
                "Run `provisioner plan` to see them._"
            )
            out.append("")
    drifted = plan.drifted()
    if drifted:
        out.extend(_drift_section(drifted, details=details))
    return "\n".join(out).rstrip("\n") + "\n"


def _summary(plan: Plan) -> str:
    return f"**Plan:** {summary_counts(plan)}"


def _table(changes: Iterable[ResourceChange]) -> list[str]:
    rows = [
        "| | Action | Address | Name | Reason |",
        "| :-: | --- | --- | --- | --- |",
    ]
    for c in changes:
        name = escape_cell(c.name) if c.name else ""
        rows.append(
            f"| `{SYMBOLS[c.action]}` | {_VERBS[c.action]} | `{c.label}` | {name} "
            f"| {escape_cell(c.reason.value)} |"
        )
    return rows


def _summary_tag(sym: str, c: ResourceChange, text: str) -> str:
    name = f" ({_html(c.name)})" if c.name else ""
    return f"<summary><code>{_html(sym)} {_html(c.label)}</code>{name}: {text}</summary>"


def _html(text: str) -> str:
    """Text for HTML inside Markdown: entities, and backticks so no code span starts."""
    return html.escape(text).replace("`", "&#96;")


def _change_details(c: ResourceChange) -> list[str]:
    verb = {
        Action.CREATE: "will be created",
        Action.UPDATE: "will be updated in place",
        Action.REPLACE: "must be replaced",
        Action.DELETE: "will be deleted",
        Action.RELEASE: "will be released at Twilio",
        Action.FORGET: "will no longer be managed",
    }[c.action]
    text = _html(f"{verb} ({c.reason.value})")
    out = ["<details>", _summary_tag(SYMBOLS[c.action], c, text), ""]
    if c.id:
        out.append(f"ID: `{_code_span_text(c.id)}`")
        out.append("")
    for w in c.warnings:
        out.append(f"> **Warning:** {_escape_text(w)}")
        out.append("")
    if c.purchase is not None and c.action is not Action.UPDATE:
        text = describe_purchase(c.purchase, pending=c.action is Action.RELEASE)
        out.append(f"**Phone number:** {_escape_text(text)}")
        out.append("")
    blocks = _create_block(c.fields) if c.action is Action.CREATE else _diff_blocks(c.fields)
    if blocks:
        out.extend(blocks)
    else:
        out.append("_No field-level changes to show._")
    if c.origins:
        out.append("")
        out.extend(
            f"- `{_code_span_text(p)}` set for this environment by {_escape_text(o)}"
            for p, o in c.origins
        )
    out.extend(["", "</details>"])
    return out


def _drift_entry(c: ResourceChange, *, details: bool) -> list[str]:
    if not c.drift:
        name = f" ({escape_cell(c.name)})" if c.name else ""
        return [f"- `{c.address}`{name}: deleted outside the manifest"]
    text = _html(f"{len(c.drift)} field(s) changed remotely")
    if not details:
        name = f" ({escape_cell(c.name)})" if c.name else ""
        return [f"- `{c.address}`{name}: {len(c.drift)} field(s) changed remotely"]
    return [
        "<details>",
        _summary_tag("~", c, text),
        "",
        "`-` is what the last apply set, `+` is what the remote holds now.",
        "",
        *_diff_blocks(c.drift, drift_section=True),
        "",
        "</details>",
        "",
    ]


def _create_block(fields: Iterable[FieldChange]) -> list[str]:
    """A new resource's values in one ```diff block, nested values indented, multi-line
    text as a heredoc (as the human plan shows them)."""
    lines = [f"+ {'    ' * b.depth}{b.text}" if b.text else "+" for b in create_lines(fields)]
    return _fenced("diff", lines) if lines else []


def _diff_blocks(fields: Iterable[FieldChange], *, drift_section: bool = False) -> list[str]:
    """The fields' diff: one-line values together in one ```diff block, and each line
    diff (a prompt) in a block of its own, so nothing after a hunk reads as part of it."""
    out: list[str] = []
    simple: list[str] = []
    for f in fields:
        lines, line_diff = _field_lines(f, drift_section=drift_section)
        if not line_diff:
            simple.extend(lines)
            continue
        if simple:
            out.extend([*_fenced("diff", simple), ""])
            simple = []
        out.extend(
            [f"Line diff of `{_code_span_text(f.dotted)}`:", "", *_fenced("diff", lines), ""]
        )
    if simple:
        out.extend(_fenced("diff", simple))
    while out and out[-1] == "":
        out.pop()
    return out


def _field_lines(f: FieldChange, *, drift_section: bool = False) -> tuple[list[str], bool]:
    """The diff lines of one field, and whether they are a line diff (a multi-line text)."""
    notes = []
    if f.forces_replace:
        notes.append("forces replacement")
    if f.drift and not drift_section:
        notes.append("changed outside the manifest")
    note = f"  # {', '.join(notes)}" if notes else ""
    before = None if f.before is MISSING else _text(f.before)
    after = None if f.after is MISSING else _text(f.after)
    multiline = any(t is not None and "\n" in t for t in (before, after))
    if not multiline:
        out: list[str] = []
        if before is not None:
            out.append(f"- {f.dotted}: {before}")
        if after is not None:
            out.append(f"+ {f.dotted}: {after}{note}")
        elif note and out:
            out[-1] += note
        return out, False
    # A line diff, so a one-line edit in a long prompt reads as one line; each hunk
    # header names the field.
    out = []
    old = before.splitlines() if before is not None else []
    new = after.splitlines() if after is not None else []
    for line in difflib.unified_diff(old, new, lineterm="", n=3):
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("@@ "):
            line = f"@@ {f.dotted} {line[3:]}{note}"
        out.append(line)
    if not out:
        out.append(f"@@ {f.dotted} @@  # only line endings changed{note.replace('  #', ',')}")
    return out, True


def _text(value: Any) -> str:
    """A value as diff text: markers bare, strings raw if multi-line, else JSON."""
    if isinstance(value, Unknown) or value == KNOWN_AFTER_APPLY:
        return KNOWN_AFTER_APPLY
    if isinstance(value, Sensitive) or value == SENSITIVE_TEXT:
        return SENSITIVE_TEXT
    if isinstance(value, str) and "\n" in value:
        return value
    data = as_json_data(value)
    compact = json.dumps(data, ensure_ascii=False)
    if len(compact) <= _COMPACT_WIDTH or not isinstance(data, dict | list):
        return compact
    return json.dumps(data, ensure_ascii=False, indent=2)


def _fenced(lang: str, lines: list[str]) -> list[str]:
    """A fenced code block whose fence is longer than any backtick run in `lines`."""
    longest = max((len(m) for line in lines for m in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{lang}", *lines, fence]


def escape_cell(text: str) -> str:
    """Text made safe for a Markdown table cell: one line, `|`, backticks and Markdown
    punctuation backslash-escaped."""
    one_line = " ".join(text.splitlines())
    return _CELL_SPECIAL.sub(r"\\\1", one_line)


def _escape_text(text: str) -> str:
    """Plain text in Markdown prose (headings, blockquotes): same escaping as cells."""
    return escape_cell(text)


def _code_span_text(text: str) -> str:
    return text.replace("`", "'")
