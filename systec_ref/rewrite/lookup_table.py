"""Pass ``lookup-table``: one body for all diagonal faces, its factor from a table.

Precondition: a compact diagonal nest (``faces: compact``) of a set of
``MIN_ORDER`` or more variables, after ``consolidate-blocks``.

Every face computes the strict part's updates times its own factor (see
``consolidate-blocks``), so the whole chain becomes one body whose factor is
``table[key]``.  The key is a **bitmask** — bit t set when the t-th and
(t+1)-th variables are equal — so every one of the 2^(k-1) faces has its own
entry.  (The published artifact summed primes here, and faces collided:
{i==k, k==l} and {l==m} both gave 5.)

Before::

    if i == k and k < l and l < m and m < o:
      ...
    elif ...            (15 faces)

After::

    if i == k or k == l or l == m or m == o:
      C[i,j] += lookup[0,12,12,4,...][i == k, k == l, l == m, m == o] * A[i,k,l,m,o] * ...
"""

from __future__ import annotations

from fractions import Fraction
from math import factorial, prod

from ..ir.nodes import Assign, Block, Cmp, Idx, If, Lookup, Mul, Or, Program
from .combinators import plural, postwalk, replace_body, split_coefficient
from .consolidate_blocks import _diagonal_chain, strict_body
from .symmetry import Pattern

NAME = "lookup-table"
MIN_ORDER = 5


def table_for(group: tuple[str, ...], covered: list[Pattern], coef: Fraction) -> tuple:
    """Entry ``mask`` = coefficient x 1/(product of run-size factorials) for covered faces, 0 elsewhere."""
    by_mask = {pat.bitmask: pat for pat in covered}
    values = []
    for mask in range(1 << (len(group) - 1)):
        pat = by_mask.get(mask)
        if pat is None:
            values.append(Fraction(0))
        else:
            values.append(coef / prod(factorial(len(r)) for r in pat.runs))
    return tuple(values)


def _apply(s, p: Program, stats: list[int]):
    if not isinstance(s, Block):
        return None
    out = list(s.body)
    changed = False
    for n in range(1, len(out)):
        found = _diagonal_chain(out[n])
        if found is None:
            continue
        _, branches, rebuild = found
        group = branches[0][0][0].vars
        if len(group) < MIN_ORDER or p.reduction != "+":
            continue
        sb = strict_body(out[n - 1], group)
        if branches is None or sb is None:
            continue
        covered = [pat for pats, _ in branches for pat in pats]
        bits = tuple(Cmp("==", Idx(a), Idx(b)) for a, b in zip(group, group[1:]))
        ok = [True]

        def f(x):
            if isinstance(x, Assign) and x.op == "+":
                c, rest = split_coefficient(x.value)
                table = table_for(group, covered, Fraction(c))
                if p.dtype == "int64" and any(v.denominator != 1 for v in table):
                    ok[0] = False
                    return None
                vals = tuple(int(v) if v.denominator == 1 and p.dtype == "int64" else
                             (int(v) if v.denominator == 1 else float(v)) for v in table)
                look = Lookup(vals, bits)
                args = (look,) if rest is None else (look, *(rest.args if isinstance(rest, Mul) else (rest,)))
                return Assign(x.target, x.op, Mul(args) if len(args) > 1 else look)
            return None
        body = postwalk(f)(sb)
        if not ok[0]:
            continue
        guard = Or(bits)
        comment = (f"{len(covered)} faces of ({','.join(group)}), one body; factor = table[bitmask of equal "
                   f"neighbours] (lookup-table)")
        out[n] = rebuild(If(guard, Block(body.body, comment)))
        stats[0] += 1
        stats[1] = len(covered)
        changed = True
    return Block(tuple(out), s.comment) if changed else None


def run(p: Program) -> tuple[Program, str]:
    if p.note("faces") != "compact":
        return p, "not applied: every face has its own nest (faces: split)"
    if p.reduction == "+" and p.note("output symmetry"):
        # see consolidate-blocks: after replicate-output a face is not a scaled strict part
        return p, "not applied: the output is replicated, so faces are not scaled strict parts"
    stats = [0, 0]
    body = postwalk(lambda n: _apply(n, p, stats))(p.body)
    if body == p.body:
        return p, f"no compact diagonal nest of a set of {MIN_ORDER} or more variables"
    shared = plural(stats[1], "face shares", "faces share")
    return replace_body(p, body), f"{shared} one body with a bitmask-keyed factor table"
