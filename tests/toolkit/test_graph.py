"""`provisioner graph MANIFEST [--format mermaid|dot] [--plan PLANFILE]`, and the graph
the Markdown plan embeds."""

from __future__ import annotations

import re
from pathlib import Path

from provisioner.plan.model import Action, ActionReason, Plan, ResourceChange
from provisioner.render.graph import (
    MAX_NODES,
    around_changes,
    dot_string,
    graph_from_plan,
    markdown_section,
    mermaid_label,
)
from tests.conftest import Cli
from tests.gitops import FULL, apply_full, cut, edit_manifest, ok
from tests.toolkit import TRICKY, TRICKY_NAMES, mermaid_blocks


def _nodes(mermaid: str) -> dict[str, str]:
    """Mermaid node id -> label."""
    return dict(re.findall(r'^  (n\d+)\["(.*)"\]$', mermaid, flags=re.M))


def _edges(mermaid: str) -> set[tuple[str, str, str]]:
    """(source label, arrow, target label) for every edge."""
    labels = _nodes(mermaid)
    found = re.findall(r"^  (n\d+) (-->|-\.->) (n\d+)$", mermaid, flags=re.M)
    return {(labels[a], arrow, labels[b]) for a, arrow, b in found}


def test_mermaid_graph_of_the_full_example(run: Cli, project: Path) -> None:
    # No secret in the environment: drawing the graph needs none.
    out = ok(run("graph", FULL, env={"TWILIO_AUTH_TOKEN": ""}))
    assert out.startswith("flowchart LR\n")
    labels = set(_nodes(out).values())
    assert len(labels) == 14
    assert "assistant.support (Acme Support)" in labels
    edges = _edges(out)
    assert (
        "phoneNumber.main-line (Acme main line)",
        "-->",
        "assistant.support (Acme Support)",
    ) in edges
    assert (
        "board.overview (Support overview)",
        "-->",
        "insight.calls-per-day (Calls per day)",
    ) in edges
    assert len(edges) == 12
    assert "classDef" not in out  # no plan, no colours


def test_dot_graph(run: Cli, project: Path) -> None:
    out = ok(run("graph", FULL, "--format", "dot"))
    assert out.startswith("digraph provisioner {\n") and out.endswith("}\n")
    assert '  "phoneNumber.main-line" -> "assistant.support";' in out
    assert '"assistant.support" [label="assistant.support (Acme Support)"];' in out


def test_plan_colours_nodes_by_action(run: Cli, project: Path) -> None:
    apply_full(run)
    edit_manifest(FULL, ("temperature: 0.3", "temperature: 0.5"))
    cut(FULL, "    lead-score:", "  insights:")
    ok(run("plan", FULL, "--sandbox", "--out", "plan.bin"))

    out = ok(run("graph", FULL, "--plan", "plan.bin"))
    ids = {label: node for node, label in _nodes(out).items()}
    update = ids["~ assistant.support (Acme Support)"]
    delete = ids["- structuredOutput.lead-score (Lead score)"]  # from the plan alone
    unchanged = ids["assistant.sales (Acme Sales)"]
    assert f"  class {update} update" in out
    assert f"  class {delete} delete" in out
    assert re.search(rf"^  class .*\b{unchanged}\b.* no_op$", out, flags=re.M)
    # What the deleted output referenced, from the state.
    assert (
        "- structuredOutput.lead-score (Lead score)",
        "-->",
        "assistant.sales (Acme Sales)",
    ) in _edges(out)

    dot = ok(run("graph", FULL, "--plan", "plan.bin", "--format", "dot"))
    assert '"assistant.support" [label="~ assistant.support (Acme Support)", fillcolor=' in dot


def test_plan_of_another_manifest_is_refused(run: Cli, project: Path) -> None:
    ok(run("plan", FULL, "--sandbox", "--out", "plan.bin"))
    result = run("graph", "examples/small.yaml", "--plan", "plan.bin")
    assert result.exit_code == 1
    assert f"plan.bin was made from {FULL}, not examples/small.yaml" in result.output


def test_invalid_manifest_is_reported_not_drawn(run: Cli, project: Path) -> None:
    Path("bad.yaml").write_text("version: 1\nassistants:\n  a: {name: A, bogus: 1}\n")
    result = run("graph", "bad.yaml")
    assert result.exit_code == 1
    assert "bad.yaml:3:" in result.output and "Cannot draw the graph of bad.yaml." in result.output
    assert "Traceback" not in result.output and "flowchart" not in result.output


def test_labels_escaped_in_both_languages(run: Cli, project: Path) -> None:
    Path("tricky.yaml").write_text(TRICKY)
    mermaid = ok(run("graph", "tricky.yaml"))
    for label in _nodes(mermaid).values():
        # Nothing that could end the label, open a comment or make HTML.
        bare = re.sub(r"#(quot|\d+);", "", label)
        assert not set(bare) & set('"[]|<>&%`{};#\n'), label
    assert mermaid_label(TRICKY_NAMES[0]) == "Say #quot;hi#quot; #91;now#93; #124; #35;1"
    dot = ok(run("graph", "tricky.yaml", "--format", "dot"))
    assert 'label="assistant.quoted (Say \\"hi\\" [now] | #1)"' in dot
    assert 'label="assistant.angle (a <b> & c %% d `e` {f}\\nline two)"' in dot
    assert dot_string('back\\slash "q"') == '"back\\\\slash \\"q\\""'


def test_markdown_plan_embeds_the_graph_of_the_changes(run: Cli, project: Path) -> None:
    apply_full(run)
    edit_manifest(FULL, ("temperature: 0.3", "temperature: 0.5"))
    text = ok(run("plan", FULL, "--sandbox", "--format", "markdown"))
    assert "<details>\n<summary>Dependency graph of the changes</summary>" in text
    (block,) = mermaid_blocks(text)
    labels = set(_nodes(block).values())
    # The changed assistant and its direct neighbours; nothing else.
    assert "~ assistant.support (Acme Support)" in labels
    assert "phoneNumber.main-line (Acme main line)" in labels
    assert "assistant.sales (Acme Sales)" not in labels
    assert "board.overview (Support overview)" not in labels
    assert len(labels) == 5
    assert "Left out: 9 of the plan's resources (unchanged, and not next to a change)." in text


def test_no_graph_without_changes(run: Cli, project: Path) -> None:
    apply_full(run)
    text = ok(run("plan", FULL, "--sandbox", "--format", "markdown"))
    assert "**No changes.**" in text and "mermaid" not in text


def _change(address: str, action: Action, refs: tuple[str, ...] = ()) -> ResourceChange:
    return ResourceChange(
        address, address.split(".")[0], action, ActionReason.UNCHANGED, references=refs
    )


def test_large_graphs_are_cut_to_the_changes() -> None:
    # 60 numbers, each routed to one of 3 assistants; 3 numbers change, so the changes
    # and their neighbours are 6; 45 numbers changing exceed the limit: changes only.
    assistants = [_change(f"assistant.a{i}", Action.NO_OP) for i in range(3)]

    def numbers(changing: int) -> list[ResourceChange]:
        return [
            _change(
                f"phoneNumber.n{i:02}",
                Action.UPDATE if i < changing else Action.NO_OP,
                (f"assistant.a{i % 3}",),
            )
            for i in range(60)
        ]

    small = around_changes(graph_from_plan(Plan((*assistants, *numbers(3)))))
    assert len(small.nodes) == 6 and small.left_out == 57
    assert len(small.edges) == 3

    big_plan = Plan((*assistants, *numbers(45)))
    big = around_changes(graph_from_plan(big_plan))
    assert len(big.nodes) == MAX_NODES and big.left_out == 63 - MAX_NODES
    assert all(n.action is Action.UPDATE for n in big.nodes)
    section = "\n".join(markdown_section(big_plan))
    assert (
        f"Left out: {63 - MAX_NODES} of the plan's resources "
        "(the graph is cut to 40 of the 45 changes)." in section
    )
