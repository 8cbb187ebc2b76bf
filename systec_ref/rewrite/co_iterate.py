"""Co-iteration, the first step of pass ``sparse-iterate``: a nest reading two or more different sparse tensors
merges their stored coordinates.

``sparse-iterate`` calls :func:`merge_nests` first, then iterates the nests left alone here over one
tensor each, and records the storage of every tensor iterated (its ``sparse_storage`` fact, merged
ones included: every stage is run by the interpreter on the storage its facts name, so the merge
cannot be a pass of its own before the one that records them).

A nest whose loops bind the levels of several sparse tensors (each read at one place, with its
subscripts in loop order, on one face pinned by the bounds — what ``sparse-iterate`` asks of one
tensor) iterates, at a loop that binds a level of two or more of them, the merge of their sorted
coordinates (a ``SparseMerge``), the two-pointer way:

* the *intersection*, when the update changes nothing wherever *any one* of them holds its fill,
  whatever the others hold (a product ``A * B`` under ``+=``): a coordinate that one of them does not
  store contributes nothing.  A loop that binds a level of one of them only iterates that level (a
  ``SparseLevel``), so the tensors need not share every level (``A[i,k] * B[k,j]`` in loop order
  ``i k j``: ``i`` over A, ``k`` merged, ``j`` over B);
* the *union*, when the update changes nothing only where *all* of them hold their fills (a sum
  ``A + B``): every coordinate that one of them stores is visited, and in the body a tensor that
  does not store it reads its fill — one branch per set of tensors present, most first.  The union
  needs the tensors to bind the same variables at the same levels.

Whether a change is "nothing" is decided by :mod:`systec_ref.lang.unstored` (reads of everything
else are unknown but finite), as ``sparse-iterate`` decides it for one tensor.

Before (strict part of ``s += A[i,j,k] * B[i,j,k]``, A and B sparse symmetric)::

    for i in 0..n:
      for j in i+1..n:
        for k in j+1..n:
          s += 6 * A[i,j,k] * B[i,j,k]

After::

    for i in intersect(A<strict>.level0 as _m0, B<strict>.level0 as _m1):
      for j in intersect(A<strict>.level1 under _m0 as _m2, B<strict>.level1 under _m1 as _m3):
        for k in intersect(A<strict>.level2 under _m2 as _m4, B<strict>.level2 under _m3 as _m5):
          s += 6 * A<strict>.vals[_m4] * B<strict>.vals[_m5]

A union (``C[i,j] += A[i,j] + B[i,j]``) tests which tensors store the coordinate::

    for i in union(A<f1>.level0 as _m0, B<f1>.level0 as _m1):
      if 0 <= _m0 and 0 <= _m1:
        C[i,i] += A<f1>.vals[_m0] + B<f1>.vals[_m1]
      elif 0 <= _m0:
        C[i,i] += A<f1>.vals[_m0] + 0
      else:
        C[i,i] += 0 + B<f1>.vals[_m1]

Which tensors merge: only tensors declared ``sparse`` (a ``dense`` one is read by random access —
the way to ask for a dense lookup when one operand is dense-ish: the compiler does not know the
densities).  All of them if they fit, else the largest set that does (each set tried, most tensors
first).  A sparse tensor left out — read at two places, read with sorted subscripts, bound out of
loop order, on no one face, or a sum whose other terms do not vanish with it — is named in the note
with the reason; ``sparse-iterate`` may still iterate one of them alone, the others are then read
dense (expanded from their stored entries).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable

from ..ir.index import is_loop
from ..ir.names import namer
from ..ir.nodes import (
    Add,
    And,
    Assign,
    Block,
    Cmp,
    Const,
    IConst,
    Idx,
    If,
    Let,
    Local,
    Lookup,
    Loop,
    MergeOperand,
    Mul,
    Neg,
    Program,
    Read,
    SparseLevel,
    SparseMerge,
    SparseVal,
    Stmt,
    TensorInfo,
    Value,
)
from ..lang import unstored
from ..storage.faces import face_modes
from ..storage.formats import Compressed, Dense, SparseFormat
from ..term import nodes, postwalk, unknown
from .combinators import plural

#: the reason a group is not tried in a nest whose outer loop binds none of its levels: its inner loops are
_NOT_HERE = "the outer loop binds none of their levels"

@dataclasses.dataclass(frozen=True)
class _Operand:
    """One sparse tensor of a nest, as it would be iterated: its read, face and the variable of each level."""

    tensor: TensorInfo
    read: Read
    face: tuple[int, ...]
    layout: str
    level_vars: tuple[str, ...]


def _when_fill(e: Value, fills: dict[Read, int | float], lets: dict[str, Value]) -> unstored.Abstract:
    """The value of ``e`` where each read of ``fills`` holds its fill; every other read is unknown."""
    match e:
        case Read():
            return fills.get(e, unstored.FINITE)
        case SparseVal():
            return unstored.FINITE
        case Const():
            return e.value
        case Local() if e.name in lets:
            return _when_fill(lets[e.name], fills, lets)
        case Local():
            return None
        case Lookup():
            return e.values[0] if len(set(e.values)) == 1 else unstored.FINITE
        case Neg():
            return unstored.neg(_when_fill(e.arg, fills, lets))
        case Mul() | Add():
            step = unstored.mul if isinstance(e, Mul) else unstored.add
            acc = _when_fill(e.args[0], fills, lets)
            for a in e.args[1:]:
                acc = step(acc, _when_fill(a, fills, lets))
            return acc
    raise unknown(e, "co-iterate (value when unstored)")


def _no_change(root: Loop, fills: dict[Read, int | float]) -> bool:
    """Whether every update of the nest changes nothing where the reads of ``fills`` hold their fills."""
    accumulators = {n.target.name for n in nodes(root) if isinstance(n, Assign) and isinstance(n.target, Local)}
    lets = {n.name: n.value for n in nodes(root) if isinstance(n, Let)}
    for n in nodes(root):
        if not isinstance(n, Assign):
            continue
        if n.op == "=":
            return False  # a copy must see unstored entries too
        if isinstance(n.value, Local) and n.value.name in accumulators:
            continue  # flushes an accumulator whose updates are checked themselves
        if not unstored.no_change(_when_fill(n.value, fills, lets), n.op):
            return False
    return True


def _chain(root: Loop, wanted: set[str]) -> list[Loop] | None:
    """The loops from ``root`` down until every variable of ``wanted`` is bound: one loop per body, beside
    only lets and assignments."""
    path = [root]
    while not wanted <= {lp.var for lp in path}:
        body = path[-1].body.body
        inner = [s for s in body if isinstance(s, Loop)]
        if len(inner) != 1 or any(not isinstance(s, (Loop, Let, Assign)) for s in body):
            return None
        path.append(inner[0])
    return path


def _operand(p: Program, t: TensorInfo, r: Read, loops: dict[str, Loop], order: list[str],
             face_of: FaceFn) -> _Operand | str:
    """How ``t`` (read as ``r``) would be iterated by the loops of a nest, or why it cannot be."""
    subs = [i.name for i in r.idx]  # type: ignore[union-attr]
    distinct = list(dict.fromkeys(subs))
    if any(v not in loops for v in distinct):
        return "its subscripts are not all loops of the nest"
    levels = {v: [q for q, s in enumerate(subs) if s == v] for v in distinct}
    if any(qs != list(range(qs[0], qs[0] + len(qs))) for qs in levels.values()):
        return "a repeated subscript on non-adjacent modes"
    symmetric = bool(t.symmetry) and bool(p.facts.permutable)
    group_of = {q: n for n, g in enumerate(t.symmetry) for q in g}
    for qs in levels.values():
        if len(qs) > 1 and not (symmetric and all(q in group_of and group_of[q] == group_of[qs[0]] for q in qs)):
            return "a repeated subscript outside one symmetry group"
    if symmetric:
        face = face_of(p, t, subs, loops)
    else:
        face = () if len(distinct) == len(subs) and all(loops[v].lo == IConst(0) for v in distinct) else None
    if face is None:
        return "its loop bounds do not pin one face of its storage"
    kept = face_modes(len(subs), t.symmetry if symmetric else (), face)
    level_vars = tuple(subs[q] for q in kept)
    if not level_vars:
        return "it stores no level (a scalar): nothing to merge"
    at = [order.index(v) for v in level_vars]
    if at != sorted(at):
        return "its levels are bound out of loop order"
    return _Operand(t, r, face, "canonical" if symmetric else "full", level_vars)


def _mergeable(fmt: SparseFormat, levels: int, key: tuple[int, ...]) -> bool:
    """Is every level of face ``key`` (``levels`` stored modes) under ``fmt`` one a ``SparseMerge`` merges?
    A dense level is not (its coordinates are all there: the nest iterates it, and reads the others)."""
    for level in fmt.face(levels, key).levels:
        match level:
            case Compressed():
                pass  # sorted coordinates crd[pos[q]] .. crd[pos[q+1]-1] under parent q: what a merge walks
            case Dense():
                return False
            case _:
                raise unknown(level, "co-iterate (level kind)")
    return True


class _Nest:
    """One nest being planned: its loops, the sparse tensors it reads and why some cannot merge."""

    def __init__(self, p: Program, root: Loop, sparse: dict[str, TensorInfo], face: FaceFn, fmt_of: FormatOf):
        self.p, self.root, self.face, self.fmt_of = p, root, face, fmt_of
        self.reads: dict[str, Read] = {}
        self.why: dict[str, str] = {}
        for name in sparse:
            reads = [n for n in nodes(root) if isinstance(n, Read) and n.tensor == name]
            if not reads:
                continue
            if any(r != reads[0] for r in reads):
                self.why[name] = "read at two places"
            elif reads[0].sort:
                self.why[name] = "read with subscripts sorted at run time"
            elif not all(isinstance(i, Idx) for i in reads[0].idx):
                self.why[name] = "a subscript that is not a loop variable"
            else:
                self.reads[name] = reads[0]

    def plan(self, names: tuple[str, ...], sparse: dict[str, TensorInfo]) -> tuple[str, list[_Operand]] | str:
        """(mode, operands) to merge the tensors ``names`` in this nest, or why they cannot be."""
        reads = {n: self.reads[n] for n in names}
        wanted = {i.name for r in reads.values() for i in r.idx}  # type: ignore[union-attr]
        if self.root.var not in wanted:
            return _NOT_HERE
        path = _chain(self.root, wanted)
        if path is None:
            return "their loops are not one chain of single loops"
        loops = {lp.var: lp for lp in path}
        order = [lp.var for lp in path]
        ops = []
        for n in names:
            got = _operand(self.p, sparse[n], reads[n], loops, order, self.face)
            if isinstance(got, str):
                return f"{n}: {got}"
            if not _mergeable(self.fmt_of(n), len(got.level_vars), got.face):
                return f"{n}: stored with a dense level (every coordinate is iterated; the others are read)"
            ops.append(got)
        if all(_no_change(self.root, {o.read: o.tensor.fill}) for o in ops):
            mode = "intersect"
        elif _no_change(self.root, {o.read: o.tensor.fill for o in ops}):
            if len({o.level_vars for o in ops}) != 1:
                return "a sum (union) of tensors whose levels are bound by different loops"
            mode = "union"
        else:
            return "an update that one of them alone does not annihilate, nor all of them together"
        return mode, ops


def _subst(s: object, present: dict[str, tuple[_Operand, str]], absent: list[_Operand]) -> object:
    """Reads of the present operands become their stored values (at the position of their last level);
    reads of absent ones their fill."""
    table: dict[Read, Value] = {o.read: SparseVal(o.tensor.name, o.face, Idx(pos)) for o, pos in present.values()}
    table |= {o.read: Const(o.tensor.fill) for o in absent}
    return postwalk(lambda n: table.get(n) if isinstance(n, Read) else None)(s)


def _build(path: list[Loop], ops: list[_Operand], mode: str, fresh: Callable[[], str]) -> Stmt:
    """The nest of ``path`` with its level loops iterating the operands' stored coordinates."""
    pos: dict[tuple[str, int], str] = {}  # named as the loops are built, outermost first

    def position(o: _Operand, n: int) -> str:
        if (o.tensor.name, n) not in pos:
            pos[(o.tensor.name, n)] = fresh()
        return pos[(o.tensor.name, n)]

    def level(o: _Operand, var: str) -> int | None:
        return o.level_vars.index(var) if var in o.level_vars else None

    def operand(o: _Operand, n: int) -> MergeOperand:
        parent = Idx(position(o, n - 1)) if n else None
        return MergeOperand(position(o, n), o.tensor.name, o.face, n, parent)

    def body(k: int, present: list[_Operand]) -> Block:
        lp = path[k]
        inner: list[Stmt] = []
        absent = [o for o in ops if o not in present]
        for s in lp.body.body:
            if k + 1 < len(path) and s is path[k + 1]:
                inner.append(loop(k + 1, present))
            else:
                last = {o.tensor.name: (o, position(o, len(o.level_vars) - 1)) for o in present}
                inner.append(_subst(s, last, absent))  # type: ignore[arg-type]
        return Block(tuple(inner), lp.body.comment)

    def loop(k: int, present: list[_Operand]) -> Stmt:
        lp = path[k]
        here = [(o, level(o, lp.var)) for o in present if level(o, lp.var) is not None]
        if not here:
            return dataclasses.replace(lp, body=body(k, present))
        if len(here) == 1:
            o, n = here[0]
            m = operand(o, n)  # type: ignore[arg-type]
            return SparseLevel(lp.var, m.pos, m.tensor, m.face, m.level, m.parent, body(k, present))
        operands = tuple(operand(o, n) for o, n in here)  # type: ignore[arg-type]
        if mode == "intersect":
            return SparseMerge(lp.var, mode, operands, body(k, present))
        # union: every present operand binds this level (they share their level variables); one branch per
        # set of operands that store the coordinate, most first: the first whose members all do is exact
        subsets = [c for size in range(len(here), 0, -1) for c in itertools.combinations(range(len(here)), size)]
        bodies = [body(k, [here[t][0] for t in c]) for c in subsets]  # built in order: positions named so
        chain: Block | None = None
        for c, inner in reversed(list(zip(subsets, bodies))):
            if chain is None:
                chain = inner  # the last: one operand, the only one left when none before matched
                continue
            tests = tuple(Cmp("<=", IConst(0), Idx(operands[t].pos)) for t in c)
            chain = Block((If(tests[0] if len(tests) == 1 else And(tests), inner, chain),))
        return SparseMerge(lp.var, mode, operands, chain)  # type: ignore[arg-type]

    return loop(0, ops)


#: the face of a symmetric tensor's canonical storage that a nest's bounds pin, or None
#: (``sparse-iterate``'s rule: ``face(program, tensor, subscripts, loops by variable)``)
FaceFn = Callable[[Program, TensorInfo, list[str], dict[str, Loop]], "tuple[int, ...] | None"]


@dataclasses.dataclass(frozen=True)
class Merged:
    """What :func:`merge_nests` did: the new body, the layout of each tensor it iterates, what it merged (a
    note, empty if nothing) and, for each sparse input it left out of a merge, why (one entry per nest)."""

    body: Block
    layout: dict[str, str]
    note: str
    left: dict[str, list[str]]

    def dense_note(self, body: Block, sparse: list[str]) -> str:
        """Which sparse inputs ``body`` (the final program) still reads dense — expanded from their stored
        entries and read by random access — and why."""
        def reads(s: object, n: str) -> bool:
            return any(isinstance(x, Read) and x.tensor == n for x in nodes(s))

        out = []
        for n in sparse:
            # the innermost loops that read it
            nests = sum(1 for s in nodes(body) if is_loop(s) and reads(s, n)
                        and not any(is_loop(x) and reads(x, n) for x in nodes(s.body)))  # type: ignore[attr-defined]
            if not nests:
                continue
            why = "; ".join(dict.fromkeys(self.left.get(n, []))) or \
                "no nest reading it iterates it: read at two places, bounds that pin no one face, or an update " \
                "that its fill does not annihilate"
            out.append(f"{n} stays dense in {plural(nests, 'nest')} ({why})")
        return "; ".join(out)


#: the storage format of a tensor, by name
FormatOf = Callable[[str], SparseFormat]


def merge_nests(p: Program, fmt_of: FormatOf, face: FaceFn) -> Merged:
    """Every nest of ``p`` that reads two or more sparse inputs merges them where it can (see the module)."""
    sparse = {t.name: t for t in p.tensors if t.role == "in" and t.format == "sparse"}
    if len(sparse) < 2:
        return Merged(p.body, {}, "", {})
    fresh = namer(p, "_m")
    layout: dict[str, str] = {}
    merged: dict[str, int] = {}
    left: dict[str, list[str]] = {}  # tensor -> why it stays out of a merge, one entry per nest

    def attempt(root: Loop, quiet: bool) -> tuple[Stmt | None, bool]:
        """The nest of ``root`` merged, or None; and whether it said why not (once per nest, not again for
        the loops inside it, which ``_top_down`` tries next)."""
        nest = _Nest(p, root, sparse, face, fmt_of)
        if len(nest.reads) + len(nest.why) < 2:
            return None, False
        why = dict(nest.why)  # tensor -> why the largest group holding it fails
        names = tuple(nest.reads)
        outer_only = len(names) > 1  # every group failed only because the outer loop binds none of its levels
        for size in range(len(names), 1, -1):
            for group in itertools.combinations(names, size):
                got = nest.plan(group, sparse)
                if not isinstance(got, str) and any(layout.get(o.tensor.name, o.layout) != o.layout for o in got[1]):
                    got = "stored another way in another nest"
                if isinstance(got, str):
                    outer_only &= got == _NOT_HERE
                    for n in group:
                        why.setdefault(n, got)
                    continue
                mode, ops = got
                for o in ops:
                    layout[o.tensor.name] = o.layout
                path = _chain(root, {v for o in ops for v in o.level_vars})
                merged[mode] = merged.get(mode, 0) + 1
                for n in [*names, *nest.why]:
                    if n not in group:
                        left.setdefault(n, []).append(why.get(n, f"merged without it: {', '.join(group)}"))
                return _build(path, ops, mode, fresh), True  # type: ignore[arg-type]
        if outer_only or quiet:
            return None, quiet
        for n in [*names, *nest.why]:
            left.setdefault(n, []).append(why.get(n, "no other sparse input here can merge with it"))
        return None, True

    body = _top_down(p.body, attempt)
    if not merged:
        return Merged(p.body, {}, "", left)
    done = ", ".join(f"{plural(c, 'nest')} by {'intersection' if m == 'intersect' else m}"
                     for m, c in sorted(merged.items()))
    return Merged(body, layout, f"{', '.join(sorted(layout))} co-iterated ({done})", left)


def _top_down(b: Block, attempt: Callable[[Loop, bool], tuple[Stmt | None, bool]], quiet: bool = False) -> Block:
    """Merge outermost nests first; a nest left alone is searched inside (``quiet``: its reasons are said)."""
    out: list[Stmt] = []
    for s in b.body:
        if isinstance(s, Loop):
            got, said = attempt(s, quiet)
            out.append(got if got is not None else
                       dataclasses.replace(s, body=_top_down(s.body, attempt, quiet or said)))
        elif isinstance(s, Block):
            out.append(_top_down(s, attempt, quiet))
        elif isinstance(s, If):
            out.append(If(s.cond, _top_down(s.then, attempt, quiet),
                          _top_down(s.orelse, attempt, quiet) if s.orelse else None))
        else:
            out.append(s)
    return Block(tuple(out), b.comment)
