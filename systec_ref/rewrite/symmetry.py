"""Shared vocabulary of the symmetry passes: permutable sets, equality patterns,
canonical expression forms.

A *permutable set* is a tuple of index variables, in loop-depth order, that run
over the same extent; ``restrict-iteration`` makes them non-decreasing
(``p1 <= p2 <= ...``), so inside the restricted nest a variable's *rank* (its
position in its set) orders the values of the set's variables.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from ..ir.nodes import (
    Add,
    And,
    Assign,
    Block,
    Cmp,
    Const,
    DimSize,
    Elem,
    IConst,
    Idx,
    If,
    Loop,
    Mul,
    Neg,
    Or,
    Program,
    Read,
    Value,
)
from ..term import nodes, postwalk
from .combinators import key
from .lower import dim_expr

LT, EQ = "<", "=="


def permutable_sets(p: Program) -> tuple[tuple[str, ...], ...]:
    return tuple(p.facts.permutable)


def rank_map(p: Program) -> dict[str, tuple[int, int]]:
    """var -> (set number, position in set)."""
    return {v: (s, n) for s, group in enumerate(permutable_sets(p)) for n, v in enumerate(group)}


# -- equality patterns ----------------------------------------------------------------


@dataclass(frozen=True)
class Pattern:
    """One face of the canonical simplex of a set: ``ops[t]`` relates
    ``vars[t]`` and ``vars[t+1]`` (``'<'`` or ``'=='``)."""

    vars: tuple[str, ...]
    ops: tuple[str, ...]

    @property
    def runs(self) -> list[list[str]]:
        runs = [[self.vars[0]]]
        for op, v in zip(self.ops, self.vars[1:]):
            if op == EQ:
                runs[-1].append(v)
            else:
                runs.append([v])
        return runs

    @property
    def rep(self) -> dict[str, str]:
        """Each variable -> the first variable of its run (its representative)."""
        return {v: run[0] for run in self.runs for v in run}

    @property
    def strict(self) -> bool:
        return all(op == LT for op in self.ops)

    @property
    def bitmask(self) -> int:
        """Bit t set when ``vars[t] == vars[t+1]``: a key with no collisions."""
        return sum(1 << t for t, op in enumerate(self.ops) if op == EQ)

    def cond(self) -> And:
        return And(tuple(Cmp(op, Idx(a), Idx(b)) for op, a, b in zip(self.ops, self.vars, self.vars[1:])))

    def text(self) -> str:
        out = self.vars[0]
        for op, v in zip(self.ops, self.vars[1:]):
            out += f" {op} {v}"
        return out

    def rearrangements(self) -> list[dict[str, str]]:
        """Every distinct rearrangement, as a substitution var -> representative.

        A canonical point has sorted coordinates; its rearrangement ``pi``
        gives variable ``vars[m]`` the value of ``vars[pi(m)]``.  Equal values
        are spelled by their representative, so distinct rearrangements are
        exactly the distinct tuples of representatives (identity first).
        """
        rep = self.rep
        values = [rep[v] for v in self.vars]
        order = {v: n for n, v in enumerate(self.vars)}
        seen = sorted(set(itertools.permutations(values)), key=lambda t: [order[x] for x in t])
        return [dict(zip(self.vars, t)) for t in seen]

    def multiplicity(self) -> int:
        return len(self.rearrangements())


def all_patterns(group: tuple[str, ...]) -> list[Pattern]:
    """Strict pattern first, then by number of equalities."""
    ops = list(itertools.product((LT, EQ), repeat=len(group) - 1))
    ops.sort(key=lambda o: (sum(x == EQ for x in o), [x == EQ for x in o]))
    return [Pattern(group, o) for o in ops]


def pattern_of(cond: object) -> Pattern | None:
    """Recover the pattern from a condition built by :meth:`Pattern.cond`."""
    if not isinstance(cond, And) or not cond.terms:
        return None
    vars_, ops = [], []
    for t in cond.terms:
        if not (isinstance(t, Cmp) and t.op in (LT, EQ) and isinstance(t.a, Idx) and isinstance(t.b, Idx)):
            return None
        if vars_ and vars_[-1] != t.a.name:
            return None
        if not vars_:
            vars_.append(t.a.name)
        vars_.append(t.b.name)
        ops.append(t.op)
    return Pattern(tuple(vars_), tuple(ops))


def _walk_chain(s: object, parse) -> list | None:
    out = []
    while s is not None:
        if not isinstance(s, If):
            return None
        got = parse(s.cond)
        if not got:
            return None
        out.append((got, s.then))
        if s.orelse is None:
            break
        if len(s.orelse.body) != 1:
            return None
        s = s.orelse.body[0]
    return out


def if_chain(s: object) -> list[tuple[Pattern, Block]] | None:
    """The branches of an if/elif chain of pattern blocks (``define-assignments``)."""
    return _walk_chain(s, pattern_of)


def build_chain(branches: list[tuple[object, Block]]) -> If:
    cond, body = branches[-1]
    node = If(cond, body)
    for cond, body in reversed(branches[:-1]):
        node = If(cond, body, Block((node,)))
    return node


# -- canonical forms ------------------------------------------------------------------


def canonical(e: Value) -> Value:
    """Flatten ``+``/``*``, fold constants into one leading coefficient, pull
    negations out of products, and sort operands by a deterministic key, so
    equal expressions become structurally equal."""

    def f(n):
        if isinstance(n, Mul):
            coef, rest = 1, []
            for a in n.args:
                parts = a.args if isinstance(a, Mul) else (a,)
                for x in parts:
                    while isinstance(x, Neg):
                        coef, x = -coef, x.arg
                    if isinstance(x, Const):
                        coef = coef * x.value
                    else:
                        rest.append(x)
            rest.sort(key=key)
            if not rest:
                return Const(coef)
            body = rest[0] if len(rest) == 1 else Mul(tuple(rest))
            if coef == 1:
                return body
            if coef == -1:
                return Neg(body)
            return Mul((Const(coef), *rest))
        if isinstance(n, Add):
            terms = []
            for a in n.args:
                terms += a.args if isinstance(a, Add) else [a]
            terms.sort(key=key)
            return terms[0] if len(terms) == 1 else Add(tuple(terms))
        if isinstance(n, Neg) and isinstance(n.arg, Neg):
            return n.arg.arg
        if isinstance(n, Neg) and isinstance(n.arg, Const):
            return Const(-n.arg.value)
        return None
    return postwalk(f)(e)


def sort_symmetric_reads(e: object, p: Program, by_name: bool = False) -> object:
    """Sort the subscripts of every symmetric read within its groups.

    Subscripts that are variables of one permutable set are sorted by rank
    (statically: their values are ordered inside the restricted nest); any
    other group keeps its subscripts and is marked for sorting at run time,
    so only the canonical triangle is ever read.  ``by_name`` sorts by
    variable name instead (for symmetry tests, where only equality matters).
    """
    ranks = rank_map(p)
    sym = {t.name: t.symmetry for t in p.tensors if t.symmetry}

    def f(n):
        if not isinstance(n, Read) or n.tensor not in sym:
            return None
        idx = list(n.idx)
        runtime = list(n.sort)
        for g in sym[n.tensor]:
            subs = [idx[q] for q in g]
            if not all(isinstance(s, Idx) for s in subs):
                runtime.append(g)
                continue
            names = [s.name for s in subs]
            if by_name:
                ordered = sorted(names)
            elif len(set(names)) == 1:
                continue
            elif all(v in ranks for v in names) and len({ranks[v][0] for v in names}) == 1:
                ordered = sorted(names, key=lambda v: ranks[v])
            else:
                if g not in runtime:
                    runtime.append(g)
                continue
            for q, v in zip(g, ordered):
                idx[q] = Idx(v)
        return Read(n.tensor, tuple(idx), tuple(sorted(set(runtime))))
    return postwalk(f)(e)


def branch_patterns(cond: object) -> list[Pattern] | None:
    """The patterns a branch condition covers: one pattern, or a disjunction of them."""
    terms = cond.terms if isinstance(cond, Or) else (cond,)
    pats = [pattern_of(t) for t in terms]
    return None if any(x is None for x in pats) else pats


def chain_branches(s: object) -> list[tuple[list[Pattern], Block]] | None:
    """Like :func:`if_chain`, for branches that may cover several patterns."""
    return _walk_chain(s, branch_patterns)


def transposed_copies(p: Program) -> dict[str, tuple[str, tuple[int, ...], object]]:
    """The transposed copies of inputs that the program builds (``concordize``'s): copy -> (the input,
    modes, the top-level statement that builds it), mode ``q`` of the copy being mode ``modes[q]`` of
    the input.  A copy qualifies when one top-level nest of loops writes it from one read of an input
    with every subscript a distinct loop variable over the whole of its mode (``A_T[_c1,_c0] =
    A[_c0,_c1]``: every element of the copy written once) and nothing else writes it."""
    infos = {t.name: t for t in p.tensors}
    writes: dict[str, int] = {}
    for n in nodes(p.body):
        if isinstance(n, Assign) and isinstance(n.target, Elem):
            writes[n.target.tensor] = writes.get(n.target.tensor, 0) + 1
    out: dict[str, tuple[str, tuple[int, ...], object]] = {}
    for s in p.body.body:
        inner = list(nodes(s))
        if any(not isinstance(n, (Block, Loop, Assign, Elem, Read, Idx, IConst, DimSize)) for n in inner):
            continue
        assigns = [n for n in inner if isinstance(n, Assign)]
        if len(assigns) != 1:
            continue
        match assigns[0]:
            case Assign(Elem(copy, idx), "=", Read(src, sidx, ())) if copy in infos and src in infos:
                pass
            case _:
                continue
        c, t = infos[copy], infos[src]
        if c.role != "temp" or writes.get(copy) != 1 or t.role != "in":
            continue
        if len(idx) != t.order or set(idx) != set(sidx) or len(set(sidx)) != t.order \
                or not all(isinstance(i, Idx) for i in sidx):
            continue
        loops = {n.var: n for n in inner if isinstance(n, Loop)}
        if len(loops) != t.order or any(v.name not in loops or loops[v.name].lo != IConst(0) or loops[v.name].step != 1
                                        or loops[v.name].hi != dim_expr(t.dims[m]) for m, v in enumerate(sidx)):
            continue
        out[copy] = (src, tuple(sidx.index(i) for i in idx), s)
    return out


def unfold_copies(e: object, copies: dict[str, tuple[str, tuple[int, ...], object]]) -> object:
    """``e`` with each read of a transposed copy replaced by the read of its input it stands for
    (``A_T[k,j]`` -> ``A[j,k]``): two reads of one input then compare equal whatever their orientation."""
    def f(n: object) -> object | None:
        if isinstance(n, Read) and n.tensor in copies and not n.sort:
            src, modes, _ = copies[n.tensor]
            idx = [None] * len(modes)
            for q, m in enumerate(modes):
                idx[m] = n.idx[q]
            return Read(src, tuple(idx))
        return None
    return postwalk(f)(e)


def compared_as_inputs(e: object, copies: dict[str, tuple[str, tuple[int, ...], object]]) -> object:
    """``e`` in the form two values are compared in when transposed copies count as their inputs: copies
    unfolded (:func:`unfold_copies`), operands in canonical order."""
    return canonical(unfold_copies(e, copies))
