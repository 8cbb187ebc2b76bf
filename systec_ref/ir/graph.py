"""A ``networkx.DiGraph`` view of a loop nest — what :mod:`systec_ref.viz` draws.

Nodes are the statements (program, loops, conditionals, blocks, lets and
assignments), numbered in pre-order so the same program always gives the same
graph.  ``nest`` edges go from a statement to the statements it contains,
``next`` edges from a statement to the one that follows it in the same block.
"""

from __future__ import annotations

import networkx as nx

from .nodes import Assign, Block, If, Let, Loop, Permute, Program, SparseLevel, Stmt
from .printer import fmt_cond, fmt_face, fmt_index, fmt_stmt


def to_graph(p: Program) -> nx.DiGraph:
    g = nx.DiGraph(name=p.name)
    counter = iter(range(1 << 62))

    def add(kind: str, label: str, parent: str | None, depth: int) -> str:
        node = f"n{next(counter)}"
        g.add_node(node, kind=kind, label=label, depth=depth)
        if parent is not None:
            g.add_edge(parent, node, kind="nest")
        return node

    def block(b: Block, parent: str, depth: int) -> None:
        prev = None
        if b.comment:
            parent = add("block", b.comment, parent, depth)
            depth += 1
        for s in b.body:
            node = stmt(s, parent, depth)
            if prev is not None:
                g.add_edge(prev, node, kind="next")
            prev = node

    def stmt(s: Stmt, parent: str, depth: int) -> str:
        if isinstance(s, Loop):
            step = f" step {s.step}" if s.step != 1 else ""
            node = add("loop", f"for {s.var} in {fmt_index(s.lo)}..{fmt_index(s.hi)}{step}", parent, depth)
            block(s.body, node, depth + 1)
        elif isinstance(s, If):
            node = add("if", f"if {fmt_cond(s.cond)}", parent, depth)
            block(s.then, node, depth + 1)
            if s.orelse is not None:
                other = add("else", "else", node, depth + 1)
                block(s.orelse, other, depth + 2)
        elif isinstance(s, SparseLevel):
            node = add("loop", f"for ({s.pos}, {s.var}) in {s.tensor}{fmt_face(s.face)}.level{s.level}", parent, depth)
            block(s.body, node, depth + 1)
        elif isinstance(s, Permute):
            groups = " x ".join("(" + ",".join(g) + ")" for g in s.groups)
            node = add("permute", f"each rearrangement of {groups}", parent, depth)
            block(s.body, node, depth + 1)
        elif isinstance(s, Block):
            node = add("block", s.comment or "block", parent, depth)
            block(Block(s.body), node, depth + 1)
        else:
            assert isinstance(s, (Assign, Let))
            node = add("assign" if isinstance(s, Assign) else "let", fmt_stmt(s)[0].strip(), parent, depth)
        return node

    root = add("program", f"kernel {p.name}", None, 0)
    block(p.body, root, 1)
    return g
