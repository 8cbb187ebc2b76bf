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

Two reads of one tensor in full storage that agree on every subscript but the last walk one
fiber together (:func:`_sparsify_fiber`): the shared levels once, the last level for the outer
read, and that same fiber again for the inner read, from its start (``j in 0..``), from the outer
read's position (``j in i..``) or one past it (``j in i+1..``) — ``SparseLevel.start``, since
coordinates increase with the position within a fiber.  Skipping is then sound only if the update
changes nothing where *either* read holds the fill (a product of the two; not a sum).  Sparse
SSYRK's strict part, ``lower`` having put the shared mode ``k`` outermost (before)::

    for k in 0..m:
      for i in 0..n:
        for j in i+1..n:
          C[i,j] += A_T[k,i] * A_T[k,j]

After::

    for (_q0, k) in A_T<full>.level0:
      for (_q1, i) in A_T<full>.level1 under _q0:
        for (_q2, j) in A_T<full>.level1 under _q0 from _q1+1:
          C[i,j] += A_T<full>.vals[_q1] * A_T<full>.vals[_q2]

``A_T`` there is ``concordize``'s transposed copy of the sparse input ``A``: a copy is a sparse tensor
too (the input's fill where the input holds it), and when every nest that reads it iterates it, the
program no longer builds it — its storage, the input's entries with the modes permuted, is handed to
the kernel (recorded as the ``sparse_copies`` fact; see ``storage.for_program``).  If one nest
cannot, the copy stays dense everywhere (all or nothing).  An outer loop whose body holds several
nests side by side (``split-diagonals``' faces under ``k``) is split into one loop per nest
(:func:`_fission`) when that lets one iterate stored entries.

A nest whose bounds do not pin one face (e.g. ``j in i..n``), that reads the
tensor at two places not sharing a level, holds an update that does not read it, or
one that the fill of the iterated read does not annihilate (``A[i,j] +
A_T[i,j]``; ``min= A[i,j] * A_T[i,j]`` with fill inf: ``inf * -2 = -inf``),
is left dense — the tensor is then also passed dense, and the pass note says why, by name
(``A passed dense: read at 2 places not sharing a level``).

A nest reading two or more *different* sparse tensors is handled first, by
:mod:`.co_iterate`: their stored coordinates are merged level by level (a ``SparseMerge``:
the intersection for a product, the union for a sum), and the nests it leaves alone come
here, one tensor each.  The note names every sparse input still read dense (expanded from
its stored entries and read by random access), and why.

How a face is stored is its storage format's business (:mod:`systec_ref.storage.formats`): the
pass asks the format for the levels of each face and makes one ``SparseLevel`` per level it can
iterate (a compressed or a dense level), and records the format's name as the program's ``sparse_format``
fact (a tensor stored in another, its ``tensor_formats``).  The format is the ``sparse_format`` compile
option's (``tensor_formats`` per tensor), else the default (CSF).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ..errors import InternalError
from ..ir.edit import replace_body
from ..ir.index import simplify_index
from ..ir.names import namer, used_names
from ..ir.nodes import (
    Add,
    Assign,
    Block,
    Const,
    Elem,
    IConst,
    Idx,
    If,
    IPlus,
    Let,
    Local,
    Lookup,
    Loop,
    Mul,
    Neg,
    Permute,
    Program,
    Read,
    SparseLevel,
    SparseLocate,
    SparseMerge,
    SparseVal,
    TensorInfo,
    Value,
)
from ..lang import unstored
from ..lang.names import face_arrays
from ..storage import formats
from ..storage.faces import face_modes
from ..storage.formats import Compressed, Dense, SparseFormat
from ..term import Node, nodes, postwalk, unknown
from . import co_iterate
from .combinators import plural
from .lower import dim_expr
from .manager import DEFAULT_OPTIONS, Options, Pass
from .symmetry import transposed_copies, unfold_copies


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


def _skips_unstored(root: Loop, r: Read, fill: float) -> bool:
    """Does every update of the nest change nothing where the read ``r`` holds ``fill``, whatever every
    other read holds?  Then the points where it is unstored may be skipped."""
    # every update in the nest must read the tensor, or flush an accumulator that did
    accumulators = {n.target.name for n in nodes(root) if isinstance(n, Assign) and isinstance(n.target, Local)}
    lets = {n.name: n.value for n in nodes(root) if isinstance(n, Let)}
    for n in nodes(root):
        if isinstance(n, Assign) and n.op == "=":
            return False  # a copy (concordize's transposes, mirrors) must see unstored entries too
        if isinstance(n, Assign) and isinstance(n.value, Local) and n.value.name in accumulators:
            continue  # flushes an accumulator whose updates are checked themselves
        if isinstance(n, Assign) and not unstored.no_change(_when_unstored(n.value, r, fill, lets), n.op):
            return False  # an unstored entry would still change the result here: every point must be visited
    return True


def _format(options: Options) -> SparseFormat:
    """The storage format a compile asks for (its ``sparse_format`` option; default CSF)."""
    return formats.get(options.sparse_format)


def _check_levels(fmt: SparseFormat, levels: int, key: tuple[int, ...]) -> None:
    """Every level of face ``key`` (``levels`` stored modes) under ``fmt`` is one a ``SparseLevel`` iterates."""
    for level in fmt.face(levels, key).levels:
        match level:
            case Compressed():
                pass  # positions pos[q] .. pos[q+1]-1 under parent q: what SparseLevel means
            case Dense():
                pass  # every coordinate, position q*size + i: a SparseLevel too (the fill where unstored)
            case _:
                raise unknown(level, "sparse-iterate (level kind)")


def _sparsify(root: Loop, p: Program, tensor, layout: dict[str, str], fresh, fmt_of: FormatOf) -> Loop | None:
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
    if not _skips_unstored(root, r, tensor.fill):
        return None
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
    _check_levels(fmt_of(name), len(kept), face)
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
    inputs = [t for t in p.tensors if t.role == "in" and t.format == "sparse"]
    if not inputs:
        return p, "no sparse input"
    fmt = _format(options)
    # a transposed copy of a sparse input is a sparse tensor too: its storage is the input's entries with
    # the modes permuted, built outside the kernel.  It is iterated only if every nest reading it can be
    # (else the program still builds it, reading the input element by element): try, and drop those stuck
    copies = _copies(p)
    tried = set(copies)
    while True:
        sparse = inputs + [dataclasses.replace(p.tensor(c), format="sparse", fill=copies[c][0].fill)
                           for c in sorted(tried)]
        body, layout, count, merged, located = _iterate(p, sparse, lambda t: formats.get(options.format_for(t)))
        stuck = {c for c in tried if c in layout and _reads(body, c)}
        if not stuck:
            break
        tried -= stuck
    stored = sorted(c for c in tried if c in layout)

    def dense_note() -> str:  # which sparse inputs stay dense, and why ("; " first, or empty)
        if merged.left or merged.layout:  # co-iteration was tried: its reasons, per nest
            said = merged.dense_note(body, [t.name for t in inputs])
            return f"; {said}" if said else ""
        return _passed_dense(body, inputs, copies, p)
    if not count and not merged.layout:
        return p, "not applied: no nest iterates a sparse tensor on one face" + dense_note()
    if stored:  # built outside the kernel now: the program's copy goes
        body = Block(tuple(s for s in body.body if not any(s == copies[c][2] for c in stored)), body.comment)
        p = dataclasses.replace(p, tensors=tuple(
            dataclasses.replace(t, format="sparse", fill=copies[t.name][0].fill) if t.name in stored else t
            for t in p.tensors))
    dense = dense_note()
    own = tuple((t, options.format_for(t)) for t in sorted(layout) if options.format_for(t) != fmt.name)
    facts: dict[str, object] = {"sparse_storage": tuple(sorted(layout.items())), "sparse_format": fmt.name,
                                "tensor_formats": own}
    if stored:
        facts["sparse_copies"] = tuple((c, copies[c][0].name, copies[c][1]) for c in stored)
    new = replace_body(p, body).with_facts(**facts)
    layouts = ", ".join(f"{k}: {v}" for k, v in sorted(layout.items()))
    in_format = "" if fmt.name == formats.DEFAULT_FORMAT else f" in format {fmt.name}"
    in_format += "".join(f"; {t} in format {name}" for t, name in own)
    built = "".join(f"; {c}: stored transposed copy of {copies[c][0].name}" for c in stored)
    alone = f"{plural(count, 'nest iterates', 'nests iterate')} stored entries" if count else \
        "no other nest iterates stored entries"
    head = f"{merged.note}; " if merged.note else ""
    looked = sorted(t for t in located if t in layout and not _reads(body, t))
    lookup = f"; {', '.join(looked)} looked up by coordinate (a binary search per compressed level) under " \
             "another tensor's stored entries" if looked else ""
    return new, f"{head}{alone} ({layouts}){in_format}{built}{lookup}{dense}"


#: the storage format of a tensor, by name
FormatOf = Callable[[str], SparseFormat]


def _iterate(p: Program, sparse: list, fmt_of: FormatOf) \
        -> tuple[Block, dict[str, str], int, co_iterate.Merged, set[str]]:
    """Every nest over ``sparse`` tensors that can iterate stored entries, rewritten: the new body, the
    layout of each tensor iterated, how many nests iterate one tensor, what co-iteration merged, and the
    tensors looked up by coordinate in a nest iterating another (:func:`_locate`)."""
    fresh = namer(p, "_q")
    layout: dict[str, str] = dict(p.facts.sparse_storage)
    merged = co_iterate.merge_nests(p, fmt_of, _face)  # nests over two or more sparse tensors merge them first
    layout.update(merged.layout)
    count = [0]
    located: set[str] = set()

    copies = {c: v for c, v in transposed_copies(p).items() if any(t.name == c for t in sparse)}

    def nest(s: Loop) -> object:
        shared = _share_copy_reads(s, copies)
        new: object = shared
        for t in sparse:
            got = _sparsify(new, p, t, layout, fresh, fmt_of) if isinstance(new, Loop) else None
            if got is None and isinstance(new, Loop):
                got = _sparsify_fiber(new, p, t, layout, fresh, fmt_of)
            if got is not None:
                new = got
                count[0] += 1
        if not isinstance(new, Loop):  # one tensor iterated: look the others up at its coordinates
            for t in sparse:
                got = _locate(new, t, layout, fresh, fmt_of)
                if got is not None:
                    new = got
                    located.add(t.name)
        return new if new is not shared else s  # (the reads shared only where something is iterated)

    def f(n):
        if isinstance(n, Block):
            out = []
            changed = False
            for s in n.body:
                new = nest(s) if isinstance(s, Loop) else s
                parts = _fission(s) if new is s and isinstance(s, Loop) else None
                if parts is not None:
                    got = [nest(part) for part in parts]
                    if any(g is not part for g, part in zip(got, parts)):  # else the loop stays whole
                        changed = True
                        out += got
                        continue
                changed |= new is not s
                out.append(new)
            return Block(tuple(out), n.comment) if changed else None
        return None
    return _top_down(merged.body, f), layout, count[0], merged, located


def _fission(loop: Loop) -> list[Loop] | None:
    """``for k: {S1; S2}`` as ``for k: S1; for k: S2``, each a nest on its own that may iterate a sparse tensor
    (``split-diagonals`` leaves the faces of an inner permutable set side by side under an outer loop); None
    when the loop holds one statement, or reordering its statements' updates could change the result.

    The order of the updates changes: all of S1's, then S2's, instead of interleaved per ``k``.  That
    is exact when no statement reads what one writes and every write is a reduction (``+=``, ``min=``,
    ``max=``: the same updates of each element, in another order, the order a float sum is allowed).
    Each statement's locals are its own (a ``let`` is scoped to its block)."""
    body = loop.body.body
    if len(body) < 2 or any(not isinstance(s, (Block, Loop)) for s in body):
        return None
    written = {n.target.tensor for n in nodes(loop) if isinstance(n, Assign) and isinstance(n.target, Elem)}
    read = {n.tensor for n in nodes(loop) if isinstance(n, (Read, SparseVal))}
    if written & read or any(isinstance(n, Assign) and n.op == "=" for n in nodes(loop)):
        return None
    if any(isinstance(n, Permute) for n in nodes(loop)):
        return None  # rebinds the loop's variables: a Permute's body is not a nest of its own
    parts = []
    for s in body:
        inner = Block(s.body, s.comment) if isinstance(s, Block) else Block((s,))
        parts.append(dataclasses.replace(loop, body=inner))
    return parts


def _reads(node: object, tensor: str) -> list[Read]:
    """The element-by-element reads of ``tensor`` in ``node``."""
    return [n for n in nodes(node) if isinstance(n, Read) and n.tensor == tensor]


def _copies(p: Program) -> dict[str, tuple[TensorInfo, tuple[int, ...], object]]:
    """The transposed copies of non-symmetric sparse inputs that the program builds (``concordize``'s):
    copy -> (the input, modes, the statement that builds it), mode ``q`` of the copy being mode
    ``modes[q]`` of the input.  A copy qualifies when one top-level nest of full loops writes every
    element of it once (``A_T[_c1,_c0] = A[_c0,_c1]``) and nothing else writes it."""
    infos = {t.name: t for t in p.tensors}
    used = used_names(p)
    out: dict[str, tuple[TensorInfo, tuple[int, ...], object]] = {}
    for copy, (src, modes, s) in transposed_copies(p).items():
        c, t = infos[copy], infos[src]
        if t.format != "sparse" or t.symmetry:
            continue
        if c.dims != tuple(t.dims[m] for m in modes) or c.dtype != t.dtype:
            continue
        if any(face_arrays(copy).match(name) for name in used):
            continue  # the C names of its stored arrays are taken
        out[copy] = (t, modes, s)
    return out


def _sparsify_fiber(root: Loop, p: Program, tensor, layout: dict[str, str], fresh,
                    fmt_of: FormatOf) -> Loop | None:
    """Two reads of one tensor that agree on every subscript but the last walk one fiber together.

    ``A[k,i] * A[k,j]`` under loops ``k``, then ``i``, then ``j``: the levels of the shared subscripts
    are iterated once; ``i`` iterates the last level under them; ``j`` iterates that same fiber again,
    from its first position (``j in 0..``), from ``i``'s (``j in i..``) or one past it (``j in i+1..``):
    coordinates increase with the position within a fiber.  Sound when the update changes nothing where
    *either* read holds the fill (a product of the two reads; a sum is not), whatever the other holds.
    Full storage only (a symmetric tensor iterated by face is read sorted, one read per nest)."""
    name = tensor.name
    if tensor.symmetry and p.facts.permutable:
        return None
    reads = list(dict.fromkeys(_reads(root, name)))
    if len(reads) != 2 or any(r.sort or not all(isinstance(i, Idx) for i in r.idx) for r in reads):
        return None
    subs = [[i.name for i in r.idx] for r in reads]
    if not subs[0] or subs[0][:-1] != subs[1][:-1] or any(len(set(x)) != len(x) for x in subs):
        return None
    shared = subs[0][:-1]
    order = [n.var for n in nodes(root) if isinstance(n, Loop)]
    if any(x[-1] not in order for x in subs):
        return None
    if order.index(subs[0][-1]) > order.index(subs[1][-1]):
        reads.reverse()
        subs.reverse()
    a, b = subs[0][-1], subs[1][-1]
    if root.var not in [*shared, a, b]:
        return None
    path = _path(root, [*shared, a, b])
    if path is None:
        return None
    loops = {lp.var: lp for lp in path}
    dims = {v: dim_expr(d) for v, d in zip(subs[0], tensor.dims)}
    if any(loops[v].lo != IConst(0) or loops[v].hi != dims[v] or loops[v].step != 1 for v in [*shared, a]):
        return None
    if loops[b].hi != dims[a] or loops[b].step != 1:
        return None
    lo = simplify_index(loops[b].lo)
    if lo not in (IConst(0), Idx(a), IPlus(Idx(a), 1)):
        return None
    if not all(_skips_unstored(root, r, tensor.fill) for r in reads):
        return None  # an unstored entry of either read must leave the update unchanged
    _check_levels(fmt_of(name), len(subs[0]), ())
    _check_fiber(fmt_of(name), len(subs[0]))
    if layout.setdefault(name, "full") != "full":
        return None
    pos = {v: fresh() for v in [*shared, a, b]}
    last = len(shared)

    def parent(n: int) -> Idx | None:
        return Idx(pos[shared[n - 1]]) if n else None

    def build(lp: Loop, body: Block) -> SparseLevel:
        if lp.var in shared:
            n = shared.index(lp.var)
            return SparseLevel(lp.var, pos[lp.var], name, (), n, parent(n), body)
        if lp.var == a:
            return SparseLevel(a, pos[a], name, (), last, parent(last), body)
        start = None if lo == IConst(0) else Idx(pos[a]) if lo == Idx(a) else IPlus(Idx(pos[a]), 1)
        return SparseLevel(b, pos[b], name, (), last, parent(last), body, start)

    def rebuild(n: int) -> object:
        lp = path[n]
        inner = [rebuild(n + 1) if s is path[n + 1] else s for s in lp.body.body] if n + 1 < len(path) \
            else list(lp.body.body)
        body = Block(tuple(inner), lp.body.comment)
        return build(lp, body) if lp.var in pos else dataclasses.replace(lp, body=body)
    values = {reads[0]: SparseVal(name, (), Idx(pos[a])), reads[1]: SparseVal(name, (), Idx(pos[b]))}
    return postwalk(lambda x: values.get(x) if isinstance(x, Read) else None)(rebuild(0))


def _share_copy_reads(nest: Loop, copies: dict) -> Loop:
    """A read of a transposed copy that is, element for element, another read of its input in the same
    update becomes that read (``A_T[k,i]`` next to ``A[i,k]``: sparse SSYRK's diagonal ``C[i,i] +=
    A[i,k] * A_T[k,i]`` in loop order ``i k j``), so one iteration of the input serves both."""
    def f(n: object) -> object | None:
        if not isinstance(n, Assign):
            return None
        reads = {r for r in nodes(n.value) if isinstance(r, Read)}
        swap = {r: unfold_copies(r, copies) for r in reads if r.tensor in copies}
        swap = {r: u for r, u in swap.items() if u in reads}
        return dataclasses.replace(n, value=postwalk(lambda x: swap.get(x) if isinstance(x, Read) else None)(n.value)) \
            if swap else None
    return postwalk(f)(nest) if copies else nest


def _locate(root: object, tensor, layout: dict[str, str], fresh, fmt_of: FormatOf) -> object | None:
    """Iterate or look up a full-storage sparse tensor inside a nest that iterates another one already:
    co-iteration's lookup alternative (see :class:`~systec_ref.ir.nodes.SparseLocate`).

    The tensor must be read once, every subscript a distinct variable, level by level in loop order.
    Level by level: a subscript bound by a dense loop inside everything found so far, over its
    whole mode from 0 or from a coordinate (``j in i+1..n``), becomes a ``SparseLevel`` of this tensor
    (from that coordinate on: ``SparseLevel.low``); one bound by an enclosing stored-entry loop (another
    tensor's coordinate) is looked up (``SparseLocate``) in the body of the deeper of its loop and the
    level above.  Sound, as any iteration of stored entries, only if the updates under the outermost of
    them change nothing where the read holds the fill.

    Sparse SSYRK's strict part in loop order ``i k j`` (before, A iterated)::

        for (_q0, i) in A<full>.level0:
          for (_q1, k) in A<full>.level1 under _q0:
            for j in i+1..n:
              C[i,j] += A<full>.vals[_q1] * A_T[k,j]

    After::

        for (_q0, i) in A<full>.level0:
          for (_q1, k) in A<full>.level1 under _q0:
            if k stored in A_T<full>.level0 as _q2:
              for (_q3, j) in A_T<full>.level1 under _q2 where j >= i+1:
                C[i,j] += A<full>.vals[_q1] * A_T<full>.vals[_q3]
    """
    name = tensor.name
    reads = [n for n in nodes(root) if isinstance(n, Read) and n.tensor == name]
    # one read, at one place: the lookups are built along the path to it (a second place, in a sibling
    # loop, would read a position nothing binds there)
    if len(reads) != 1 or tensor.symmetry or reads[0].sort:
        return None
    r = reads[0]
    if not r.idx or not all(isinstance(i, Idx) for i in r.idx) or len(set(r.idx)) != len(r.idx):
        return None  # (a scalar has no level to look up: it is read as it is)
    chain = _binders(root, r)  # the loops around the read, outermost first
    if chain is None:
        return None
    where = {b.var: d for d, b in enumerate(chain) if not isinstance(b, SparseLocate)}
    subs = [i.name for i in r.idx]
    if any(v not in where for v in subs):
        return None
    fmt = fmt_of(name)
    _check_levels(fmt, len(subs), ())
    # plan: per level, (depth of the binder it goes in or replaces, how)
    plan: list[tuple[int, str]] = []
    anchor = -1
    for v in subs:
        d = where[v]
        b = chain[d]
        if d > anchor and isinstance(b, Loop) and b.step == 1 and _full_hi(b, tensor, subs.index(v)) \
                and _low_ok(b.lo, chain[:d]):
            plan.append((d, "level"))
            anchor = d
        else:
            anchor = max(anchor, d)
            plan.append((anchor, "locate"))
    outer = chain[min(d for d, _ in plan)]
    if not _skips_unstored(outer, r, tensor.fill):
        return None
    if layout.setdefault(name, "full") != "full":
        return None
    pos = [fresh() for _ in subs]
    by_depth: dict[int, list[int]] = {}
    for level, (d, _) in enumerate(plan):
        by_depth.setdefault(d, []).append(level)

    def rewrite(node: object, d: int) -> object:
        """``node`` (the binder at depth ``d`` of the chain) with its body rebuilt from the inside."""
        inner_body = node.body  # type: ignore[attr-defined]
        if d + 1 < len(chain):
            nxt = chain[d + 1]
            inner_body = Block(tuple(rewrite(x, d + 1) if x is nxt else x for x in inner_body.body),
                               inner_body.comment)
        levels = by_depth.get(d, [])
        # locates in this binder's body, outermost level first; a converted level is the binder itself
        for level in reversed([lv for lv in levels if plan[lv][1] == "locate"]):
            parent = Idx(pos[level - 1]) if level else None
            inner_body = Block((SparseLocate(pos[level], name, (), level, parent, Idx(subs[level]), inner_body),))
        node = dataclasses.replace(node, body=inner_body)
        for level in [lv for lv in levels if plan[lv][1] == "level"]:
            parent = Idx(pos[level - 1]) if level else None
            low = None if node.lo == IConst(0) else node.lo
            node = SparseLevel(node.var, pos[level], name, (), level, parent, node.body, low=low)
        return node
    top = chain[0]
    new_top = rewrite(top, 0)
    new = postwalk(lambda x: new_top if x is top else None)(root) if root is not top else new_top
    value = SparseVal(name, (), Idx(pos[-1]))
    return postwalk(lambda x: value if x == r else None)(new)


def _binders(root: object, target: Read) -> list | None:
    """The loops (dense or sparse) and lookups around ``target`` from ``root`` in, outermost first; None if
    ``target`` sits under a merge or a rearrangement (not rewritten here)."""
    def go(n: object, path: list) -> list | None:
        if n == target:
            return path
        if isinstance(n, (SparseMerge, Permute)):
            return None
        for child in n.children() if isinstance(n, Node) else ():
            got = go(child, path + [n] if isinstance(n, (Loop, SparseLevel, SparseLocate)) else path)
            if got is not None:
                return got
        return None
    return go(root, [])


def _full_hi(lp: Loop, tensor, mode: int) -> bool:
    """Does the loop run to the end of the tensor's ``mode``?"""
    return lp.hi == dim_expr(tensor.dims[mode])


def _low_ok(lo: object, outside: list) -> bool:
    """Is a loop's lower bound 0 or a coordinate of a loop outside it (``i``, ``i + 1``)?"""
    bound = {b.var for b in outside if not isinstance(b, SparseLocate)}
    match lo:
        case IConst(0):
            return True
        case Idx(v) | IPlus(Idx(v), _) if v in bound:
            return True
    return False


def _check_fiber(fmt: SparseFormat, levels: int) -> None:
    """The last level of a full face of ``levels`` modes keeps each fiber's coordinates increasing with the
    position (what starting within a fiber relies on): a compressed level by its contract, a dense one
    (a vector stored full, ``x[i] * x[j]``) because its position is the coordinate."""
    match fmt.face(levels).levels[-1]:
        case Compressed():
            pass  # sorted coordinates within each fiber: the contract of a compressed level
        case Dense():
            pass  # every coordinate, at its own position under the parent: increasing by construction
        case level:
            raise unknown(level, "sparse-iterate (level kind, walked from a position)")


def _passed_dense(body: Block, inputs: list[TensorInfo], copies: dict, p: Program) -> str:
    """``; A passed dense: <why>`` for each sparse input the program still reads element by element."""
    out = []
    for t in inputs:
        if not _reads(body, t.name):
            continue
        mine = [c for c in copies if copies[c][0].name == t.name and _reads(body, c)]
        why = _why_dense(body, mine[0], p) if mine else _why_dense(body, t.name, p)
        out.append(f"; {t.name} passed dense: {why}" + (f" (its transposed copy {mine[0]})" if mine else ""))
    return "".join(out)


def _why_dense(body: Block, name: str, p: Program) -> str:
    """Why the first nest reading ``name`` element by element does not iterate its stored entries."""
    nest = next((s for s in _nests(body) if _reads(s, name)), body)
    reads = list(dict.fromkeys(_reads(nest, name)))
    if any(isinstance(n, Assign) and n.op == "=" for n in nodes(nest)):
        return "copied element by element"
    if any(r.sort for r in reads):
        return "read sorted into its canonical triangle, in a nest that does not follow one face"
    subs = [tuple(i.name if isinstance(i, Idx) else "" for i in r.idx) for r in reads]
    if len(reads) > 1 and (len(reads) > 2 or subs[0][:-1] != subs[1][:-1]):
        return f"read at {len(reads)} places not sharing a level"
    fill = next((t.fill for t in p.tensors if t.name == name and t.format == "sparse"), None)
    if fill is None:  # a copy: the fill of the input it copies
        src = next(n.value.tensor for n in nodes(body) if isinstance(n, Assign) and isinstance(n.target, Elem)
                   and n.target.tensor == name and isinstance(n.value, Read))
        fill = p.tensor(src).fill
    if not all(_skips_unstored(nest, r, fill) for r in reads):
        return "an update changes the result where it holds its fill"
    t = p.tensor(name)
    if t.symmetry and p.facts.permutable:
        return "its loops' bounds do not pin one face of its canonical storage"
    if any(len(set(x)) != len(x) for x in subs):
        return "read on a diagonal (a repeated subscript), which its storage does not keep apart"
    return "its loops do not walk its levels in order over their full range"


def _nests(b: Block) -> list[Loop | SparseLevel]:
    """The outermost loops (dense or sparse) of ``b``, through blocks and conditionals."""
    out: list[Loop | SparseLevel] = []
    for s in b.body:
        match s:
            case Loop() | SparseLevel():
                out.append(s)
            case Block():
                out += _nests(s)
            case If(_, then, orelse):
                out += _nests(then) + (_nests(orelse) if orelse is not None else [])
            case Permute(_, inner):
                out += _nests(inner)
            case Assign() | Let():
                pass
            case _:
                raise unknown(s, "sparse-iterate (nests)")
    return out


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
            provides=("sparse_storage", "sparse_format", "sparse_copies", "tensor_formats"))
