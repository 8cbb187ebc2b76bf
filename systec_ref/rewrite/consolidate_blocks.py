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

Before (MTTKRP-3, inside the diagonal nest)::

    if i < k and k == l:
      C[i,j] += A[i,k,k] * B[k,j] * B[k,j]
      C[k,j] += 2 * A[i,k,k] * B[i,j] * B[k,j]
    elif i == k and k < l:
      ...
    elif i == k and k == l:
      ...

After::

    if (i < k and k == l) or (i == k and k < l):
      C[i,j] += A[i,k,l] * B[k,j] * B[l,j]
      C[k,j] += A[i,k,l] * B[i,j] * B[l,j]
      C[l,j] += A[i,k,l] * B[i,j] * B[k,j]
    elif i == k and k == l:
      ...
"""

from __future__ import annotations

from fractions import Fraction
from math import factorial, prod

from ..ir.nodes import Assign, Block, If, Loop, Or, Program, Stmt
from .combinators import postwalk, replace_body, split_coefficient, with_coefficient
from .symmetry import Pattern, build_chain, chain_branches

NAME = "consolidate-blocks"


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


def scale(b: Block, factor: Fraction, integral: bool) -> Block | None:
    """Multiply every ``+`` update's coefficient by ``factor``; None if that
    would need a fraction where the element type has none."""
    ok = [True]

    def f(n):
        if isinstance(n, Assign) and n.op == "+":
            c, x = split_coefficient(n.value)
            new = Fraction(c) * factor
            if new.denominator != 1:
                if integral:
                    ok[0] = False
                    return None
                value = float(new)
            else:
                value = int(new) if isinstance(c, int) else float(new)
            return Assign(n.target, n.op, with_coefficient(value, x))
        return None
    out = postwalk(f)(b)
    return out if ok[0] else None


def decoupled(pat: Pattern, sb: Block, reduction: str, integral: bool) -> tuple[Block, Fraction] | None:
    if reduction != "+":
        return sb, Fraction(1)
    lam = Fraction(1, prod(factorial(len(r)) for r in pat.runs))
    body = scale(sb, lam, integral)
    return None if body is None else (body, lam)


def consolidate(parent: Block, p: Program, stats: list[int]) -> Block:
    out = list(parent.body)
    integral = p.dtype == "int64"
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
            d = decoupled(pat, sb, p.reduction, integral)
            new_body = Block(d[0].body, "decoupled from the strict part (consolidate-blocks)") if d else body
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


def run(p: Program) -> tuple[Program, str]:
    if p.note("faces") != "compact":
        return p, "not applied: every face has its own nest (faces: split)"
    if p.reduction == "+" and p.note("output symmetry"):
        # replicate-output kept only the canonical writes of the strict part; on a face the
        # dropped writes land on diagonal output elements the mirror does not fill, so a face
        # is no longer the strict part scaled by 1/prod(run sizes!)
        return p, "not applied: the output is replicated, so faces are not scaled strict parts"
    stats = [0]
    body = postwalk(lambda n: consolidate(n, p, stats) if isinstance(n, Block) else None)(p.body)
    if body == p.body:
        return p, "no two faces with equal decoupled updates"
    return replace_body(p, body), f"{stats[0]} face blocks merged into others"
