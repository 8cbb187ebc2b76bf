"""Pass ``restrict-iteration``: visit only the canonical triangle of each permutable set.

Precondition: ``identify-symmetry`` has recorded permutable sets, whose loops
run over ``0..dim``.

Each set ``p1, ..., pk`` (loop-depth order) gets triangular bounds
``p_{t+1} in p_t..n``, and the body of its innermost loop is wrapped in a
``Permute`` node, which runs it once per distinct rearrangement of the set's
values.  Since every point of the full space is a rearrangement of exactly
one point of the triangle, this is the same computation as before, for *any*
statement: the point of the pass is bookkeeping, and the program still runs.

Before::

    for i in 0..n:
      for j in 0..n:
        y[i] += A[i,j] * x[j]

After::

    for i in 0..n:
      for j in i..n:
        for each distinct rearrangement of (i,j):
          y[i] += A[i,j] * x[j]
"""

from __future__ import annotations

from ..ir.edit import replace_body
from ..ir.nodes import Block, Idx, Loop, Permute, Program
from ..term import nodes, postwalk
from .manager import DEFAULT_OPTIONS, Options, Pass
from .symmetry import permutable_sets


def run(p: Program, options: Options = DEFAULT_OPTIONS) -> tuple[Program, str]:
    sets = permutable_sets(p)
    if not sets:
        return p, "no permutable set"
    if any(isinstance(n, Permute) for n in nodes(p.body)):
        # a second run would nest a Permute in the first one: every point counted k! times over
        return p, "already restricted to the canonical triangle"
    prev = {g[t + 1]: g[t] for g in sets for t in range(len(g) - 1)}
    last = {g[-1]: g for g in sets}

    def f(n):
        if not isinstance(n, Loop):
            return None
        lo = Idx(prev[n.var]) if n.var in prev else n.lo
        body = n.body
        if n.var in last:
            body = Block((Permute((last[n.var],), body),))
        return Loop(n.var, lo, n.hi, body)
    new = replace_body(p, postwalk(f)(p.body))
    text = "; ".join(" <= ".join(g) for g in sets)
    return new, f"canonical triangle {text}"


PASS = Pass("restrict-iteration", run, symmetry=True, requires=("identify-symmetry",), provides=())
