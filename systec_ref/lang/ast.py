"""The einsum AST: immutable nodes for one ``.ein`` kernel.

Source positions ride along on every node but take no part in equality, so
``parse(print(ast)) == ast`` compares meaning, not layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

DTYPES = ("float64", "float32", "int64")
FORMATS = ("dense", "sparse")
#: assignment operator in the source -> reduction operator of the semantics
REDUCTIONS = {"+=": "+", "=": "+", "min=": "min", "max=": "max"}


@dataclass(frozen=True)
class Pos:
    """1-based line and column of a token, and its width in characters."""

    line: int = 0
    col: int = 0
    width: int = 1


def _pos() -> Pos:
    return field(default=Pos(), compare=False, repr=False)


@dataclass(frozen=True)
class Number:
    value: int | float
    pos: Pos = _pos()


@dataclass(frozen=True)
class Access:
    """``A[i, j]``; a scalar tensor has ``indices == ()``."""

    tensor: str
    indices: tuple[str, ...]
    pos: Pos = _pos()
    index_pos: tuple[Pos, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True)
class BinOp:
    op: str  # '+', '-', '*'
    left: Expr
    right: Expr
    pos: Pos = _pos()


@dataclass(frozen=True)
class Neg:
    operand: Expr
    pos: Pos = _pos()


Expr = Union[Number, Access, BinOp, Neg]


@dataclass(frozen=True)
class TensorDecl:
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
class Assignment:
    lhs: Access
    op: str  # '+=', 'min=', 'max=', '='
    rhs: Expr
    pos: Pos = _pos()

    @property
    def reduction(self) -> str:
        return REDUCTIONS[self.op]


@dataclass(frozen=True)
class Kernel:
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


def accesses(e: Expr) -> list[Access]:
    """Every access in ``e``, left to right."""
    if isinstance(e, Access):
        return [e]
    if isinstance(e, BinOp):
        return accesses(e.left) + accesses(e.right)
    if isinstance(e, Neg):
        return accesses(e.operand)
    return []


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
