"""The einsum AST: immutable nodes for one ``.ein`` kernel.

Source positions ride along on every node but take no part in equality, so
``parse(print(ast)) == ast`` compares meaning, not layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from ..dtypes import wrap_int64
from ..term import Node, unknown

FORMATS = ("dense", "sparse")
#: assignment operator in the source -> reduction operator of the semantics
REDUCTIONS = {"+=": "+", "=": "+", "min=": "min", "max=": "max"}


def literal_value(v: int | float, dtype: str) -> int | float:
    """The value a literal (or fill) denotes in a kernel of element type ``dtype``.

    In int64 kernels an integer stays exact (the checker bounds it).  In float kernels
    every literal is a float, as ``1e400`` already is: an integer beyond the float range is
    ±inf, like the same number written with an exponent, and constants fold in floats, as
    the definition evaluates them (``1e200 * 1e200 * 0`` is NaN, not 0)."""
    if dtype == "int64":
        return v
    try:
        return float(v)
    except OverflowError:
        return float("inf") if v > 0 else float("-inf")




@dataclass(frozen=True)
class Pos:
    """1-based line and column of a token, and its width in characters."""

    line: int = 0
    col: int = 0
    width: int = 1


def _pos() -> Pos:
    return field(default=Pos(), compare=False, repr=False)


@dataclass(frozen=True)
class Number(Node):
    value: int | float
    pos: Pos = _pos()


@dataclass(frozen=True)
class Access(Node):
    """``A[i, j]``; a scalar tensor has ``indices == ()``."""

    tensor: str
    indices: tuple[str, ...]
    pos: Pos = _pos()
    index_pos: tuple[Pos, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True)
class BinOp(Node):
    op: str  # '+', '-', '*'
    left: Expr
    right: Expr
    pos: Pos = _pos()


@dataclass(frozen=True)
class Neg(Node):
    operand: Expr
    pos: Pos = _pos()


Expr = Union[Number, Access, BinOp, Neg]


def _literal(e: Expr, dtype: str) -> int | float | None:
    """The value of a literal factor (a number, possibly negated); None for anything else."""
    match e:
        case Number(value):
            return literal_value(value, dtype)
        case Neg(operand):
            v = _literal(operand, dtype)
            return None if v is None else -v
        case Access() | BinOp():
            return None
    raise unknown(e, "literal value")


def fold_literal_factors(e: Expr, dtype: str) -> Expr:
    """``e`` with the literal factors of each product multiplied together first, in the order
    written, into one factor where the first of them stood: ``x * 1e200 * 1e200`` means
    ``x * inf`` (NaN for x = 0), ``2 * x * 3`` means ``6 * x``.

    This is part of the language's meaning, so that every stage may fold constants (the passes
    gather a product's constant factors into one coefficient) without changing a result: the
    definition, the naive loop nest and the sparse-input check all read the folded expression.
    In int64 kernels the product wraps around like every int64 operation."""
    match e:
        case Neg(operand):
            return Neg(fold_literal_factors(operand, dtype), pos=e.pos)
        case Number() | Access():
            return e
        case BinOp():
            pass
        case _:
            raise unknown(e, "literal folding")
    if e.op != "*":
        return BinOp(e.op, fold_literal_factors(e.left, dtype), fold_literal_factors(e.right, dtype), pos=e.pos)
    factors: list[Expr] = []
    stack = [e]
    while stack:  # the factors of the product, left to right
        f = stack.pop()
        if isinstance(f, BinOp) and f.op == "*":
            stack += [f.right, f.left]
        else:
            factors.append(fold_literal_factors(f, dtype))
    values = [_literal(f, dtype) for f in factors]
    if sum(v is not None for v in values) < 2:
        return _product(factors, e.pos)
    coef: int | float = 1
    for v in values:
        if v is not None:
            coef = coef * v
    if dtype == "int64":
        coef = wrap_int64(coef)
    first = next(n for n, v in enumerate(values) if v is not None)
    kept = [Number(coef, pos=factors[first].pos) if n == first else f
            for n, (f, v) in enumerate(zip(factors, values)) if v is None or n == first]
    return _product(kept, e.pos)


def _product(factors: list[Expr], pos: Pos) -> Expr:
    out = factors[0]
    for f in factors[1:]:
        out = BinOp("*", out, f, pos=pos)
    return out


@dataclass(frozen=True)
class TensorDecl(Node):
    """``in A[n, n] symmetric sparse fill inf int64``.

    ``symmetry`` holds disjoint groups of mode positions (each sorted, groups
    sorted); a fully symmetric tensor has one group holding every mode.
    """

    name: str
    role: str  # 'in' | 'out'
    dims: tuple[str | int, ...]
    symmetry: tuple[tuple[int, ...], ...] = ()
    format: str = "dense"
    fill: int | float = 0
    dtype: str = "float64"
    pos: Pos = _pos()
    dim_pos: tuple[Pos, ...] = field(default=(), compare=False, repr=False)

    @property
    def order(self) -> int:
        return len(self.dims)

    @property
    def fully_symmetric(self) -> bool:
        return len(self.symmetry) == 1 and len(self.symmetry[0]) == self.order >= 2


@dataclass(frozen=True)
class Assignment(Node):
    lhs: Access
    op: str  # '+=', 'min=', 'max=', '='
    rhs: Expr
    pos: Pos = _pos()

    @property
    def reduction(self) -> str:
        return REDUCTIONS[self.op]


@dataclass(frozen=True)
class Kernel(Node):
    name: str
    decls: tuple[TensorDecl, ...]
    assignment: Assignment
    order: tuple[str, ...] | None = None
    path: str = field(default="<string>", compare=False, repr=False)
    source: str = field(default="", compare=False, repr=False)

    def decl(self, name: str) -> TensorDecl:
        for d in self.decls:
            if d.name == name:
                return d
        raise KeyError(name)

    @property
    def inputs(self) -> tuple[TensorDecl, ...]:
        return tuple(d for d in self.decls if d.role == "in")

    @property
    def output(self) -> TensorDecl:
        return self.decl(self.assignment.lhs.tensor)

    @property
    def rhs(self) -> Expr:
        """The right-hand side as it is evaluated: literal factors folded (:func:`fold_literal_factors`)."""
        return fold_literal_factors(self.assignment.rhs, self.output.dtype)


def accesses(e: Expr) -> list[Access]:
    """Every access in ``e``, left to right."""
    match e:
        case Access():
            return [e]
        case BinOp(_, left, right):
            return accesses(left) + accesses(right)
        case Neg(operand):
            return accesses(operand)
        case Number():
            return []
    raise unknown(e, "accesses")


def index_vars(k: Kernel) -> tuple[str, ...]:
    """Index variables in order of first appearance (left-hand side first)."""
    seen: dict[str, None] = {}
    for a in [k.assignment.lhs, *accesses(k.assignment.rhs)]:
        for i in a.indices:
            seen.setdefault(i, None)
    return tuple(seen)


def index_dims(k: Kernel) -> dict[str, str | int]:
    """The dim of every index variable (well defined once the kernel is checked)."""
    out: dict[str, str | int] = {}
    for a in [k.assignment.lhs, *accesses(k.assignment.rhs)]:
        d = k.decl(a.tensor)
        for i, dim in zip(a.indices, d.dims):
            out.setdefault(i, dim)
    return out
