"""Pass ``hoist-reads``: read each element once; compute loop-invariant factors once.

Precondition: none for correctness; declared after ``sparse-iterate`` (its ``requires``) so that it
hoists the reads of the final loops, stored-entry loops included (most useful after ``split-diagonals``).

1. Loop-invariant code motion for values: a read, or the product (or sum) of
   the operands of a ``*`` (``+``) that do not depend on a loop, is computed
   in a ``let`` just before the loop — so a multiplicity factor is folded
   into the element once, not once per rank.
2. Common reads: a read that occurs in two or more statements of one block
   is loaded into a ``let`` at the top of the block.
3. Shared partial products: m updates that each multiply all but one of m
   factors (MTTKRP's strict part) share prefix and suffix products — 3m-4
   multiplications instead of m(m-1).

Before::

    for l in k+1..n:
      for j in 0..r:
        C[i,j] += 2 * A[i,k,l] * B[k,j] * B[l,j]
        C[k,j] += 2 * A[i,k,l] * B[i,j] * B[l,j]

After::

    for l in k+1..n:
      let _h0 = 2 * A[i,k,l]
      for j in 0..r:
        let _r0 = B[l,j]
        C[i,j] += _h0 * B[k,j] * _r0
        C[k,j] += _h0 * B[i,j] * _r0
"""

from __future__ import annotations

import dataclasses

from ..ir.edit import replace_body
from ..ir.index import bound_inside, index_names
from ..ir.names import namer
from ..ir.nodes import (
    Add,
    Assign,
    BlasCall,
    Block,
    Const,
    If,
    Let,
    Local,
    Loop,
    Mul,
    Neg,
    Permute,
    Program,
    Read,
    SparseLevel,
    SparseLocate,
    SparseMerge,
    SparseVal,
    Stmt,
)
from ..term import nodes, postwalk, unknown
from .combinators import plural
from .manager import DEFAULT_OPTIONS, Options, Pass


class _Names:
    """Fresh local names, one numbering per prefix (``_h`` hoisted, ``_r`` reads, ``_p`` products)."""

    def __init__(self, p: Program):
        self.p = p
        self.by_prefix: dict = {}

    def new(self, prefix: str) -> str:
        return self.by_prefix.setdefault(prefix, namer(self.p, prefix))()


def _invariant(e: object, inner_vars: set[str], inner_locals: set[str]) -> bool:
    if index_names(e) & inner_vars:
        return False
    return not any(isinstance(n, Local) and n.name in inner_locals for n in nodes(e))


def _has_read(e: object) -> bool:
    return any(isinstance(n, (Read, SparseVal)) for n in nodes(e))


def _hoist_loop(loop: Loop, names: _Names, stats: list[int]) -> list[Stmt]:
    inner_vars = bound_inside(loop)
    inner_locals = {n.name for n in nodes(loop.body) if isinstance(n, Let)}
    lets: dict[object, str] = {}

    def hoist(e) -> Local:
        if e not in lets:
            lets[e] = names.new("_h")
        return Local(lets[e])

    def inv(e) -> bool:
        return _invariant(e, inner_vars, inner_locals)

    def walk(e):
        if inv(e) and _has_read(e) and not isinstance(e, (Local, Const)):
            return hoist(e)
        if isinstance(e, (Mul, Add)):
            fixed = [a for a in e.args if inv(a)]
            if fixed and (len(fixed) > 1 or isinstance(fixed[0], Read)) and \
                    any(_has_read(a) or isinstance(a, Local) for a in fixed):
                part = fixed[0] if len(fixed) == 1 else type(e)(tuple(fixed))
                # walk the other operands only here: walking them before this test and again below
                # made the pass exponential in the depth of a nested sum or product
                rest = [walk(a) for a in e.args if not inv(a)]
                return type(e)((hoist(part), *rest))
            return type(e)(tuple(walk(a) for a in e.args))
        if isinstance(e, Neg):
            return Neg(walk(e.arg))
        return e

    def g(n):
        if isinstance(n, Assign):
            return Assign(n.target, n.op, walk(n.value))
        if isinstance(n, Let):
            return Let(n.name, walk(n.value))
        return None
    body = postwalk(g)(loop.body)
    stats[0] += len(lets)
    return [Let(name, e) for e, name in lets.items()] + [dataclasses.replace(loop, body=body)]


def _licm(b: Block, names: _Names, stats: list[int]) -> Block:
    out: list[Stmt] = []
    for s in b.body:
        match s:
            case Loop() | SparseLevel() | SparseMerge():
                inner = dataclasses.replace(s, body=_licm(s.body, names, stats))
                out += _hoist_loop(inner, names, stats)
            case If(cond, then, orelse):
                out.append(If(cond, _licm(then, names, stats), _licm(orelse, names, stats) if orelse else None))
            case SparseLocate():  # runs its body at most once, like an If: nothing to hoist out of it
                out.append(dataclasses.replace(s, body=_licm(s.body, names, stats)))
            case Permute(groups, body):
                out.append(Permute(groups, _licm(body, names, stats)))
            case Block():
                out.append(_licm(s, names, stats))
            case Assign() | Let() | BlasCall():  # a BLAS call is left as it is: its nest runs only past 2**31
                out.append(s)
            case _:
                raise unknown(s, "hoist-reads")
    return Block(tuple(out), b.comment)


def _cse_block(b: Block, names: _Names, stats: list[int]) -> Block:
    count: dict[Read, int] = {}
    for s in b.body:
        if isinstance(s, (Assign, Let)):
            for r in (n for n in nodes(s.value) if isinstance(n, (Read, SparseVal))):
                count[r] = count.get(r, 0) + 1
    shared = [r for r, c in count.items() if c > 1]
    if not shared:
        return b
    body = list(b.body)
    new_lets = []
    for r in shared:
        uses = [n for n, s in enumerate(body) if isinstance(s, (Assign, Let)) and any(x == r for x in nodes(s.value))]
        first = body[uses[0]]
        if isinstance(first, Let) and first.value == r:
            name, start = first.name, uses[0] + 1  # an earlier let already loads it
        else:
            name, start = names.new("_r"), 0
            new_lets.append(Let(name, r))
            stats[1] += 1
        sub = postwalk(lambda n, r=r, name=name: Local(name) if n == r else None)  # noqa: B023
        for n in uses:
            if n >= start:
                s = body[n]
                body[n] = Assign(s.target, s.op, sub(s.value)) if isinstance(s, Assign) else Let(s.name, sub(s.value))
    return Block(tuple(new_lets + body), b.comment)


def _share_products(b: Block, names: _Names, stats: list[int]) -> Block:
    """Prefix/suffix products for updates that each multiply all but one of a
    list of factors (the strict part of MTTKRP): 3m-4 multiplications for m
    updates instead of m(m-1)."""
    idx = [n for n, s in enumerate(b.body) if isinstance(s, Assign) and s.op == "+" and isinstance(s.value, Mul)]
    m = len(idx)
    if m < 3:
        return b
    args = [list(b.body[n].value.args) for n in idx]
    common = list(args[0])
    for a in args[1:]:
        rest = list(a)
        keep = []
        for x in common:
            if x in rest:
                rest.remove(x)
                keep.append(x)
        common = keep
    residual = []
    for a in args:
        r = list(a)
        for x in common:
            r.remove(x)
        residual.append(r)
    family = list(dict.fromkeys(x for r in residual for x in r))
    if len(family) != m or any(len(r) != m - 1 or len(set(r)) != m - 1 for r in residual):
        return b
    left_out = [next(f for f in family if f not in r) for r in residual]
    if len(set(left_out)) != m:
        return b
    lets: list[Stmt] = []

    def let(e) -> Local:
        name = names.new("_p")
        lets.append(Let(name, e))
        return Local(name)

    def mul(a, c):
        if a is None:
            return c
        return Mul((a, c)) if not isinstance(a, Mul) else Mul((*a.args, c))
    c0 = None if not common else (common[0] if len(common) == 1 else Mul(tuple(common)))
    prefix = [c0]
    for t in range(1, m):
        prefix.append(let(mul(prefix[-1], left_out[t - 1])))
    suffix: list = [None] * (m + 1)
    suffix[m - 1] = left_out[m - 1]
    for t in range(m - 2, 0, -1):
        suffix[t] = let(Mul((left_out[t], suffix[t + 1])))
    body = list(b.body)
    for t, n in enumerate(idx):
        p, q = prefix[t], suffix[t + 1]
        value = q if p is None else p if q is None else Mul((p, q))
        body[n] = Assign(body[n].target, "+", value)
    first = idx[0]
    stats[2] += 1
    return Block(tuple(body[:first] + lets + body[first:]), b.comment)


def propagate_copies(b: Block) -> Block:
    """Drop ``let a = b`` of a local ``b`` and read ``b`` wherever ``a`` was read."""
    alias = {n.name: n.value.name for n in nodes(b) if isinstance(n, Let) and isinstance(n.value, Local)}
    if not alias:
        return b

    def root(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    def f(n):
        if isinstance(n, Local) and n.name in alias:
            return Local(root(n.name))
        if isinstance(n, Block):
            return Block(tuple(s for s in n.body if not (isinstance(s, Let) and s.name in alias)), n.comment)
        return None
    return postwalk(f)(b)


def run(p: Program, options: Options = DEFAULT_OPTIONS) -> tuple[Program, str]:
    names = _Names(p)
    stats = [0, 0, 0]
    body = _licm(p.body, names, stats)
    body = postwalk(lambda n: _cse_block(n, names, stats) if isinstance(n, Block) else None)(body)
    body = propagate_copies(body)
    body = postwalk(lambda n: _share_products(n, names, stats) if isinstance(n, Block) else None)(body)
    if body == p.body:
        return p, "nothing to hoist"
    shared = f", {plural(stats[2], 'block shares', 'blocks share')} prefix/suffix products" if stats[2] else ""
    return replace_body(p, body), (f"{plural(stats[0], 'loop-invariant value')} hoisted, "
                                   f"{plural(stats[1], 'repeated read')} shared{shared}")


PASS = Pass("hoist-reads", run, symmetry=False, requires=("sparse-iterate",), provides=())
