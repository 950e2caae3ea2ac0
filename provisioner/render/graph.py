"""The dependency graph as a picture: Mermaid (GitHub renders it in comments) and Graphviz DOT.

Presentation only, pure: takes addresses, names, references and a plan's actions, returns
text. Arrows point from a resource to what it references (a phone number to the assistant
that answers it), as in `terraform graph`. Names come from the manifest or the remote and
may hold anything, so each label is escaped for the language it lands in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from provisioner.plan.model import Action, Plan, ResourceChange

__all__ = [
    "MAX_NODES",
    "DependencyGraph",
    "GraphFormat",
    "GraphNode",
    "around_changes",
    "graph_from_plan",
    "graph_of",
    "markdown_section",
    "render_graph",
    "to_dot",
    "to_mermaid",
]

# A graph larger than this is cut to what changes (a picture of 500 boxes says nothing).
MAX_NODES = 40

_SYMBOLS = {
    Action.CREATE: "+",
    Action.UPDATE: "~",
    Action.REPLACE: "-/+",
    Action.DELETE: "-",
    Action.RELEASE: "-",
    Action.NO_OP: "",
}
# (fill, stroke) per action: GitHub's own diff colours, readable in light and dark themes.
_COLOURS = {
    Action.CREATE: ("#dafbe1", "#1a7f37"),
    Action.UPDATE: ("#fff8c5", "#9a6700"),
    Action.REPLACE: ("#fbefff", "#8250df"),
    Action.DELETE: ("#ffebe9", "#cf222e"),
    Action.RELEASE: ("#ffebe9", "#cf222e"),
    Action.NO_OP: ("#f6f8fa", "#6e7781"),
}
_CLASS = {a: a.name.lower() for a in Action}  # Mermaid class names: no "-" in "no-op"


class GraphFormat(StrEnum):
    MERMAID = "mermaid"
    DOT = "dot"


@dataclass(frozen=True, slots=True)
class GraphNode:
    address: str
    name: str | None = None
    # What the plan does to it; None when no plan was given.
    action: Action | None = None

    @property
    def label(self) -> str:
        sym = _SYMBOLS[self.action] if self.action is not None else ""
        name = f" ({self.name})" if self.name else ""
        return f"{sym} {self.address}{name}" if sym else f"{self.address}{name}"


@dataclass(frozen=True, slots=True)
class GraphEdge:
    source: str  # the resource holding the reference
    target: str  # the resource it references
    # A reference the plan takes away (to a resource it deletes): drawn dotted.
    former: bool = False


@dataclass(frozen=True, slots=True)
class DependencyGraph:
    nodes: tuple[GraphNode, ...]
    edges: tuple[GraphEdge, ...]
    # Resources left out of the picture (see `around_changes`).
    left_out: int = 0


def graph_of(
    resources: Mapping[str, tuple[str | None, Iterable[str]]], plan: Plan | None = None
) -> DependencyGraph:
    """The graph of a manifest: `resources` maps each address to (name, addresses it
    references), in manifest order. With `plan`, each node carries its action, and what
    the plan deletes (no longer in the manifest) is added with its former references."""
    changes = {c.address: c for c in _resource_changes(plan)} if plan is not None else {}
    nodes = [GraphNode(a, name) for a, (name, _refs) in resources.items()]
    edges = [GraphEdge(a, r) for a, (_n, refs) in resources.items() for r in sorted(refs)]
    if plan is not None:
        nodes = [
            replace(n, action=changes[n.address].action if n.address in changes else Action.NO_OP)
            for n in nodes
        ]
        gone = [c for c in _resource_changes(plan) if c.address not in resources]
        nodes.extend(GraphNode(c.address, c.name, c.action) for c in gone)
        edges.extend(GraphEdge(c.address, r) for c in gone for r in c.references)
        edges.extend(_former_edges(plan, {(e.source, e.target) for e in edges}))
    return _complete(nodes, edges)


def graph_from_plan(plan: Plan) -> DependencyGraph:
    """The graph of every resource in `plan`, each with its action."""
    changes = _resource_changes(plan)
    nodes = [GraphNode(c.address, c.name, c.action) for c in changes]
    edges = [GraphEdge(c.address, r) for c in changes for r in c.references]
    edges.extend(_former_edges(plan, {(e.source, e.target) for e in edges}))
    return _complete(nodes, edges)


def _resource_changes(plan: Plan) -> list[ResourceChange]:
    """The plan's changes of resources: a pending release is about a number Twilio still
    bills, not a resource of the graph (its entry has a change of its own, or none)."""
    return [c for c in plan.changes if c.action is not Action.RELEASE]


def _former_edges(plan: Plan, known: set[tuple[str, str]]) -> list[GraphEdge]:
    """A delete waits for the resources that referenced it (`depends_on`): those
    references are what the plan takes away."""
    return [
        GraphEdge(d, c.address, former=True)
        for c in plan.changes
        if c.action is Action.DELETE
        for d in c.depends_on
        if (d, c.address) not in known
    ]


def _complete(nodes: list[GraphNode], edges: Iterable[GraphEdge]) -> DependencyGraph:
    """Edges between known nodes only, once each, in a stable order."""
    present = {n.address for n in nodes}
    seen: dict[tuple[str, str], GraphEdge] = {}
    for e in edges:
        if e.source in present and e.target in present and e.source != e.target:
            seen.setdefault((e.source, e.target), e)
    return DependencyGraph(tuple(nodes), tuple(seen.values()))


def around_changes(graph: DependencyGraph, max_nodes: int = MAX_NODES) -> DependencyGraph:
    """The resources that change and their direct neighbours; when that is more than
    `max_nodes`, the changes alone, and at most `max_nodes` of them. `left_out` counts
    the resources not shown."""
    order = [n.address for n in graph.nodes if n.action is not None and n.action.is_change]
    changing = set(order)
    keep = set(changing)
    for e in graph.edges:
        if e.source in changing or e.target in changing:
            keep.update((e.source, e.target))
    if len(keep) > max_nodes:
        keep = set(order[:max_nodes])
    nodes = tuple(n for n in graph.nodes if n.address in keep)
    edges = tuple(e for e in graph.edges if e.source in keep and e.target in keep)
    return DependencyGraph(nodes, edges, left_out=len(graph.nodes) - len(nodes))


# Mermaid --------------------------------------------------------------------------------

# Kept as they are in a Mermaid label; anything else becomes an entity code (`#35;`), so
# no quote, bracket, pipe, `%%`, `<` or `&` can end the label, start a comment or make HTML.
_MERMAID_SAFE = frozenset(" .,:_-/()'+=?!@*~")


def mermaid_label(text: str) -> str:
    """`text` for inside a quoted Mermaid label (`id["..."]`), on one line."""
    out = []
    for ch in " ".join(text.splitlines()):
        if ch.isalnum() or ch in _MERMAID_SAFE:
            out.append(ch)
        elif ch == '"':
            out.append("#quot;")
        else:
            out.append(f"#{ord(ch)};")
    return "".join(out)


def to_mermaid(graph: DependencyGraph) -> str:
    """A Mermaid flowchart, left to right; coloured by action when the nodes have one."""
    ids = {n.address: f"n{i}" for i, n in enumerate(graph.nodes)}
    lines = ["flowchart LR"]
    lines.extend(f'  {ids[n.address]}["{mermaid_label(n.label)}"]' for n in graph.nodes)
    for e in graph.edges:
        arrow = "-.->" if e.former else "-->"
        lines.append(f"  {ids[e.source]} {arrow} {ids[e.target]}")
    used = [a for a in Action if any(n.action is a for n in graph.nodes)]
    for a in used:
        fill, stroke = _COLOURS[a]
        lines.append(f"  classDef {_CLASS[a]} fill:{fill},stroke:{stroke},color:#1f2328")
    for a in used:
        members = ",".join(ids[n.address] for n in graph.nodes if n.action is a)
        lines.append(f"  class {members} {_CLASS[a]}")
    return "\n".join(lines)


# DOT ------------------------------------------------------------------------------------


def dot_string(text: str) -> str:
    """`text` as a DOT quoted string (a newline becomes DOT's centred line break)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "\\n".join(escaped.splitlines() or [""]) + '"'


def to_dot(graph: DependencyGraph) -> str:
    """A Graphviz digraph, left to right; filled by action when the nodes have one."""
    lines = [
        "digraph provisioner {",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontname="Helvetica"];',
    ]
    for n in graph.nodes:
        attrs = f"label={dot_string(n.label)}"
        if n.action is not None:
            fill, stroke = _COLOURS[n.action]
            attrs += f', fillcolor="{fill}", color="{stroke}"'
        lines.append(f"  {dot_string(n.address)} [{attrs}];")
    for e in graph.edges:
        style = " [style=dashed]" if e.former else ""
        lines.append(f"  {dot_string(e.source)} -> {dot_string(e.target)}{style};")
    lines.append("}")
    return "\n".join(lines)


def render_graph(graph: DependencyGraph, fmt: GraphFormat) -> str:
    return to_dot(graph) if fmt is GraphFormat.DOT else to_mermaid(graph)


# The Markdown plan's section -------------------------------------------------------------


def markdown_section(plan: Plan, max_nodes: int = MAX_NODES) -> list[str]:
    """A collapsed `<details>` holding the Mermaid graph of what changes and its direct
    neighbours, for the Markdown plan; empty when nothing changes."""
    if not plan.has_changes:
        return []
    graph = around_changes(graph_from_plan(plan), max_nodes)
    lines = [
        "<details>",
        "<summary>Dependency graph of the changes</summary>",
        "",
        "```mermaid",
        to_mermaid(graph),
        "```",
        "",
        "Arrows point from a resource to what it references; a dotted arrow is a reference "
        "this plan removes.",
    ]
    if graph.left_out:
        shown = {n.address for n in graph.nodes}
        cut = sum(1 for c in plan.pending() if c.address not in shown)
        why = (
            f"the graph is cut to {max_nodes} of the {len(plan.pending())} changes"
            if cut
            else "unchanged, and not next to a change"
        )
        lines.append(f"Left out: {graph.left_out} of the plan's resources ({why}).")
    lines.extend(["", "</details>"])
    return lines
