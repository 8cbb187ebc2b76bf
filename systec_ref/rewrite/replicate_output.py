"""Pass ``replicate-output``: compute a symmetric output on its canonical triangle only.

Precondition: ``group-assignments`` (each block holds distinct updates).

Output positions whose subscripts are variables of one permutable set are a
candidate symmetry group of the output.  It *is* one — visibly (SSYRK) or
invisibly (TTM) — when in every block each update has a partner in the same
block that writes the swapped output element with the same right-hand side
(or writes an element the swap fixes): then the multiset of all updates is
invariant under the swap, so the output is symmetric.  Each such pair keeps
only the write into the canonical triangle (sorted subscripts) — not doubled:
a final mirror loop copies the canonical triangle onto the rest.  A sparse output gets no
mirror: it is stored canonical-only (its :class:`~systec_ref.storage.SparseTensor` records the
groups, and the interpreter gives its value as the canonical entries mirrored).

The mirror visits the whole output: cheap beside dense work, which is larger than the
output, but not beside a few stored entries of a sparse input.  Where every update of the
output ends up in a nest over stored entries, ``mirror-written`` (the last pass) sizes it to
the work: at run time it copies only the elements written, when that is fewer copies.

Before::

    if i < j:
      for k in 0..m:
        C[i,j] += A[i,k] * A[j,k]
        C[j,i] += A[i,k] * A[j,k]
    ...

After::

    if i < j:
      for k in 0..m:
        C[i,j] += A[i,k] * A[j,k]
    ...
    # mirror the canonical triangle of C (replicate-output)
    for _m0 in 0..n:
      for _m1 in 0..n:
        if _m1 < _m0:
          C[_m0,_m1] = C[_m0,_m1]{sorted (0,1)}
"""

from __future__ import annotations

from ..ir.edit import replace_body
from ..ir.nodes import Assign, Block, Cmp, Elem, IConst, Idx, If, Loop, Or, Program, Read, TensorInfo
from ..term import nodes, postwalk
from .combinators import main_assignments
from .lower import dim_expr
from .manager import DEFAULT_OPTIONS, Options, Pass
from .symmetry import compared_as_inputs, permutable_sets, rank_map, transposed_copies


def _swap(t: Elem, a: int, b: int) -> Elem:
    idx = list(t.idx)
    idx[a], idx[b] = idx[b], idx[a]
    return Elem(t.tensor, tuple(idx))


def _leaf_runs(p: Program, out: str) -> list[list[Assign]]:
    runs = []
    for b in nodes(p.body):
        if isinstance(b, Block):
            run = [s for s in b.body if isinstance(s, Assign) and isinstance(s.target, Elem)
                   and s.target.tensor == out and s.op != "="]
            if run:
                runs.append(run)
    return runs


def _candidate_groups(p: Program, a0: Assign) -> list[tuple[int, ...]]:
    """Output positions grouped by the permutable set their variable belongs to."""
    ranks = rank_map(p)
    by_set: dict[int, list[int]] = {}
    for q, i in enumerate(a0.target.idx):
        if isinstance(i, Idx) and i.name in ranks:
            by_set.setdefault(ranks[i.name][0], []).append(q)
    return [tuple(g) for _, g in sorted(by_set.items()) if len(g) > 1]


def _symmetric_in(runs: list[list[Assign]], g: tuple[int, ...], copies: dict) -> bool:
    """Does every update of the output have its partner under each swap in ``g`` in its block, with the
    same value — up to the order of operands, and reading ``concordize``'s transposed copies as their
    inputs the other way round (``C[i,j] += A[i,k] * A_T[k,j]`` pairs with ``C[j,i] += A[j,k] * A_T[k,i]``)?"""
    for run in runs:
        values = [compared_as_inputs(s.value, copies) for s in run]
        have = {(s.target, v) for s, v in zip(run, values)}
        for s, v in zip(run, values):
            for a, b in zip(g, g[1:]):
                t = _swap(s.target, a, b)
                if t != s.target and (t, v) not in have:
                    return False
    return True


def canonical(t: Elem, groups: list[tuple[int, ...]], ranks) -> bool | None:
    """Are the subscripts of ``t`` sorted within each group?  None if unknowable."""
    for g in groups:
        subs = [t.idx[q] for q in g]
        if not all(isinstance(s, Idx) and s.name in ranks for s in subs):
            return None
        if len({ranks[s.name][0] for s in subs}) != 1:
            return None
        r = [ranks[s.name] for s in subs]
        if r != sorted(r):
            return False
    return True


def mirror_nest(info: TensorInfo, groups: tuple[tuple[int, ...], ...]) -> Block:
    """The final copy of the canonical triangle of output ``info`` onto the rest, over the whole output
    (``mirror-written`` finds it by this value)."""
    out = info.name
    vars_ = [f"_m{q}" for q in range(info.order)]
    cond = Or(tuple(Cmp("<", Idx(vars_[b]), Idx(vars_[a])) for g in groups for a, b in zip(g, g[1:])))
    mirror: Block = Block((If(cond, Block((Assign(Elem(out, tuple(Idx(v) for v in vars_)), "=",
                                                     Read(out, tuple(Idx(v) for v in vars_), groups)),))),))
    for q in reversed(range(info.order)):
        mirror = Block((Loop(vars_[q], IConst(0), dim_expr(info.dims[q]), mirror),))
    groups_text = " and ".join("(" + ",".join(map(str, g)) + ")" for g in groups)
    return Block(mirror.body, comment=f"mirror the canonical triangle of {out} in modes {groups_text} "
                                      f"(replicate-output)")


def run(p: Program, options: Options = DEFAULT_OPTIONS) -> tuple[Program, str]:
    if not permutable_sets(p):
        return p, "no permutable set"
    assigns = main_assignments(p)
    if not assigns:
        return p, "no update of the output"
    out = assigns[0].target.tensor
    info = p.tensor(out)
    ranks = rank_map(p)
    # the lhs of the un-rearranged statement is the first update of the first block
    groups = [g for g in _candidate_groups(p, assigns[0]) if len({info.dims[q] for q in g}) == 1]
    runs = _leaf_runs(p, out)
    if sum(len(r) for r in runs) != len(assigns):
        return p, "not applied: updates of the output outside straight-line blocks"
    copies = transposed_copies(p)
    found = [g for g in groups if _symmetric_in(runs, g, copies)]
    if not found:
        return p, "no output symmetry: updates do not pair up under any swap of output subscripts"
    if any(canonical(s.target, found, ranks) is None for s in assigns):
        return p, "not applied: canonical output elements cannot be told apart statically"

    def f(n):
        if not isinstance(n, Block):
            return None
        keep = tuple(s for s in n.body if not (isinstance(s, Assign) and s in assigns
                                               and not canonical(s.target, found, ranks)))
        return Block(keep, n.comment) if keep != n.body else None
    body = postwalk(f)(p.body)
    dropped = len(assigns) - len(main_assignments(replace_body(p, body)))
    groups_text = " and ".join("(" + ",".join(map(str, g)) + ")" for g in found)
    if info.format == "sparse":
        # stored canonical-only (its storage records the groups): the triangle is the whole output
        new = replace_body(p, body).with_facts(output_symmetry=tuple(found))
        return new, (f"{out} symmetric in modes {groups_text}: {dropped} of {len(assigns)} updates dropped; "
                     f"sparse, so stored canonical-only: no mirror")
    mirror = mirror_nest(info, tuple(found))
    new = replace_body(p, Block(body.body + (mirror,))).with_facts(output_symmetry=tuple(found))
    return new, f"{out} symmetric in modes {groups_text}: {dropped} of {len(assigns)} updates dropped, mirror added"


PASS = Pass("replicate-output", run, symmetry=True,
            requires=("identify-symmetry", "group-assignments"), provides=("output_symmetry",))
