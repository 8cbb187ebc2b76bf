"""Recursive-descent parser for ``.ein`` files (grammar in the module docstring below).

::

    file        := { statement NEWLINE }
    statement   := 'kernel' NAME
                 | ('in' | 'out') NAME [ '[' dim { ',' dim } ']' ] { attribute }
                 | 'order' NAME { NAME }
                 | access OP expr                 OP is += min= max= =
    attribute   := 'symmetric' [ '(' INT { ',' INT } ')' ] | 'dense' | 'sparse'
                 | 'fill' [ '-' ] ( NUMBER | 'inf' ) | 'float64' | 'float32' | 'int64'
    dim         := NAME | INT
    access      := NAME [ '[' NAME { ',' NAME } ']' ]
    expr        := term { ('+' | '-') term }
    term        := unary { '*' unary }
    unary       := '-' unary | primary
    primary     := NUMBER | access | '(' expr ')'

Syntax only; meaning is checked by :mod:`systec_ref.lang.check`.  Limits: an expression nests
at most :data:`MAX_DEPTH` levels (a sum or product of n terms nests n-1 levels; parentheses and
negations count too), and integers (dims, literals) must fit in int64 — every stage after this
one recurses over the expression and emits 64-bit C.
"""

from __future__ import annotations

import math

from ..dtypes import DTYPES, INT64_MAX
from .ast import FORMATS, Access, Assignment, BinOp, Expr, Kernel, Neg, Number, Pos, TensorDecl, literal_value
from .check import check_kernel
from .lexer import KEYWORDS, Source, Token, tokenize

ASSIGN_OPS = ("+=", "min=", "max=", "=")
#: deepest expression accepted: the passes, the interpreter and the printers recurse over it
MAX_DEPTH = 64


def _too_deep(e: Expr) -> Expr | None:
    """The first operator of ``e`` (outermost first) nested deeper than :data:`MAX_DEPTH`, if any;
    iterative, so that a deep expression cannot exhaust the Python stack here."""
    stack = [(e, 1)]
    while stack:
        node, d = stack.pop()
        if d > MAX_DEPTH and isinstance(node, (BinOp, Neg)):
            return node
        if isinstance(node, BinOp):
            stack += [(node.right, d + 1), (node.left, d + 1)]
        elif isinstance(node, Neg):
            stack.append((node.operand, d + 1))
    return None


class _Parser:
    def __init__(self, src: Source):
        self.src = src
        self.toks = tokenize(src)
        self.i = 0
        self.nesting = 0  # open parentheses and negations: the parser's own recursion

    # -- token helpers -------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.toks[self.i]

    def advance(self) -> Token:
        t = self.toks[self.i]
        self.i += 1
        return t

    def at(self, kind: str, text: str | None = None) -> bool:
        t = self.tok
        return t.kind == kind and (text is None or t.text == text)

    def fail(self, expected: str, tok: Token | None = None, message: str | None = None):
        tok = tok or self.tok
        shown = {"newline": "end of line", "eof": "end of file"}.get(tok.kind, repr(tok.text))
        raise self.src.error(message or f"unexpected {shown}", tok.pos, expected)

    def expect_op(self, text: str) -> Token:
        if not self.at("op", text):
            self.fail(f"'{text}'")
        return self.advance()

    def expect_name(self, what: str) -> Token:
        t = self.tok
        if t.kind != "name":
            self.fail(what)
        if t.text in KEYWORDS:
            self.fail(what, message=f"'{t.text}' is a reserved word")
        return self.advance()

    def end_of_statement(self) -> None:
        if not self.at("newline"):
            self.fail("end of line")
        self.advance()

    # -- statements ----------------------------------------------------------
    def parse(self) -> Kernel:
        name: Token | None = None
        decls: list[TensorDecl] = []
        order: tuple[str, ...] | None = None
        order_tok: Token | None = None
        assignment: Assignment | None = None
        while not self.at("eof"):
            if self.at("newline"):
                self.advance()
                continue
            t = self.tok
            if t.kind == "name" and t.text == "kernel":
                self.advance()
                if name is not None:
                    raise self.src.error("second 'kernel' line", t.pos, "one 'kernel NAME' line per file")
                name = self.expect_name("a kernel name")
            elif t.kind == "name" and t.text in ("in", "out"):
                decls.append(self.declaration())
            elif t.kind == "name" and t.text == "order":
                self.advance()
                if order is not None:
                    raise self.src.error("second 'order' line", t.pos, "at most one 'order' line")
                names = []
                while self.tok.kind == "name":
                    names.append(self.expect_name("an index name").text)
                if not names:
                    self.fail("index names, outermost loop first")
                order, order_tok = tuple(names), t
            elif t.kind == "name" and t.text not in KEYWORDS:
                a = self.assignment()
                if assignment is not None:
                    raise self.src.error("second assignment", a.pos, "exactly one assignment per kernel")
                assignment = a
            else:
                self.fail("'kernel', 'in', 'out', 'order' or an assignment")
            self.end_of_statement()
        eof = self.tok
        lines = self.src.text.rstrip().split("\n")
        if eof.pos.line > len(lines):  # point at the end of the last line, where a reader looks
            eof = Token("eof", "", Pos(len(lines), len(lines[-1]) + 1, 1))
        if name is None:
            raise self.src.error("missing 'kernel NAME' line", Pos(1, 1, 1), "a first line such as 'kernel ssymv'")
        if assignment is None:
            raise self.src.error("missing assignment", eof.pos, "an assignment such as 'y[i] += A[i,j] * x[j]'")
        k = Kernel(name.text, tuple(decls), assignment, order, path=self.src.path, source=self.src.text)
        check_kernel(k, self.src, name_pos=name.pos, order_pos=order_tok.pos if order_tok else None)
        return k

    def declaration(self) -> TensorDecl:
        role_tok = self.advance()
        name = self.expect_name("a tensor name")
        dims: list[str | int] = []
        dim_pos: list[Pos] = []
        if self.at("op", "["):
            self.advance()
            while True:
                t = self.tok
                if t.kind == "int":
                    if int(t.text) < 1:
                        raise self.src.error(f"dimension {t.text} is not positive", t.pos, "a dimension of at least 1")
                    if int(t.text) > INT64_MAX:
                        raise self.src.error(f"dimension {t.text} does not fit in int64", t.pos,
                                             f"a dimension of at most {INT64_MAX}")
                    dims.append(int(t.text))
                    self.advance()
                elif t.kind == "name":
                    dims.append(self.expect_name("a dimension name or a positive integer").text)
                else:
                    self.fail("a dimension name or a positive integer")
                dim_pos.append(t.pos)
                if self.at("op", "]"):
                    break
                self.expect_op(",")
            self.expect_op("]")
        sym: list[tuple[int, ...]] = []
        sym_full_tok: Token | None = None
        fmt, fill, dtype = None, None, None
        while self.tok.kind == "name":
            t = self.advance()
            if t.text == "symmetric":
                if self.at("op", "("):
                    self.advance()
                    group, gpos = [], []
                    while True:
                        g = self.tok
                        if g.kind != "int":
                            self.fail("a mode position (0-based integer)")
                        self.advance()
                        v = int(g.text)
                        if v >= len(dims):
                            raise self.src.error(f"mode {v} out of range for {name.text} of order {len(dims)}",
                                                 g.pos, f"a mode position below {len(dims)}")
                        if v in group:
                            raise self.src.error(f"mode {v} repeated in a symmetry group", g.pos, "distinct modes")
                        for other in sym:
                            if v in other:
                                raise self.src.error(f"mode {v} is already in another symmetry group", g.pos,
                                                     "disjoint symmetry groups")
                        group.append(v)
                        gpos.append(g.pos)
                        if self.at("op", ")"):
                            break
                        self.expect_op(",")
                    self.expect_op(")")
                    if len(group) < 2:
                        raise self.src.error("a symmetry group needs at least two modes", t.pos,
                                             "'symmetric(0,1)' or similar")
                    for v, p in zip(group, gpos):
                        if dims[v] != dims[group[0]]:
                            raise self.src.error(
                                f"modes of a symmetry group must share a dimension: mode {group[0]} of "
                                f"{name.text} is {dims[group[0]]} but mode {v} is {dims[v]}", p,
                                "modes with the same dimension")
                    sym.append(tuple(sorted(group)))
                else:
                    if len(dims) < 2:
                        raise self.src.error(f"{name.text} has order {len(dims)}; symmetry needs at least two modes",
                                             t.pos, "a tensor of order 2 or more")
                    if len(set(dims)) != 1:
                        raise self.src.error(f"a fully symmetric tensor needs equal dimensions, "
                                             f"{name.text} has {list(dims)}", t.pos, "modes with the same dimension")
                    sym_full_tok = t
            elif t.text in FORMATS:
                if fmt is not None:
                    raise self.src.error(f"storage format given twice ('{fmt}' and '{t.text}')", t.pos,
                                         "one of 'dense' or 'sparse'")
                fmt = t.text
            elif t.text in DTYPES:
                if dtype is not None:
                    raise self.src.error(f"element type given twice ('{dtype}' and '{t.text}')", t.pos,
                                         "one element type")
                dtype = t.text
            elif t.text == "fill":
                if fill is not None:
                    raise self.src.error("fill given twice", t.pos, "one 'fill' value")
                fill = self.fill_value()
            else:
                self.fail("'symmetric', 'dense', 'sparse', 'fill', 'float64', 'float32' or 'int64'", t,
                          message=f"unknown attribute '{t.text}'")
        if sym_full_tok is not None:
            if sym:
                raise self.src.error("'symmetric' and 'symmetric(...)' on one tensor", sym_full_tok.pos,
                                     "either full symmetry or groups")
            sym = [tuple(range(len(dims)))]
        dtype = dtype or "float64"
        if fill is not None and fmt != "sparse":
            raise self.src.error(f"'fill' applies only to sparse tensors; {name.text} is dense", name.pos,
                                 "'sparse' before 'fill'")
        fill = 0 if fill is None else fill
        if dtype == "int64" and isinstance(fill, float):
            raise self.src.error(f"fill {fill} is not an int64 value", name.pos, "an integer fill for an int64 tensor")
        if isinstance(fill, int) and abs(fill) > INT64_MAX:
            fill = literal_value(fill, dtype or "float64")  # the checker bounds int64 fills; a float one is ±inf
        return TensorDecl(name.text, role_tok.text, tuple(dims), tuple(sorted(sym)), fmt or "dense", fill, dtype,
                          pos=name.pos, dim_pos=tuple(dim_pos))

    def fill_value(self) -> int | float:
        sign = 1
        if self.at("op", "-"):
            self.advance()
            sign = -1
        t = self.tok
        if t.kind == "name" and t.text == "inf":
            self.advance()
            return sign * math.inf
        if t.kind in ("int", "float"):
            self.advance()
            v = int(t.text) if t.kind == "int" else float(t.text)
            return sign * v
        self.fail("a number, 'inf' or '-inf'")
        raise AssertionError  # pragma: no cover

    def assignment(self) -> Assignment:
        lhs = self.access()
        t = self.tok
        if not (t.kind == "op" and t.text in ASSIGN_OPS):
            self.fail("'+=', 'min=', 'max=' or '='")
        self.advance()
        rhs = self.expr()
        deep = _too_deep(rhs)
        if deep is not None:
            self._deep(deep.pos)
        return Assignment(lhs, t.text, rhs, pos=t.pos)

    def _deep(self, pos: Pos):
        raise self.src.error(f"expression nested too deeply (more than {MAX_DEPTH} levels)", pos,
                             f"at most {MAX_DEPTH} levels: a sum or product of n terms nests n-1, "
                             "each parenthesis or negation one more")

    def _enter(self, tok: Token) -> None:
        self.nesting += 1
        if self.nesting > MAX_DEPTH:
            self._deep(tok.pos)

    # -- expressions ---------------------------------------------------------
    def access(self) -> Access:
        name = self.expect_name("a tensor name")
        idx: list[str] = []
        ipos: list[Pos] = []
        if self.at("op", "["):
            self.advance()
            if self.at("op", "]"):
                self.fail("an index name")
            while True:
                t = self.expect_name("an index name")
                idx.append(t.text)
                ipos.append(t.pos)
                if self.at("op", "]"):
                    break
                self.expect_op(",")
            self.expect_op("]")
        return Access(name.text, tuple(idx), pos=name.pos, index_pos=tuple(ipos))

    def expr(self) -> Expr:
        left = self.term()
        while self.tok.kind == "op" and self.tok.text in "+-":
            op = self.advance()
            left = BinOp(op.text, left, self.term(), pos=op.pos)
        return left

    def term(self) -> Expr:
        left = self.unary()
        while self.at("op", "*"):
            op = self.advance()
            left = BinOp("*", left, self.unary(), pos=op.pos)
        return left

    def unary(self) -> Expr:
        if self.at("op", "-"):
            op = self.advance()
            self._enter(op)
            e = Neg(self.unary(), pos=op.pos)
            self.nesting -= 1
            return e
        return self.primary()

    def primary(self) -> Expr:
        t = self.tok
        if t.kind == "int":
            self.advance()
            return Number(int(t.text), pos=t.pos)
        if t.kind == "float":
            self.advance()
            return Number(float(t.text), pos=t.pos)
        if self.at("op", "("):
            self._enter(self.advance())
            e = self.expr()
            self.expect_op(")")
            self.nesting -= 1
            return e
        if t.kind == "name" and t.text not in KEYWORDS:
            return self.access()
        self.fail("a number, a tensor access or '('")
        raise AssertionError  # pragma: no cover


def parse(text: str, path: str = "<string>") -> Kernel:
    """Parse and check one kernel; raises :class:`~systec_ref.errors.SourceError`."""
    return _Parser(Source(text, path)).parse()
