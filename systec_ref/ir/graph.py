"""A ``networkx.DiGraph`` view of a loop nest — what :mod:`systec_ref.viz` draws.

Nodes are the statements (program, loops, conditionals, blocks, lets and
assignments), numbered in pre-order so the same program always gives the same
graph.  ``nest`` edges go from a statement to the statements it contains,
``next`` edges from a statement to the one that follows it in the same block.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..term import unknown
from .nodes import (
    Assign,
    BlasCall,
    Block,
    If,
    Let,
    Loop,
    Permute,
    Program,
    SparseLevel,
    SparseLocate,
    SparseMerge,
    Stmt,
)
from .printer import fmt_blas, fmt_cond, fmt_face, fmt_index, fmt_locate, fmt_merge, fmt_stmt

if TYPE_CHECKING:
    import networkx as nx


def to_graph(p: Program) -> nx.DiGraph:
    import networkx as nx  # imported when a graph is drawn: it takes longer to import than the whole package

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
        match s:
            case Loop(var, lo, hi, body, step):
                by = f" step {step}" if step != 1 else ""
                node = add("loop", f"for {var} in {fmt_index(lo)}..{fmt_index(hi)}{by}", parent, depth)
                block(body, node, depth + 1)
            case If(cond, then, orelse):
                node = add("if", f"if {fmt_cond(cond)}", parent, depth)
                block(then, node, depth + 1)
                if orelse is not None:
                    other = add("else", "else", node, depth + 1)
                    block(orelse, other, depth + 2)
            case SparseLevel(var, pos, tensor, face, level, _, body, start, _, low):
                start_at = "" if start is None else f" from {fmt_index(start)}"
                start_at += "" if low is None else f" where {var} >= {fmt_index(low)}"
                node = add("loop", f"for ({pos}, {var}) in {tensor}{fmt_face(face)}.level{level}{start_at}", parent,
                           depth)
                block(body, node, depth + 1)
            case SparseMerge():
                node = add("loop", fmt_merge(s), parent, depth)
                block(s.body, node, depth + 1)
            case SparseLocate():
                node = add("if", fmt_locate(s), parent, depth)
                block(s.body, node, depth + 1)
            case Permute(groups, body):
                text = " x ".join("(" + ",".join(g) + ")" for g in groups)
                node = add("permute", f"each rearrangement of {text}", parent, depth)
                block(body, node, depth + 1)
            case BlasCall():
                node = add("blas", fmt_blas(s), parent, depth)
                meaning = add("block", "which means", node, depth + 1)
                block(s.nest, meaning, depth + 2)
            case Block(body, comment):
                node = add("block", comment or "block", parent, depth)
                block(Block(body), node, depth + 1)
            case Assign():
                node = add("assign", fmt_stmt(s)[0].strip(), parent, depth)
            case Let():
                node = add("let", fmt_stmt(s)[0].strip(), parent, depth)
            case _:
                raise unknown(s, "graph view (statement)")
        return node

    root = add("program", f"kernel {p.name}", None, 0)
    block(p.body, root, 1)
    return g
