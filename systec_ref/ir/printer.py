"""Deterministic pseudo-code for loop nests (the style of the tutorials and the pass docstrings).

::

    for i in 0..n:
      for j in i+1..n:
        let _a0 = A[i,j]
        y[i] += _a0 * x[j]
"""

from __future__ import annotations

import math

from .nodes import (
    Add,
    And,
    Assign,
    Block,
    Cmp,
    Const,
    DimSize,
    Elem,
    IConst,
    Idx,
    If,
    IndexExpr,
    IPlus,
    Let,
    Local,
    Lookup,
    Loop,
    Mul,
    Neg,
    Or,
    Permute,
    Program,
    Read,
    SparseLevel,
    SparseVal,
    Stmt,
    TensorInfo,
)


def fmt_index(e: IndexExpr) -> str:
    if isinstance(e, Idx):
        return e.name
    if isinstance(e, IConst):
        return str(e.value)
    if isinstance(e, DimSize):
        return e.name
    assert isinstance(e, IPlus)
    if e.offset == 0:
        return fmt_index(e.base)
    sign = "+" if e.offset > 0 else "-"
    return f"{fmt_index(e.base)}{sign}{abs(e.offset)}"


def fmt_cond(c) -> str:
    if isinstance(c, Cmp):
        return f"{fmt_index(c.a)} {c.op} {fmt_index(c.b)}"
    if isinstance(c, And):
        return " and ".join(fmt_cond(t) if not isinstance(t, Or) else f"({fmt_cond(t)})" for t in c.terms) or "true"
    assert isinstance(c, Or)
    return " or ".join(f"({fmt_cond(t)})" if isinstance(t, And) and len(t.terms) > 1 else fmt_cond(t)
                       for t in c.terms) or "false"


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
    if isinstance(e, Const):
        s = fmt_number(e.value)
        return f"({s})" if parent and e.value < 0 else s
    if isinstance(e, Read):
        return fmt_subscript(e.tensor, e.idx, e.sort)
    if isinstance(e, Local):
        return e.name
    if isinstance(e, SparseVal):
        return f"{e.tensor}{fmt_face(e.face)}.vals[{fmt_index(e.pos)}]"
    if isinstance(e, Neg):
        return "-" + fmt_value(e.arg, 3)
    if isinstance(e, Lookup):
        return "lookup[" + ",".join(map(fmt_number, e.values)) + "][" + ", ".join(fmt_cond(b) for b in e.bits) + "]"
    if isinstance(e, Mul):
        text = " * ".join(fmt_value(a, 2) for a in e.args)
        return f"({text})" if parent > 2 else text
    assert isinstance(e, Add)
    parts = []
    for n, a in enumerate(e.args):
        if n and isinstance(a, Neg):
            parts.append("- " + fmt_value(a.arg, 2))
        else:
            parts.append(("+ " if n else "") + fmt_value(a, 1 if n == 0 else 2))
    text = " ".join(parts)
    return f"({text})" if parent >= 1 else text


def fmt_face(face: tuple[int, ...]) -> str:
    """``<strict>`` or the bitmask of equal neighbours per symmetry group, e.g. ``<f1>``."""
    return "<" + ("full" if not face else ",".join("strict" if m == 0 else f"f{m}" for m in face)) + ">"


def fmt_target(t) -> str:
    return fmt_subscript(t.tensor, t.idx) if isinstance(t, Elem) else t.name


def fmt_stmt(s: Stmt, indent: int = 0) -> list[str]:
    pad = "  " * indent
    if isinstance(s, Assign):
        op = "=" if s.op == "=" else f"{s.op}="
        return [f"{pad}{fmt_target(s.target)} {op} {fmt_value(s.value)}"]
    if isinstance(s, Let):
        return [f"{pad}let {s.name} = {fmt_value(s.value)}"]
    if isinstance(s, Loop):
        step = f" step {s.step}" if s.step != 1 else ""
        return [f"{pad}for {s.var} in {fmt_index(s.lo)}..{fmt_index(s.hi)}{step}:", *fmt_block(s.body, indent + 1)]
    if isinstance(s, If):
        out = [f"{pad}if {fmt_cond(s.cond)}:", *fmt_block(s.then, indent + 1)]
        other = s.orelse
        while other is not None:
            if len(other.body) == 1 and isinstance(other.body[0], If) and not other.comment:
                inner = other.body[0]
                out += [f"{pad}elif {fmt_cond(inner.cond)}:", *fmt_block(inner.then, indent + 1)]
                other = inner.orelse
            else:
                out += [f"{pad}else:", *fmt_block(other, indent + 1)]
                other = None
        return out
    if isinstance(s, SparseLevel):
        parent = "" if s.parent is None else f" under {fmt_index(s.parent)}"
        head = f"{pad}for ({s.pos}, {s.var}) in {s.tensor}{fmt_face(s.face)}.level{s.level}{parent}:"
        return [head, *fmt_block(s.body, indent + 1)]
    if isinstance(s, Permute):
        groups = " x ".join("(" + ",".join(g) + ")" for g in s.groups)
        return [f"{pad}for each distinct rearrangement of {groups}:", *fmt_block(s.body, indent + 1)]
    assert isinstance(s, Block)
    return fmt_block(s, indent)


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
        parts.append(f"init {fmt_number(t.init)}")
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
