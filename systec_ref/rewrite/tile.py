"""Pass ``tile``: the strict triangle of a dense nest runs tile by tile, the diagonal tiles apart.

Precondition: ``split-diagonals`` (its ``requires``): the strict part ``i < j`` of a symmetric pair
of loops is a nest of its own, ``for i in 0..n: for j in i+1..n``, and each diagonal face another.

Cut the triangle into ``T x T`` tiles (``T``: the compile option ``tile``).  A tile strictly above
the diagonal is a rectangle, ``i in I..I+T, j in J..J+T`` with ``I < J``: a dense, non-symmetric
sub-problem that ``blas-calls`` can hand to BLAS (or the C compiler can vectorize without bounds that
move with ``i``).  Only the ``n/T`` tiles on the diagonal keep the triangular loops.  The face
``i == j`` that follows the strict nest (a nest over ``i in 0..n``) runs with its diagonal tile, so
that a tile and its diagonal can become one call (``syrk``).

Valid because every iteration of the nest only *reduces* into what it writes (``+=``, ``min=``,
``max=``, one operator per tensor) and no statement reads a tensor the nest writes: the tiles visit
the same iterations, once each, in another order, which reorders commutative reductions (floats:
the sum is reassociated; integers and ``min``/``max``: exactly the same result).  Nests that do not
meet this, and kernels of another element type than float64, are left alone.

Before (SSYRK, after ``split-diagonals``)::

    for i in 0..n:
      for j in i+1..n:
        for k in 0..m:
          C[i,j] += A[i,k] * A[j,k]
    for i in 0..n:
      for k in 0..m:
        C[i,i] += A[i,k] * A[i,k]

After (``T = 64``)::

    for _iT in 0..n step 64:
      for i in _iT..min(_iT+64,n):                 # the diagonal tile
        for j in i+1..min(_iT+64,n):
          for k in 0..m:
            C[i,j] += A[i,k] * A[j,k]
      for i in _iT..min(_iT+64,n):                 # its diagonal
        for k in 0..m:
          C[i,i] += A[i,k] * A[i,k]
      for _jT in _iT+64..n step 64:                # the tiles right of it
        for i in _iT..min(_iT+64,n):
          for j in _jT..min(_jT+64,n):
            for k in 0..m:
              C[i,j] += A[i,k] * A[j,k]
"""

from __future__ import annotations

import dataclasses

from ..ir.edit import replace_body, unwrap
from ..ir.index import rename_indices, uses_index
from ..ir.names import used_names
from ..ir.nodes import Block, IConst, Idx, IMin, IPlus, Loop, Program, Stmt
from ..term import nodes
from . import blas_calls
from .combinators import plural
from .fuse_faces import fusable, reductions
from .manager import DEFAULT_OPTIONS, Options, Pass


def _triangle(s: Stmt) -> tuple[Loop, Loop] | None:
    """``s`` as the strict triangle ``for i in 0..H: for j in i+1..H`` (dense, step 1, H free of both) of a
    symmetric *pair*, with a loop inside (a reduction per point: work that grows faster than the data, which
    a tile keeps in cache) and no loop inside that moves its bounds with ``i`` or ``j`` (a tile is then a
    rectangle in every variable; in a triangle of three, ``for l in j+1..n`` would stay triangular inside
    each tile).  A triangle of straight-line updates (SSYMV, SYPRD) reads each element once: memory-bound,
    it runs fastest as the row sweeps ``unroll-and-jam`` makes, and is left alone.  So is a triangle whose
    tiles ``blas-calls`` would not turn into calls (tiled loop nests measured no faster: MTTKRP's faces)."""
    outer, _ = unwrap(s)
    if not isinstance(outer, Loop) or outer.step != 1 or outer.lo != IConst(0):
        return None
    inner, _ = unwrap(outer.body)
    if not isinstance(inner, Loop) or inner.step != 1 or inner.lo != IPlus(Idx(outer.var), 1) or inner.hi != outer.hi:
        return None
    if uses_index(outer.hi, {outer.var, inner.var}) or reductions(inner.body) is None \
            or _moves(inner.body, {outer.var, inner.var}) or not any(isinstance(n, Loop) for n in nodes(inner.body)):
        return None
    return outer, inner


def _moves(body: Stmt, names: set[str]) -> bool:
    """Does a loop inside ``body`` have a bound that uses one of ``names``?"""
    return any(isinstance(n, Loop) and uses_index((n.lo, n.hi), names) for n in nodes(body))


def _face(s: Stmt, outer: Loop) -> Loop | None:
    """``s`` as the diagonal of the triangle: a nest over ``outer``'s range (``for i in 0..H``) whose loops
    inside do not move with ``i``, else None."""
    loop, _ = unwrap(s)
    if not isinstance(loop, Loop) or (loop.lo, loop.hi, loop.step) != (outer.lo, outer.hi, 1) \
            or _moves(loop.body, {loop.var}):
        return None
    return loop


def _tiled(outer: Loop, inner: Loop, face: Loop | None, size: int, ti: str, tj: str) -> Loop:
    i, hi = outer.var, outer.hi
    end_i = IMin((IPlus(Idx(ti), size), hi))
    diagonal = Loop(i, Idx(ti), end_i, Block((dataclasses.replace(inner, hi=end_i),), outer.body.comment))
    parts: list[Stmt] = [Block((diagonal,), "the diagonal tile (tile)")]
    if face is not None:
        own = rename_indices(face.body, {face.var: i})
        parts.append(Block((Loop(i, Idx(ti), end_i, own),), "its diagonal (tile)"))
    rect = Loop(i, Idx(ti), end_i, Block((dataclasses.replace(inner, lo=Idx(tj), hi=IMin((IPlus(Idx(tj), size), hi))),),
                                            outer.body.comment))
    parts.append(Block((Loop(tj, IPlus(Idx(ti), size), hi, Block((rect,)), size),), "the tiles right of it (tile)"))
    return Loop(ti, IConst(0), hi, Block(tuple(parts)), size)


def _right(tiled: Loop) -> Loop:
    """The loop over the tiles right of the diagonal, in a tile row :func:`_tiled` made."""
    return tiled.body.body[-1].body[0]


def _tile_block(p: Program, b: Block, size: int, fresh, stats: list[int]) -> Block:
    out: list[Stmt] = []
    body = list(b.body)
    k = 0
    while k < len(body):
        s = body[k]
        tri = _triangle(s)
        if tri is None:
            out.append(_inside(p, s, size, fresh, stats))
            k += 1
            continue
        outer, inner = tri
        face = _face(body[k + 1], outer) if k + 1 < len(body) else None
        if face is not None and not fusable(reductions(inner.body), reductions(face.body), inner.body, face.body):
            face = None
        if face is not None and blas_calls.match_rank_update(p, s, body[k + 1]) is not None:
            out += [s, body[k + 1]]  # the triangle and its diagonal are one dsyrk/dsyr2k, which blocks for its cache
            k += 2
            continue
        ti, tj = fresh(f"_{outer.var}T"), fresh(f"_{inner.var}T")
        tiled = _tiled(outer, inner, face, size, ti, tj)
        if blas_calls.tile_calls(p, _right(tiled)) is None:
            out.append(_inside(p, s, size, fresh, stats))  # measured: tiles that stay loop nests gain nothing
            k += 1
            continue
        comments = unwrap(s)[1] + (unwrap(body[k + 1])[1] if face is not None else ())
        out.append(Block((tiled,),
                         "; ".join(dict.fromkeys((*comments, f"tiles of {size} x {size} (tile)")))))
        stats[0] += 1
        k += 2 if face is not None else 1
    return Block(tuple(out), b.comment)


def _inside(p: Program, s: Stmt, size: int, fresh, stats: list[int]) -> Stmt:
    match s:
        case Block():
            return _tile_block(p, s, size, fresh, stats)
        case _:
            return s


def run(p: Program, options: Options = DEFAULT_OPTIONS) -> tuple[Program, str]:
    if options.tile <= 0:
        return p, "not applied: tiling is off (tile=0)"
    if not options.blas:
        return p, "not applied: BLAS calls are off (blas=False), and tiles serve them"
    if p.dtype != "float64":
        return p, f"not applied: {p.dtype} elements (tiles serve BLAS calls, which are float64)"
    used = used_names(p)

    def fresh(base: str) -> str:
        name, n = base, 0
        while name in used:
            n += 1
            name = f"{base}{n}"
        used.add(name)
        return name
    stats = [0]
    body = _tile_block(p, p.body, options.tile, fresh, stats)
    if not stats[0]:
        return p, ("not applied: no dense strict triangle of a pair whose tiles would be BLAS calls (a triangle "
                   "that with its diagonal is one dsyrk or dsyr2k stays whole)")
    t = options.tile
    return replace_body(p, body), (f"{plural(stats[0], 'strict triangle')} in tiles of {t} x {t}: the diagonal "
                                   f"tiles keep the triangular loops, the others are rectangles")


PASS = Pass("tile", run, symmetry=False, requires=("split-diagonals",))
