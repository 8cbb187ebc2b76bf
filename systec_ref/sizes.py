"""Default sizes: large enough that every loop nest of every stage runs.

A check on random inputs says nothing about a loop nest that never runs, and at a
small size many do: the strict nest ``i < j < k < l < m`` of a permutable set of five
variables is empty below n = 5, and ``unroll-and-jam``'s sweeps of several rows (and the
rows left over) need a few rows more.  :func:`default_size` is the smallest size
(at least :data:`FLOOR`) that enters the nests these passes make; the CLI (``run``, ``check``,
``explain``) gives it to every dimension without a ``--size``.  Whether a run really
entered every nest is recorded by the interpreter (``Counts.never_ran``) and shown
by the commands; ``tests/test_nest_coverage.py`` checks this size on every example.
"""

from __future__ import annotations

from collections.abc import Sequence

from .ir.nodes import DimSize, Loop
from .rewrite import tile, unroll_and_jam
from .rewrite.manager import Stage
from .term import nodes

#: the smallest default size (a kernel whose nests need no more gets this)
FLOOR = 4


def default_size(stages: Sequence[Stage]) -> int:
    """The size, at least :data:`FLOOR`, at which every loop nest of ``stages`` runs on full inputs.

    * the largest permutable set of k variables (any stage's ``permutable`` note) has a strict
      nest over k distinct values: n >= k;
    * where ``unroll-and-jam`` changed the program, a sweep of ``FACTOR`` rows with a
      non-empty jammed loop needs n >= FACTOR + 2, and the rows left over (``n % FACTOR``)
      must be two or more for the first of them to have an element after the diagonal.

    (The dimensions ``tile`` cuts need more: :func:`tiled_sizes`.)
    """
    k = max((len(s) for st in stages for s in st.program.facts.permutable), default=0)
    n = max(FLOOR, k)
    if any(st.name == unroll_and_jam.PASS.name and st.changed for st in stages):
        f = unroll_and_jam.FACTOR
        n = max(n, f + 2)
        while n % f < 2:
            n += 1
    return n


def tiled_sizes(stages: Sequence[Stage]) -> dict[str, int]:
    """The dimensions ``tile`` cuts into tiles of T, each with the size T + 2 at which a tile right of the
    diagonal exists and the last tile is partial (the other dimensions need no more than
    :func:`default_size`: SYR2K is checked at n = 130, m = 4, not at 130 for both)."""
    out: dict[str, int] = {}
    for st in stages:
        if st.name == tile.PASS.name and st.changed:
            for lp in nodes(st.program.body):
                if isinstance(lp, Loop) and lp.step > 1 and isinstance(lp.hi, DimSize):
                    out[lp.hi.name] = max(out.get(lp.hi.name, 0), lp.step + 2)
    return out
