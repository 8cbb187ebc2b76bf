"""Pass ``lower``: einsum AST -> naive loop nest over the full index space.

Precondition: a checked :class:`~systec_ref.lang.ast.Kernel`.

Before (``examples/ssymv.ein``)::

    y[i] += A[i, j] * x[j]

After::

    for i in 0..n:
      for j in 0..n:
        y[i] += A[i,j] * x[j]

The loop order is the kernel's ``order`` line if it has one; otherwise the one
that :func:`choose_order` finds most concordant with the inputs' storage (first of all, one in
which a sparse input read at two places can be iterated by both reads — one walking the other's fiber,
or looked up at its coordinates — then with the fewest transposed reads and a concordant output:
``i k j`` for sparse SSYRK's ``A[i,k] * A[j,k]``, Gustavson's row by row order).
"""

from __future__ import annotations

import itertools

from ..dtypes import identity
from ..errors import SystecError
from ..ir.nodes import (
    Add,
    Assign,
    Block,
    Const,
    DimSize,
    Elem,
    Facts,
    IConst,
    Idx,
    Loop,
    Mul,
    Neg,
    Program,
    Read,
    TensorInfo,
    Value,
)
from ..lang import ast as A
from ..lang import unstored
from ..term import unknown

NAME = "lower"
_MAX_SEARCH = 7  # indices; beyond this the preferred order is taken as is


def depth_order_ok(indices: tuple[str, ...], depth: dict[str, int], groups: tuple[tuple[int, ...], ...]) -> bool:
    """Is an access concordant: subscripts in non-decreasing loop depth, where
    the subscripts of each symmetry group may be reordered freely?"""
    d = [depth[i] for i in indices]
    for g in groups:
        for p, v in zip(g, sorted(d[q] for q in g)):
            d[p] = v
    return all(a <= b for a, b in zip(d, d[1:]))


def preferred_order(k: A.Kernel) -> tuple[str, ...]:
    """Indices of the highest-order inputs first (so their reads can be hoisted
    out of the inner loops), then the rest in order of appearance."""
    rhs = A.accesses(k.assignment.rhs)
    ranked = sorted(range(len(rhs)), key=lambda n: (-len(rhs[n].indices), n))
    seen: dict[str, None] = {}
    for n in ranked:
        for i in rhs[n].indices:
            seen.setdefault(i, None)
    for i in A.index_vars(k):
        seen.setdefault(i, None)
    return tuple(seen)


def _value_when_fill(e: A.Expr, at: A.Access, fill: float, dtype: str) -> unstored.Abstract:
    """The value of ``e`` where the one access ``at`` holds ``fill``; every other access is unknown (finite)."""
    match e:
        case A.Access():
            return fill if e == at else unstored.FINITE
        case A.Number(value):
            return A.literal_value(value, dtype)
        case A.Neg(operand):
            return unstored.neg(_value_when_fill(operand, at, fill, dtype))
        case A.BinOp(op, left, right):
            a, b = _value_when_fill(left, at, fill, dtype), _value_when_fill(right, at, fill, dtype)
            if op == "*":
                return unstored.mul(a, b)
            return unstored.add(a, unstored.neg(b) if op == "-" else b)
        case _:
            raise unknown(e, "lower (value where an entry is unstored)")


def apart_reads(k: A.Kernel, depth: dict[str, int]) -> int:
    """How many non-symmetric sparse inputs, read at several places, cannot be iterated by both reads in this
    loop order: their reads, each with its subscripts in loop order (as ``concordize`` transposes them),
    must be two that permute the modes alike and agree on every subscript but the last (``A[i,k] * A[j,k]``
    under ``k i j``: ``A_T[k,i] * A_T[k,j]``, one fiber of ``A_T`` per ``k``; see ``sparse-iterate``), or
    two of which one is looked up at the other's coordinates (:func:`_looked_up`: ``i k j``).
    A tensor counts only if the update is nothing wherever either read holds the fill (a product of the
    two; a sum visits every point whatever the order)."""
    bad = 0
    rhs = k.rhs
    for d in k.decls:
        if d.role != "in" or d.format != "sparse" or d.symmetry:
            continue
        mine = [a for a in A.accesses(rhs) if a.tensor == d.name]
        places = list(dict.fromkeys(a.indices for a in mine))
        if len(places) < 2:
            continue
        if not all(unstored.no_change(_value_when_fill(rhs, a, d.fill, k.output.dtype), k.assignment.reduction)
                   for a in mine):
            continue
        walked = [tuple(sorted(range(len(x)), key=lambda q, x=x: (depth[x[q]], q))) for x in places]
        inner = [tuple(x[q] for q in w) for x, w in zip(places, walked)]
        distinct = all(len(set(x)) == len(x) for x in places)
        one_fiber = walked[0] == walked[1] and inner[0][:-1] == inner[1][:-1]
        if not (len(places) == 2 and distinct and (one_fiber or _looked_up(inner, depth))):
            bad += 1
    return bad


def _looked_up(inner: list[tuple[str, ...]], depth: dict[str, int]) -> bool:
    """Can one of two reads (subscripts in the order their levels are walked) be found at the other's
    coordinates: its first level at a subscript the other binds, its other subscripts bound by loops inside
    all of the other's?  ``A[i,k] * A[j,k]`` in loop order ``i k j``: ``A[i,k]`` is iterated, ``k`` looked up
    in the transposed copy ``A_T[k,j]`` and ``j`` walked in its fiber (``sparse-iterate``: Gustavson's row by
    row order); not in ``i j k``, where ``j`` would sweep every row of ``A`` for each ``i``."""
    for a, b in ((inner[0], inner[1]), (inner[1], inner[0])):
        deepest = max(depth[v] for v in a)
        if b[0] in a and all(depth[v] > deepest for v in b if v not in a):
            return True
    return False


def choose_order(k: A.Kernel) -> tuple[str, ...]:
    """The loop order in which every sparse input read at two places can walk one fiber for both
    (:func:`apart_reads`), then with the fewest discordant reads (sparse ones weigh most),
    then a concordant output, then closeness to :func:`preferred_order`."""
    pref = preferred_order(k)
    if len(pref) > _MAX_SEARCH:
        return pref
    rhs = A.accesses(k.assignment.rhs)
    out = k.assignment.lhs

    def score(order: tuple[str, ...]):
        depth = {v: n for n, v in enumerate(order)}
        sparse_bad = dense_bad = 0
        for a in rhs:
            d = k.decl(a.tensor)
            if not depth_order_ok(a.indices, depth, d.symmetry):
                if d.format == "sparse":
                    sparse_bad += 1
                else:
                    dense_bad += 1
        out_bad = 0 if depth_order_ok(out.indices, depth, ()) else 1
        return (apart_reads(k, depth), sparse_bad, dense_bad, out_bad, tuple(pref.index(v) for v in order))

    return min(itertools.permutations(pref), key=score)


def lower_expr(e: A.Expr, dtype: str) -> Value:
    match e:
        case A.Number(value):
            return Const(A.literal_value(value, dtype))
        case A.Access(tensor, indices):
            return Read(tensor, tuple(Idx(i) for i in indices))
        case A.Neg(operand):
            return Neg(lower_expr(operand, dtype))
        case A.BinOp(op, left, right):
            a, b = lower_expr(left, dtype), lower_expr(right, dtype)
            if op == "*":
                return Mul((a, b))
            if op == "-":
                b = Neg(b)
            return Add((a, b))
        case _:
            raise unknown(e, "lower (expression)")


def dim_expr(dim: str | int):
    return DimSize(dim) if isinstance(dim, str) else IConst(dim)


def lower(k: A.Kernel, packed: tuple[str, ...] = ()) -> Program:
    """The naive nest of ``k``; ``packed``: the dense symmetric inputs handed over packed (the compile's
    ``packed`` option, recorded as the program's ``packed`` fact)."""
    symmetric = {d.name for d in k.inputs if d.symmetry and d.format == "dense"}
    stray = sorted(set(packed) - symmetric)
    if stray:
        raise SystecError(f"kernel {k.name}: '{stray[0]}' cannot be passed packed (only a dense input declared "
                          f"symmetric can: {', '.join(sorted(symmetric)) or 'none here'})")
    red = k.assignment.reduction
    tensors = []
    for d in k.decls:
        init = identity(red, d.dtype) if d.role == "out" else 0
        tensors.append(TensorInfo(d.name, d.role, d.dims, d.symmetry, d.format, d.fill, d.dtype, init))
    order = k.order or choose_order(k)
    dims = A.index_dims(k)
    lhs = k.assignment.lhs
    body: Block = Block((Assign(Elem(lhs.tensor, tuple(Idx(i) for i in lhs.indices)), red,
                                lower_expr(k.rhs, k.output.dtype)),))
    for var in reversed(order):
        body = Block((Loop(var, IConst(0), dim_expr(dims[var]), body),))
    return Program(k.name, tuple(tensors), body, red, Facts(loop_order=" ".join(order),
                                                                  loop_order_given=bool(k.order),
                                                                  packed=tuple((d.name, d.symmetry) for d in k.inputs
                                                                               if d.name in packed)))
