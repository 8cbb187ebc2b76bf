"""Tiny combinators over the immutable IR, and the helpers every pass shares.

``postwalk(f)`` rebuilds a term bottom-up, applying ``f`` to every node after
its children (``f`` returns a replacement or ``None`` for "keep");
``prewalk(f)`` applies ``f`` before descending; ``chain`` composes rewrites
left to right; ``fixpoint`` repeats one until nothing changes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

from ..ir.nodes import (
    Add,
    Assign,
    Block,
    Cond,
    Const,
    Elem,
    Idx,
    If,
    IndexExpr,
    IPlus,
    Let,
    Local,
    Loop,
    Mul,
    Neg,
    Permute,
    Program,
    Read,
    Stmt,
    Value,
)
from ..ir.printer import fmt_value

Rewrite = Callable[[object], object | None]


def _is_node(x: object) -> bool:
    return dataclasses.is_dataclass(x) and not isinstance(x, type)


def map_children(node: object, fn: Callable[[object], object]) -> object:
    """``node`` with ``fn`` applied to each child node (in tuples too)."""
    changes = {}
    for f in dataclasses.fields(node):
        v = getattr(node, f.name)
        if _is_node(v):
            nv = fn(v)
        elif isinstance(v, tuple) and any(_is_node(x) or isinstance(x, tuple) for x in v):
            nv = tuple(fn(x) if _is_node(x) else _map_tuple(x, fn) if isinstance(x, tuple) else x for x in v)
        else:
            continue
        if nv is not v and nv != v:
            changes[f.name] = nv
    return dataclasses.replace(node, **changes) if changes else node


def _map_tuple(t: tuple, fn) -> tuple:
    return tuple(fn(x) if _is_node(x) else x for x in t)


def postwalk(f: Rewrite) -> Callable[[object], object]:
    def walk(node: object) -> object:
        node = map_children(node, walk)
        r = f(node)
        return node if r is None else r
    return walk


def prewalk(f: Rewrite) -> Callable[[object], object]:
    def walk(node: object) -> object:
        r = f(node)
        node = node if r is None else r
        return map_children(node, walk)
    return walk


def chain(*fs: Callable[[object], object]) -> Callable[[object], object]:
    def run(node: object) -> object:
        for f in fs:
            node = f(node)
        return node
    return run


def fixpoint(f: Callable[[object], object], limit: int = 100) -> Callable[[object], object]:
    def run(node: object) -> object:
        for _ in range(limit):
            new = f(node)
            if new == node:
                return new
            node = new
        return node
    return run


def nodes(node: object) -> Iterator[object]:
    """Every node of a term (or of a tuple of terms), pre-order."""
    if isinstance(node, (tuple, list)):
        for x in node:
            yield from nodes(x)
        return
    if not _is_node(node):
        return
    yield node
    for f in dataclasses.fields(node):
        v = getattr(node, f.name)
        if _is_node(v):
            yield from nodes(v)
        elif isinstance(v, tuple):
            for x in v:
                if _is_node(x):
                    yield from nodes(x)
                elif isinstance(x, tuple):
                    for y in x:
                        if _is_node(y):
                            yield from nodes(y)


# -- index substitution -----------------------------------------------------------


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
    from ..ir.nodes import SparseLevel

    out: set[str] = set()
    for n in nodes(loop):
        if isinstance(n, Loop):
            out.add(n.var)
        elif isinstance(n, SparseLevel):
            out |= {n.var, n.pos}
        elif isinstance(n, Permute):
            out |= {v for g in n.groups for v in g}
    return out


def is_loop(s: object) -> bool:
    """A dense loop or a sparse level: something whose body runs many times."""
    from ..ir.nodes import SparseLevel

    return isinstance(s, (Loop, SparseLevel))


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


def key(e: Value) -> str:
    """A deterministic sort key for canonical operand order."""
    return fmt_value(e)


def split_coefficient(e: Value) -> tuple[int | float, Value | None]:
    """``c * X`` -> ``(c, X)`` for a product whose constant factors are folded."""
    if isinstance(e, Const):
        return e.value, None
    if isinstance(e, Neg):
        c, x = split_coefficient(e.arg)
        return -c, x
    if isinstance(e, Mul):
        c = 1
        rest = []
        for a in e.args:
            if isinstance(a, Const):
                c = c * a.value
            else:
                rest.append(a)
        if not rest:
            return c, None
        return c, rest[0] if len(rest) == 1 else Mul(tuple(rest))
    return 1, e


def with_coefficient(c: int | float, x: Value | None) -> Value:
    if x is None:
        return Const(c)
    if c == 1:
        return x
    if c == -1:
        return Neg(x)
    if isinstance(x, Mul):
        return Mul((Const(c), *x.args))
    return Mul((Const(c), x))


# -- programs -----------------------------------------------------------------------


def main_assignments(p: Program) -> list[Assign]:
    """The reduction assignments into the program's output."""
    out = next(t.name for t in p.tensors if t.role == "out")
    return [n for n in nodes(p.body) if isinstance(n, Assign) and isinstance(n.target, Elem)
            and n.target.tensor == out and n.op != "="]


def flatten_blocks(node: object) -> object:
    """Splice blocks without a comment into the block that holds them."""
    def f(n):
        if isinstance(n, Block) and any(isinstance(s, Block) and not s.comment for s in n.body):
            out: list = []
            for s in n.body:
                out += s.body if isinstance(s, Block) and not s.comment else [s]
            return Block(tuple(out), n.comment)
        return None
    return postwalk(f)(node)


def used_names(p: Program) -> set[str]:
    """Every name of ``p`` — tensors, dimensions, locals, loop variables — that one C function sees."""
    used = {getattr(n, "name", None) for n in nodes(p.body)} | {getattr(n, "var", None) for n in nodes(p.body)}
    used |= {t.name for t in p.tensors} | {d for t in p.tensors for d in t.dims if isinstance(d, str)}
    return used - {None}


def namer(p: Program, prefix: str) -> Callable[[], str]:
    """A generator of names ``<prefix>0, <prefix>1, ...`` unused anywhere in ``p``."""
    used = used_names(p)
    counter = [0]

    def fresh() -> str:
        while f"{prefix}{counter[0]}" in used:
            counter[0] += 1
        name = f"{prefix}{counter[0]}"
        used.add(name)
        return name
    return fresh


def replace_body(p: Program, body: Block) -> Program:
    return dataclasses.replace(p, body=flatten_blocks(body))


__all__ = [
    "Add", "Assign", "Block", "Cond", "Const", "Elem", "Idx", "If", "Let", "Local", "Loop", "Mul", "Neg", "Permute",
    "Read", "Stmt", "chain", "fixpoint", "index_names", "key", "main_assignments", "map_children",
    "bound_inside", "is_loop", "namer", "nodes", "postwalk", "prewalk", "rename_indices", "replace_body",
    "simplify_index", "split_coefficient", "uses_index", "with_coefficient",
]


def plural(n: int, one: str, many: str | None = None) -> str:
    """``1 loop``, ``2 loops``: pass notes read as sentences."""
    return f"{n} {one if n == 1 else (many or one + 's')}"
