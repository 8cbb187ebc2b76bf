"""Pass ``blas-calls``: a dense loop nest that is a matrix product, a matrix-vector product or a symmetric
rank-k update becomes one call of BLAS (``dgemm``, ``dgemv``, ``dsyrk``).

Precondition: ``tile`` (its ``requires``, when it runs): the strict triangle of a symmetric pair of
loops comes as rectangles (tiles right of the diagonal) and diagonal tiles, the shapes matched here.

A nest matches when it is a perfect nest of rectangular loops (step 1, bounds free of the nest's
variables) around one update ``O[..] += c * X[..] * Y[..]`` of float64 dense tensors, each loop
variable a plain subscript of one mode of each tensor it indexes (the other subscripts fixed over the
nest), and:

* ``gemm``: three variables, ``O`` indexed by ``r, c``, ``X`` by ``r, s``, ``Y`` by ``s, c``;
* ``gemv``: two variables, ``O`` indexed by ``r``, one read by ``r, s``, the other by ``s``;
* ``syrk``: a triangle (or a diagonal tile) ``for i in a..b: for j in i+1..b: for k: O[i,j] += c * X[i,k] *
  X[j,k]`` followed by its diagonal ``for i in a..b: for k: O[i,i] += c * X[i,k] * X[i,k]``;
* ``syr2k``: the same with ``O[i,j] += c * X[i,k] * Y[j,k] + c * X[j,k] * Y[i,k]`` (and its diagonal, the
  same update at ``j = i``);

and every matrix has one of its two modes the tensor's last (stride 1: BLAS reads it as it lies, or
transposed).  The call's meaning is the nest (the interpreter runs it; so does the C when a size
does not fit BLAS's 32-bit int).  A tile loop (``for J in a..n step T``) around one matching nest
whose variable runs over the tile ``J..min(J+T,n)`` becomes one call over ``a..n``: BLAS blocks
for its cache itself.  A nest of several matching updates that only reduce into what they write and
read nothing written is split into one call per update (loop fission), inside its tile loop: the
tile one call reads is in cache for the next.

A nest of three loops around ``O[r,c] += alpha * X[r,s] * F * G * ...`` (more than two factors, ``s``
summed) whose factors other than ``X`` use nothing of the nest but ``s`` and ``c`` becomes a copy
``W[s,c] = F * G * ...`` (a nest of its own, counted as copies, into a temporary) and one ``gemm`` of
``X`` with ``W`` (:func:`_scaled`; MTTKRP after ``gemm-form``).  The multiplications are reordered,
``X * (F * G)`` for ``(X * F) * G``: like the sum BLAS reassociates, this can differ in the last bits,
and at the ends of the float range (an overflow of ``F * G`` that ``X`` would have prevented).

A packed input (the ``packed`` fact: its canonical entries only, :mod:`systec_ref.storage.packed`) is
never handed to BLAS; a nest that matches but for one factor read from it copies that factor's slab
out first, ``A_S0[l,i] = A[k,l,i]`` over the factor's loop variables (a nest of its own, counted, read
through the packed offset in C; :func:`_unpacked`), and the call reads the copy: MTTKRP and TTM from
packed storage keep ``gemm-form``'s products at the price of one gather per element of each slab.

Before (SSYRK, a tile row after ``tile``)::

    for i in _iT..min(_iT+64,n):
      for j in i+1..min(_iT+64,n):
        for k in 0..m:
          C[i,j] += A[i,k] * A[j,k]
    for i in _iT..min(_iT+64,n):
      for k in 0..m:
        C[i,i] += A[i,k] * A[i,k]
    for _jT in _iT+64..n step 64:
      for i in _iT..min(_iT+64,n):
        for j in _jT..min(_jT+64,n):
          for k in 0..m:
            C[i,j] += A[i,k] * A[j,k]

After::

    blas syrk: C[_iT:min(_iT+64,n),_iT:min(_iT+64,n)] upper += A[_iT:min(_iT+64,n),0:m] @ (...)^T, which means:
      (the first two nests)
    blas gemm: C[_iT:min(_iT+64,n),_iT+64:n] += A[_iT:min(_iT+64,n),0:m] @ A[_iT+64:n,0:m]^T, which means:
      (the tile loop)
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter

from ..ir.edit import replace_body
from ..ir.index import rename_indices, simplify_index, uses_index
from ..ir.names import namer
from ..ir.nodes import (
    Add,
    Assign,
    BlasCall,
    Block,
    Const,
    DimSize,
    Elem,
    IConst,
    Idx,
    IMin,
    IndexExpr,
    IPlus,
    Loop,
    Mul,
    Program,
    Read,
    Stmt,
    Strided,
    TensorInfo,
)
from ..ir.order import Order
from ..term import nodes, postwalk
from .combinators import plural
from .fuse_faces import reductions
from .manager import DEFAULT_OPTIONS, Options, Pass


def _chain(s: Stmt) -> tuple[list[Loop], list[Stmt]] | None:
    """``s`` as a perfect nest of dense loops (through blocks of one statement) and the statements of its
    innermost body (through blocks), or None."""
    loops: list[Loop] = []
    while True:
        while isinstance(s, Block) and len(s.body) == 1:
            s = s.body[0]
        if not isinstance(s, Loop):
            break
        loops.append(s)
        s = s.body
    if not loops:
        return None
    stmts = _flat(loops[-1].body)
    return (loops, stmts) if stmts and all(isinstance(x, Assign) for x in stmts) else None


def _flat(b: Block) -> list[Stmt]:
    out: list[Stmt] = []
    for s in b.body:
        out += _flat(s) if isinstance(s, Block) else [s]
    return out


def _factors(v) -> tuple[float, list[Read]] | None:
    """``v`` as ``alpha * X * Y * ...`` (constants folded into ``alpha``), reads without run-time sorting; None
    for a factor 0 or a non-finite one: BLAS skips the product when alpha is 0 (the nest would make NaN of an
    infinite element), and ``inf * (a*b + c*d)`` is not ``inf*a*b + inf*c*d`` where one product is 0."""
    alpha, reads = 1.0, []
    for f in v.args if isinstance(v, Mul) else (v,):
        match f:
            case Const(value):
                alpha *= float(value)
            case Read(sort=()):
                reads.append(f)
            case _:
                return None
    return (alpha, reads) if math.isfinite(alpha) and alpha != 0 else None


def _where(idx: tuple[IndexExpr, ...], var: str) -> int | None | bool:
    """The one mode subscripted by plain ``var``; None if no subscript uses it; False if it is used otherwise."""
    plain = [q for q, e in enumerate(idx) if e == Idx(var)]
    other = [q for q, e in enumerate(idx) if e != Idx(var) and uses_index(e, {var})]
    if other or len(plain) > 1:
        return False
    return plain[0] if plain else None


def _plain(idx: tuple[IndexExpr, ...], var: str) -> int | None:
    """The one mode subscripted by plain ``var`` when no other subscript uses it, else None."""
    q = _where(idx, var)
    return None if q is None or q is False else q


class _Nest:
    """The ranges of a rectangular nest's variables."""

    def __init__(self, loops: list[Loop]):
        self.lo = {lp.var: lp.lo for lp in loops}
        self.hi = {lp.var: lp.hi for lp in loops}

    def strided(self, tensor: str, idx: tuple[IndexExpr, ...], along: list[tuple[int, str]]) -> Strided:
        base = list(idx)
        for q, v in along:
            base[q] = self.lo[v]
        return Strided(tensor, tuple(base), tuple(q for q, _ in along), tuple(self.hi[v] for _, v in along))


def _dense(p: Program, tensor: str) -> bool:
    """A tensor BLAS can take: dense float64 in full (a packed one holds its canonical entries only)."""
    t = p.tensor(tensor)
    return t.format != "sparse" and t.dtype == "float64" and p.facts.packed_groups(tensor) is None


def _unit(p: Program, x: Strided) -> bool:
    """A vector, or a matrix with one mode of stride 1."""
    return len(x.modes) == 1 or p.tensor(x.tensor).order - 1 in x.modes


def _update(p: Program, s: Stmt) -> tuple[Elem, float, list[Read]] | None:
    """``s`` as ``O[..] += alpha * X[..] * Y[..]`` over dense float64 tensors, O read by neither."""
    if not isinstance(s, Assign) or s.op != "+" or not isinstance(s.target, Elem):
        return None
    got = _factors(s.value)
    if got is None or len(got[1]) != 2:
        return None
    alpha, reads = got
    names = [s.target.tensor, *(r.tensor for r in reads)]
    if not all(_dense(p, t) for t in names) or s.target.tensor in names[1:]:
        return None
    return s.target, alpha, reads


def match(p: Program, loops: list[Loop], s: Stmt, nest: Block) -> BlasCall | None:
    """The BLAS call that does what ``loops`` around ``s`` do (``nest``: the statement it replaces), or None."""
    vs = [lp.var for lp in loops]
    if len(set(vs)) != len(vs) or any(lp.step != 1 or uses_index((lp.lo, lp.hi), set(vs)) for lp in loops):
        return None
    got = _update(p, s)
    if got is None:
        return None
    out, alpha, (x, y) = got
    at = {name: {v: _where(idx, v) for v in vs} for name, idx in (("o", out.idx), ("x", x.idx), ("y", y.idx))}
    if any(q is False for where in at.values() for q in where.values()):
        return None
    uses = {name: {v for v, q in where.items() if q is not None} for name, where in at.items()}
    if any(not (uses["o"] | uses["x"] | uses["y"]) >= {v} for v in vs):
        return None
    r = _Nest(loops)
    call: BlasCall | None = None
    if len(vs) == 2 and len(uses["o"]) == 1:
        (row,) = uses["o"]
        (s_,) = set(vs) - {row}
        mat, vec = (x, y) if uses["x"] == {row, s_} else (y, x)
        km, kv = ("x", "y") if mat is x else ("y", "x")
        if uses[km] == {row, s_} and uses[kv] == {s_}:
            call = BlasCall("gemv", alpha, r.strided(out.tensor, out.idx, [(at["o"][row], row)]),
                            (r.strided(mat.tensor, mat.idx, [(at[km][row], row), (at[km][s_], s_)]),
                             r.strided(vec.tensor, vec.idx, [(at[kv][s_], s_)])), nest)
    elif len(vs) == 3 and len(uses["o"]) == 2:
        (s_,) = set(vs) - uses["o"]
        for first, second in (("x", "y"), ("y", "x")):
            a, b = (x, y) if first == "x" else (y, x)
            rows, cols = uses[first] - {s_}, uses[second] - {s_}
            if len(rows) == len(cols) == 1 and uses[first] == rows | {s_} and uses[second] == cols | {s_} \
                    and rows | cols == uses["o"]:
                (row,), (col,) = rows, cols
                call = BlasCall("gemm", alpha,
                                r.strided(out.tensor, out.idx, [(at["o"][row], row), (at["o"][col], col)]),
                                (r.strided(a.tensor, a.idx, [(at[first][row], row), (at[first][s_], s_)]),
                                 r.strided(b.tensor, b.idx, [(at[second][s_], s_), (at[second][col], col)])), nest)
                break
    if call is None or not all(_unit(p, z) for z in (call.out, *call.args)):
        return None
    return call


def _triangle_and_diagonal(strict: Stmt, face: Stmt):
    """``strict`` as ``for i in a..b: for j in i+1..b: for k in c..d`` around one update and ``face`` as ``for i
    in a..b: for k in c..d`` around one (rectangular in k, step 1): ((the five loops), chain of strict, chain of
    face); else None."""
    a, b = _chain(strict), _chain(face)
    if a is None or b is None or len(a[1]) != 1 or len(b[1]) != 1 or len(a[0]) != 3 or len(b[0]) != 2:
        return None
    (li, lj, lk), (fi, fk) = a[0], b[0]
    i, j, k = li.var, lj.var, lk.var
    if (lj.lo, lj.hi) != (IPlus(Idx(i), 1), li.hi) or (fi.lo, fi.hi, fk.lo, fk.hi) != (li.lo, li.hi, lk.lo, lk.hi):
        return None
    if any(lp.step != 1 for lp in (li, lj, lk, fi, fk)) or uses_index((li.lo, li.hi, lk.lo, lk.hi), {i, j, k}):
        return None
    return (li, lj, lk, fi, fk), a, b


def match_syrk(p: Program, strict: Stmt, face: Stmt) -> BlasCall | None:
    """A diagonal tile and its diagonal (see the module's docstring) as one ``syrk``, or None."""
    got = _triangle_and_diagonal(strict, face)
    if got is None:
        return None
    (li, lj, lk, fi, fk), a, b = got
    i, j, k = li.var, lj.var, lk.var
    one, two = _update(p, a[1][0]), _update(p, b[1][0])
    if one is None or two is None or one[1] != two[1]:
        return None
    out, alpha, (x, y) = one
    if _where(x.idx, j) is not None:
        x, y = y, x
    pi, pk, oi, oj = _plain(x.idx, i), _plain(x.idx, k), _plain(out.idx, i), _plain(out.idx, j)
    if x.tensor != y.tensor or None in (pi, pk, oi, oj) or _where(x.idx, j) is not None:
        return None
    if x.idx != tuple(Idx(i) if q == pi else e for q, e in enumerate(y.idx)) or y.idx[pi] != Idx(j) \
            or _where(y.idx, i) is not None or uses_index(out.idx, {k}) \
            or any(uses_index(e, {i, j, k}) for q, e in enumerate(x.idx) if q not in (pi, pk)) \
            or any(uses_index(e, {i, j}) for q, e in enumerate(out.idx) if q not in (oi, oj)):
        return None
    # the diagonal: the same update with j = i, renamed to the face's variables
    fout, _, freads = two
    want_out = tuple(Idx(fi.var) if q in (oi, oj) else e for q, e in enumerate(out.idx))
    want_x = tuple(Idx(fi.var) if q == pi else Idx(fk.var) if q == pk else e for q, e in enumerate(x.idx))
    if (fout.tensor, fout.idx) != (out.tensor, want_out) or any((r.tensor, r.idx) != (x.tensor, want_x)
                                                                for r in freads):
        return None
    r = _Nest([li, lk])
    r.hi[j], r.lo[j] = li.hi, li.lo
    call = BlasCall("syrk", alpha, r.strided(out.tensor, out.idx, [(oi, i), (oj, j)]),
                    (r.strided(x.tensor, x.idx, [(pi, i), (pk, k)]),), Block((strict, face)))
    return call if all(_unit(p, z) for z in (call.out, *call.args)) else None


def match_syr2k(p: Program, strict: Stmt, face: Stmt) -> BlasCall | None:
    """A triangle (or a diagonal tile) ``O[i,j] += c*X[i,k]*Y[j,k] + c*X[j,k]*Y[i,k]`` and its diagonal, the same
    update at ``j = i``, as one ``syr2k``; or None."""
    got = _triangle_and_diagonal(strict, face)
    if got is None:
        return None
    (li, lj, lk, fi, fk), a, b = got
    i, j, k = li.var, lj.var, lk.var
    st = a[1][0]
    if not (isinstance(st, Assign) and st.op == "+" and isinstance(st.target, Elem) and isinstance(st.value, Add)
            and len(st.value.args) == 2):
        return None
    # the diagonal is the same update at j = i (in the face's own variables)
    if rename_indices(b[1][0], {fi.var: i, fk.var: k}) != rename_indices(st, {j: i}):
        return None
    one, two = (_factors(t) for t in st.value.args)
    if one is None or two is None or one[0] != two[0] or len(one[1]) != 2 or len(two[1]) != 2:
        return None
    alpha, out = one[0], st.target
    x, y = one[1] if _where(one[1][0].idx, j) is None else one[1][::-1]
    pi, pk, qj, qk = _plain(x.idx, i), _plain(x.idx, k), _plain(y.idx, j), _plain(y.idx, k)
    oi, oj = _plain(out.idx, i), _plain(out.idx, j)
    if None in (pi, pk, qj, qk, oi, oj) or x.tensor == y.tensor or _where(x.idx, j) is not None \
            or _where(y.idx, i) is not None or uses_index(out.idx, {k}):
        return None
    swap = {i: j, j: i}
    if sorted(map(repr, two[1])) != sorted(map(repr, (rename_indices(x, swap), rename_indices(y, swap)))):
        return None
    tensors = (out.tensor, x.tensor, y.tensor)
    if not all(_dense(p, t) for t in tensors) or out.tensor in tensors[1:] \
            or any(uses_index(e, {i, j, k}) for q, e in enumerate(x.idx) if q not in (pi, pk)) \
            or any(uses_index(e, {i, j, k}) for q, e in enumerate(y.idx) if q not in (qj, qk)) \
            or any(uses_index(e, {i, j}) for q, e in enumerate(out.idx) if q not in (oi, oj)):
        return None
    # BLAS reads both operands the same way (as stored, or both transposed)
    if (pi == p.tensor(x.tensor).order - 1) != (qj == p.tensor(y.tensor).order - 1):
        return None
    r = _Nest([li, lk])
    r.hi[j], r.lo[j] = li.hi, li.lo
    call = BlasCall("syr2k", alpha, r.strided(out.tensor, out.idx, [(oi, i), (oj, j)]),
                    (r.strided(x.tensor, x.idx, [(pi, i), (pk, k)]), r.strided(y.tensor, y.idx, [(qj, j), (qk, k)])),
                    Block((strict, face)))
    return call if all(_unit(p, z) for z in (call.out, *call.args)) else None


def match_rank_update(p: Program, strict: Stmt, face: Stmt) -> BlasCall | None:
    """A triangle and its diagonal as one ``syrk`` or ``syr2k``, or None."""
    return match_syrk(p, strict, face) or match_syr2k(p, strict, face)


def _untiled(loop: Loop) -> list[Loop] | None:
    """A tile loop ``for J in a..n step T`` around a perfect nest with one loop over ``J..min(J+T,n)``: that
    nest with the loop over ``a..n`` instead (the tiles cover it once), else None."""
    got = _chain(loop.body)
    if loop.step == 1 or got is None:
        return None
    loops, _ = got
    tile = IMin((IPlus(Idx(loop.var), loop.step), loop.hi))
    over = [n for n, lp in enumerate(loops) if (lp.lo, lp.hi) == (Idx(loop.var), tile)]
    if len(over) != 1 or any(uses_index((lp.lo, lp.hi), {loop.var}) for n, lp in enumerate(loops) if n != over[0]):
        return None
    return [dataclasses.replace(lp, lo=loop.lo, hi=loop.hi) if n == over[0] else lp for n, lp in enumerate(loops)]


def _terms(stmts: list[Stmt]) -> list[Stmt]:
    """Each ``t += a + b`` as ``t += a; t += b`` (the same sum, reassociated)."""
    out: list[Stmt] = []
    for st in stmts:
        if isinstance(st, Assign) and st.op == "+" and isinstance(st.value, Add):
            out += [Assign(st.target, "+", a) for a in st.value.args]
        else:
            out.append(st)
    return out


def _calls(p: Program, loops: list[Loop], stmts: list[Stmt], meaning) -> list[BlasCall] | None:
    """One call per update (a sum split into its terms) of a nest whose every update matches, if splitting
    them is valid (they only reduce into what they write and read nothing written: their order does not
    matter); ``meaning(update)`` is the loop nest the call of that update stands for."""
    if reductions(Block(tuple(stmts))) is None:
        return None
    calls = []
    for st in _terms(stmts):
        call = match(p, loops, st, Block((meaning(st),)))
        if call is None:
            return None
        calls.append(call)
    return calls


def _rebuild(loops: list[Loop], body: Block) -> Loop:
    for lp in reversed(loops):
        body = Block((dataclasses.replace(lp, body=body),))
    return body.body[0]


def tile_calls(p: Program, s: Loop) -> list[BlasCall] | None:
    """The calls that do what tile loop ``s`` does (``for J in a..n step T`` around a nest over the tile
    ``J..min(J+T,n)``): one per update, over the tiles' whole range (its meaning: the tile loop around that
    update alone); None if ``s`` is not such a loop or an update does not match.  (``tile`` asks this too:
    it tiles only a triangle whose tiles become calls.)"""
    flat = _untiled(s)
    got = _chain(s.body)
    if flat is None or got is None:
        return None
    inner, stmts = got

    def tiles(st: Stmt) -> Loop:
        return dataclasses.replace(s, body=Block((_rebuild(inner, Block((st,))),)))
    return _calls(p, flat, stmts, tiles)


class _Made:
    """What the pass made so far: calls by routine, and the scaled copies (temporaries) it introduced."""

    def __init__(self, p: Program, slabs: bool = True):
        #: slab copies of packed inputs allowed (the ``slabs`` option)
        self.allow_slabs = slabs
        self.calls: Counter = Counter()
        self.copies: list[TensorInfo] = []
        #: the copies among them that are slabs of a packed input (the others: products of factors)
        self.slabs: set[str] = set()
        #: the loops around the statement being matched, outermost first (what they say about the order of
        #: their variables decides how a slab is copied out of packed storage)
        self.outer: list[Loop] = []
        self.p = p

    def name(self, tensor: str) -> str:
        """A fresh name for a scaled copy of ``tensor``: ``B_S0``, ``B_S1``, ..."""
        return namer(dataclasses.replace(self.p, tensors=(*self.p.tensors, *self.copies)), f"{tensor}_S")()


def _scaled(p: Program, loops: list[Loop], stmts: list[Stmt], made: _Made) -> Block | None:
    """A nest of three loops around ``O[r,c] += alpha * X * F * ...`` where ``X`` is indexed by the row ``r``
    and the summed variable ``s`` and every other factor ``F`` by nothing of the nest but ``s`` and the
    column ``c`` (MTTKRP's ``B[l,j] * B[k,j]`` under ``for l: for i: for j``, ``l`` summed, ``k`` outside):
    their product is copied, ``W[s,c] = F * ...`` (a nest of its own: counted, run by the interpreter), and
    the product of ``X`` with it is one ``gemm``."""
    if len(loops) != 3 or len(stmts) != 1:
        return None
    st = stmts[0]
    if not (isinstance(st, Assign) and st.op == "+" and isinstance(st.target, Elem)):
        return None
    got = _factors(st.value)
    if got is None or len(got[1]) < 2:
        return None
    alpha, reads = got
    vs = [lp.var for lp in loops]
    summed = [v for v in vs if _where(st.target.idx, v) is None]
    if len(summed) != 1 or any(r.tensor == st.target.tensor or not _dense(p, r.tensor) for r in reads):
        return None
    (s_,) = summed
    for n, x in enumerate(reads):
        rows = [v for v in vs if v != s_ and _where(x.idx, v) is not None]
        if len(rows) != 1 or _where(x.idx, s_) is None:
            continue
        (row,) = rows
        cols = [v for v in vs if v not in (s_, row)]
        others = reads[:n] + reads[n + 1:]
        if len(cols) != 1 or any(uses_index(f.idx, {row}) for f in others) \
                or not any(uses_index(f.idx, {s_, cols[0]}) for f in others):
            continue
        (c,) = cols
        dims = {lp.var: lp for lp in loops}
        out_dims = p.tensor(st.target.tensor).dims
        qc = _plain(st.target.idx, c)
        sizes = [_size_of(p, s_, others + [x]), out_dims[qc] if qc is not None else None]
        if None in sizes:
            continue
        w = TensorInfo(made.name(others[0].tensor), "temp", tuple(sizes), dtype="float64", init=None)
        wp = dataclasses.replace(p, tensors=(*p.tensors, *made.copies, w))
        product = Assign(st.target, "+", Mul((Const(alpha), x, Read(w.name, (Idx(s_), Idx(c))))))
        call = match(wp, loops, product, Block((_rebuild(loops, Block((product,))),)))
        if call is None:
            continue
        value = others[0] if len(others) == 1 else Mul(tuple(others))
        copy = Loop(s_, dims[s_].lo, dims[s_].hi, Block((Loop(c, dims[c].lo, dims[c].hi, Block((
            Assign(Elem(w.name, (Idx(s_), Idx(c))), "=", value),))),)))
        made.copies.append(w)
        made.calls[call.routine] += 1
        return Block((Block((copy,), f"the factors other than {x.tensor} of the sum over {s_}, copied "
                                     f"(blas-calls)"), call))
    return None


def _unpacked(p: Program, loops: list[Loop], stmts: list[Stmt], made: _Made) -> Block | None:
    """A nest that would be a product but for one factor read from a packed input (its canonical entries
    only, no matrix to hand BLAS): that factor's slab is copied out, ``X_S0[l,i] = A[i,k,l]`` (a nest of
    its own over the factor's loop variables: counted, run by the interpreter, read through the packed
    offset in C), and the product is a call on the copy."""
    if len(stmts) != 1 or not isinstance(stmts[0], Assign) or not p.facts.packed or not made.allow_slabs:
        return None
    st = stmts[0]
    vs = [lp.var for lp in loops]
    packed = [r for r in nodes(st.value) if isinstance(r, Read) and p.facts.packed_groups(r.tensor) is not None]
    if len(packed) != 1 or packed[0].sort:
        return None
    (x,) = packed
    modes = [(q, e.name) for q, e in enumerate(x.idx) if isinstance(e, Idx) and e.name in vs]
    if not 1 <= len(modes) <= 2 or len({v for _, v in modes}) != len(modes) \
            or any(_where(x.idx, v) is False for _, v in modes):
        return None
    dims = p.tensor(x.tensor).dims
    by_var = {lp.var: lp for lp in loops}
    copy_loops = [by_var[v] for v in vs if v in {w for _, w in modes}]
    pieces = _pieces(p, made.outer, copy_loops, x)
    if len(modes) == 2 and pieces is not None:
        # most pieces of the copy run with the free variable outside (see _piece): made the copy's first mode,
        # they write its rows one after the other (measured: MTTKRP-4 n=100 r=32 from packed 80-83 ms against
        # 88-95 with the copy in the read's order, MTTKRP-3 n=300 r=64 61-63 against 67-70; TTM the same)
        f = copy_loops[-1].var
        modes = sorted(modes, key=lambda m: m[1] != f)
    copy = TensorInfo(made.name(x.tensor), "temp", tuple(dims[q] for q, _ in modes), dtype="float64", init=None)
    read = Read(copy.name, tuple(Idx(v) for _, v in modes))
    new = dataclasses.replace(st, value=postwalk(lambda e: read if e == x else None)(st.value))
    wp = dataclasses.replace(p, tensors=(*p.tensors, copy))
    calls = _calls(wp, loops, [new], lambda s: _rebuild(loops, Block((s,))))
    made.copies.append(copy)
    body: Stmt | None = Block(tuple(calls)) if calls is not None else None
    if body is not None:
        made.calls.update(c.routine for c in calls)
    else:
        body = _scaled(wp, loops, [new], made)
    if body is None:
        made.copies.pop()
        return None
    made.slabs.add(copy.name)
    nest = _slab_copy(made.outer, copy_loops, pieces, Elem(copy.name, read.idx), x)
    return Block((Block((nest,), f"the slab of {x.tensor} the product reads, copied out of its packed storage "
                                 f"(blas-calls)"), body))


def _slab_copy(outer: list[Loop], loops: list[Loop], pieces: list[tuple[IndexExpr, IndexExpr]] | None,
               target: Elem, x: Read) -> Stmt:
    """The nest ``loops`` around ``target = x`` (``x`` a read of a packed input), its innermost loop split so
    that the loops around each piece order every subscript of the read's group: when that loop's variable
    ``f`` runs over a whole mode and is the one subscript of its group the loops around it do not order,
    and they order the others (``k <= l``), ``for f in 0..n`` becomes ``for f in 0..k``, ``for f in k..l``
    and ``for f in l..n``.  In C each piece then reads the packed array at subscripts put in sorted order
    once, when the code is written (``f <= k <= l``, ``k <= f <= l``, ``k <= l <= f``), not sorted per read
    (``emit/packed.py``); the pieces are arranged so their inner loops walk adjacent entries
    (:func:`_piece`).  ``pieces``: those ranges, from :func:`_pieces` (None: nothing to split, the nest is as
    given)."""
    def nest(inner: Stmt, lps: list[Loop]) -> Stmt:
        for lp in reversed(lps):
            inner = Loop(lp.var, lp.lo, lp.hi, Block((inner,)))
        return inner

    assign = Assign(target, "=", x)
    f = loops[-1].var
    if pieces is None:
        return nest(assign, loops)
    if len(loops) != 2:
        return nest(Block(tuple(Loop(f, lo, hi, Block((assign,))) for lo, hi in pieces)), loops[:-1])
    around = Order()
    for lp in outer:
        around.enter(lp)
    return Block(tuple(_piece(loops[0], f, lo, hi, assign, around) for lo, hi in pieces))


def _pieces(p: Program, outer: list[Loop], loops: list[Loop], x: Read) -> list[tuple[IndexExpr, IndexExpr]] | None:
    """The ranges ``[lo, hi)`` the innermost of ``loops`` (variable ``f``, over a whole mode) is split into so
    that the loops order every subscript of ``x``'s group around each (see :func:`_slab_copy`); None when
    ``f`` is not such a loop or the loops do not order the group's other subscripts."""
    last = loops[-1]
    f = last.var
    groups = p.facts.packed_groups(x.tensor) or ()
    group = next((g for g in groups if any(x.idx[q] == Idx(f) for q in g)), None)
    dim = p.tensor(x.tensor).dims[group[0]] if group else None
    if group is None or last.lo != IConst(0) or last.hi != (DimSize(dim) if isinstance(dim, str) else IConst(dim)) \
            or sum(x.idx[q] == Idx(f) for q in group) != 1:
        return None
    order = Order()
    for lp in [*outer, *loops[:-1]]:
        order.enter(lp)
    others = [x.idx[q] for q in group if x.idx[q] != Idx(f)]
    at = order.chain(others)
    if at is None or any(uses_index(others[a], {f}) for a in at):
        return None
    bounds = [last.lo, *(others[a] for a in at), last.hi]
    return [(lo, hi) for lo, hi in zip(bounds, bounds[1:]) if lo != hi]  # (``k..k``: two of the group are one)


def _piece(c: Loop, f: str, lo: IndexExpr, hi: IndexExpr, assign: Assign, around: Order) -> Loop:
    """One piece of a slab copy, ``for c in c.lo..c.hi: for f in lo..hi: assign``, with ``f`` outside where
    the piece allows it: the read's last sorted subscript is then the inner loop's variable, and the packed
    entries it reads lie next to each other (``A[i,k,l]`` for ``i < k``: ``for i: for l``).  A piece whose
    ``f`` range does not involve ``c`` is a rectangle (swapped as it is); one below ``c`` (``hi == c``) is
    the triangle ``for f in lo..c.hi: for c in f+1..c.hi`` when ``c.lo <= lo + 1`` (then ``f + 1`` is
    ``c``'s larger lower bound); any other stays as it is."""
    inner = Block((assign,))
    uses_c = uses_index((lo, hi), {c.var})
    if not uses_c:
        return Loop(f, lo, hi, Block((Loop(c.var, c.lo, c.hi, inner),)))
    if hi == Idx(c.var) and not uses_index(lo, {c.var}) and around.in_order(c.lo, IPlus(lo, 1)):
        return Loop(f, lo, c.hi, Block((Loop(c.var, IPlus(Idx(f), 1), c.hi, inner),)))
    return Loop(c.var, c.lo, c.hi, Block((Loop(f, lo, hi, inner),)))


#: a slab copy pays from this many multiply-adds of the product per copied element (the product's
#: dimension the slab does not span: MTTKRP's and TTM's rank ``r``).  Each copied element costs a gather
#: (1-7 ns measured: more where the slab's rows are short) and then takes part in that many multiply-adds
#: at GEMM speed, where the whole symmetric set's nests are several times slower per multiply-add.  Measured
#: (single thread, medians of 7 interleaved runs; packed with slabs / packed with the whole set / full):
#: N = 16, MTTKRP-5 n=40: 48 / 25 / 31 ms (slabs lose); N = 32, MTTKRP-4 n=100: 78 / 84 / 66 ms and TTM
#: n=200: 20 / 57 / 19 ms; N = 64, MTTKRP-3 n=300: 86 / 321 / 71 ms (before the copies were laid out free
#: variable first, which took 10-15% off them).  The threshold lies between 16 and 32
SLAB_MIN_COLUMNS = 24


def slab_columns(final: Program, dims: dict[str, int]) -> int | None:
    """The fewest multiply-adds per copied element among the products that read a slab of a packed input
    (the extent of the product's dimension the slab does not span); None if none reads a slab, 0 if an
    extent is not known from ``dims`` alone."""
    slabs = {n.target.tensor for n in nodes(final.body) if isinstance(n, Assign) and isinstance(n.target, Elem)
             and any(isinstance(r, Read) and final.facts.packed_groups(r.tensor) is not None for r in nodes(n.value))
             and final.tensor(n.target.tensor).role == "temp"}

    def size(e: IndexExpr) -> int:
        match simplify_index(e):
            case IConst(v):
                return v
            case DimSize(name):
                return dims.get(name, 0)
            case _:
                return 0
    found: list[int] = []
    for call in nodes(final.body):
        if isinstance(call, BlasCall) and call.routine == "gemm":
            a, b = call.args
            if a.tensor in slabs:
                found.append(size(call.out.extent(1)))  # a is M x K: each element meets N columns
            if b.tensor in slabs:
                found.append(size(call.out.extent(0)))  # b is K x N: each element meets M rows
    return min(found) if found else None


def _size_of(p: Program, var: str, reads: list[Read]) -> str | int | None:
    """The extent of the mode some read subscripts plainly with ``var`` (the size of a copy's mode)."""
    for x in reads:
        q = _plain(x.idx, var)
        if q is not None:
            return p.tensor(x.tensor).dims[q]
    return None


def _comments(s: Stmt) -> str:
    """The comments of the blocks along the chain of ``s`` (``split-diagonals``' face, ``define-assignments``'
    pattern): kept on what replaces the chain."""
    found: list[str] = []
    while isinstance(s, (Block, Loop)):
        b = s if isinstance(s, Block) else s.body
        if b.comment:
            found.append(b.comment)
        if len(b.body) != 1:
            break
        s = b.body[0]
    return "; ".join(dict.fromkeys(found))


def _keep_comments(s: Stmt, new: Stmt) -> Stmt:
    text = _comments(s)
    return Block((new,), text) if text else new


def _stmt(p: Program, s: Stmt, made: _Made) -> Stmt:
    if isinstance(s, Loop):
        calls = tile_calls(p, s)
        if calls is not None:
            made.calls.update(c.routine for c in calls)
            return calls[0] if len(calls) == 1 else Block(tuple(calls))
    got = _chain(s)
    if got is not None:
        loops, stmts = got
        calls = _calls(p, loops, stmts, lambda st: _rebuild(loops, Block((st,))))
        if calls is not None:
            made.calls.update(c.routine for c in calls)
            one = len(calls) == 1 and len(stmts) == 1 and _terms(stmts) == stmts
            return _keep_comments(s, calls[0] if one else Block(tuple(calls)))
        scaled = _scaled(p, loops, stmts, made)
        if scaled is not None:
            return _keep_comments(s, scaled)
        unpacked = _unpacked(p, loops, stmts, made)
        if unpacked is not None:
            return _keep_comments(s, unpacked)
    match s:
        case Block():
            return _block(p, s, made)
        case Loop():
            made.outer.append(s)
            body = _block(p, s.body, made)
            made.outer.pop()
            return dataclasses.replace(s, body=body)
        case _:
            return s


def _block(p: Program, b: Block, made: _Made) -> Block:
    out: list[Stmt] = []
    k = 0
    while k < len(b.body):
        if k + 1 < len(b.body):
            call = match_rank_update(p, b.body[k], b.body[k + 1])
            if call is not None:
                made.calls[call.routine] += 1
                out.append(call)
                k += 2
                continue
        out.append(_stmt(p, b.body[k], made))
        k += 1
    return Block(tuple(out), b.comment)


def run(p: Program, options: Options = DEFAULT_OPTIONS) -> tuple[Program, str]:
    if not options.blas:
        return p, "not applied: BLAS calls are off (blas=False)"
    if p.dtype != "float64":
        return p, f"not applied: {p.dtype} elements (BLAS calls are float64)"
    made = _Made(p, options.slabs)
    body = _block(p, p.body, made)
    if not made.calls:
        return p, "not applied: no dense nest is a matrix product, a matrix-vector product or a rank-k update"
    what = ", ".join(f"{n} d{r}" for r, n in sorted(made.calls.items()))
    note = f"{plural(sum(made.calls.values()), 'nest')} as BLAS calls ({what})"
    scaled = len(made.copies) - len(made.slabs)
    if scaled:
        note += f"; {plural(scaled, 'scaled copy', 'scaled copies')} of an operand"
    if made.slabs:
        note += f"; {plural(len(made.slabs), 'slab')} of a packed input copied out"
    new = replace_body(dataclasses.replace(p, tensors=(*p.tensors, *made.copies)), body)
    return new, note


PASS = Pass("blas-calls", run, symmetry=False, requires=("tile",))
