"""The pull-request Markdown rendering of a plan."""

from __future__ import annotations

from provisioner.plan.model import Action, ActionReason, FieldChange, Plan, ResourceChange
from provisioner.render.markdown import escape_cell, plan_to_markdown
from provisioner.values import Sensitive
from tests.render import SECRETS, check_golden, sample_plan


def test_golden_plan_markdown() -> None:
    check_golden("plan.md", plan_to_markdown(sample_plan(), title="Plan for examples/full.yaml"))


def test_no_secret_in_markdown() -> None:
    text = plan_to_markdown(sample_plan())
    for secret in SECRETS:
        assert secret not in text
    assert "hmac-sha256" not in text


def test_summary_and_table() -> None:
    text = plan_to_markdown(sample_plan())
    assert text.startswith("### Provisioner plan\n")
    assert "**Plan:** 1 to create, 2 to update, 1 to replace, 1 to delete." in text
    assert "| `-/+` | replace | `phoneNumber.main` |" in text
    assert "assistant.faq" not in text  # no-ops are not listed


def test_table_cells_escape_pipes_and_backticks() -> None:
    text = plan_to_markdown(sample_plan())
    [row] = [line for line in text.splitlines() if "`assistant.intake`" in line and "|" in line]
    assert r"Intake \`v2\` \| new" in row
    # The escaped pipe does not add a column.
    assert row.replace(r"\|", "").count("|") == 6


def test_escape_cell() -> None:
    assert escape_cell("a|b`c`\nd") == r"a\|b\`c\` d"
    assert escape_cell("<b>*x*</b>") == r"\<b\>\*x\*\</b\>"


def test_multiline_prompt_is_a_line_diff() -> None:
    text = plan_to_markdown(sample_plan())
    assert "@@ model.messages[0].content -1,3 +1,3 @@" in text
    assert "\n-Be brief.\n+Be brief and friendly.\n" in text
    assert "\n You are the support agent for Acme.\n" in text  # context line
    assert "- model.temperature: 0.5\n+ model.temperature: 0.7\n" in text


def test_each_line_diff_is_a_block_of_its_own() -> None:
    """Lines after a hunk would read as part of it: a prompt's diff has its own block, and
    ordinary `- field:` lines go in another."""
    c = ResourceChange(
        "assistant.a",
        "assistant",
        Action.UPDATE,
        ActionReason.MANIFEST_CHANGED,
        id="x",
        fields=(
            FieldChange(("firstMessage",), "Hi", "Hello"),
            FieldChange(("prompt",), "a\nb\nc", "a\nB\nc"),
            FieldChange(("temperature",), 0.1, 0.2),
        ),
    )
    text = plan_to_markdown(Plan((c,)))
    blocks = text.split("```diff\n")[1:]
    bodies = [b.split("\n```", 1)[0].splitlines() for b in blocks]
    assert bodies == [
        ['- firstMessage: "Hi"', '+ firstMessage: "Hello"'],
        ["@@ prompt -1,3 +1,3 @@", " a", "-b", "+B", " c"],
        ["- temperature: 0.1", "+ temperature: 0.2"],
    ]
    assert "Line diff of `prompt`:\n\n```diff\n@@ prompt" in text


def test_changes_are_collapsible_diff_blocks() -> None:
    text = plan_to_markdown(sample_plan())
    # 5 changes + 1 drift + the dependency graph
    assert text.count("<details>") == text.count("</details>") == 7
    assert "<summary><code>+ assistant.intake</code> (Intake &#96;v2&#96; | new)" in text
    assert "```diff\n" in text
    assert '+ number: "+14155550111"  # forces replacement' in text
    assert "+ assistantId: (known after apply)" in text
    assert "- twilioAuthToken: (sensitive)\n+ twilioAuthToken: (sensitive)" in text


def test_drift_section() -> None:
    text = plan_to_markdown(sample_plan())
    section = text[text.index("#### Changed outside the manifest") :]
    assert "assistant.sales" in section
    assert '- firstMessage: "Hi from sales"\n+ firstMessage: "Hi (edited)"' in section


def test_warning_is_a_blockquote() -> None:
    text = plan_to_markdown(sample_plan())
    assert "\n> **Warning:** phoneNumber.main will be replaced: calls to this number fail" in text


def test_empty_plan_says_no_changes() -> None:
    text = plan_to_markdown(Plan(()), title="Staging")
    assert text == "### Staging\n\n**No changes.** The remote matches the manifest.\n"


def test_deleted_remotely_listed_as_drift_even_without_details() -> None:
    gone = ResourceChange(
        "assistant.a", "assistant", Action.CREATE, ActionReason.DELETED_REMOTELY, after={}
    )
    text = plan_to_markdown(Plan((gone,)))
    assert "- `assistant.a`: deleted outside the manifest" in text


def test_fence_longer_than_backticks_in_values() -> None:
    c = ResourceChange(
        "assistant.a",
        "assistant",
        Action.UPDATE,
        ActionReason.MANIFEST_CHANGED,
        id="x",
        fields=(FieldChange(("firstMessage",), "a", "use ```` fences"),),
    )
    text = plan_to_markdown(Plan((c,)))
    assert "`````diff\n" in text and "\n`````\n" in text


def test_stray_sensitive_value_still_redacted() -> None:
    c = ResourceChange(
        "assistant.a",
        "assistant",
        Action.UPDATE,
        ActionReason.MANIFEST_CHANGED,
        id="x",
        fields=(FieldChange(("k",), Sensitive("leak-me"), "b"),),
        body={"k": Sensitive("leak-me")},
    )
    assert "leak-me" not in plan_to_markdown(Plan((c,)))


def test_long_plans_drop_field_diffs() -> None:
    plan = sample_plan()
    short = plan_to_markdown(plan, max_chars=500)
    # The dependency graph (bounded in size) stays; the changes' field diffs go.
    assert short.count("<details>") == 1 and "too long for one comment" in short
    assert "<summary><code>" not in short and "```mermaid" in short
    assert "**Plan:** 1 to create" in short and "`phoneNumber.main`" in short
    assert "- `assistant.sales` (Sales): 1 field(s) changed remotely" in short
    assert "<details>" in plan_to_markdown(plan, max_chars=None)


def test_moves_listed() -> None:
    text = plan_to_markdown(Plan((), moved=("assistant.a -> assistant.b",)))
    assert "- `assistant.a` has moved to `assistant.b`" in text


def test_multiline_change_in_line_endings_only_is_still_shown() -> None:
    c = ResourceChange(
        "assistant.a",
        "assistant",
        Action.UPDATE,
        ActionReason.MANIFEST_CHANGED,
        id="x",
        fields=(FieldChange(("prompt",), "a\nb", "a\nb\n"),),
    )
    assert "@@ prompt @@  # only line endings changed" in plan_to_markdown(Plan((c,)))
