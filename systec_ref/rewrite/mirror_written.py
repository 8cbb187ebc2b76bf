"""Pass ``mirror-written``: size the mirror of a symmetric output to the work that wrote it.

Precondition: ``replicate-output`` (its mirror, unchanged, is the program's last statement: found
by value) and ``sparse-iterate`` (the nests over stored entries); it runs last, after every pass
that moves the updates of the output, and changes nothing else.

``replicate-output`` computes only the canonical triangle of a symmetric output and mirrors it
over the *whole* output: as many steps as the output has elements.  Beside dense work that is
cheap (the work is larger than the output); beside a few stored entries of a sparse input it is
the whole cost.  But the canonical elements a kernel writes are exactly those its updates write:
a second pass over the same nests — the same loops over the same stored entries, the same tests —
with each update ``C[t] op= v`` turned into copies ``C[t'] = C[t]`` onto every other
rearrangement ``t'`` of ``t``'s subscripts within each group of the output's symmetry, copies
every written element.  An element no update wrote still holds the output's initial value, as
do its mirror images (no update writes outside the canonical triangle), so skipping it changes
nothing; copying an element twice writes the same value twice (every accumulation has finished).
Such copies cost as many steps as the updates, so which one is cheaper depends on the data: the
pass keeps both and chooses at run time, comparing the number of copies (the stored entries of
the iterated levels, ``|A<face>.levelL|``, times the extent of the dense loops around them) with
the size of the output.  Control flow never depends on values, so the second pass visits the
points the first did, whatever the semiring (``min``/``max`` copies are exact too).

It applies only when every update of the output that has a mirror image sits in a nest over the
stored entries of one face (else the work is dense, at least the output's size: the full mirror
stays, decided at compile time), at canonical subscripts, under dense loops whose extents are
known before the nest runs.

Before (sparse TTM, after ``workspace``)::

    for (_q0, k) in A<strict>.level0:
      for i in 0..r:
        let _h2 = B[k,i]
        for (_q1, j) in A<strict>.level1 under _q0:
          ...
          for (_q2, l) in A<strict>.level2 under _q1:
            let _r0 = A<strict>.vals[_q2]
            C[i,j,l] += _h2 * _r0
            C[i,k,l] += _h1 * _r0
            _t0 += _r0 * B[l,i]
          C[i,k,j] += _t0
    ...
    # mirror the canonical triangle of C in modes (1,2) (replicate-output)
    for _m0 in 0..r:
      for _m1 in 0..n:
        for _m2 in 0..n:
          if _m2 < _m1:
            C[_m0,_m1,_m2] = C[_m0,_m1,_m2]{sorted (1,2)}

After::

    (the nests, unchanged)
    # mirror sized to the work (mirror-written)
    if (2*|A<strict>.level2|*r + |A<strict>.level1|*r + ...) < r*n*n:
      # copy every written canonical element of C onto its mirror images (mirror-written)
      for (_q8, k) in A<strict>.level0:
        for i in 0..r:
          for (_q9, j) in A<strict>.level1 under _q8:
            for (_q10, l) in A<strict>.level2 under _q9:
              C[i,l,j] = C[i,j,l]
              C[i,l,k] = C[i,k,l]
            C[i,j,k] = C[i,k,j]
      ...
    else:
      # mirror the canonical triangle of C in modes (1,2) (replicate-output)
      for _m0 in 0..r:
        ...
"""

from __future__ import annotations

import dataclasses
import itertools

from ..ir.edit import replace_body
from ..ir.index import index_names, simplify_index
from ..ir.names import namer
from ..ir.nodes import (
    Assign,
    BlasCall,
    Block,
    Cmp,
    DimSize,
    Elem,
    IConst,
    Idx,
    If,
    IMul,
    IndexExpr,
    ISum,
    Let,
    Loop,
    Permute,
    Program,
    Read,
    SparseLevel,
    SparseLocate,
    SparseMerge,
    Stmt,
    Stored,
)
from ..storage.faces import face_modes
from ..term import nodes, postwalk, unknown
from .combinators import plural
from .lower import dim_expr
from .manager import DEFAULT_OPTIONS, Options, Pass
from .replicate_output import canonical, mirror_nest
from .symmetry import rank_map

Groups = tuple[tuple[int, ...], ...]


class _Dense(Exception):
    """Why the written elements cannot be told apart cheaply: the full mirror stays."""


def images(t: Elem, groups: Groups) -> list[Elem]:
    """Every other rearrangement of ``t``'s subscripts within each group (as expressions), in order."""
    per_group = [sorted(set(itertools.permutations([t.idx[q] for q in g])), key=repr) for g in groups]
    out: list[Elem] = []
    for combo in itertools.product(*per_group):
        idx = list(t.idx)
        for g, subs in zip(groups, combo):
            for q, s in zip(g, subs):
                idx[q] = s
        e = Elem(t.tensor, tuple(idx))
        if e != t and e not in out:
            out.append(e)
    return out


class _Copier:
    """Builds the copy nests and, for each copy, its number of runs as an index expression."""

    def __init__(self, p: Program, groups: Groups):
        self.p, self.out, self.groups = p, p.output.name, groups
        self.ranks = rank_map(p)
        #: (innermost stored level, dense extents) -> copies per run there
        self.cost: dict[tuple[Stored, tuple[IndexExpr, ...]], int] = {}
        self.copies = 0

    def stmt(self, s: Stmt, chain: tuple[Loop | SparseLevel, ...]) -> Stmt | None:
        match s:
            case Assign(Elem(tensor) as t, op, _) if tensor == self.out:
                if op == "=":
                    raise _Dense(f"{self.out} is also assigned ('=') outside the mirror")
                mirrors = images(t, self.groups)
                if not mirrors:
                    return None  # an element the symmetry maps onto itself
                if canonical(t, list(self.groups), self.ranks) is not True:
                    raise _Dense(f"an update of {self.out} is not known to write its canonical triangle")
                self.count(chain, len(mirrors))
                return Block(tuple(Assign(m, "=", Read(self.out, t.idx)) for m in mirrors))
            case Assign() | Let():
                return None  # temporaries, locals: no output element; control flow never reads them
            case Block(body, comment):
                kept = tuple(x for x in (self.stmt(b, chain) for b in body) if x is not None)
                # a nest's comment stays (its face); one on straight-line updates described the updates
                nest = any(isinstance(x, (Loop, SparseLevel, If)) or (isinstance(x, Block) and x.comment) for x in kept)
                return Block(kept, comment if nest else "") if kept else None
            case Loop(body=body) | SparseLevel(body=body):
                inner = self.stmt(body, (*chain, s))
                return dataclasses.replace(s, body=inner) if inner is not None else None
            case If(cond, then, orelse):
                a = self.stmt(then, chain)
                b = self.stmt(orelse, chain) if orelse is not None else None
                if a is None and b is None:
                    return None
                return If(cond, a if a is not None else Block(()), b)
            case Permute():
                raise _Dense("a nest rearranges its variables at run time")
            case SparseMerge():
                raise _Dense("a nest co-iterates several sparse tensors (their union or intersection is not counted)")
            case SparseLocate():
                raise _Dense("a nest looks up a second sparse tensor (the entries it finds are not counted)")
            case BlasCall():
                raise _Dense("a BLAS call updates a dense block of it")
        raise unknown(s, "mirror-written (statement)")

    def count(self, chain: tuple[Loop | SparseLevel, ...], copies: int) -> None:
        """Record ``copies`` copies per run of the innermost body of ``chain``."""
        levels = [lv for lv in chain if isinstance(lv, SparseLevel)]
        if not levels:
            raise _Dense(f"an update of {self.out} runs in a dense nest (its work is the output's size or more)")
        last = levels[-1]
        if any((lv.tensor, lv.face, lv.level) != (last.tensor, last.face, n) for n, lv in enumerate(levels)):
            raise _Dense("a nest iterates stored entries of more than one face")
        extents: list[IndexExpr] = []
        for lp in chain:
            if isinstance(lp, Loop):
                hi = simplify_index(lp.hi)
                if index_names(hi):
                    raise _Dense(f"the extent of loop {lp.var} is not known before its nest runs")
                extents.append(hi)
        key = (Stored(last.tensor, last.face, last.level), tuple(sorted(extents, key=repr)))
        self.cost[key] = self.cost.get(key, 0) + copies
        self.copies += copies


def _fresh_positions(s: Stmt, fresh) -> Stmt:
    """The copy nests bind their own stored positions (``_q``), not those of the nests they repeat."""
    names = {n.pos: fresh() for n in nodes(s) if isinstance(n, SparseLevel)}

    def g(n):
        match n:
            case Idx(name) if name in names:
                return Idx(names[name])
            case SparseLevel(pos=pos) if pos in names:
                return dataclasses.replace(n, pos=names[pos])
            case _:
                return None
    return postwalk(g)(s)


def _never_more(p: Program, cost: dict, out) -> bool:
    """Can the copies never outnumber the full mirror's steps, whatever the data?  True for one count of stored
    entries (a level holds at most the product of the extents of its face's modes down to it) whose extents,
    with those of the dense loops around it, are among the output's own (e.g. SDDMM: the strict entries of an
    n*n matrix, copied into an n*n output)."""
    if len(cost) != 1:
        return False
    ((level, extents), count), = cost.items()
    if count != 1 or any(not isinstance(e, DimSize) for e in extents):
        return False
    t = p.tensor(level.tensor)
    groups = t.symmetry if dict(p.facts.sparse_storage).get(level.tensor) == "canonical" else ()
    bound = [t.dims[m] for m in face_modes(t.order, groups, level.face)[:level.level + 1]]
    bound += [e.name for e in extents]
    left = list(out.dims)
    for d in bound:
        if not isinstance(d, str) or d not in left:
            return False
        left.remove(d)
    return True


def run(p: Program, options: Options = DEFAULT_OPTIONS) -> tuple[Program, str]:
    groups = p.facts.output_symmetry
    if not groups:
        return p, "no mirror (replicate-output did not apply)"
    out = p.output
    if out.format == "sparse":
        return p, f"no mirror: sparse {out.name} is stored canonical-only"
    mirror = mirror_nest(out, groups)
    body = p.body.body
    if not body or body[-1] != mirror:
        return p, "not applied: the mirror of replicate-output is not the last statement"
    copier = _Copier(p, groups)
    try:
        nests = copier.stmt(Block(body[:-1]), ())
    except _Dense as why:
        return p, f"full mirror kept: {why}"
    if nests is None:
        return p, "full mirror kept: no update of the output has a mirror image"
    terms = tuple(IMul((IConst(c), level, *extents)) if c != 1 else IMul((level, *extents))
                  for (level, extents), c in sorted(copier.cost.items(), key=repr))
    size = IMul(tuple(dim_expr(d) for d in out.dims))
    cheaper = Cmp("<", ISum(terms), size)
    copies = _fresh_positions(Block(nests.body, comment=f"copy every written canonical element of {out.name} onto "
                                                        f"its mirror images (mirror-written)"), namer(p, "_q"))
    extent = "*".join(str(d) for d in out.dims)
    if _never_more(p, copier.cost, out):
        choice = Block((copies,), comment="mirror sized to the work (mirror-written)")
        return replace_body(p, Block((*body[:-1], choice))), (
            f"mirror of {out.name} sized to the work: only the elements written "
            f"({plural(copier.copies, 'copy', 'copies')} in the updates' nests over stored entries), never more "
            f"than the {extent} steps of the full mirror "
            f"(no run-time test)")
    choice = Block((If(cheaper, copies, mirror),), comment="mirror sized to the work (mirror-written)")
    new = replace_body(p, Block((*body[:-1], choice)))
    return new, (f"mirror of {out.name} sized to the work, at run time: only the elements written "
                 f"({plural(copier.copies, 'copy', 'copies')} in the updates' nests over stored entries) when "
                 f"fewer than the {extent} steps of the full mirror, else the full mirror")


PASS = Pass("mirror-written", run, symmetry=True, requires=("replicate-output", "sparse-iterate"))
