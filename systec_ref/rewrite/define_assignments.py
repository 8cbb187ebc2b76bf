"""Pass ``define-assignments``: spell out the rearrangements, one block per equality pattern.

Precondition: ``Permute`` nodes from ``restrict-iteration``.

A set of k variables has 2^(k-1) equality patterns (each adjacent pair equal or not).  Each becomes
a branch holding every distinct rearrangement of the statement, the
left-hand side included, with equal variables spelled by their
representative.  Loops inside the permuted body whose bounds do not involve
the set are kept once, so the rearranged statements share them.

Before::

    for i in 0..n:
      for j in i..n:
        for each distinct rearrangement of (i,j):
          y[i] += A[i,j] * x[j]

After::

    for i in 0..n:
      for j in i..n:
        if i < j:
          # pattern i < j: 2 rearrangements (define-assignments)
          y[i] += A[i,j] * x[j]
          y[j] += A[j,i] * x[i]
        elif i == j:
          # pattern i == j: 1 rearrangement (define-assignments)
          y[i] += A[i,i] * x[i]
"""

from __future__ import annotations

from ..ir.edit import replace_body
from ..ir.index import rename_indices, uses_index
from ..ir.nodes import Assign, Block, If, Let, Loop, Permute, Program, Stmt
from ..term import postwalk, unknown
from .manager import DEFAULT_OPTIONS, Options, Pass
from .symmetry import all_patterns, build_chain


def expand(stmts: tuple[Stmt, ...], subs: list[dict[str, str]], group: frozenset[str]) -> tuple[Stmt, ...]:
    """Apply every substitution, sharing loops and branches that do not depend on the group."""
    out: list[Stmt] = []
    for s in stmts:
        match s:
            case Loop(var, lo, hi, body, step) if not uses_index((lo, hi), group):
                out.append(Loop(var, lo, hi, Block(expand(body.body, subs, group), body.comment), step))
            case If(cond, then, orelse) if not uses_index(cond, group):
                other = Block(expand(orelse.body, subs, group), orelse.comment) if orelse else None
                out.append(If(cond, Block(expand(then.body, subs, group), then.comment), other))
            case Block(body, comment):
                out.append(Block(expand(body, subs, group), comment))
            case Assign() | Let() | Loop() | If() | Permute():
                out += [rename_indices(s, m) for m in subs]
            case _:
                raise unknown(s, "define-assignments")
    return tuple(out)


def run(p: Program, options: Options = DEFAULT_OPTIONS) -> tuple[Program, str]:
    summary: list[str] = []

    def f(n):
        if not isinstance(n, Permute):
            return None
        body = n.body
        for group in reversed(n.groups):
            branches = []
            total = 0
            for pat in all_patterns(group):
                subs = pat.rearrangements()
                total += len(subs)
                word = "rearrangement" if len(subs) == 1 else "rearrangements"
                comment = f"pattern {pat.text()}: {len(subs)} {word} (define-assignments)"
                branches.append((pat.cond(), Block(expand(body.body, subs, frozenset(group)), comment)))
            body = Block((build_chain(branches),))
            summary.append(f"({','.join(group)}): {len(branches)} equality patterns, {total} rearrangements")
        return body
    new_body = postwalk(f)(p.body)
    if new_body == p.body:
        return p, "no Permute node"
    return replace_body(p, new_body), "; ".join(summary)


PASS = Pass("define-assignments", run, symmetry=True, requires=("restrict-iteration",), provides=())
