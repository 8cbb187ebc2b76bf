"""Pass ``normalize``: one spelling for equal expressions.

Precondition: none for correctness; declared after ``define-assignments`` (its ``requires``), the
first stage with sorted reads and multiplicities to normalize.

* subscripts of symmetric reads are sorted within their groups — by rank when
  they are variables of one permutable set (inside the canonical triangle
  their values are ordered), otherwise at run time — so only the canonical
  triangle is read;
* ``+`` and ``*`` are flattened, constants folded into one leading factor,
  operands sorted by a deterministic key.

Before::

    y[j] += A[j,i] * x[i]

After::

    y[j] += A[i,j] * x[i]
"""

from __future__ import annotations

from ..ir.edit import replace_body
from ..ir.nodes import Assign, Let, Program
from ..term import postwalk
from .manager import DEFAULT_OPTIONS, Options, Pass
from .symmetry import canonical, sort_symmetric_reads


def run(p: Program, options: Options = DEFAULT_OPTIONS) -> tuple[Program, str]:
    def f(n):
        if isinstance(n, Assign):
            return Assign(n.target, n.op, canonical(sort_symmetric_reads(n.value, p)))
        if isinstance(n, Let):
            return Let(n.name, canonical(sort_symmetric_reads(n.value, p)))
        return None
    body = postwalk(f)(p.body)
    if body == p.body:
        return p, "already in normal form"
    return replace_body(p, body), "symmetric reads sorted into the canonical triangle; operands in canonical order"


PASS = Pass("normalize", run, symmetry=True, requires=("define-assignments",), provides=())
