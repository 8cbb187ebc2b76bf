"""What a pass changed: a tree diff of two loop-nest graphs, and a line diff of two printouts.

Children of matched nodes are aligned by their labels (``difflib``), so an
inserted nest shows as *added* (with everything inside it), a dropped update
as *removed*, and a statement whose text changed in place as *changed*.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import networkx as nx

SAME, ADDED, REMOVED, CHANGED = "same", "added", "removed", "changed"


def _children(g: nx.DiGraph, n: str) -> list[str]:
    kids = [c for c in g.successors(n) if g.edges[n, c].get("kind") == "nest"]
    return sorted(kids, key=lambda c: int(c[1:]))


def _mark_subtree(g: nx.DiGraph, n: str, status: str, out: dict[str, str]) -> None:
    out[n] = status
    for c in _children(g, n):
        _mark_subtree(g, c, status, out)


def tree_diff(before: nx.DiGraph, after: nx.DiGraph) -> tuple[dict[str, str], dict[str, str]]:
    """Status of every node of ``before`` (same/removed/changed) and of ``after`` (same/added/changed)."""
    sb: dict[str, str] = {}
    sa: dict[str, str] = {}

    def walk(b: str, a: str) -> None:
        sb[b] = sa[a] = SAME if before.nodes[b]["label"] == after.nodes[a]["label"] else CHANGED
        kb, ka = _children(before, b), _children(after, a)
        lb = [before.nodes[x]["kind"] + ":" + before.nodes[x]["label"] for x in kb]
        la = [after.nodes[x]["kind"] + ":" + after.nodes[x]["label"] for x in ka]
        for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=lb, b=la, autojunk=False).get_opcodes():
            if op == "equal":
                for x, y in zip(kb[i1:i2], ka[j1:j2]):
                    walk(x, y)
            elif op == "replace":
                pairs = list(zip(kb[i1:i2], ka[j1:j2]))
                for x, y in pairs:
                    if before.nodes[x]["kind"] == after.nodes[y]["kind"]:
                        walk(x, y)
                    else:
                        _mark_subtree(before, x, REMOVED, sb)
                        _mark_subtree(after, y, ADDED, sa)
                for x in kb[i1 + len(pairs):i2]:
                    _mark_subtree(before, x, REMOVED, sb)
                for y in ka[j1 + len(pairs):j2]:
                    _mark_subtree(after, y, ADDED, sa)
            elif op == "delete":
                for x in kb[i1:i2]:
                    _mark_subtree(before, x, REMOVED, sb)
            else:
                for y in ka[j1:j2]:
                    _mark_subtree(after, y, ADDED, sa)

    walk("n0", "n0")
    return sb, sa


def line_diff(before: str, after: str) -> list[tuple[str, str]]:
    """``(mark, line)`` for every line of ``after`` and every removed line of ``before``:
    mark is ``' '`` (kept), ``'+'`` (added) or ``'-'`` (removed)."""
    a, b = before.splitlines(), after.splitlines()
    out: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            out += [(" ", x) for x in b[j1:j2]]
        else:
            out += [("-", x) for x in a[i1:i2]]
            out += [("+", x) for x in b[j1:j2]]
    return out
