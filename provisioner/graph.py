"""The dependency graph between resources, from their `${KIND.KEY.id}` references. Pure.

Creates and updates run after what they reference; deletes run in reverse, after
everything that referenced the deleted resource has moved away from it.
"""

from __future__ import annotations

import graphlib
from collections.abc import Iterable, Mapping


def find_cycle(edges: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A dependency cycle as a list of addresses (first repeated at the end), or None."""
    sorter = graphlib.TopologicalSorter({k: set(v) for k, v in edges.items()})
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle = list(exc.args[1])
        # graphlib lists the cycle against edge direction; show it as "a -> b -> a".
        return list(reversed(cycle))
    return None


def topological_order(edges: Mapping[str, Iterable[str]]) -> list[str]:
    """Addresses ordered so that each comes after its dependencies; ties by name."""
    sorter = graphlib.TopologicalSorter({k: set(v) for k, v in edges.items()})
    sorter.prepare()
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        order.extend(ready)
        sorter.done(*ready)
    return order


def depth(edges: Mapping[str, Iterable[str]]) -> int:
    """Length of the longest dependency chain (1 for independent resources)."""
    memo: dict[str, int] = {}

    def d(node: str) -> int:
        if node not in memo:
            memo[node] = 1 + max((d(x) for x in edges.get(node, ()) if x in edges), default=0)
        return memo[node]

    return max((d(n) for n in edges), default=0)
