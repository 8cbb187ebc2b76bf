"""Index variables of the IR: renaming them, finding which a term uses or binds, simplifying bounds."""

from __future__ import annotations

from ..term import nodes, postwalk
from .nodes import Idx, IndexExpr, IPlus, Loop, Permute, SparseLevel, SparseLocate, SparseMerge


def rename_indices(node: object, mapping: dict[str, str]) -> object:
    """Replace index variables (in subscripts, bounds and conditions) by others."""
    if not mapping:
        return node

    def f(n: object):
        if isinstance(n, Idx) and n.name in mapping:
            return Idx(mapping[n.name])
        if isinstance(n, Permute):
            return Permute(tuple(tuple(mapping.get(v, v) for v in g) for g in n.groups), n.body)
        return None
    return postwalk(f)(node)


def bound_inside(loop: object) -> set[str]:
    """Index variables a loop (dense or sparse) binds, itself and everything inside it."""
    out: set[str] = set()
    for n in nodes(loop):
        if isinstance(n, Loop):
            out.add(n.var)
        elif isinstance(n, SparseLevel):
            out |= {n.var, n.pos}
        elif isinstance(n, SparseMerge):
            out |= {n.var, *(o.pos for o in n.operands)}
        elif isinstance(n, SparseLocate):
            out.add(n.pos)
        elif isinstance(n, Permute):
            out |= {v for g in n.groups for v in g}
    return out


def is_loop(s: object) -> bool:
    """A dense loop, a sparse level or a merge of sparse levels: something whose body runs many times."""
    return isinstance(s, (Loop, SparseLevel, SparseMerge))


def uses_index(node: object, names: set[str] | frozenset[str]) -> bool:
    return any(isinstance(n, Idx) and n.name in names for n in nodes(node))


def index_names(node: object) -> set[str]:
    return {n.name for n in nodes(node) if isinstance(n, Idx)}


def simplify_index(e: IndexExpr) -> IndexExpr:
    if isinstance(e, IPlus):
        base = simplify_index(e.base)
        if isinstance(base, IPlus):
            return simplify_index(IPlus(base.base, base.offset + e.offset))
        return base if e.offset == 0 else IPlus(base, e.offset)
    return e


# -- expressions ------------------------------------------------------------------
