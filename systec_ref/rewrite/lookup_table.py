"""Pass ``lookup-table``: one body for the diagonal faces, its factor from a table.

Precondition: a compact diagonal nest (``faces: compact``) of a set of
``MIN_ORDER`` or more variables, after ``consolidate-blocks``.

Every face computes the strict part's updates times its own factor (see
``consolidate-blocks``): an update with coefficient c in the strict body
carries c/(r1!·r2!·...) on a face with runs of sizes r1, r2, ....  Where that
is an integer for every update, the face joins one shared body — the strict
body with each coefficient c replaced by ``table[key]`` — so the whole chain
becomes (almost) one body.  The key is a **bitmask** — bit t set when the
t-th and (t+1)-th variables are equal — so every one of the 2^(k-1) faces has
its own entry.  (The published artifact summed primes here, and faces
collided: {i==k, k==l} and {l==m} both gave 5.)

Every table entry is an integer.  A face whose factor would be a fraction
— for MTTKRP-k the all-equal face, (k-1)!/k! = 1/k, and for k = 6 also the
faces with runs (4,2), (2,4) and (3,3): 5/2, 5/2, 10/3 — is not put in the
table: the shared body would multiply by a fraction — on the all-equal face
it adds k equal updates of one element, each times a rounded 1/k, which is not
exact (MTTKRP-5 at n = 1, A = 3, B = 1 gave 3.0000000000000004).
Such a face keeps its branch from ``consolidate-blocks`` (its decoupled
updates with those equal on the face summed: integer coefficients), ahead of
the table's branch; its table entry, like the strict part's (key 0), is never
read and is 0.  The pass note names these faces and their fractions.  (So the
table needs no int64 exception either.)

Before (MTTKRP-5)::

    if (i < k and k < l and l < m and m == o) or ...:
      ...                (the strict part's five updates, times 24/2! = 12)
    elif ...             (15 faces in 6 branches)
    elif i == k and k == l and l == m and m == o:
      C[i,j] += A[i,k,l,m,o] * B[k,j] * B[l,j] * B[m,j] * B[o,j]     (5 x 1/5)

After::

    if i == k and k == l and l == m and m == o:
      C[i,j] += A[i,k,l,m,o] * B[k,j] * B[l,j] * B[m,j] * B[o,j]
    elif i == k or k == l or l == m or m == o:
      C[i,j] += lookup[0,12,12,4,12,6,4,1,12,6,6,2,4,2,1,0][i == k, k == l, l == m, m == o] * A[i,k,l,m,o] * ...
      ...   (the strict part's five updates, each times the table entry)
"""

from __future__ import annotations

from fractions import Fraction

from ..ir.edit import replace_body
from ..ir.nodes import Assign, Block, Cmp, Idx, Lookup, Mul, Or, Program
from ..term import nodes, postwalk
from .combinators import plural, split_coefficient
from .consolidate_blocks import _diagonal_chain, exact, integral_on, run_factor, strict_body
from .manager import DEFAULT_OPTIONS, Options, Pass
from .symmetry import Pattern, build_chain

MIN_ORDER = 5
#: fewer faces than this in the table: not worth a table
MIN_FACES = 2


def table_for(group: tuple[str, ...], covered: list[Pattern], coef: Fraction) -> tuple[int, ...]:
    """Entry ``mask`` = coefficient / (product of run-size factorials) for covered faces, 0 elsewhere.

    Every covered face must make that an integer (see :func:`integral_on`)."""
    by_mask = {pat.bitmask: pat for pat in covered}
    values = []
    for mask in range(1 << (len(group) - 1)):
        pat = by_mask.get(mask)
        v = Fraction(0) if pat is None else coef / run_factor(pat)
        if v.denominator != 1:
            raise ValueError(f"lookup-table: {pat.text()} would need the fraction {v}")
        values.append(int(v))
    return tuple(values)


def _fractions(pat: Pattern, sb: Block) -> str:
    """``i == k == l == m == o: 1/5``: a face left out of the table, with the factors it would need."""
    coefs = [exact(split_coefficient(x.value)[0]) for x in nodes(sb) if isinstance(x, Assign) and x.op == "+"]
    if any(c is None for c in coefs):
        return f"{pat.text()}: a coefficient that is not finite"
    factors = {c / run_factor(pat) for c in coefs}
    return f"{pat.text()}: {', '.join(str(f) for f in sorted(factors) if f.denominator != 1)}"


def _apply(s, p: Program, stats: dict):
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
        if sb is None:
            continue
        # a branch joins the table if every face it covers has integer factors; the others stay
        tabled = [pat for pats, _ in branches if all(integral_on(q, sb) for q in pats) for pat in pats]
        kept = [(pats, body) for pats, body in branches if not all(integral_on(q, sb) for q in pats)]
        if len(tabled) < MIN_FACES:
            continue
        bits = tuple(Cmp("==", Idx(a), Idx(b)) for a, b in zip(group, group[1:]))

        def f(x):
            if isinstance(x, Assign) and x.op == "+":
                c, rest = split_coefficient(x.value)
                look = Lookup(table_for(group, tabled, Fraction(c)), bits)
                args = (look,) if rest is None else (look, *(rest.args if isinstance(rest, Mul) else (rest,)))
                return Assign(x.target, x.op, Mul(args) if len(args) > 1 else look)
            return None
        body = postwalk(f)(sb)
        comment = (f"{len(tabled)} faces of ({','.join(group)}), one body; factor = table[bitmask of equal "
                   f"neighbours] (lookup-table)")
        table_branch = (Or(bits), Block(body.body, comment))
        own = [(pats[0].cond() if len(pats) == 1 else Or(tuple(q.cond() for q in pats)), b) for pats, b in kept]
        out[n] = rebuild(build_chain([*own, table_branch]))
        stats["nests"] += 1
        stats["tabled"] += len(tabled)
        stats["kept"] += [_fractions(q, sb) for pats, _ in kept for q in pats if not integral_on(q, sb)]
        changed = True
    return Block(tuple(out), s.comment) if changed else None


def run(p: Program, options: Options = DEFAULT_OPTIONS) -> tuple[Program, str]:
    if options.faces != "compact":
        return p, "not applied: every face has its own nest (faces: split)"
    if p.reduction == "+" and p.facts.output_symmetry:
        # see consolidate-blocks: after replicate-output a face is not a scaled strict part
        return p, "not applied: the output is replicated, so faces are not scaled strict parts"
    stats: dict = {"nests": 0, "tabled": 0, "kept": []}
    body = postwalk(lambda n: _apply(n, p, stats))(p.body)
    if body == p.body:
        return p, (f"no compact diagonal nest of a set of {MIN_ORDER} or more variables with "
                   f"{MIN_FACES} or more faces of integer factors")
    shared = plural(stats["tabled"], "face shares", "faces share")
    note = f"{shared} one body with a bitmask-keyed table of integer factors"
    if stats["kept"]:
        keeps = "face keeps its own body" if len(stats["kept"]) == 1 else "faces keep their own bodies"
        note += f"; {len(stats['kept'])} {keeps}, the factor not an integer ({'; '.join(stats['kept'])})"
    return replace_body(p, body), note


PASS = Pass("lookup-table", run, symmetry=True, requires=("consolidate-blocks",), provides=())
