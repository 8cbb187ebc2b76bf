"""Deterministic pseudo-code for loop nests (the style of the tutorials and the pass docstrings).

::

    for i in 0..n:
      for j in i+1..n:
        let _a0 = A[i,j]
        y[i] += _a0 * x[j]
"""

from __future__ import annotations

import math

from ..term import unknown
from .nodes import (
    Add,
    And,
    Assign,
    BlasCall,
    Block,
    Cmp,
    Const,
    DimSize,
    Elem,
    IConst,
    Idx,
    If,
    IMin,
    IMul,
    IndexExpr,
    IPlus,
    ISum,
    Let,
    Local,
    Lookup,
    Loop,
    MergeOperand,
    Mul,
    Neg,
    Or,
    Permute,
    Program,
    Read,
    SparseLevel,
    SparseLocate,
    SparseMerge,
    SparseVal,
    Stmt,
    Stored,
    Strided,
    TensorInfo,
)


def fmt_index(e: IndexExpr) -> str:
    match e:
        case Idx(name) | DimSize(name):
            return name
        case IConst(value):
            return str(value)
        case IPlus(base, 0):
            return fmt_index(base)
        case IPlus(base, offset):
            sign = "+" if offset > 0 else "-"
            return f"{fmt_index(base)}{sign}{abs(offset)}"
        case Stored(tensor, face, level):
            return f"|{tensor}{fmt_face(face)}.level{level}|"
        case ISum(args):
            return "(" + " + ".join(fmt_index(a) for a in args) + ")" if args else "0"
        case IMul(args):
            return "*".join(fmt_index(a) for a in args) if args else "1"
        case IMin(args):
            return "min(" + ",".join(fmt_index(a) for a in args) + ")"
        case _:
            raise unknown(e, "IR printer (index)")


def fmt_cond(c) -> str:
    match c:
        case Cmp(op, a, b):
            return f"{fmt_index(a)} {op} {fmt_index(b)}"
        case And(terms):
            return " and ".join(fmt_cond(t) if not isinstance(t, Or) else f"({fmt_cond(t)})" for t in terms) or "true"
        case Or(terms):
            return " or ".join(f"({fmt_cond(t)})" if isinstance(t, And) and len(t.terms) > 1 else fmt_cond(t)
                               for t in terms) or "false"
        case _:
            raise unknown(c, "IR printer (condition)")


def fmt_number(v: int | float) -> str:
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return repr(v)


def fmt_subscript(tensor: str, idx, sort=()) -> str:
    parts = [fmt_index(i) for i in idx]
    s = f"{tensor}[{','.join(parts)}]" if idx else tensor
    if sort:
        s += "{sorted " + " ".join("(" + ",".join(map(str, g)) + ")" for g in sort) + "}"
    return s


_PREC = {Add: 1, Mul: 2}


def fmt_value(e, parent: int = 0) -> str:
    match e:
        case Const(value):
            s = fmt_number(value)
            return f"({s})" if parent and value < 0 else s
        case Read(tensor, idx, sort):
            return fmt_subscript(tensor, idx, sort)
        case Local(name):
            return name
        case SparseVal(tensor, face, pos):
            return f"{tensor}{fmt_face(face)}.vals[{fmt_index(pos)}]"
        case Neg(arg):
            return "-" + fmt_value(arg, 3)
        case Lookup(values, bits):
            return "lookup[" + ",".join(map(fmt_number, values)) + "][" + ", ".join(fmt_cond(b) for b in bits) + "]"
        case Mul(args):
            text = " * ".join(fmt_value(a, 2) for a in args)
            return f"({text})" if parent > 2 else text
        case Add(args):
            parts = []
            for n, a in enumerate(args):
                if n and isinstance(a, Neg):  # a negated term after the first prints as a subtraction
                    parts.append("- " + fmt_value(a.arg, 2))
                else:
                    parts.append(("+ " if n else "") + fmt_value(a, 1 if n == 0 else 2))
            text = " ".join(parts)
            return f"({text})" if parent >= 1 else text
        case _:
            raise unknown(e, "IR printer (value)")


def fmt_face(face: tuple[int, ...]) -> str:
    """``<strict>`` or the bitmask of equal neighbours per symmetry group, e.g. ``<f1>``."""
    return "<" + ("full" if not face else ",".join("strict" if m == 0 else f"f{m}" for m in face)) + ">"


def fmt_merge(s: SparseMerge) -> str:
    """``for i in intersect(A<strict>.level1 under _m0 as _m2, B<strict>.level1 under _m1 as _m3)``, no colon."""
    return f"for {s.var} in {s.mode}({', '.join(fmt_operand(o) for o in s.operands)})"


def fmt_locate(s: SparseLocate) -> str:
    """``if k stored in A_T<full>.level0 as _q2`` (found at its position, or the body is skipped), no colon."""
    under = "" if s.parent is None else f" under {fmt_index(s.parent)}"
    return f"if {fmt_index(s.coord)} stored in {s.tensor}{fmt_face(s.face)}.level{s.level}{under} as {s.pos}"


def fmt_operand(o: MergeOperand) -> str:
    under = "" if o.parent is None else f" under {fmt_index(o.parent)}"
    return f"{o.tensor}{fmt_face(o.face)}.level{o.level}{under} as {o.pos}"


def fmt_strided(s: Strided) -> str:
    """``A[I:e, 0:m]`` (numpy's slices): the range of each mode the operand runs along, the fixed subscript of
    the others; ``^T`` when its rows run along a later mode than its columns."""
    parts = [fmt_index(b) for b in s.base]
    for m, end in zip(s.modes, s.ends):
        parts[m] = f"{parts[m]}:{fmt_index(end)}"
    text = f"{s.tensor}[{','.join(parts)}]"
    return text + "^T" if len(s.modes) == 2 and s.modes[0] > s.modes[1] else text


def _transposed(a: Strided) -> Strided:
    return Strided(a.tensor, a.base, a.modes[::-1], a.ends[::-1])


def fmt_blas(s: BlasCall) -> str:
    """``blas gemm: C[I:e,e:n] += A[I:e,0:m] @ A[e:n,0:m]^T``: the call in matrix notation."""
    scale = "" if s.alpha == 1 else f"{fmt_number(s.alpha)} * "
    match s.routine:
        case "gemm" | "gemv":
            rhs = f"{scale}{fmt_strided(s.args[0])} @ {fmt_strided(s.args[1])}"
            lhs = fmt_strided(s.out)
        case "syrk":
            a = s.args[0]
            rhs = f"{scale}{fmt_strided(a)} @ {fmt_strided(_transposed(a))}"
            lhs = fmt_strided(s.out) + " upper"
        case "syr2k":
            a, b = s.args
            rhs = (f"{scale}({fmt_strided(a)} @ {fmt_strided(_transposed(b))} + "
                   f"{fmt_strided(b)} @ {fmt_strided(_transposed(a))})")
            lhs = fmt_strided(s.out) + " upper"
        case other:
            raise ValueError(f"unknown BLAS routine {other!r}")
    return f"blas {s.routine}: {lhs} += {rhs}"


def fmt_target(t) -> str:
    match t:
        case Elem(tensor, idx):
            return fmt_subscript(tensor, idx)
        case Local(name):
            return name
        case _:
            raise unknown(t, "IR printer (target)")


def fmt_stmt(s: Stmt, indent: int = 0) -> list[str]:
    pad = "  " * indent
    match s:
        case Assign(target, op, value):
            sign = "=" if op == "=" else f"{op}="
            return [f"{pad}{fmt_target(target)} {sign} {fmt_value(value)}"]
        case Let(name, value):
            return [f"{pad}let {name} = {fmt_value(value)}"]
        case Loop(var, lo, hi, body, step):
            by = f" step {step}" if step != 1 else ""
            return [f"{pad}for {var} in {fmt_index(lo)}..{fmt_index(hi)}{by}:", *fmt_block(body, indent + 1)]
        case If(cond, then, orelse):
            out = [f"{pad}if {fmt_cond(cond)}:", *fmt_block(then, indent + 1)]
            other = orelse
            while other is not None:  # an else block holding just an If prints as elif
                if len(other.body) == 1 and isinstance(other.body[0], If) and not other.comment:
                    inner = other.body[0]
                    out += [f"{pad}elif {fmt_cond(inner.cond)}:", *fmt_block(inner.then, indent + 1)]
                    other = inner.orelse
                else:
                    out += [f"{pad}else:", *fmt_block(other, indent + 1)]
                    other = None
            return out
        case SparseLevel(var, pos, tensor, face, level, parent, body, start, reverse, low):
            under = "" if parent is None else f" under {fmt_index(parent)}"
            under += "" if start is None else f" from {fmt_index(start)}"
            under += "" if low is None else f" where {var} >= {fmt_index(low)}"
            under += " last to first" if reverse else ""
            head = f"{pad}for ({pos}, {var}) in {tensor}{fmt_face(face)}.level{level}{under}:"
            return [head, *fmt_block(body, indent + 1)]
        case SparseMerge():
            return [f"{pad}{fmt_merge(s)}:", *fmt_block(s.body, indent + 1)]
        case SparseLocate():
            return [f"{pad}{fmt_locate(s)}:", *fmt_block(s.body, indent + 1)]
        case Permute(groups, body):
            text = " x ".join("(" + ",".join(g) + ")" for g in groups)
            return [f"{pad}for each distinct rearrangement of {text}:", *fmt_block(body, indent + 1)]
        case BlasCall():
            return [f"{pad}{fmt_blas(s)}, which means:", *fmt_block(s.nest, indent + 1)]
        case Block():
            return fmt_block(s, indent)
        case _:
            raise unknown(s, "IR printer (statement)")


def fmt_block(b: Block, indent: int) -> list[str]:
    out = [f"{'  ' * indent}# {line}" for line in b.comment.splitlines()] if b.comment else []
    for s in b.body:
        out += fmt_stmt(s, indent)
    if not b.body:
        out.append(f"{'  ' * indent}pass")
    return out


def fmt_tensor(t: TensorInfo) -> str:
    dims = f"[{','.join(map(str, t.dims))}]" if t.dims else ""
    parts = [f"{t.role:<4}", t.name + dims, t.dtype, t.format]
    if t.symmetry:
        parts.append("symmetric" + "".join("(" + ",".join(map(str, g)) + ")" for g in t.symmetry))
    if t.format == "sparse":
        parts.append(f"fill {fmt_number(t.fill)}")
    if t.role != "in":
        parts.append("no init" if t.init is None else f"init {fmt_number(t.init)}")
    return " ".join(parts)


def print_program(p: Program, header: bool = True) -> str:
    lines = []
    if header:
        lines.append(f"# kernel {p.name}, reduction {p.reduction}")
        lines += [f"#   {fmt_tensor(t)}" for t in p.tensors]
        for k, v in p.facts.items():
            lines.append(f"#   {k}: {v}")
    lines += fmt_block(p.body, 0)
    return "\n".join(lines) + "\n"
