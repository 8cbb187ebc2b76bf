"""Pass ``concordize``: make every read agree with the loop order.

Precondition: the naive nest of ``lower`` (perfect nest, one assignment).

A read of a non-symmetric input whose subscripts do not follow the loop
order is replaced by a read of a transposed copy that the program builds
first, so the inner loops walk memory contiguously.  Symmetric tensors are
never copied: ``normalize`` sorts their subscripts instead.

Before (``order k j i``)::

    for k in 0..m:
      for j in 0..n:
        for i in 0..n:
          C[i,j] += A[i,k] * A[j,k]

After::

    for _c0 in 0..n:
      for _c1 in 0..m:
        A_T[_c1,_c0] = A[_c0,_c1]
    for k in 0..m:
      for j in 0..n:
        for i in 0..n:
          C[i,j] += A_T[k,i] * A_T[k,j]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ..ir.names import namer, used_names
from ..ir.nodes import Assign, Block, Elem, IConst, Idx, Loop, Program, Read, TensorInfo
from ..term import nodes, postwalk
from .lower import depth_order_ok, dim_expr
from .manager import DEFAULT_OPTIONS, Options, Pass


def loop_depths(p: Program) -> dict[str, int]:
    return {n.var: d for d, n in enumerate(x for x in nodes(p.body) if isinstance(x, Loop))}


def run(p: Program, options: Options = DEFAULT_OPTIONS) -> tuple[Program, str]:
    depth = loop_depths(p)
    infos = {t.name: t for t in p.tensors}
    perms: dict[str, tuple[tuple[int, ...], str]] = {}  # (tensor, permutation) -> copy name
    copies: list[TensorInfo] = []
    prelude = []
    names = used_names(p)  # a copy named like a dimension or an index would clash in C
    fresh: dict[str, Callable[[], str]] = {}

    def f(n):
        if not isinstance(n, Read):
            return None
        t = infos[n.tensor]
        if t.role != "in" or t.symmetry or not all(isinstance(i, Idx) for i in n.idx):
            return None
        if depth_order_ok(tuple(i.name for i in n.idx), depth, ()):
            return None
        perm = tuple(sorted(range(len(n.idx)), key=lambda q: (depth[n.idx[q].name], q)))
        k = (n.tensor, perm)
        if k not in perms:
            base = f"{n.tensor}_T"
            if base in names and base not in fresh:
                # one namer per base: it remembers what it handed out (p does not hold the copies yet)
                fresh[base] = namer(p, base)
            name = fresh[base]() if base in names else base
            names.add(name)
            perms[k] = name
            info = TensorInfo(name, "temp", tuple(t.dims[q] for q in perm), (), "dense", 0, t.dtype, 0)
            copies.append(info)
            vars_ = [f"_c{q}" for q in range(len(perm))]
            stmt = Assign(Elem(name, tuple(Idx(vars_[q]) for q in perm)), "=",
                          Read(n.tensor, tuple(Idx(v) for v in vars_)))
            body = Block((stmt,))
            for q in reversed(range(len(perm))):
                body = Block((Loop(vars_[q], IConst(0), dim_expr(t.dims[q]), body),))
            prelude.append(Block(body.body, comment=f"transposed copy of {n.tensor} (concordize)"))
        return Read(perms[k], tuple(n.idx[q] for q in perm))

    body = postwalk(f)(p.body)
    if not copies:
        return p, "every read already follows the loop order"
    new = dataclasses.replace(p, tensors=p.tensors + tuple(copies), body=Block(tuple(prelude) + body.body))
    return new, "transposed copies: " + ", ".join(c.name for c in copies)


PASS = Pass("concordize", run, symmetry=False, requires=(), provides=())
