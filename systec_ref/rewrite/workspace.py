"""Pass ``workspace``: accumulate an update that does not move with its loop in a scalar.

Precondition: none for correctness; declared after ``hoist-reads`` (its ``requires``) so that the
reads it accumulates beside are hoisted already.  Valid because every update is a commutative
reduction and nothing inside the loop reads the updated tensor.

An update ``y[i] op= e`` inside a loop whose variables (that loop's and every
loop inside it) do not occur in ``y[i]`` is accumulated in a local that
starts at the identity of ``op`` and is flushed once after the loop — the
``temp`` of BLAS ``dsymv``.  Outer loops are tried first, so a scalar output
gets one accumulator around the whole nest.

Before::

    for j in i+1..n:
      y[i] += _h0 * x[j]

After::

    let _t0 = 0.0
    for j in i+1..n:
      _t0 += _h0 * x[j]
    y[i] += _t0
"""

from __future__ import annotations

import dataclasses

from ..dtypes import identity
from ..ir.edit import replace_body
from ..ir.index import bound_inside, index_names, is_loop
from ..ir.names import namer
from ..ir.nodes import Assign, Block, Const, Elem, If, Let, Local, Loop, Permute, Program, Read, Stmt
from ..term import nodes, postwalk
from .combinators import plural
from .manager import DEFAULT_OPTIONS, Options, Pass


def _transform(loop: Loop, p: Program, fresh, stats: list[int]) -> list[Stmt]:
    bound = bound_inside(loop)
    read_tensors = {n.tensor for n in nodes(loop.body) if isinstance(n, Read)}
    targets: dict[tuple[Elem, str], str] = {}
    for n in nodes(loop.body):
        if isinstance(n, Assign) and isinstance(n.target, Elem) and n.op in ("+", "min", "max"):
            t = n.target
            if index_names(t) & bound or t.tensor in read_tensors:
                continue
            if any(isinstance(x, Local) for x in nodes(t)):
                continue
            targets.setdefault((t, n.op), "")
    if not targets:
        return [loop]
    for k in targets:
        targets[k] = fresh()
    stats[0] += len(targets)

    def f(n):
        if isinstance(n, Assign) and isinstance(n.target, Elem) and (n.target, n.op) in targets:
            return Assign(Local(targets[(n.target, n.op)]), n.op, n.value)
        return None
    body = postwalk(f)(loop.body)
    before = [Let(name, Const(identity(op, p.dtype))) for (t, op), name in targets.items()]
    after = [Assign(t, op, Local(name)) for (t, op), name in targets.items()]
    return before + [dataclasses.replace(loop, body=body)] + after


def _block(b: Block, p: Program, fresh, stats: list[int]) -> Block:
    out: list[Stmt] = []
    for s in b.body:
        if is_loop(s):
            for t in _transform(s, p, fresh, stats):
                out.append(dataclasses.replace(t, body=_block(t.body, p, fresh, stats)) if is_loop(t) else t)
        elif isinstance(s, If):
            out.append(If(s.cond, _block(s.then, p, fresh, stats),
                          _block(s.orelse, p, fresh, stats) if s.orelse else None))
        elif isinstance(s, Permute):
            out.append(Permute(s.groups, _block(s.body, p, fresh, stats)))
        elif isinstance(s, Block):
            out.append(_block(s, p, fresh, stats))
        else:
            out.append(s)
    return Block(tuple(out), b.comment)


def run(p: Program, options: Options = DEFAULT_OPTIONS) -> tuple[Program, str]:
    fresh = namer(p, "_t")
    stats = [0]
    body = _block(p.body, p, fresh, stats)
    if body == p.body:
        return p, "no update is invariant in its loop"
    return replace_body(p, body), plural(stats[0], "scalar accumulator")


PASS = Pass("workspace", run, symmetry=False, requires=("hoist-reads",), provides=())
