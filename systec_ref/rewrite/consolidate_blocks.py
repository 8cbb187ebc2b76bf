"""Pass ``consolidate-blocks``: one block for faces whose decoupled updates are equal.

Precondition: a chain of diagonal faces that ``split-diagonals`` kept
together (``faces: compact``), right after the strict-part nest of the same
set.  Under the default ``faces: split`` every face already has its own
conditional-free nest and there is nothing to consolidate.

*Decoupling*: on face π (runs of sizes r1, r2, ...) the distinct
rearrangements are the k! permutations, each counted r1!·r2!·... times, so
the face computes exactly the strict part's updates, written in the original
variables, times 1/(r1!·r2!·...) — for ``+``; for the idempotent ``min`` and
``max`` it computes the strict part's updates as they are.  Faces whose
decoupled updates are equal are merged under one disjunction.

*Integer factors only*: a face is decoupled as above only when every
decoupled coefficient, c/(r1!·r2!·...) for a strict update with coefficient
c, is an integer.  Otherwise the decoupled updates that coincide on the face
(same target and value once each variable is replaced by the first of its
run) are summed into one, so that the coefficients become the face's integer
counts of rearrangements, and the face gets that body (if a sum is still a
fraction: the body ``split-diagonals`` wrote for it).  MTTKRP-5's all-equal
face would otherwise add five equal updates of one element, each times
24/5! = 1/5: not exact in floating point (at n = 1, A = 3 and B = 1 gave
3.0000000000000004) and impossible in int64.  The summed body stays in the
variables of the nest (``A[i,k,l,m]``, not ``A[i,i,i,i]``) like the other
branches, so ``hoist-reads`` does not lift its reads above the tests.

Before (MTTKRP-4, inside the diagonal nest)::

    if i < k and k < l and l == m:
      C[i,j] += 3 * A[i,k,l,l] * B[k,j] * B[l,j] * B[l,j]
      C[k,j] += 3 * A[i,k,l,l] * B[i,j] * B[l,j] * B[l,j]
      C[l,j] += 6 * A[i,k,l,l] * B[i,j] * B[k,j] * B[l,j]
    elif i < k and k == l and l < m:
      ...
    elif i == k and k == l and l == m:
      C[i,j] += A[i,i,i,i] * B[i,j] * B[i,j] * B[i,j]

After (6/2! = 3; 6/3! = 1; 6/(2!·2!) = 3/2 and 6/4! = 1/4 are fractions)::

    if (i < k and k < l and l == m) or (i < k and k == l and l < m) or (i == k and k < l and l < m):
      C[i,j] += 3 * A[i,k,l,m] * B[k,j] * B[l,j] * B[m,j]
      C[k,j] += 3 * A[i,k,l,m] * B[i,j] * B[l,j] * B[m,j]
      C[l,j] += 3 * A[i,k,l,m] * B[i,j] * B[k,j] * B[m,j]
      C[m,j] += 3 * A[i,k,l,m] * B[i,j] * B[k,j] * B[l,j]
    elif (i < k and k == l and l == m) or (i == k and k == l and l < m):
      ...   (the same four updates, coefficient 1)
    elif i == k and k < l and l == m:
      C[i,j] += 3 * A[i,k,l,m] * B[k,j] * B[l,j] * B[m,j]    (3/2 + 3/2: C[i,j] and C[k,j])
      C[l,j] += 3 * A[i,k,l,m] * B[i,j] * B[k,j] * B[m,j]    (3/2 + 3/2: C[l,j] and C[m,j])
    elif i == k and k == l and l == m:
      C[i,j] += A[i,k,l,m] * B[k,j] * B[l,j] * B[m,j]        (4 x 1/4)
"""

from __future__ import annotations

from fractions import Fraction
from math import factorial, isfinite, prod

from ..ir.edit import replace_body
from ..ir.index import rename_indices
from ..ir.nodes import Assign, Block, If, Loop, Or, Program, Stmt
from ..term import nodes, postwalk
from .combinators import plural, split_coefficient, with_coefficient
from .manager import DEFAULT_OPTIONS, Options, Pass
from .symmetry import Pattern, build_chain, canonical, chain_branches


def strict_body(s: Stmt, group: tuple[str, ...]) -> Block | None:
    """The innermost block of a strict-part nest of ``group``."""
    while isinstance(s, Loop):
        if s.var == group[-1]:
            return s.body
        if len(s.body.body) != 1:
            return None
        s = s.body.body[0]
    if isinstance(s, Block) and len(s.body) == 1:
        return strict_body(s.body[0], group)
    return None


def run_factor(pat: Pattern) -> int:
    """r1!·r2!·...: how often each distinct rearrangement of face ``pat`` is among the k! permutations."""
    return prod(factorial(len(r)) for r in pat.runs)


def exact(c: int | float) -> Fraction | None:
    """A coefficient as an exact fraction; None for ±inf and NaN (a literal like ``1e400`` or
    ``1e400 * 0``), which no face may be scaled by: such a nest is left as it is."""
    return Fraction(c) if isinstance(c, int) or isfinite(c) else None


def integral_on(pat: Pattern, sb: Block) -> bool:
    """Every ``+`` update of the strict body ``sb``, decoupled onto ``pat``, has an integer coefficient."""
    d = run_factor(pat)
    coefs = [exact(split_coefficient(n.value)[0]) for n in nodes(sb) if isinstance(n, Assign) and n.op == "+"]
    return all(c is not None and (c / d).denominator == 1 for c in coefs)


def scale(b: Block, divisor: int) -> Block | None:
    """Divide every ``+`` update's coefficient by ``divisor``; None unless every quotient is an integer
    (a rounded fraction, summed over the equal updates of a face, is not exact; int64 has none)."""
    ok = [True]

    def f(n):
        if isinstance(n, Assign) and n.op == "+":
            c, x = split_coefficient(n.value)
            new = None if exact(c) is None else exact(c) / divisor
            if new is None or new.denominator != 1:
                ok[0] = False
                return None
            value = int(new) if isinstance(c, int) else float(new)
            return Assign(n.target, n.op, with_coefficient(value, x))
        return None
    out = postwalk(f)(b)
    return out if ok[0] else None


def decoupled(pat: Pattern, sb: Block, reduction: str) -> Block | None:
    """The strict body ``sb`` as face ``pat`` computes it; None where that needs a fraction."""
    if reduction != "+":
        return sb
    return scale(sb, run_factor(pat))


def collapsed(pat: Pattern, sb: Block) -> Block | None:
    """The decoupled updates of face ``pat`` with the ones that coincide there summed: updates of one
    straight line of ``sb`` whose targets and values agree once every variable is replaced by its run's
    first (products compared up to order) become the first of them, its coefficient the sum of theirs
    over r1!·r2!·....  Still written in the variables of the nest.  None unless every coefficient is
    an integer."""
    d, rep = run_factor(pat), pat.rep
    ok = [True]

    def f(n):
        if not isinstance(n, Block):
            return None
        out: list = []
        where: dict = {}
        for s in n.body:
            if not (isinstance(s, Assign) and s.op == "+"):
                out.append(s)
                continue
            c, x = split_coefficient(s.value)
            if exact(c) is None:
                ok[0] = False
                return None
            key = (rename_indices(s.target, rep), None if x is None else canonical(rename_indices(x, rep)))
            if key in where:
                first, total, is_int = out[where[key]]
                out[where[key]] = (first, total + exact(c), is_int and isinstance(c, int))
            else:
                where[key] = len(out)
                out.append((s, exact(c), isinstance(c, int)))
        body = []
        for s in out:
            if isinstance(s, tuple):
                first, total, is_int = s
                coef = total / d
                if coef.denominator != 1:
                    ok[0] = False
                    return None
                x = split_coefficient(first.value)[1]
                s = Assign(first.target, first.op, with_coefficient(int(coef) if is_int else float(coef), x))
            body.append(s)
        return Block(tuple(body), n.comment)
    result = postwalk(f)(sb)
    return result if ok[0] else None


def consolidate(parent: Block, p: Program, stats: list[int]) -> Block:
    out = list(parent.body)
    for n in range(1, len(out)):
        found = _diagonal_chain(out[n])
        if found is None:
            continue
        path_top, branches, rebuild = found
        if any(len(pats) != 1 for pats, _ in branches):
            continue  # already consolidated
        chain = [(pats[0], body) for pats, body in branches]
        sb = strict_body(out[n - 1], chain[0][0].vars)
        if sb is None:
            continue
        groups: list[tuple[list, Block]] = []
        for pat, body in chain:
            d = decoupled(pat, sb, p.reduction)
            if d is not None:
                new_body = Block(d.body, "decoupled from the strict part (consolidate-blocks)")
            else:
                c = collapsed(pat, sb)
                new_body = body if c is None else Block(
                    c.body, "decoupled from the strict part, updates equal on this face summed (consolidate-blocks)")
            for conds, existing in groups:
                if existing.body == new_body.body:
                    conds.append(pat.cond())
                    break
            else:
                groups.append(([pat.cond()], new_body))
        if len(groups) == len(chain):
            continue
        stats[0] += len(chain) - len(groups)
        branches = [(c[0] if len(c) == 1 else Or(tuple(c)), b) for c, b in groups]
        out[n] = rebuild(build_chain(branches))
    return Block(tuple(out), parent.comment)


def _diagonal_chain(s: Stmt):
    """(top, chain, rebuild) for a compact diagonal nest: loops down to a chain."""
    if isinstance(s, Block) and len(s.body) == 1:
        inner = _diagonal_chain(s.body[0])
        if inner is None:
            return None
        top, chain, rebuild = inner
        return top, chain, lambda new: Block((rebuild(new),), s.comment)
    if not isinstance(s, Loop) or len(s.body.body) != 1:
        return None
    child = s.body.body[0]
    chain = chain_branches(child) if isinstance(child, If) else None
    if chain is not None and all(not p.strict for pats, _ in chain for p in pats) \
            and chain[0][0][0].vars[-1] == s.var:
        return s, chain, lambda new: Loop(s.var, s.lo, s.hi, Block((new,), s.body.comment))
    inner = _diagonal_chain(child)
    if inner is None:
        return None
    top, chain, rebuild = inner
    return s, chain, lambda new: Loop(s.var, s.lo, s.hi, Block((rebuild(new),), s.body.comment))


def run(p: Program, options: Options = DEFAULT_OPTIONS) -> tuple[Program, str]:
    if options.faces != "compact":
        return p, "not applied: every face has its own nest (faces: split)"
    if p.reduction == "+" and p.facts.output_symmetry:
        # replicate-output kept only the canonical writes of the strict part; on a face the
        # dropped writes land on diagonal output elements the mirror does not fill, so a face
        # is no longer the strict part scaled by 1/prod(run sizes!)
        return p, "not applied: the output is replicated, so faces are not scaled strict parts"
    stats = [0]
    body = postwalk(lambda n: consolidate(n, p, stats) if isinstance(n, Block) else None)(p.body)
    if body == p.body:
        return p, "no two faces with equal decoupled updates"
    return replace_body(p, body), f"{plural(stats[0], 'face block')} merged into others"


PASS = Pass("consolidate-blocks", run, symmetry=True, requires=("split-diagonals", "replicate-output"), provides=())
