"""Pass ``unroll-and-jam``: two rows of a triangular nest share one sweep of the inner loop.

Precondition: none; it applies to a loop ``i`` whose body is straight-line
statements around one inner loop ``j in i+c..m`` (a *triangular* inner loop,
the shape ``split-diagonals`` leaves for a strict part) with a straight-line
body that updates an element indexed by ``j``.  Valid because every update is
a commutative reduction and no statement reads an updated tensor.

Why: SSYMV's strict part updates ``y[j]`` for every element of row i; doing
rows i and i+1 in one sweep loads and stores ``y[j]`` once for both (the
register blocking of BLAS ``dsymv``).  Row i's first element (``j = i+c``),
which row i+1 does not have, is peeled; an odd last row runs alone.

Before::

    for i in 0..n:
      let _h0 = x[i]
      for j in i+1..n:
        y[j] += _h0 * A[i,j]

After::

    for i in 0..n step 2:
      if i+1 < n:
        let _h0 = x[i]
        let _u0 = x[i+1]
        for j in i+1..i+2:
          y[j] += _h0 * A[i,j]
        for j in i+2..n:
          y[j] += _h0 * A[i,j]
          y[j] += _u0 * A[i+1,j]
      else:
        let _h0 = x[i]
        for j in i+1..n:
          y[j] += _h0 * A[i,j]
"""

from __future__ import annotations

import dataclasses

from ..ir.nodes import Assign, Block, Cmp, Elem, Idx, If, IPlus, Let, Local, Loop, Program, Stmt
from .combinators import index_names, nodes, postwalk, replace_body, simplify_index

NAME = "unroll-and-jam"


def _triangular(lo: object, i: str) -> int | None:
    """``c`` if ``lo`` is ``i + c`` (c >= 0), else None."""
    lo = simplify_index(lo)
    if lo == Idx(i):
        return 0
    if isinstance(lo, IPlus) and lo.base == Idx(i) and lo.offset >= 0:
        return lo.offset
    return None


def _shape(loop: Loop) -> tuple[list[Stmt], Loop, list[Stmt], int] | None:
    body = loop.body.body
    inner = [n for n, s in enumerate(body) if isinstance(s, Loop)]
    if len(inner) != 1 or loop.step != 1:
        return None
    k = inner[0]
    j: Loop = body[k]
    pre, post = list(body[:k]), list(body[k + 1:])
    if not all(isinstance(s, (Let, Assign)) for s in pre + post + list(j.body.body)):
        return None
    if j.step != 1 or loop.var in index_names(j.hi):
        return None
    c = _triangular(j.lo, loop.var)
    if c is None:
        return None
    if not any(isinstance(s, Assign) and isinstance(s.target, Elem) and j.var in index_names(s.target)
               for s in j.body.body):
        return None
    return pre, j, post, c


def _shift(stmts: list[Stmt], i: str, names: dict[str, str]) -> list[Stmt]:
    """The statements of row i+1: ``i`` becomes ``i+1``, locals get fresh names."""
    def f(n):
        if isinstance(n, Idx) and n.name == i:
            return IPlus(Idx(i), 1)
        if isinstance(n, IPlus):
            return simplify_index(n)
        if isinstance(n, Local) and n.name in names:
            return Local(names[n.name])
        if isinstance(n, Let) and n.name in names:
            return Let(names[n.name], n.value)
        return None
    return [postwalk(f)(s) for s in stmts]


def _jam(loop: Loop, fresh) -> Stmt | None:
    shape = _shape(loop)
    if shape is None:
        return None
    pre, j, post, c = shape
    defined = [s.name for s in pre + list(j.body.body) + post if isinstance(s, Let)]
    names = {n: fresh() for n in defined}
    i = loop.var
    pre2, post2 = _shift(pre, i, names), _shift(post, i, names)
    body2 = _shift(list(j.body.body), i, names)
    start = simplify_index(IPlus(Idx(i), c))
    peel = Loop(j.var, start, simplify_index(IPlus(Idx(i), c + 1)), j.body)
    jammed = Loop(j.var, simplify_index(IPlus(Idx(i), c + 1)), j.hi, Block(tuple(j.body.body) + tuple(body2)))
    pair = Block(tuple(pre + pre2 + [peel, jammed] + post + post2),
                 comment=f"rows {i} and {i}+1 in one sweep over {j.var} (unroll-and-jam)")
    single = Block(loop.body.body, comment=f"an odd last row {i} (unroll-and-jam)")
    guard = If(Cmp("<", IPlus(Idx(i), 1), loop.hi), pair, single)
    return dataclasses.replace(loop, body=Block((guard,), loop.body.comment), step=2)


def run(p: Program) -> tuple[Program, str]:
    used = {getattr(n, "name", None) for n in nodes(p.body)}
    counter = [0]

    def fresh() -> str:
        while f"_u{counter[0]}" in used:
            counter[0] += 1
        used.add(f"_u{counter[0]}")
        return f"_u{counter[0]}"
    count = [0]

    def f(n):
        if isinstance(n, Loop):
            r = _jam(n, fresh)
            if r is not None:
                count[0] += 1
            return r
        return None
    # top-down would re-visit the jammed loop's copies; bottom-up sees each original loop once
    body = postwalk(f)(p.body)
    if not count[0]:
        return p, "no triangular loop that updates along its inner loop"
    return replace_body(p, body), f"{count[0]} loop{'s' if count[0] > 1 else ''} unrolled by 2 and jammed"
