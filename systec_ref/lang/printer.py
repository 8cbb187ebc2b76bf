"""AST -> ``.ein`` text, such that ``parse(print_kernel(k)) == k``."""

from __future__ import annotations

import math

from ..term import unknown
from .ast import Access, BinOp, Expr, Kernel, Neg, Number, TensorDecl

_PREC = {"+": 1, "-": 1, "*": 2}


def print_number(v: int | float) -> str:
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return repr(v)


def print_expr(e: Expr, parent: int = 0, right: bool = False) -> str:
    match e:
        case Number(value):
            return print_number(value)
        case Access(tensor, indices):
            return tensor + (f"[{', '.join(indices)}]" if indices else "")
        case Neg(operand):
            return "-" + print_expr(operand, 3)
        case BinOp(op, left, rhs):
            p = _PREC[op]
            text = f"{print_expr(left, p)} {op} {print_expr(rhs, p, right=True)}"
            # left-associative: a right operand of equal precedence keeps its parentheses
            return f"({text})" if p < parent or (right and p == parent) else text
        case _:
            raise unknown(e, "kernel printer (expression)")


def print_decl(d: TensorDecl) -> str:
    parts = [f"{d.role:<3}", d.name + (f"[{', '.join(map(str, d.dims))}]" if d.dims else "")]
    if d.fully_symmetric:
        parts.append("symmetric")
    else:
        parts += [f"symmetric({','.join(map(str, g))})" for g in d.symmetry]
    if d.format != "dense":
        parts.append(d.format)
    if d.format == "sparse" and d.fill != 0:
        parts.append(f"fill {print_number(d.fill)}")
    if d.dtype != "float64":
        parts.append(d.dtype)
    return " ".join(parts)


def print_kernel(k: Kernel) -> str:
    lines = [f"kernel {k.name}", *map(print_decl, k.decls)]
    if k.order:
        lines.append("order " + " ".join(k.order))
    a = k.assignment
    lines.append(f"{print_expr(a.lhs)} {a.op} {print_expr(a.rhs)}")
    return "\n".join(lines) + "\n"
