"""Helpers the passes share: canonical operand order, coefficients of products, the main assignments.

The generic walks over terms are in :mod:`systec_ref.term`; index, name and editing helpers of the
IR in :mod:`systec_ref.ir` (``index``, ``names``, ``edit``).
"""

from __future__ import annotations

from ..ir.nodes import Assign, Const, Elem, Mul, Neg, Program, Value
from ..ir.printer import fmt_value
from ..term import nodes


def key(e: Value) -> str:
    """A deterministic sort key for canonical operand order."""
    return fmt_value(e)


def split_coefficient(e: Value) -> tuple[int | float, Value | None]:
    """``c * X`` -> ``(c, X)`` for a product whose constant factors are folded."""
    if isinstance(e, Const):
        return e.value, None
    if isinstance(e, Neg):
        c, x = split_coefficient(e.arg)
        return -c, x
    if isinstance(e, Mul):
        c = 1
        rest = []
        for a in e.args:
            if isinstance(a, Const):
                c = c * a.value
            else:
                rest.append(a)
        if not rest:
            return c, None
        return c, rest[0] if len(rest) == 1 else Mul(tuple(rest))
    return 1, e


def with_coefficient(c: int | float, x: Value | None) -> Value:
    if x is None:
        return Const(c)
    if c == 1:
        return x
    if c == -1:
        return Neg(x)
    if isinstance(x, Mul):
        return Mul((Const(c), *x.args))
    return Mul((Const(c), x))


# -- programs -----------------------------------------------------------------------


def main_assignments(p: Program) -> list[Assign]:
    """The reduction assignments into the program's output."""
    out = next(t.name for t in p.tensors if t.role == "out")
    return [n for n in nodes(p.body) if isinstance(n, Assign) and isinstance(n.target, Elem)
            and n.target.tensor == out and n.op != "="]


def plural(n: int, one: str, many: str | None = None) -> str:
    """``1 loop``, ``2 loops``: pass notes read as sentences."""
    return f"{n} {one if n == 1 else (many or one + 's')}"
