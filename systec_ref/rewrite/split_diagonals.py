"""Pass ``split-diagonals``: one loop nest per equality pattern, no conditionals.

Precondition: pattern chains from ``define-assignments`` directly under the
innermost loop of their set, on a perfect path of loops from the set's
outermost loop.

Each branch becomes its own nest: a strict relation ``p < q`` becomes the
bound ``q in p+1..``; an equality ``p == q`` removes the loop over ``q``
(the statements already use ``p``).  The strict part keeps every loop and
loses every test; a face with e equalities has e loops fewer.  Under
``faces: compact`` (a compile option), sets of four or more variables keep
their diagonal faces together instead, in one nest over the canonical
triangle whose chain ``consolidate-blocks`` and ``lookup-table`` then shrink;
it costs a few comparisons per canonical point and keeps the code small.

Before::

    for i in 0..n:
      for j in i..n:
        if i < j:
          ...A
        elif i == j:
          ...B

After::

    # strict part i < j (split-diagonals)
    for i in 0..n:
      for j in i+1..n:
        ...A
    # face i == j (split-diagonals)
    for i in 0..n:
      ...B
"""

from __future__ import annotations

from ..ir.edit import replace_body
from ..ir.index import rename_indices
from ..ir.nodes import Block, Idx, If, IPlus, Loop, Program, Stmt
from .combinators import plural
from .manager import DEFAULT_OPTIONS, Options, Pass
from .symmetry import EQ, Pattern, build_chain, if_chain

COMPACT_MIN_ORDER = 4


def _path(loop: Loop, group: tuple[str, ...]) -> tuple[list[Loop], list] | None:
    """Loops from ``loop`` down to the innermost loop of ``group`` and the chain below it."""
    path = [loop]
    cur = loop
    while True:
        if len(cur.body.body) != 1:
            return None
        child = cur.body.body[0]
        if cur.var == group[-1]:
            chain = if_chain(child)
            # a chain without its strict branch was already split (faces: compact)
            if chain is None or chain[0][0].vars != group or not chain[0][0].strict:
                return None
            return path, chain
        if not isinstance(child, Loop):
            return None
        path.append(child)
        cur = child


def _nest(path: list[Loop], pat: Pattern, body: Block, eliminate: set[str]) -> Stmt:
    """Rebuild ``path`` around ``body`` for the relations of ``pat``."""
    rel = {pat.vars[t + 1]: (pat.vars[t], op) for t, op in enumerate(pat.ops)}
    cur: Block = body
    for lp in reversed(path):
        if lp.var in eliminate:
            continue
        lo = lp.lo
        if lp.var in rel:
            prev, op = rel[lp.var]
            lo = IPlus(Idx(prev), 1) if op != EQ else Idx(prev)
        cur = Block((Loop(lp.var, lo, lp.hi, cur),))
    return rename_indices(cur, {v: pat.rep[v] for v in eliminate})


def _split(path: list[Loop], chain: list, compact: bool) -> list[Stmt]:
    out: list[Stmt] = []
    if not compact:
        for pat, block in chain:
            kind = "strict part" if pat.strict else "face"
            eliminate = {v for v, r in pat.rep.items() if v != r}
            nest = _nest(path, pat, block, eliminate)
            out.append(Block(nest.body, comment=f"{kind} {pat.text()} (split-diagonals)"))
        return out
    for pat, block in chain:
        if pat.strict:
            nest = _nest(path, pat, block, set())
            out.append(Block(nest.body, comment=f"strict part {pat.text()} (split-diagonals)"))
    faces = [(p.cond(), b) for p, b in chain if not p.strict]
    if faces:
        cur: Block = Block((build_chain(faces),))
        for lp in reversed(path):
            cur = Block((Loop(lp.var, lp.lo, lp.hi, cur),))
        out.append(Block(cur.body, comment=f"{len(faces)} diagonal faces of ({','.join(chain[0][0].vars)}), kept "
                                           f"together (split-diagonals, faces: compact)"))
    return out


def split_block(b: Block, groups: dict[str, tuple[str, ...]], compact: bool, count: list[int]) -> Block:
    out: list[Stmt] = []
    for s in b.body:
        out += split_stmt(s, groups, compact, count)
    return Block(tuple(out), b.comment)


def split_stmt(s: Stmt, groups: dict[str, tuple[str, ...]], compact: bool, count: list[int]) -> list[Stmt]:
    if isinstance(s, Loop):
        if s.var in groups:
            found = _path(s, groups[s.var])
            if found is not None:
                path, chain = found
                use_compact = compact and len(groups[s.var]) >= COMPACT_MIN_ORDER
                nests = _split(path, chain, use_compact)
                count[0] += len(nests)
                return [split_block(n, groups, compact, count) for n in nests]
        return [Loop(s.var, s.lo, s.hi, split_block(s.body, groups, compact, count))]
    if isinstance(s, If):
        other = split_block(s.orelse, groups, compact, count) if s.orelse else None
        return [If(s.cond, split_block(s.then, groups, compact, count), other)]
    if isinstance(s, Block):
        return [split_block(s, groups, compact, count)]
    return [s]


def run(p: Program, options: Options = DEFAULT_OPTIONS) -> tuple[Program, str]:
    sets = p.facts.permutable
    if not sets:
        return p, "no permutable set"
    groups = {g[0]: tuple(g) for g in sets}
    compact = options.faces == "compact"
    count = [0]
    body = split_block(p.body, groups, compact, count)
    if body == p.body:
        return p, "not applied: no pattern chain on a perfect loop path"
    return replace_body(p, body), f"{plural(count[0], 'loop nest')}, none with a test in its hot loop" \
        if not compact else f"{plural(count[0], 'loop nest')} (compact faces)"


PASS = Pass("split-diagonals", run, symmetry=True, requires=("define-assignments",), provides=())
