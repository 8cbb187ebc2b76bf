"""Pass ``identify-symmetry``: find the permutable sets; annotate, change no loop.

Precondition: a perfect nest with one reduction assignment (after
``concordize``), loops over ``0..dim``.

Three sources propose a permutable set P:

* **input symmetry** — the variables at a symmetric group of a read
  (``A[i,k,l]``, A symmetric -> {i,k,l});
* **visible output symmetry** — output positions whose swap leaves the
  right-hand side unchanged up to commutativity (SSYRK: ``A[i,k]*A[j,k]``; a read of
  ``concordize``'s transposed copy counts as its input read the other way round, so in loop order
  ``i k j`` SSYRK's ``A[i,k]*A_T[k,j]`` is just as symmetric);
* **symmetric reductions** — reduced variables whose swap leaves the whole
  statement unchanged once symmetric reads are sorted (the triangle count
  ``A[i,j]*A[j,k]*A[i,k]`` is symmetric in {i,j,k}).

Sets must be disjoint; larger sets win.  *Invisible* output symmetry (TTM)
cannot be seen here: ``replicate-output`` finds it after expansion.

Before and after, the loops are the same; the program gains facts (printed in its header) such as::

    #   permutable: (('i', 'k', 'l'),)
    #   symmetry: input symmetry of A: {i,k,l}
"""

from __future__ import annotations

from ..ir.index import rename_indices
from ..ir.nodes import Assign, Elem, IConst, Idx, Loop, Program, Read
from ..term import Node, nodes
from .combinators import main_assignments
from .manager import DEFAULT_OPTIONS, Options, Pass
from .symmetry import canonical, sort_symmetric_reads, transposed_copies, unfold_copies


def enclosing_loops(body: object, target: object) -> list[Loop]:
    """Loops around ``target``, outermost first."""
    def go(n: object, path: list[Loop]) -> list[Loop] | None:
        if n is target:
            return path
        for child in n.children() if isinstance(n, Node) else ():
            r = go(child, path + [n] if isinstance(n, Loop) else path)
            if r is not None:
                return r
        return None
    return go(body, []) or []


def _components(vertices: list, edges: set[tuple]) -> list[list]:
    parent = {v: v for v in vertices}

    def find(v):
        while parent[v] != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        return v
    for a, b in sorted(edges):
        parent[find(a)] = find(b)
    groups: dict = {}
    for v in vertices:
        groups.setdefault(find(v), []).append(v)
    return [g for g in groups.values() if len(g) > 1]


def run(p: Program, options: Options = DEFAULT_OPTIONS) -> tuple[Program, str]:
    assigns = main_assignments(p)
    if len(assigns) != 1:
        return p, "not applied: expects exactly one reduction assignment"
    a: Assign = assigns[0]
    loops = enclosing_loops(p.body, a)
    ext = {lp.var: lp.hi for lp in loops if lp.lo == IConst(0)}
    depth = {lp.var: d for d, lp in enumerate(loops)}
    syms = {t.name: t.symmetry for t in p.tensors if t.symmetry}
    candidates: list[tuple[tuple[str, ...], int, str]] = []  # (vars, priority, why)

    def add(vars_: set[str], priority: int, why: str) -> None:
        vs = tuple(sorted(vars_, key=lambda v: depth.get(v, 1 << 30)))
        if len(vs) < 2 or not all(v in ext for v in vs) or len({ext[v] for v in vs}) != 1:
            return
        if any(c[0] == vs for c in candidates):
            return
        candidates.append((vs, priority, why))

    for r in [n for n in nodes(a.value) if isinstance(n, Read)]:
        for g in syms.get(r.tensor, ()):
            subs = [r.idx[q] for q in g]
            if all(isinstance(s, Idx) for s in subs):
                add({s.name for s in subs}, 0, f"input symmetry of {r.tensor}")

    target: Elem = a.target
    out_vars = [i.name for i in target.idx if isinstance(i, Idx)]
    # a transposed copy is its input read the other way round: A[i,k] * A_T[k,j] is symmetric in i, j
    value = unfold_copies(a.value, transposed_copies(p))
    rhs = canonical(value)
    visible_edges = set()
    for x in range(len(target.idx)):
        for y in range(x + 1, len(target.idx)):
            u, v = target.idx[x], target.idx[y]
            if not (isinstance(u, Idx) and isinstance(v, Idx)) or u == v:
                continue
            if canonical(rename_indices(value, {u.name: v.name, v.name: u.name})) == rhs:
                visible_edges.add((x, y))
    visible = _components(list(range(len(target.idx))), visible_edges)
    for g in visible:
        add({target.idx[q].name for q in g}, 1, f"visible output symmetry of {target.tensor}")

    reduced = sorted((v for v in ext if v not in out_vars), key=lambda v: depth[v])
    norm = canonical(sort_symmetric_reads(value, p, by_name=True))
    red_edges = set()
    for n, u in enumerate(reduced):
        for v in reduced[n + 1:]:
            swapped = rename_indices(value, {u: v, v: u})
            if canonical(sort_symmetric_reads(swapped, p, by_name=True)) == norm:
                red_edges.add((u, v))
    for g in _components(reduced, red_edges):
        add(set(g), 2, "symmetric reduction indices")

    chosen: list[tuple[str, ...]] = []
    why: list[str] = []
    for vs, _, reason in sorted(candidates, key=lambda c: (-len(c[0]), c[1])):
        if all(not set(vs) & set(c) for c in chosen):
            chosen.append(vs)
            why.append(f"{reason}: {{{','.join(vs)}}}")
        else:
            why.append(f"{reason}: {{{','.join(vs)}}} overlaps a larger set, not used")
    chosen.sort(key=lambda vs: depth[vs[0]])
    if not chosen:
        return p, "no permutable set: nothing to exploit"
    new = p.with_facts(permutable=tuple(chosen), symmetry="; ".join(why),
                       visible_output_symmetry=tuple(tuple(g) for g in visible))
    return new, "; ".join(why)


PASS = Pass("identify-symmetry", run, symmetry=True,
            requires=("concordize",), provides=("permutable", "symmetry", "visible_output_symmetry"))
