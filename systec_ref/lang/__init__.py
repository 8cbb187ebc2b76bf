"""Stage 0: the ``.ein`` language — tokens, parser, semantic checks, AST and printer."""

from .ast import Access, Assignment, BinOp, Expr, Kernel, Neg, Number, TensorDecl
from .parser import parse
from .printer import print_expr, print_kernel

__all__ = ["Access", "Assignment", "BinOp", "Expr", "Kernel", "Neg", "Number", "TensorDecl",
           "parse", "print_expr", "print_kernel"]
