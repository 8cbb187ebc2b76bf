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
from .symmetry import compared_as_inputs, transposed_copies


def group_run(run: list[Assign], exact: bool = False, copies: dict | None = None) -> list[Assign]:
    """Merge the updates of ``run``; ``exact``: the values are integers (``0 * X`` is 0); ``copies``: the
    program's transposed copies (:func:`~.symmetry.transposed_copies`), whose reads are compared as the
    reads of their inputs they stand for (``A[i,k] * A_T[k,j]`` and ``A_T[k,i] * A[j,k]`` are one product
    when the swap of i and j is a symmetry of the reduction); the first of a group is kept."""
    order: list[tuple] = []
    coef: dict[tuple, object] = {}
    first: dict[tuple, object] = {}

    def same(x: object) -> object:
        return compared_as_inputs(x, copies) if copies and x is not None else x
    for a in run:
        if a.op == "+":
            c, x = split_coefficient(a.value)
        else:
            c, x = 1, a.value
        k = (a.target, a.op, same(x))
        if k not in coef:
            order.append(k)
            first[k] = x
            coef[k] = c if a.op == "+" else None
        elif a.op == "+":
            coef[k] = coef[k] + c
    out = []
    for k in order:
        target, op, x = k[0], k[1], first[k]
        if op == "+":
            if coef[k] == 0 and (x is None or exact):
                continue
            out.append(Assign(target, op, with_coefficient(coef[k], x)))
        else:
            out.append(Assign(target, op, x))
    return out


def group_block(b: Block, exact: bool = False, copies: dict | None = None) -> Block:
    out: list[Stmt] = []
    run: list[Assign] = []
    for s in b.body:
        if isinstance(s, Assign) and s.op != "=":
            run.append(s)
            continue
        out += group_run(run, exact, copies)
        run = []
        out.append(s)
    out += group_run(run, exact, copies)
    return Block(tuple(out), b.comment)


def run(p: Program, options: Options = DEFAULT_OPTIONS) -> tuple[Program, str]:
    before = sum(1 for _ in _assigns(p))
    exact = p.dtype == "int64"
    copies = transposed_copies(p)
    body = postwalk(lambda n: group_block(n, exact, copies) if isinstance(n, Block) else None)(p.body)
    if body == p.body:
        return p, "no identical updates"
    new = replace_body(p, body)
    after = sum(1 for _ in _assigns(new))
    return new, f"{plural(before, 'assignment')} -> {after}"


def _assigns(p: Program):
    return (n for n in nodes(p.body) if isinstance(n, Assign))


PASS = Pass("group-assignments", run, symmetry=True, requires=("normalize",), provides=())
