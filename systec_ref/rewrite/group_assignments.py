"""Pass ``group-assignments``: merge identical updates.

Precondition: ``normalize`` (equal updates are structurally equal).

In each run of consecutive assignments of one block: for ``+``,
``a*X; b*X`` becomes ``(a+b)*X`` (dropped if the sum is 0 and X is an
integer, or absent: in floating point ``0 * X`` is NaN when X is ±inf or
NaN, so a float ``0 * X`` stays); for the
idempotent ``min`` and ``max``, ``X; X`` becomes ``X``.  Reordering is safe:
every update is a commutative reduction and no right-hand side reads an
output.

Before::

    s += x[i] * A[i,j] * x[j]
    s += x[i] * A[i,j] * x[j]

After::

    s += 2 * A[i,j] * x[i] * x[j]
"""

from __future__ import annotations

from ..ir.edit import replace_body
from ..ir.nodes import Assign, Block, Program, Stmt
from ..term import nodes, postwalk
from .combinators import plural, split_coefficient, with_coefficient
from .manager import DEFAULT_OPTIONS, Options, Pass


def group_run(run: list[Assign], exact: bool = False) -> list[Assign]:
    """Merge the updates of ``run``; ``exact``: the values are integers (``0 * X`` is 0)."""
    order: list[tuple] = []
    coef: dict[tuple, object] = {}
    for a in run:
        if a.op == "+":
            c, x = split_coefficient(a.value)
            k = (a.target, a.op, x)
        else:
            c, k = 1, (a.target, a.op, a.value)
        if k not in coef:
            order.append(k)
            coef[k] = c if a.op == "+" else None
        elif a.op == "+":
            coef[k] = coef[k] + c
    out = []
    for k in order:
        target, op, x = k
        if op == "+":
            if coef[k] == 0 and (x is None or exact):
                continue
            out.append(Assign(target, op, with_coefficient(coef[k], x)))
        else:
            out.append(Assign(target, op, x))
    return out


def group_block(b: Block, exact: bool = False) -> Block:
    out: list[Stmt] = []
    run: list[Assign] = []
    for s in b.body:
        if isinstance(s, Assign) and s.op != "=":
            run.append(s)
            continue
        out += group_run(run, exact)
        run = []
        out.append(s)
    out += group_run(run, exact)
    return Block(tuple(out), b.comment)


def run(p: Program, options: Options = DEFAULT_OPTIONS) -> tuple[Program, str]:
    before = sum(1 for _ in _assigns(p))
    exact = p.dtype == "int64"
    body = postwalk(lambda n: group_block(n, exact) if isinstance(n, Block) else None)(p.body)
    if body == p.body:
        return p, "no identical updates"
    new = replace_body(p, body)
    after = sum(1 for _ in _assigns(new))
    return new, f"{plural(before, 'assignment')} -> {after}"


def _assigns(p: Program):
    return (n for n in nodes(p.body) if isinstance(n, Assign))


PASS = Pass("group-assignments", run, symmetry=True, requires=("normalize",), provides=())
