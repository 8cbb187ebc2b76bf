"""Pass ``unroll-and-jam``: two rows of a triangular nest share one sweep of the inner loop.

Precondition: none for correctness; declared after ``workspace`` (its ``requires``).  It
applies to a loop ``i`` whose body is straight-line statements around one inner loop
``j in i+c..m`` (a *triangular* inner loop, the shape ``split-diagonals`` leaves for a strict
part) with a straight-line body.  Valid because every update is a commutative reduction and no
statement reads an updated tensor.

Why: SSYMV's strict part updates ``y[j]`` for every element of row i; doing
rows i..i+5 in one sweep loads and stores ``y[j]`` (and loads ``x[j]``) once
for all six — the register blocking of BLAS ``dsymv``; SYPRD's rows share
``x[j]`` the same way.  The first elements of the upper rows, which lower
rows do not have, are peeled; the last rows (fewer than six) run one by one.
The example below shows a factor of 2 for brevity; the pass uses :data:`FACTOR`.

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

from ..dtypes import identity
from ..ir.edit import replace_body
from ..ir.index import index_names, rename_indices, simplify_index
from ..ir.names import namer
from ..ir.nodes import Add, Assign, Block, Cmp, Const, Elem, Idx, If, IPlus, Let, Local, Loop, Program, Read, Stmt
from ..term import nodes, postwalk
from .combinators import plural
from .manager import DEFAULT_OPTIONS, Options, Pass


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
    if not any(isinstance(s, Assign) for s in j.body.body):
        return None
    return pre, j, post, c


#: rows per sweep.  Measured (AMD EPYC with AVX-512, n = 8000, single thread, medians of interleaved
#: runs; ms, SSYMV / SYPRD): 4 rows 11.0 / 7.7, 5 10.1, 6 9.8 / 7.5, 7 9.8, 8 10.2 / 7.5, 12 10.3,
#: 16 12.0 (OpenBLAS dsymv 10.2): six rows' accumulators and multipliers still fit the registers.  (On
#: an older machine without AVX-512, 2 rows gave 1.4x and 4 rows 1.6x over a full-matrix sweep.)
FACTOR = 6


def _shift(stmts: list[Stmt], i: str, by: int, names: dict[str, str]) -> list[Stmt]:
    """The statements of row i+by: ``i`` becomes ``i+by``, locals get fresh names."""
    def f(n):
        if isinstance(n, Idx) and n.name == i:
            return IPlus(Idx(i), by)
        if isinstance(n, IPlus):
            return simplify_index(n)
        if isinstance(n, Local) and n.name in names:
            return Local(names[n.name])
        if isinstance(n, Let) and n.name in names:
            return Let(names[n.name], n.value)
        return None
    return [postwalk(f)(s) for s in stmts] if by else list(stmts)


def _accumulators(stmts: list[Stmt], defined: list[str]) -> dict[str, str]:
    """Locals the rows update but never read, defined outside the loop: name -> reduction."""
    out = {n.target.name: n.op for s in stmts for n in nodes(s)
           if isinstance(n, Assign) and isinstance(n.target, Local) and n.target.name not in defined}
    read = {n.name for s in stmts for n in nodes(s.value) if isinstance(n, Local)}
    return {a: op for a, op in out.items() if a not in read and op in ("+", "min", "max")}


def _merge_scatter(sweep: list[Stmt], j: str) -> list[Stmt]:
    """The rows' float updates of one element that moves with the sweep (SSYMV's ``y[j] += x[i+u] * A[i+u,j]``,
    one per row) as one update by their sum, where the last of them was: one load and one store of ``y[j]``
    per sweep step instead of one per row.  Only where nothing in the sweep reads that tensor (the updates'
    order then changes nothing but the sum's association)."""
    read = {n.tensor for s in sweep for n in nodes(s) if isinstance(n, Read)}
    groups: dict[Elem, list[int]] = {}
    for k, s in enumerate(sweep):
        if isinstance(s, Assign) and s.op == "+" and isinstance(s.target, Elem) and s.target.tensor not in read \
                and Idx(j) in s.target.idx:
            groups.setdefault(s.target, []).append(k)
    out: list[Stmt] = []
    for k, s in enumerate(sweep):
        at = groups.get(s.target) if isinstance(s, Assign) and isinstance(s.target, Elem) else None
        if at is None or len(at) < 2:
            out.append(s)
        elif k == at[-1]:
            terms = tuple(t for q in at for t in (sweep[q].value.args if isinstance(sweep[q].value, Add)
                                                   else (sweep[q].value,)))
            out.append(Assign(s.target, "+", Add(terms)))
    return out


def _jam(loop: Loop, fresh, dtype: str, factor: int = FACTOR) -> Stmt | None:
    shape = _shape(loop)
    if shape is None:
        return None
    pre, j, post, c = shape
    defined = [s.name for s in pre + list(j.body.body) + post if isinstance(s, Let)]
    # a float accumulator gets one partial per jammed row, added to it after the sweep: the rows' updates then
    # are separate sums, whose terms (which share factors, e.g. SYPRD's x[j]) the C compiler cannot factor
    # (a*b + a*c -> a*(b + c) is not exact for a = inf; see reassociation_risk in emit/c.py).  Integer sums
    # stay in program order: another order could overflow where the program does not
    accs = _accumulators(pre + list(j.body.body) + post, defined) if dtype != "int64" else {}
    i = loop.var
    rows, partials = [], []
    for u in range(factor):
        names = {n: fresh() for n in [*defined, *accs]} if u else {}
        partials += [(a, names[a]) for a in accs] if u else []
        rows.append((_shift(pre, i, u, names), _shift(list(j.body.body), i, u, names), _shift(post, i, u, names)))
    stmts: list[Stmt] = [Let(part, Const(identity(accs[a], dtype))) for a, part in partials]
    stmts += [s for r in rows for s in r[0]]
    # row i+u starts at i+u+c; the rows still missing elements before the common start are peeled
    for u in range(factor - 1):
        lo, hi = simplify_index(IPlus(Idx(i), u + c)), simplify_index(IPlus(Idx(i), factor - 1 + c))
        stmts.append(Loop(j.var, lo, hi, Block(tuple(rows[u][1]))))
    start = simplify_index(IPlus(Idx(i), factor - 1 + c))
    sweep = [s for r in rows for s in r[1]]
    stmts.append(Loop(j.var, start, j.hi, Block(tuple(_merge_scatter(sweep, j.var) if dtype != "int64" else sweep))))
    stmts += [s for r in rows for s in r[2]]
    stmts += [Assign(Local(a), accs[a], Local(part)) for a, part in partials]
    pair = Block(tuple(stmts), comment=f"rows {i}..{i}+{factor - 1} in one sweep over {j.var} (unroll-and-jam)")
    last = fresh()  # a new name: C would read 'for (int64_t i = i; ...)' as its own uninitialized i
    rest = Loop(last, Idx(i), loop.hi, rename_indices(Block(loop.body.body), {i: last}))
    single = Block((rest,), comment="the last rows, one at a time (unroll-and-jam)")
    guard = If(Cmp("<", IPlus(Idx(i), factor - 1), loop.hi), pair, single)
    return dataclasses.replace(loop, body=Block((guard,), loop.body.comment), step=factor)


def run(p: Program, options: Options = DEFAULT_OPTIONS) -> tuple[Program, str]:
    fresh = namer(p, "_u")
    count = [0]

    def f(n):
        if isinstance(n, Loop):
            r = _jam(n, fresh, p.dtype)
            if r is not None:
                count[0] += 1
            return r
        return None
    # top-down would re-visit the jammed loop's copies; bottom-up sees each original loop once
    body = postwalk(f)(p.body)
    if not count[0]:
        return p, "no triangular loop that updates along its inner loop"
    return replace_body(p, body), f"{plural(count[0], 'loop')} unrolled by {FACTOR} and jammed"


PASS = Pass("unroll-and-jam", run, symmetry=False, requires=("workspace",), provides=())
