"""Pass ``fuse-faces``: nests that iterate the same dense first level (or one stored first level) run as one loop.

Precondition: ``sparse-iterate`` (its ``requires``): the nests iterate stored faces, and the storage
format of each tensor (the program's facts) says which first levels are dense.

The same holds for dense tensors: a diagonal nest of straight-line updates, ``for i in 0..n:
y[i] += A[i,i] * x[i]``, joins the row loop of the strict triangle before it, where ``A[i,i]`` lies
next to the row's first element (one sweep over A instead of a second pass that misses the cache
once per row).  A diagonal with a loop of its own (SSYRK's ``for k``) stays apart: with its
triangle it is one BLAS call (``blas-calls``).

``split-diagonals`` gives every face of a symmetric tensor its own nest, so a kernel sweeps its
inputs and outputs once per face: SSYMV reads ``x`` and updates ``y`` once for the strict triangle
and once more for the diagonal.  Where the faces' first levels are dense (every coordinate
``0 .. n-1``: :class:`~systec_ref.storage.formats.Dense`, chosen from the data for nearly full
faces) the nests run over the same range, and one loop can do the work of both per coordinate: one
sweep instead of two, and ``hoist-reads`` then shares the reads the bodies have in common.  Two
nests over the very same stored first level (one tensor's, compressed or not) fuse the same way:
they visit the same coordinates at the same positions in the same order.

Valid because the fused bodies only *reduce* into what they write (``+=``, ``min=``, ``max=``, one
operator per tensor) and neither reads a tensor either writes: running the second body's iteration
``i`` before the first body's iteration ``i+1`` only reorders commutative reductions (floats:
the sum is reassociated, as a compiler's ``-ffast-math`` would; integers and ``min``/``max``:
exactly the same result).  Adjacent nests that do not meet these conditions are left apart.

Before (SSYMV, strict triangle and diagonal stored with dense first levels)::

    for (_q0, i) in A<strict>.level0:          # dense: i = 0 .. n-1
      for (_q1, j) in A<strict>.level1 under _q0:
        y[i] += A<strict>.vals[_q1] * x[j]
        y[j] += x[i] * A<strict>.vals[_q1]
    for (_q2, i) in A<i==j>.level0:            # dense: i = 0 .. n-1
      y[i] += A<i==j>.vals[_q2] * x[i]

After::

    for (_q0, i) in A<strict>.level0:
      for (_q1, j) in A<strict>.level1 under _q0:
        y[i] += A<strict>.vals[_q1] * x[j]
        y[j] += x[i] * A<strict>.vals[_q1]
      y[i] += A<i==j>.vals[_q0] * x[i]
"""

from __future__ import annotations

import dataclasses

from ..ir.edit import replace_body, unwrap
from ..ir.index import rename_indices
from ..ir.names import namer
from ..ir.nodes import Assign, Block, DimSize, Elem, IConst, Let, Local, Loop, Program, Read, SparseLevel, Stmt
from ..storage import formats
from ..storage.faces import face_modes
from ..storage.formats import Dense
from ..term import nodes, postwalk
from .combinators import plural
from .manager import DEFAULT_OPTIONS, Options, Pass


def dense_extent(p: Program, s: Stmt) -> DimSize | IConst | None:
    """The extent of ``s`` if it is a sparse level over a dense first level (no parent), else None (also
    ``reverse-sweep``'s test that a loop visits every row)."""
    if not isinstance(s, SparseLevel) or s.parent is not None or s.level != 0:
        return None
    t = p.tensor(s.tensor)
    layout = dict(p.facts.sparse_storage).get(s.tensor)
    groups = t.symmetry if layout == "canonical" else ()
    level = formats.get(p.facts.format_of(s.tensor)).layout(t.order, groups, s.face).levels[0]
    if not isinstance(level, Dense):
        return None
    d = t.dims[face_modes(t.order, groups, s.face)[0]]
    return DimSize(d) if isinstance(d, str) else IConst(d)


def reductions(s: Stmt) -> dict[str, str] | None:
    """The operator each tensor written in ``s`` is reduced with; None if one is assigned (``=``),
    reduced with two operators, or also read."""
    ops: dict[str, str] = {}
    for n in nodes(s):
        if isinstance(n, Assign) and isinstance(n.target, Elem):
            if n.op == "=" or ops.setdefault(n.target.tensor, n.op) != n.op:
                return None
    read = {n.tensor for n in nodes(s) if isinstance(n, Read)}
    return None if read & set(ops) else ops


def fusable(a: dict[str, str] | None, b: dict[str, str] | None, body_a: Stmt, body_b: Stmt) -> bool:
    if a is None or b is None or any(a[t] != b[t] for t in set(a) & set(b)):
        return False
    read = {n.tensor for s in (body_a, body_b) for n in nodes(s) if isinstance(n, Read)}
    return not read & (set(a) | set(b))


def _merge(first: SparseLevel | Loop, second: SparseLevel | Loop, fresh) -> SparseLevel | Loop:
    """``second``'s body appended to ``first``'s, its coordinate (and position) renamed to ``first``'s
    (on a parentless dense level both are the coordinate) and its locals renamed apart."""
    names = {second.var: first.var}
    if isinstance(first, SparseLevel) and isinstance(second, SparseLevel):
        names[second.pos] = first.pos
    body = rename_indices(second.body, names)
    taken = {n.name for n in nodes(first.body) if isinstance(n, Let)}
    clash = {n.name: fresh() for n in nodes(body) if isinstance(n, Let) and n.name in taken}
    if clash:
        def rename(n):
            if isinstance(n, Let) and n.name in clash:
                return Let(clash[n.name], n.value)
            if isinstance(n, Local) and n.name in clash:
                return Local(clash[n.name])
            return None
        body = postwalk(rename)(body)
    return dataclasses.replace(first, body=Block((*first.body.body, *body.body), first.body.comment))


def _level(s: Stmt) -> tuple[SparseLevel | Loop, tuple[str, ...]] | None:
    """The sparse level or dense loop ``s`` is, looking through blocks of one statement (a face's nest comes
    in a block that names the face), with those blocks' comments."""
    inner, comments = unwrap(s)
    return (inner, comments) if isinstance(inner, (SparseLevel, Loop)) else None


def _fuse_block(p: Program, b: Block, fresh, stats: list[int]) -> Block:
    out: list[Stmt] = []
    for s in b.body:
        s = _inside(p, s, fresh, stats)
        prev = _level(out[-1]) if out else None
        this = _level(s)
        extent = _rows(p, this[0]) if prev is not None and this is not None else None
        same = (extent is not None and _rows(p, prev[0]) == extent) or \
            (prev is not None and this is not None and _same_level(prev[0], this[0]))
        if same and type(prev[0]) is type(this[0]) and \
                (isinstance(this[0], SparseLevel) or _straight(this[0])) and \
                fusable(reductions(prev[0]), reductions(this[0]), prev[0], this[0]):
            merged = _merge(prev[0], this[0], fresh)
            out[-1] = Block((merged,), "; ".join(dict.fromkeys((*prev[1], *this[1]))))
            stats[0] += 1
            continue
        out.append(s)
    return Block(tuple(out), b.comment)


def _rows(p: Program, s: Stmt) -> DimSize | IConst | None:
    """The extent of the rows ``s`` visits, every one of ``0 .. extent-1`` in order: a sparse level over a
    dense first level (:func:`dense_extent`), or a dense loop ``for i in 0..n``; else None."""
    if isinstance(s, Loop):
        return s.hi if s.lo == IConst(0) and s.step == 1 and isinstance(s.hi, (DimSize, IConst)) else None
    return dense_extent(p, s)


def _same_level(a: Stmt, b: Stmt) -> bool:
    """Two walks of one stored first level (a compressed one too): the same tensor, face and level 0, whole,
    in the same direction — the same coordinates at the same positions, in the same order (sparse SSYRK's
    strict and diagonal nests both over ``A<full>.level0`` in loop order ``i k j``)."""
    return isinstance(a, SparseLevel) and isinstance(b, SparseLevel) and a.parent is None and b.parent is None \
        and (a.tensor, a.face, a.level, a.reverse) == (b.tensor, b.face, 0, b.reverse) \
        and a.start is b.start is a.low is b.low is None


def _straight(loop: Loop) -> bool:
    """A dense nest of straight-line updates per row (a matrix's diagonal): it joins the row loop before it.
    A diagonal with a loop of its own (SSYRK's ``for k``) stays apart: with its triangle it is one BLAS call
    (``blas-calls``), or a tile's diagonal (``tile``)."""
    return not any(isinstance(n, (Loop, SparseLevel)) for n in nodes(loop.body))


def _inside(p: Program, s: Stmt, fresh, stats: list[int]) -> Stmt:
    match s:
        case Block():
            return _fuse_block(p, s, fresh, stats)
        case Loop() | SparseLevel():
            return dataclasses.replace(s, body=_fuse_block(p, s.body, fresh, stats))
        case _:
            return s


def run(p: Program, options: Options = DEFAULT_OPTIONS) -> tuple[Program, str]:
    stats = [0]
    body = _fuse_block(p, p.body, namer(p, "_f"), stats)
    if not stats[0]:
        return p, "not applied: no two adjacent nests iterate the same dense first level or rows"
    return replace_body(p, body), (f"{plural(stats[0], 'nest runs', 'nests run')} in the loop of the nest before "
                                   f"(the same rows, every one in order: one sweep over them instead of one per nest)")


PASS = Pass("fuse-faces", run, symmetry=False, requires=("sparse-iterate",))
