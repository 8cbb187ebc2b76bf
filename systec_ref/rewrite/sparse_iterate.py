"""Pass ``sparse-iterate``: loops over a sparse tensor's modes become iteration over its stored entries.

Precondition: ``concordize``, and ``identify-symmetry`` when symmetry is on (its ``requires``: the
permutable sets say whether a symmetric tensor is read on its canonical faces).  The parser admits a
``sparse`` input only if the right-hand side changes nothing wherever the
tensor holds its fill; this pass checks, per nest, the stronger fact that
skipping needs: the update changes nothing wherever *the one read it
iterates* holds the fill, whatever every other read holds — including other
reads of the same tensor in another orientation (``A[i,j] + A[j,i]``, whose
transposed copy is another tensor by now), which are unknown there.  A nest
where that fails stays dense.  After ``split-diagonals``, each nest reads a symmetric
tensor on one face only: its loops become the levels of that face of the
canonical-only storage (see :mod:`systec_ref.storage`); a non-symmetric
tensor (or the baseline, symmetry off) is iterated over its full storage.

Before (strict part of SSYMV, A sparse)::

    for i in 0..n:
      for j in i+1..n:
        y[j] += x[i] * A[i,j]

After::

    for (_q0, i) in A<strict>.level0:
      for (_q1, j) in A<strict>.level1 under _q0:
        y[j] += x[i] * A<strict>.vals[_q1]

On a diagonal face the pinned mode is not stored at all (``i == j``: one level)::

    for (_q2, i) in A<f1>.level0:
      y[i] += x[i] * A<f1>.vals[_q2]

A nest whose bounds do not pin one face (e.g. ``j in i..n``), that reads the
tensor at two different places, holds an update that does not read it, or
one that the fill of the iterated read does not annihilate (``A[i,j] +
A_T[i,j]``; ``min= A[i,j] * A_T[i,j]`` with fill inf: ``inf * -2 = -inf``),
is left dense — the tensor is then also passed dense.

A nest reading two or more *different* sparse tensors is handled first, by
:mod:`.co_iterate`: their stored coordinates are merged level by level (a ``SparseMerge``:
the intersection for a product, the union for a sum), and the nests it leaves alone come
here, one tensor each.  The note names every sparse input still read dense (expanded from
its stored entries and read by random access), and why.

How a face is stored is its storage format's business (:mod:`systec_ref.storage.formats`): the
pass asks the format for the levels of each face and makes one ``SparseLevel`` per level it can
iterate (a compressed level), and records the format's name as the program's ``sparse_format``
fact.  The format is the ``sparse_format`` compile option's, else the default (CSF).
"""

from __future__ import annotations

import dataclasses

from ..errors import InternalError
from ..ir.edit import replace_body
from ..ir.names import namer
from ..ir.nodes import (
    Add,
    Assign,
    Block,
    Const,
    IConst,
    Idx,
    IPlus,
    Let,
    Local,
    Lookup,
    Loop,
    Mul,
    Neg,
    Program,
    Read,
    SparseLevel,
    SparseVal,
    Value,
)
from ..lang import unstored
from ..storage import formats
from ..storage.faces import face_modes
from ..storage.formats import Compressed, SparseFormat
from ..term import nodes, postwalk, unknown
from . import co_iterate
from .combinators import plural
from .manager import DEFAULT_OPTIONS, Options, Pass


def _path(root: Loop, vars_: list[str]) -> list[Loop] | None:
    """Loops from ``root`` down to the loop of the last of ``vars_``: one loop per body."""
    path = [root]
    cur = root
    while cur.var != vars_[-1]:
        inner = [s for s in cur.body.body if isinstance(s, Loop)]
        if len(inner) != 1 or any(not isinstance(s, (Loop, Let, Assign)) for s in cur.body.body):
            return None
        cur = inner[0]
        path.append(cur)
    seen = [lp.var for lp in path if lp.var in vars_]
    return path if seen == vars_ else None


def _face(p: Program, tensor, subs: list[str], loops: dict[str, Loop]) -> tuple[int, ...] | None:
    """The face a nest's bounds pin, for canonical storage; None if they do not pin one."""
    key = []
    in_group = {q for g in tensor.symmetry for q in g}
    for g in tensor.symmetry:
        mask = 0
        first = loops[subs[g[0]]]
        if first.lo != IConst(0):
            return None
        for t, (a, b) in enumerate(zip(g, g[1:])):
            if subs[a] == subs[b]:
                mask |= 1 << t
            elif loops[subs[b]].lo != IPlus(Idx(subs[a]), 1):
                return None
        key.append(mask)
    for q, v in enumerate(subs):
        if q not in in_group and loops[v].lo != IConst(0):
            return None
    return tuple(key)


def _when_unstored(e: Value, r: Read, fill: float, lets: dict[str, Value]) -> unstored.Abstract:
    """The value of ``e`` where the read ``r`` holds ``fill``; every other read is unknown."""
    match e:
        case Read():
            return fill if e == r else unstored.FINITE
        case SparseVal():
            return unstored.FINITE  # a stored value of another sparse tensor, iterated already
        case Const():
            return e.value
        case Local() if e.name in lets:
            return _when_unstored(lets[e.name], r, fill, lets)
        case Local():
            return None
        case Lookup():
            # one finite factor per face, which one is not known here
            return e.values[0] if len(set(e.values)) == 1 else unstored.FINITE
        case Neg():
            return unstored.neg(_when_unstored(e.arg, r, fill, lets))
        case Mul() | Add():
            step = unstored.mul if isinstance(e, Mul) else unstored.add
            acc = _when_unstored(e.args[0], r, fill, lets)
            for a in e.args[1:]:
                acc = step(acc, _when_unstored(a, r, fill, lets))
            return acc
    raise unknown(e, "sparse-iterate (value when unstored)")


def _format(options: Options) -> SparseFormat:
    """The storage format a compile asks for (its ``sparse_format`` option; default CSF)."""
    return formats.get(options.sparse_format)


def _check_levels(fmt: SparseFormat, levels: int) -> None:
    """Every level of a face of ``levels`` stored modes under ``fmt`` is one a ``SparseLevel`` iterates."""
    for level in fmt.face(levels).levels:
        match level:
            case Compressed():
                pass  # positions pos[q] .. pos[q+1]-1 under parent q: what SparseLevel means
            case _:
                raise unknown(level, "sparse-iterate (level kind)")


def _sparsify(root: Loop, p: Program, tensor, layout: dict[str, str], fresh, fmt: SparseFormat) -> Loop | None:
    name = tensor.name
    reads = [n for n in nodes(root) if isinstance(n, Read) and n.tensor == name]
    if not reads or any(r != reads[0] for r in reads) or reads[0].sort:
        return None
    r = reads[0]
    if not all(isinstance(i, Idx) for i in r.idx):
        return None
    subs = [i.name for i in r.idx]
    distinct = list(dict.fromkeys(subs))
    if root.var not in distinct:
        return None
    path = _path(root, distinct)
    if path is None:
        return None
    loops = {lp.var: lp for lp in path}
    # every update in the nest must read the tensor, or flush an accumulator that did
    accumulators = {n.target.name for n in nodes(root) if isinstance(n, Assign) and isinstance(n.target, Local)}
    lets = {n.name: n.value for n in nodes(root) if isinstance(n, Let)}
    for n in nodes(root):
        if isinstance(n, Assign) and n.op == "=":
            return None  # a copy (concordize's transposes, mirrors) must see unstored entries too
        if isinstance(n, Assign) and isinstance(n.value, Local) and n.value.name in accumulators:
            continue  # flushes an accumulator whose updates are checked themselves
        if isinstance(n, Assign) and not unstored.no_change(_when_unstored(n.value, r, tensor.fill, lets), n.op):
            return None  # an unstored entry would still change the result here: every point must be visited
    symmetric = bool(tensor.symmetry) and bool(p.facts.permutable)
    if symmetric:
        face = _face(p, tensor, subs, loops)
        want = "canonical"
    else:
        face = () if len(distinct) == len(subs) and all(loops[v].lo == IConst(0) for v in distinct) else None
        want = "full"
    levels = {v: [q for q, s in enumerate(subs) if s == v] for v in distinct}
    if any(qs != list(range(qs[0], qs[0] + len(qs))) for qs in levels.values()):
        return None  # a repeated subscript must sit on consecutive levels (one loop binds it)
    group_of = {q: n for n, g in enumerate(tensor.symmetry) for q in g}
    for qs in levels.values():
        # a level whose coordinate is *assumed* equal to the one above must be pinned by the face:
        # both modes in one symmetry group (where the face stores exactly the equal ones)
        if len(qs) > 1 and not (symmetric and all(q in group_of and group_of[q] == group_of[qs[0]] for q in qs)):
            return None
    if face is None:
        return None
    # a face stores only the modes it does not pin (see storage.face_modes): a repeated subscript
    # is one level, bound by the loop of its first mode
    kept = face_modes(len(subs), tensor.symmetry if symmetric else (), face)
    # decided: record the storage layout only now, so a nest that stays dense does not pin it
    _check_levels(fmt, len(kept))
    if layout.setdefault(name, want) != want:
        return None
    if any(q in kept for qs in levels.values() for q in qs[1:]):  # a repeated subscript stores one level
        raise InternalError(f"sparse-iterate: face {face} of {name} stores a repeated mode twice ({subs})")
    rank = {q: n for n, q in enumerate(kept)}
    pos = {q: fresh() for q in kept}

    def build(lp: Loop, body: Block) -> SparseLevel:
        q = levels[lp.var][0]
        n = rank[q]
        return SparseLevel(lp.var, pos[q], name, face, n, Idx(pos[kept[n - 1]]) if n else None, body)

    value = SparseVal(name, face, Idx(pos[kept[-1]]))

    def rebuild(n: int) -> object:
        lp = path[n]
        inner = [rebuild(n + 1) if s is path[n + 1] else s for s in lp.body.body] if n + 1 < len(path) \
            else list(lp.body.body)
        body = Block(tuple(inner), lp.body.comment)
        if lp.var in levels:
            return build(lp, body)
        return dataclasses.replace(lp, body=body)
    new = rebuild(0)
    return postwalk(lambda x: value if x == r else None)(new)


def run(p: Program, options: Options = DEFAULT_OPTIONS) -> tuple[Program, str]:
    sparse = [t for t in p.tensors if t.role == "in" and t.format == "sparse"]
    if not sparse:
        return p, "no sparse input"
    fresh = namer(p, "_q")
    fmt = _format(options)
    layout: dict[str, str] = dict(p.facts.sparse_storage)
    merged = co_iterate.merge_nests(p, fmt, _face)  # nests over two or more sparse tensors merge them first
    layout.update(merged.layout)
    count = [0]

    def f(n):
        if isinstance(n, Block):
            out = []
            changed = False
            for s in n.body:
                new = s
                if isinstance(s, Loop):
                    for t in sparse:
                        got = _sparsify(new, p, t, layout, fresh, fmt) if isinstance(new, Loop) else None
                        if got is not None:
                            new = got
                            count[0] += 1
                changed |= new is not s
                out.append(new)
            return Block(tuple(out), n.comment) if changed else None
        return None
    body = _top_down(merged.body, f)
    dense = merged.dense_note(body, [t.name for t in sparse])
    if not count[0] and not merged.layout:
        return p, "; ".join(x for x in ("not applied: no nest iterates a sparse tensor on one face", dense) if x)
    new = replace_body(p, body).with_facts(sparse_storage=tuple(sorted(layout.items())), sparse_format=fmt.name)
    layouts = ", ".join(f"{k}: {v}" for k, v in sorted(layout.items()))
    stored = "" if fmt.name == formats.DEFAULT_FORMAT else f" in format {fmt.name}"
    alone = f"{plural(count[0], 'nest iterates', 'nests iterate')} stored entries" if count[0] else \
        "no other nest iterates stored entries"
    return new, "; ".join(x for x in (merged.note, f"{alone} ({layouts}){stored}", dense) if x)


def _top_down(b: Block, f) -> Block:
    """Sparsify outermost nests first; a nest that stays dense is searched inside."""
    r = f(b)
    b = r if r is not None else b
    out = []
    for s in b.body:
        if isinstance(s, Block):
            out.append(_top_down(s, f))
        elif isinstance(s, Loop):
            out.append(dataclasses.replace(s, body=_top_down(s.body, f)))
        else:
            out.append(s)
    return Block(tuple(out), b.comment)


PASS = Pass("sparse-iterate", run, symmetry=False, requires=("concordize", "identify-symmetry"),
            provides=("sparse_storage", "sparse_format"))
