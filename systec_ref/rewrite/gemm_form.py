"""Pass ``gemm-form``: use only the part of a symmetric input's symmetry that costs no multiply-add and
leaves nests of the shape of a matrix product (for ``tile`` and ``blas-calls``).

Precondition: the naive nest of ``lower`` (a perfect nest, one assignment), before ``concordize``.

**Why.** A symmetric input read with the subscripts of a set ``S`` of ``s`` indices, ``c`` of them
summed over (not indices of the output), lets the pipeline visit the canonical points of ``S`` only,
each with one update per distinct arrangement of its values over the output's subscripts:
``n^s/s!`` points times ``s!/(c!(s-c)!)`` updates = ``n^s/(c!(s-c)!)`` updates per value of the other
indices.  Using the symmetry of a part of ``S`` only costs:

* the ``s-c`` **output** indices of ``S`` (the output is symmetric in them, because the input is):
  ``n^s/(s-c)!`` updates — the same when ``c = 1``;
* the ``c`` **summed** indices of ``S``: ``n^s/c!`` — the same when ``s - c = 1``.

When one of them costs the same, the full set saves reads of the input and no arithmetic, while its
nest scatters several updates per point and runs at a fraction of a matrix product's speed.  The part
alone leaves a plain nest, and this pass orders its loops so that the inner ones are a matrix product:

* ``c = 1`` (TTM ``C[i,j,l] += A[k,j,l] * B[k,i]``): the output's triangle ``(j,l)`` outermost, then
  the other loops; each row ``j`` of the triangle is one GEMM over ``(l, i, k)`` (``tile`` and
  ``blas-calls``);
* ``s - c = 1``, ``c >= 2`` (MTTKRP ``C[i,j] += A[i,k,l] * B[l,j] * B[k,j]``): the summed indices
  outermost, ``k < l`` for a pair; for each ``k`` the sum over ``l`` with ``i`` and ``j`` is a GEMM
  whose other factor ``B[k,j]`` ``blas-calls`` folds into a scaled copy of ``B``.

**What.** For a dense float64 ``+=`` kernel with one symmetric input of one symmetric set of three or
more modes, read once, with plain, distinct subscripts in the set, where ``c = 1`` (and the output
part is a pair: ``s = 3``, the triangle ``tile`` handles) or ``s - c = 1``, and whose update is a product
that swapping two indices of the kept part leaves the same (the other factors do not tell them apart:
otherwise the part is not a symmetry of the kernel and the count above does not hold): the input's subscripts
within the set are reordered to the new loop order (the input is symmetric there: the same value;
the innermost walks the last mode), its symmetry is declared on the kept part only (still true of the
data) and the loops are reordered: the kept part outermost, then the others as ``lower`` had them.
Not applied when BLAS calls are off (``blas=False``), to a kernel with an ``order`` line (the user's
order is kept), or to anything else.  And the pipeline keeps the trade only if ``blas-calls`` then
makes at least one call: otherwise it compiles again with this pass declining (its note says so), so
that a kernel whose part's nests are no matrix products keeps the whole set and ``lower``'s order.

Before (``examples/ttm.ein``; ``lower`` chose ``k i j l``)::

    # in A[n,n,n] symmetric(0,1,2)
    for k in 0..n:
      for i in 0..r:
        for j in 0..n:
          for l in 0..n:
            C[i,j,l] += A[k,j,l] * B[k,i]

After::

    # in A[n,n,n] symmetric(0,1)
    for j in 0..n:
      for l in 0..n:
        for k in 0..n:
          for i in 0..r:
            C[i,j,l] += A[j,l,k] * B[k,i]

``identify-symmetry`` then finds C visibly symmetric in ``(j, l)``, ``replicate-output`` computes its
triangle ``j <= l``, and ``blas-calls`` turns each row ``j`` of it into one GEMM
``C[:,j,j+1:] += B' A[j,j+1:,:]'`` (and its diagonal entry into a GEMV).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from dataclasses import dataclass

from ..ir.index import rename_indices
from ..ir.nodes import Assign, BlasCall, Block, Const, Elem, Idx, Loop, Mul, Program, Read, Value
from ..term import Node, nodes, postwalk
from .manager import DEFAULT_OPTIONS, Options, Pass

NAME = "gemm-form"


@dataclass(frozen=True)
class _Plan:
    tensor: str
    group: tuple[int, ...]
    #: the indices of the set whose symmetry is kept (the output's, or the summed ones)
    kept: tuple[str, ...]
    order: tuple[str, ...]
    why: str


def _nest(p: Program) -> tuple[list[Loop], Assign] | None:
    """The loops of a perfect nest around one assignment, outermost first, and the assignment."""
    loops: list[Loop] = []
    body = p.body
    while len(body.body) == 1 and isinstance(body.body[0], Loop):
        loops.append(body.body[0])
        body = body.body[0].body
    if len(body.body) != 1 or not isinstance(body.body[0], Assign):
        return None
    return loops, body.body[0]


def _plan(p: Program, options: Options) -> _Plan | str:
    """What to keep of which input's symmetry, and the loop order; or why nothing."""
    if not options.blas:
        return "BLAS calls are off (blas=False)"
    if p.facts.loop_order_given:
        return "the kernel's order line fixes the loop order"
    if p.reduction != "+" or p.dtype != "float64":
        return f"a {p.dtype} {p.reduction}= kernel (BLAS calls are float64 sums)"
    if any(t.format == "sparse" for t in p.tensors):
        return "a sparse tensor"
    nest = _nest(p)
    if nest is None:
        return "not a perfect nest"
    loops, update = nest
    if not isinstance(update.target, Elem) or not all(isinstance(x, Idx) for x in update.target.idx):
        return "an output subscript that is not an index"
    out_vars = {x.name for x in update.target.idx}
    infos = {t.name: t for t in p.tensors}
    reads = [r for r in nodes(update.value) if isinstance(r, Read)]
    symmetric = [r for r in reads if infos[r.tensor].symmetry]
    if len(symmetric) != 1 or sum(r.tensor == symmetric[0].tensor for r in reads) != 1:
        return "not one read of one symmetric input"
    read = symmetric[0]
    groups = infos[read.tensor].symmetry
    if len(groups) != 1 or len(groups[0]) < 3:
        return f"{read.tensor}'s symmetry is not one set of three or more modes"
    group = groups[0]
    subs = [read.idx[q] for q in group]
    if not all(isinstance(x, Idx) for x in subs) or len({x.name for x in subs}) != len(subs):
        return f"{read.tensor}'s symmetric subscripts are not different indices"
    names = [x.name for x in subs]
    summed = tuple(v for v in names if v not in out_vars)
    kept_out = tuple(v for v in (x.name for x in update.target.idx) if v in names)
    s, c = len(names), len(summed)
    if c == 1 and s == 3:
        kept = kept_out
        why = (f"{summed[0]} is the one summed index of {read.tensor}'s set: the output's own symmetry in "
               f"({','.join(kept_out)}) costs the same multiply-adds")
    elif s - c == 1 and c >= 2:
        kept = tuple(lp.var for lp in loops if lp.var in summed)
        why = (f"{kept_out[0]} is the one index of {read.tensor}'s set that the output keeps: the symmetry of the "
               f"summed ({','.join(kept)}) alone costs the same multiply-adds")
    else:
        return (f"{c} of the {s} indices of {read.tensor}'s set are summed over: the full set saves multiply-adds "
                f"(this pass needs one summed, with a pair left, or one left)")
    if not _interchangeable(update.value, kept, read.tensor, group):
        return (f"the other factors tell ({','.join(kept)}) apart: the part's symmetry would not hold for the "
                f"whole product")
    order = kept + tuple(lp.var for lp in loops if lp.var not in kept)
    return _Plan(read.tensor, group, kept, order, why)


def _interchangeable(value: Value, kept: tuple[str, ...], tensor: str, group: tuple[int, ...]) -> bool:
    """Is the product ``value`` the same after swapping any two of the ``kept`` indices (``tensor``'s read
    compared with its subscripts in ``group`` as a set)?  Then the part is a permutable set of the
    kernel as the counting argument assumes (TTM's ``B[k,i]`` does not use ``j`` or ``l``; MTTKRP's
    ``B[l,j] * B[k,j]`` is one tensor at both summed indices).  A product of reads and constants only."""
    def flat(v: Value) -> list[Value]:
        return [g for a in v.args for g in flat(a)] if isinstance(v, Mul) else [v]

    factors = flat(value)
    if not all(isinstance(f, (Read, Const)) for f in factors):
        return False

    def key(fs) -> list[str]:
        out = []
        for f in fs:
            if isinstance(f, Read) and f.tensor == tensor:
                inside = sorted(repr(f.idx[q]) for q in group)
                f = (f.tensor, tuple(x for q, x in enumerate(f.idx) if q not in group), tuple(inside))
            out.append(repr(f))
        return sorted(out)

    want = key(factors)
    return all(key(rename_indices(f, {a: b, b: a}) for f in factors) == want
               for a, b in itertools.combinations(kept, 2))


def run(p: Program, options: Options = DEFAULT_OPTIONS) -> tuple[Program, str]:
    plan = _plan(p, options)
    if isinstance(plan, str):
        return p, f"not applied: {plan}"
    loops, update = _nest(p)  # type: ignore[misc]  # _plan checked it
    depth = {v: d for d, v in enumerate(plan.order)}

    def reorder(r: Read) -> Read:
        # within the symmetric set any arrangement of the subscripts reads the same value: take the one in
        # loop order, so the innermost walks the last mode (contiguous)
        inside = sorted((r.idx[q] for q in plan.group), key=lambda x: depth[x.name])
        idx = list(r.idx)
        for q, x in zip(plan.group, inside):
            idx[q] = x
        return dataclasses.replace(r, idx=tuple(idx))

    value = _map_reads(update.value, plan.tensor, reorder)
    new_read = next(r for r in nodes(value) if isinstance(r, Read) and r.tensor == plan.tensor)
    kept = tuple(q for q in plan.group if new_read.idx[q].name in plan.kept)
    tensors = tuple(dataclasses.replace(t, symmetry=(kept,)) if t.name == plan.tensor else t for t in p.tensors)
    by_var = {lp.var: lp for lp in loops}
    body = Block((dataclasses.replace(update, value=value),))
    for var in reversed(plan.order):
        body = Block((dataclasses.replace(by_var[var], body=body),))
    new = dataclasses.replace(p, tensors=tensors, body=body,
                              facts=dataclasses.replace(p.facts, loop_order=" ".join(plan.order)))
    return new, (f"{plan.tensor} symmetric in ({','.join(plan.kept)}) only: {plan.why}; loop order "
                 f"{' '.join(plan.order)}, its nests matrix products inside")


def _map_reads(v: Value, tensor: str, fn: Callable[[Read], Read]) -> Value:
    """``v`` with every read of ``tensor`` replaced by ``fn(read)``."""
    return postwalk(lambda x: fn(x) if isinstance(x, Read) and x.tensor == tensor else None)(v)


PASS = Pass(NAME, run, symmetry=True, requires=(), provides=())


def traded(naive: Program, formed: Program) -> tuple[str, tuple[int, ...]] | None:
    """The input whose symmetry this pass cut to a part (``formed``: its output, ``naive``: its input), with
    the part's modes; None if it changed nothing."""
    for t in formed.tensors:
        if t.symmetry and t.symmetry != naive.tensor(t.name).symmetry:
            return t.name, t.symmetry[0]
    return None


def made_products(final: Program, tensor: str, modes: tuple[int, ...]) -> bool:
    """Is every read of ``tensor`` at distinct indices in ``modes`` (the part's strict nest, where the work
    is) inside a BLAS matrix product (not a ``gemv``) in ``final``?  The pipeline keeps this pass's trade
    only then.  (A packed input's slab copied out for a product counts as read by it.)"""
    products = [n for n in nodes(final.body) if isinstance(n, BlasCall) and n.routine != "gemv"]
    feeds = {x.tensor for call in products for x in call.args}

    def strict_reads(node: Node) -> bool:
        if isinstance(node, BlasCall) and node.routine != "gemv":
            return False  # its nest is the call's meaning: a matrix product runs it (a gemv per point does not pay)
        if isinstance(node, Assign) and isinstance(node.target, Elem) and node.target.tensor in feeds:
            return False  # a copy that a product reads
        if isinstance(node, Read) and node.tensor == tensor:
            subs = [node.idx[q] for q in modes]
            return all(isinstance(x, Idx) for x in subs) and len({x.name for x in subs}) == len(subs)
        return any(strict_reads(c) for c in node.children())
    return not strict_reads(final.body)


def declining(why: str) -> Pass:
    """This pass, changing nothing and saying ``why``: what the pipeline runs instead when the trade bought no
    BLAS call (``compile_stages``)."""
    return dataclasses.replace(PASS, run=lambda p, options=DEFAULT_OPTIONS: (p, f"not applied: {why}"))
