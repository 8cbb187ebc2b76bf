"""Loop-nest IR -> C99.

One function per kernel, with the parameters of the calling convention (:mod:`.abi`: dimensions,
dense tensors, then the arrays of each stored face iterated)::

    int systec_<kernel>(int64_t n, int64_t r, const double *restrict A, ..., double *restrict C)

It initializes the outputs to the identity of the reduction, allocates the program's temporaries
(transposed copies) once, runs the body and frees them; it returns 0, or 1 if an allocation
failed.  All index arithmetic is ``int64_t``; there are no globals and no allocation in a loop.
Each block comment of the IR (which pass made it, which equality pattern it computes) is carried
into the C.  Any stage can be emitted: a ``Permute`` runs its body once per distinct
rearrangement of its variables' values (:meth:`_Emitter.permute`), and a stored face is iterated
as its storage format describes it (:mod:`systec_ref.storage.formats`).  Every name the C adds
to the kernel's own comes from :mod:`systec_ref.lang.names`.

The caller (:mod:`systec_ref.emit.runtime`) checks every array's shape, dtype
and layout before the call; names reach C only after the parser validated
them as C identifiers.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

from ..dtypes import element, identity
from ..errors import InternalError, MiscompileError
from ..ir.edit import unwrap
from ..ir.index import index_names, rename_indices, simplify_index
from ..ir.nodes import (
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
    IPlus,
    ISum,
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
    SparseLocate,
    SparseMerge,
    SparseVal,
    Stmt,
    Stored,
    Strided,
    TensorInfo,
)
from ..ir.printer import fmt_blas, fmt_face, fmt_index, fmt_tensor
from ..lang.names import IVDEP, OPAQUE, face_array, generated
from ..storage.faces import face_modes
from ..storage.formats import Compressed, Dense, FaceFormat
from ..term import nodes, postwalk, unknown
from . import abi, sparse_out
from . import packed as packed_reads

#: the largest size or leading dimension handed to BLAS (its ``int`` is 32 bits); past it a ``BlasCall`` runs
#: its loop nest (a test lowers it to run that branch on small inputs)
BLAS_INT_MAX = 2**31 - 1


def _comment(text: str) -> str:
    return text.replace("*/", "* /")


class _Emitter:
    def __init__(self, p: Program):
        self.p = p
        self.ctype = element(p.dtype).c_type
        self.tensors = {t.name: t for t in p.tensors}
        self.helpers: dict[tuple, str] = {}
        self.helper_src: list[str] = []
        self.layouts: dict[tuple[str, tuple[int, ...]], FaceFormat] = {}
        self.opaque = False  # some loop bound goes through SX_OPAQUE
        self.packed = dict(p.facts.packed)
        self.order = packed_reads.Order()  # what the enclosing loops prove about subscripts (packed reads)
        self.sparse_out = sparse_out.sparse_output(p)  # its updates go through sparse_out's put
        self.counting = False  # emitting the first of two runs of the loops (sparse_out.runs_twice)
        # the loop whose iterations are the sparse output's rows in order (sparse_out.row_loop): each ends one
        self.row_loop = sparse_out.row_loop(p) if self.sparse_out is not None else None
        # stored-entry loops from a coordinate that only grows with the outermost loop: a cursor per fiber
        self.cursors = self._plan_cursors()

    def _plan_cursors(self) -> dict[int, tuple[Stmt, str, str, str]]:
        """The compressed second levels walked from a coordinate ``low`` (``SparseLevel.low``) that is the
        variable of the outermost loop of their nest plus a constant, a loop whose values only grow (a dense loop
        stepping up, or a stored first level): for each fiber the first position ``>= low`` then only moves
        forward, so a cursor per fiber, kept while that loop runs, replaces the binary search by a forward
        scan — every entry of the level skipped at most once per run of the loop (sparse SSYRK's ``j >= i+1``
        in ``A_T[k,:]``).  By the level's id: (outermost loop, cursor array, fiber count, starts array)."""
        out: dict[int, tuple[Stmt, str, str, str]] = {}
        for top in self.p.body.body:
            outer, _ = unwrap(top)
            match outer:
                case Loop(lo=IConst(), step=step) if step >= 1:
                    pass
                case SparseLevel(level=0, parent=None, reverse=False, start=None, low=None):
                    pass
                case _:
                    continue
            if any(isinstance(n, Permute) for n in nodes(outer)):
                continue
            for n in nodes(outer):
                if not (isinstance(n, SparseLevel) and n.level == 1 and n.start is None and not n.reverse):
                    continue
                if not (n.low == Idx(outer.var) or (isinstance(n.low, IPlus) and n.low.base == Idx(outer.var))):
                    continue
                levels = self.layout(n.tensor, n.face).levels
                match levels[1], levels[0]:
                    case Compressed(pos), Dense():
                        t = self.p.tensor(n.tensor)
                        fibers = self.dim(t.dims[face_modes(t.order, t.symmetry, n.face)[0]])
                    case Compressed(pos), Compressed(pos0):
                        fibers = f"{face_array(n.tensor, n.face, pos0)}[1]"
                    case _:
                        continue
                out[id(n)] = (outer, generated("cur", n.pos), fibers, face_array(n.tensor, n.face, pos))
        return out

    def cursor_starts(self, s: Stmt, pad: str) -> list[str]:
        """Before outermost loop ``s``: each of its cursors back at its fibers' first positions."""
        c = generated("c")
        return [f"{pad}for (int64_t {c} = 0; {c} < {fibers}; ++{c}) {name}[{c}] = {starts}[{c}];"
                "  /* its cursors: each fiber's first position */"
                for outer, name, fibers, starts in self.cursors.values() if outer is s]

    def layout(self, tensor: str, face: tuple[int, ...]) -> FaceFormat:
        """The storage format's description of one face (its levels and arrays)."""
        key = (tensor, face)
        if key not in self.layouts:
            self.layouts[key] = abi.face_layout(self.p, tensor, face)
        return self.layouts[key]

    # -- index expressions ---------------------------------------------------
    def index(self, e) -> str:
        match e:
            case Idx(name) | DimSize(name):
                return name
            case IConst(value):
                return f"INT64_C({value})"
            case IPlus(base, 0):
                return self.index(base)
            case IPlus(base, offset):
                return f"({self.index(base)} {'+' if offset > 0 else '-'} {abs(offset)})"
            case Stored(tensor, face, level):
                return self.stored(tensor, face, level)
            case ISum(args):
                return "(" + " + ".join(self.index(a) for a in args) + ")" if args else "INT64_C(0)"
            case IMul(args):
                return "(" + " * ".join(self.index(a) for a in args) + ")" if args else "INT64_C(1)"
            case IMin((only,)):
                return self.index(only)
            case IMin((first, *rest)):
                a, b = self.index(first), self.index(IMin(tuple(rest)))
                return f"({a} < {b} ? {a} : {b})"
            case _:
                raise unknown(e, "C emitter (index)")

    def stored(self, tensor: str, face: tuple[int, ...], level: int) -> str:
        """How many entries a level of a face stores: each level's position array, read at the count of
        the level above (the root level has one parent)."""
        count = "1"
        t = self.p.tensor(tensor)
        modes = face_modes(t.order, t.symmetry, face)
        for n, lv in enumerate(self.layout(tensor, face).levels[:level + 1]):
            match lv:
                case Compressed(pos, _):
                    count = f"{face_array(tensor, face, pos)}[{count}]"
                case Dense():  # every coordinate under every parent
                    count = f"({count}) * {self.dim(t.dims[modes[n]])}"
                case other:
                    raise unknown(other, "C emitter (count of a level)")
        return count

    def dim(self, d: str | int) -> str:
        return d if isinstance(d, str) else f"INT64_C({d})"

    def offset(self, t: TensorInfo, subs: list[str]) -> str:
        if not subs:
            return "0"
        out = subs[0]
        for d, s in zip(t.dims[1:], subs[1:]):
            out = f"({out}) * {self.dim(d)} + {s}"
        return out

    def cond(self, c) -> str:
        match c:
            case Cmp(op, a, b):
                return f"{self.index(a)} {op} {self.index(b)}"
            case And(terms):
                return " && ".join(f"({self.cond(t)})" for t in terms) or "1"
            case Or(terms):
                return " || ".join(f"({self.cond(t)})" for t in terms) or "0"
            case _:
                raise unknown(c, "C emitter (condition)")

    def sorted_offset(self, t: TensorInfo, sort: tuple[tuple[int, ...], ...]) -> str:
        """A helper that sorts subscripts within groups, then computes the offset."""
        k = (t.name, sort)
        if k not in self.helpers:
            name = generated("off", t.name, len(self.helpers))
            self.helpers[k] = name
            lines = packed_reads.sorted_subscripts(name, t.order, sort)
            off = "v[0]"
            for q in range(1, t.order):
                off = f"({off}) * d{q} + v[{q}]"
            lines += [f"    (void)d0; return {off};", "}"]
            self.helper_src.append("\n".join(lines))
        args = [self.dim(d) for d in self.tensors[t.name].dims]
        return self.helpers[k] + "(" + ", ".join(args + ["{subs}"]) + ")"

    def proved_order(self, idx, groups) -> tuple[list, list[tuple[int, ...]]]:
        """``idx`` with each group's subscripts put in an order the loops and tests around prove sorted (the
        same element: the tensor is symmetric in the group), and the groups whose order they do not prove."""
        subs, unproved = list(idx), []
        for g in groups:
            chain = self.order.chain([idx[q] for q in g])
            if chain is None:
                unproved.append(g)
                continue
            for q, at in zip(g, chain):
                subs[q] = idx[g[at]]
        return subs, unproved

    def packed_offset(self, t: TensorInfo, idx, sort) -> str:
        """The offset of a read of packed ``t``: each group's subscripts put in an order the loops around prove
        sorted, or sorted at run time where they prove none (also where the read asks for a sort: ``sort``
        names positions within the groups, which the proof or the run-time sort covers)."""
        groups = self.packed[t.name]  # the layout's (declared) groups: a pass may have declared fewer
        if not groups or t.role != "in":
            raise InternalError(f"{t.name} is packed but is not a symmetric input")
        subs, to_sort = self.proved_order(idx, groups)
        k = ("packed", t.name, tuple(to_sort))
        if k not in self.helpers:
            name = packed_reads.helper_name(t.name, len(self.helpers))
            self.helpers[k] = name
            self.helper_src.append(packed_reads.helper(name, t, groups, tuple(to_sort)))
        args = [self.dim(d) for d in t.dims] + [self.index(i) for i in subs]
        return f"{self.helpers[k]}({', '.join(args)})"

    def elem(self, tensor: str, idx, sort=()) -> str:
        t = self.tensors[tensor]
        if tensor in self.packed:
            return f"{tensor}[{self.packed_offset(t, idx, sort)}]"
        order, unproved = self.proved_order(idx, sort)  # the unproved groups sorted at run time
        subs = [self.index(i) for i in order]
        if unproved:
            return f"{tensor}[" + self.sorted_offset(t, tuple(unproved)).replace("{subs}", ", ".join(subs)) + "]"
        return f"{tensor}[{self.offset(t, subs)}]"

    # -- values -------------------------------------------------------------------
    def number(self, v: int | float) -> str:
        if self.p.dtype == "int64":
            # INT64_C(-9223372036854775808) negates a literal too large for int64_t: write the minimum as INT64_MIN
            return "INT64_MIN" if int(v) == -(2**63) else f"INT64_C({int(v)})"
        if isinstance(v, float) and math.isinf(v):
            return "INFINITY" if v > 0 else "(-INFINITY)"
        if isinstance(v, float) and math.isnan(v):
            return "NAN"  # a literal folded to NaN (``1e400 * 0``); <math.h> defines it
        text = repr(float(v))
        return text + element(self.p.dtype).c_suffix

    def value(self, e, parent: int = 0) -> str:
        int64 = self.p.dtype == "int64"
        match e:
            case Const(v):
                s = self.number(v)
                return f"({s})" if parent and v < 0 else s
            case Read(tensor, idx, sort):
                return self.elem(tensor, idx, sort)
            case SparseVal(tensor, face, pos):
                return f"{face_array(tensor, face, self.layout(tensor, face).vals)}[{self.index(pos)}]"
            case Local(name):
                return name
            case Neg(arg):
                if int64:
                    return f"(int64_t){self._u64(e)}"  # wraps: see _u64
                inner = self.value(arg, 3)
                return f"-({inner})" if inner.startswith("-") else f"-{inner}"  # never "--x", a decrement in C
            case Lookup(values, bits):
                table = ", ".join(self.number(v) for v in values)
                key = " | ".join(f"(({self.cond(b)}) ? {1 << n} : 0)" for n, b in enumerate(bits))
                return f"((const {self.ctype}[]){{{table}}})[{key}]"
            case Mul(args):
                if int64:
                    return f"(int64_t){self._u64(e)}"
                text = " * ".join(self.value(a, 2) for a in args)
                return f"({text})" if parent > 2 else text
            case Add(args):
                if int64:
                    return f"(int64_t){self._u64(e)}"
                text = " + ".join(self.value(a, 1) for a in args)
                return f"({text})" if parent > 1 else text
            case _:
                raise unknown(e, "C emitter (value)")

    def _u64(self, e) -> str:
        """An int64 value as a ``uint64_t`` expression.  int64 ``+``, ``*`` and negation wrap around (two's
        complement), as numpy's and the interpreter's do; signed overflow is undefined in C, so they are
        computed in ``uint64_t``, where C defines them modulo 2^64, and converted back once (GCC and Clang
        define that conversion as modular)."""
        match e:
            case Add(args):
                return "(" + " + ".join(self._u64(a) for a in args) + ")"
            case Mul(args):
                return "(" + " * ".join(self._u64(a) for a in args) + ")"
            case Neg(arg):
                return f"(0 - {self._u64(arg)})"
            case Const() | Read() | SparseVal() | Local() | Lookup():
                return f"(uint64_t){self.value(e, 3)}"
            case _:
                raise unknown(e, "C emitter (int64 value)")

    # -- statements --------------------------------------------------------------
    def stmt(self, s: Stmt, ind: int) -> list[str]:
        pad = "    " * ind
        match s:
            case Block(body, comment):
                out = [f"{pad}/* {_comment(line)} */" for line in comment.splitlines()] if comment else []
                for x in body:
                    out += self.stmt(x, ind)
                return out
            case Loop(v, lo, hi, body, step):
                ivdep = [f"{pad}{IVDEP}"] if _independent(s) and not self.puts(s) else []
                inc = f"++{v}" if step == 1 else f"{v} += {step}"
                head = f"{pad}for (int64_t {v} = {self.index(lo)}; {v} < {self.index(hi)}; {inc}) {{"
                if _opaque_bound(s, self.p.dtype):
                    self.opaque = True
                    end = generated("end", v)
                    head = (f"{pad}for (int64_t {v} = {self.index(lo)}, {end} = {OPAQUE}({self.index(hi)}); "
                            f"{v} < {end}; {inc}) {{  /* a reduction: trip count hidden, see _opaque_bound */")
                saved = self.order.save()
                self.order.enter(s)
                inner = self.stmt(body, ind + 1)
                self.order.restore(saved)
                return self.cursor_starts(s, pad) + self.end_row(s, [*ivdep, head, *inner, f"{pad}}}"], pad)
            case SparseLocate():
                return self.sparse_locate(s, ind)
            case SparseLevel(var=v) | SparseMerge(var=v):
                saved = self.order.save()
                self.order.forget({v})  # a coordinate, bound anew: nothing known of it
                out = self.sparse_level(s, ind) if isinstance(s, SparseLevel) else self.sparse_merge(s, ind)
                self.order.restore(saved)
                return self.cursor_starts(s, pad) + self.end_row(s, out, pad)
            case If(cond, then, orelse):
                saved = self.order.save()
                self.order.assume(cond)  # (the mirror's sorted reads are proved in order by its test)
                out = [f"{pad}if ({self.cond(cond)}) {{", *self.stmt(then, ind + 1)]
                self.order.restore(saved)
                if orelse is not None:
                    out += [f"{pad}}} else {{", *self.stmt(orelse, ind + 1)]
                return out + [f"{pad}}}"]
            case Let(name, value):
                # (the first of two runs may not use it: it counts updates, computing no value)
                unused = f" (void){name};" if self.counting else ""
                return [f"{pad}{self.ctype} {name} = {self.value(value)};{unused}"]
            case Permute(groups, body):
                saved = self.order.save()
                self.order.forget({v for g in groups for v in g})  # rearranged: their order is not known
                out = self.permute(groups, body, ind)
                self.order.restore(saved)
                return out
            case Assign(target, op, value):
                return self.assign(target, op, value, ind)
            case BlasCall():
                return self.blas(s, ind)
            case _:
                raise unknown(s, "C emitter (statement)")

    # -- BLAS calls ----------------------------------------------------------------
    def stride(self, tensor: str, mode: int) -> str:
        """The distance between neighbours along ``mode`` of a row-major tensor: the product of the later dims."""
        later = self.tensors[tensor].dims[mode + 1:]
        return " * ".join(self.dim(d) for d in later) if later else "INT64_C(1)"

    def address(self, x: Strided) -> str:
        if x.tensor in self.packed:
            raise InternalError(f"a BLAS call reads {x.tensor}, which is passed packed (blas-calls must not)")
        return f"{x.tensor} + ({self.offset(self.tensors[x.tensor], [self.index(b) for b in x.base])})"

    def column_major(self, x: Strided) -> tuple[str, str]:
        """How BLAS (column-major) sees matrix ``x``: ``("N", ld)`` when its rows are neighbours in memory,
        ``("T", ld)`` when its columns are (the memory then holds ``x`` transposed), with the leading dimension."""
        rows, cols = x.modes
        last = self.tensors[x.tensor].order - 1
        return ("N", self.stride(x.tensor, cols)) if rows == last else ("T", self.stride(x.tensor, rows))

    def blas(self, s: BlasCall, ind: int) -> list[str]:
        """A BLAS call: its sizes and leading dimensions from the operands' modes, the routine called when every
        one fits a 32-bit int and none is empty, the loop nest it replaces run otherwise (nothing to do when an
        extent is 0; BLAS's own int would overflow past 2**31 - 1)."""
        pad, inner = "    " * ind, "    " * (ind + 1)
        flip = {"N": "T", "T": "N"}
        out, args = s.out, s.args
        ints: list[tuple[str, str]] = []  # (name, int64 value) of every int argument
        chars: list[str] = []
        match s.routine:
            case "gemm":
                a, b = args
                (fo, ldo), (fa, lda), (fb, ldb) = self.column_major(out), self.column_major(a), self.column_major(b)
                m, n, k = (self.index(e) for e in (out.extent(0), out.extent(1), a.extent(1)))
                if fo == "N":  # out = a @ b as stored
                    chars = [fa, fb]
                    ints = [("m", m), ("n", n), ("k", k)]
                    first, second = (self.address(a), "lda"), (self.address(b), "ldb")
                else:  # memory holds out^T = b^T @ a^T
                    chars = [flip[fb], flip[fa]]
                    ints = [("m", n), ("n", m), ("k", k)]
                    first, second = (self.address(b), "ldb"), (self.address(a), "lda")
                ints += [("lda", lda), ("ldb", ldb), ("ldc", ldo)]
                call = (f'"{chars[0]}", "{chars[1]}", &{{m}}, &{{n}}, &{{k}}, &{{alpha}}, {first[0]}, &{{{first[1]}}}, '
                        f'{second[0]}, &{{{second[1]}}}, &{{one}}, {self.address(out)}, &{{ldc}}')
            case "gemv":
                a, x = args
                fa, lda = self.column_major(a)
                rows, cols = (a.extent(0), a.extent(1)) if fa == "N" else (a.extent(1), a.extent(0))
                ints = [("m", self.index(rows)), ("n", self.index(cols)), ("lda", lda),
                        ("incx", self.stride(x.tensor, x.modes[0])), ("incy", self.stride(out.tensor, out.modes[0]))]
                call = (f'"{fa}", &{{m}}, &{{n}}, &{{alpha}}, {self.address(a)}, &{{lda}}, {self.address(x)}, '
                        f'&{{incx}}, &{{one}}, {self.address(out)}, &{{incy}}')
            case "syrk":
                (a,) = args
                fo, ldo = self.column_major(out)
                fa, lda = self.column_major(a)
                # the upper triangle (r <= c) of out is the lower one of the transpose the memory holds when fo == "T";
                # out += a @ a^T is syrk "N" of a as stored ("N"), syrk "T" of a^T (what memory holds when fa == "T")
                ints = [("n", self.index(out.extent(0))), ("k", self.index(a.extent(1))), ("lda", lda), ("ldc", ldo)]
                uplo = "U" if fo == "N" else "L"
                call = (f'"{uplo}", "{fa}", &{{n}}, &{{k}}, &{{alpha}}, {self.address(a)}, &{{lda}}, '
                        f'&{{one}}, {self.address(out)}, &{{ldc}}')
            case "syr2k":
                a, b = args
                fo, ldo = self.column_major(out)
                (fa, lda), (_, ldb) = self.column_major(a), self.column_major(b)  # (both as stored, or both not)
                ints = [("n", self.index(out.extent(0))), ("k", self.index(a.extent(1))), ("lda", lda), ("ldb", ldb),
                        ("ldc", ldo)]
                uplo = "U" if fo == "N" else "L"
                call = (f'"{uplo}", "{fa}", &{{n}}, &{{k}}, &{{alpha}}, {self.address(a)}, &{{lda}}, '
                        f'{self.address(b)}, &{{ldb}}, &{{one}}, {self.address(out)}, &{{ldc}}')
            case other:
                raise unknown(other, "C emitter (BLAS routine)")
        name = {n: generated("b", n) for n, _ in ints}
        name |= {"alpha": generated("b", "alpha"), "one": generated("b", "one")}
        sizes = [name[n] for n, _ in ints if not n.startswith(("ld", "inc"))]
        lines = [f"{pad}{{   /* {_comment(fmt_blas(s))} */"]
        lines += [f"{inner}const int64_t {name[n]}64 = {v};" for n, v in ints]
        fits = " && ".join(f"{name[n]}64 <= INT64_C({BLAS_INT_MAX})" for n, _ in ints)
        lines.append(f"{inner}if ({' && '.join(f'{z}64 > 0' for z in sizes)}) {{")
        lines.append(f"{inner}    if ({fits}) {{")
        lines += [f"{inner}        const int {name[n]} = (int){name[n]}64;" for n, _ in ints]
        alpha = self.number(float(s.alpha))
        lines.append(f"{inner}        const double {name['alpha']} = {alpha}, {name['one']} = 1.0;")
        lines.append(f"{inner}        {abi.blas_name(s.routine)}({call.format(**name)});")
        lines.append(f"{inner}    }} else {{  /* an extent past BLAS's int: the loops the call stands for */")
        lines += self.stmt(s.nest, ind + 3)
        lines += [f"{inner}    }}", f"{inner}}}", f"{pad}}}"]
        return lines

    def assign(self, target, op: str, value, ind: int) -> list[str]:
        pad = "    " * ind
        match target:
            case Local(name):
                lhs = name
            case Elem(tensor, idx) if self.sparse_out is not None and tensor == self.sparse_out.name:
                if op != self.p.reduction:  # (the IR verifier refuses it first)
                    raise MiscompileError(f"sparse output {tensor} updated with '{op}', not '{self.p.reduction}'")
                subs = [self.index(i) for i in idx]
                if self.counting:  # the first of two runs: the update counted, its value not computed
                    return [pad + sparse_out.count(self.sparse_out, subs)]
                return [pad + sparse_out.put(self.sparse_out, subs, self.value(value))]
            case Elem(tensor, idx):
                lhs = self.elem(tensor, idx)
            case _:
                raise unknown(target, "C emitter (assignment target)")
        v = self.value(value)
        if op == "=":
            return [f"{pad}{lhs} = {v};"]
        if op == "+":
            if self.p.dtype == "int64":
                return [f"{pad}{lhs} = (int64_t)((uint64_t){lhs} + {self._u64(value)});"]  # see _u64
            return [f"{pad}{lhs} += {v};"]
        cmp = "<" if op == "min" else ">"
        # same rule as the interpreter: a NaN on the right never replaces the current value.  The store is
        # unconditional so the compiler can use a min/max instruction: a conditional store is a branch on data
        new = generated("v")
        return [f"{pad}{{ const {self.ctype} {new} = {v}; {lhs} = ({new} {cmp} {lhs}) ? {new} : {lhs}; }}"]

    def permute(self, groups: tuple[tuple[str, ...], ...], body: Block, ind: int) -> list[str]:
        """``Permute``: the body once per *distinct* rearrangement of the values of each group's variables.

        The k! permutations of a group are spelled out; within each, the group's variables are
        redeclared (shadowing the loops that bind them) with the rearranged values.  Permutation pi
        repeats an earlier rearrangement exactly when it puts two equal values out of their original
        order, so it is skipped when, for some a < b, ``x_a == x_b`` and pi moves x_a after x_b: each
        distinct rearrangement runs once (the one that keeps equal values in order).  Groups nest,
        first group outermost."""
        if not groups:
            return self.stmt(body, ind)
        group, rest = groups[0], groups[1:]
        if len(group) < 2:
            return self.permute(rest, body, ind)
        pad = "    " * ind
        was = [generated("was", v) for v in group]
        out = [f"{pad}{{  /* every distinct rearrangement of ({', '.join(group)}) */",
               f"{pad}    const int64_t {', '.join(f'{w} = {v}' for w, v in zip(was, group))};"]
        for perm in itertools.permutations(range(len(group))):
            slot = {t: n for n, t in enumerate(perm)}  # where the t-th value goes
            inner = self.permute(rest, body, ind + 2)
            moved = [(a, b) for a, b in itertools.combinations(range(len(group)), 2) if slot[a] > slot[b]]
            if not moved:  # the values as they are
                out += [f"{pad}    {{", *inner, f"{pad}    }}"]
                continue
            text = ", ".join(group[t] for t in perm)
            repeat = " || ".join(f"{was[a]} == {was[b]}" for a, b in moved)
            out += [f"{pad}    if (!({repeat})) {{  /* ({', '.join(group)}) = ({text}) */",
                    f"{pad}        const int64_t {', '.join(f'{v} = {was[t]}' for v, t in zip(group, perm))};",
                    f"{pad}        {' '.join(f'(void){v};' for v in group)}",
                    *inner, f"{pad}    }}"]
        return out + [f"{pad}}}"]

    def sparse_level(self, s: SparseLevel, ind: int) -> list[str]:
        """One level of a stored face, iterated as its level kind says."""
        pad = "    " * ind
        q = "0" if s.parent is None else self.index(s.parent)
        match self.layout(s.tensor, s.face).levels[s.level]:
            case Compressed(pos, crd):
                starts, coords = face_array(s.tensor, s.face, pos), face_array(s.tensor, s.face, crd)
                # from a position of the same fiber (see SparseLevel.start), else from the parent's first child
                lo = f"{starts}[{q}]" if s.start is None else self.index(s.start)
                hi = f"{starts}[{q} + 1]"

                def coord(p: str) -> str:
                    return f"{coords}[{p}]"
            case Dense():
                t = self.p.tensor(s.tensor)
                size = self.dim(t.dims[face_modes(t.order, t.symmetry, s.face)[s.level]])
                base = "0" if s.parent is None else f"({q}) * {size}"
                # from a position of the same fiber (see SparseLevel.start), else from the first coordinate
                lo = base if s.start is None else self.index(s.start)
                hi = f"{size}" if s.parent is None else f"{base} + {size}"
                if s.parent is None:  # positions are the coordinates: one variable for both

                    def coord(p: str) -> str:
                        return p
                else:

                    def coord(p: str) -> str:
                        return f"{p} - {base}"
            case other:
                raise unknown(other, "C emitter (level kind)")
        search: list[str] = []
        if s.low is not None:  # coordinates >= low only (see SparseLevel.low)
            if s.start is not None:
                raise InternalError(f"C emitter: a stored-entry loop over {s.tensor} with both a start and a low")
            match self.layout(s.tensor, s.face).levels[s.level]:
                case Compressed() if id(s) in self.cursors:  # forward from where the last visit stopped
                    first, cur = generated("lo", s.pos), self.cursors[id(s)][1]
                    search = [f"{pad}int64_t {first} = {cur}[{q}];",
                              f"{pad}while ({first} < {hi} && {coords}[{first}] < {self.index(s.low)}) ++{first};",
                              f"{pad}{cur}[{q}] = {first};"]
                    lo = first
                case Compressed():
                    first = generated("lo", s.pos)
                    search = [f"{pad}int64_t {first} = {lo};",
                              *self.lower_bound(first, hi, coords, self.index(s.low), pad)]
                    lo = first
                case Dense():
                    lo = f"{base} + {self.index(s.low)}" if s.parent is not None else self.index(s.low)
        # (not the sparse output's row loop: two rows per step would share the end of one)
        split = _split_accumulators(s, self.p.dtype) if not s.reverse and s is not self.row_loop else {}
        if split:
            body = self.split_level(s, lo, hi, coord, split, ind)
        else:
            head = f"{pad}for (int64_t {s.pos} = {lo}; {s.pos} < {hi}; ++{s.pos}) {{" if not s.reverse else \
                f"{pad}for (int64_t {s.pos} = {hi} - 1; {s.pos} >= {lo}; --{s.pos}) {{  /* last to first */"
            bind = f"{pad}    const int64_t {s.var} = {coord(s.pos)}; (void){s.var};"
            body = [head, bind, *self.stmt(s.body, ind + 1), f"{pad}}}"]
        if not search:
            return body
        return [f"{pad}{{  /* {s.var} >= {fmt_index(s.low)}: the first such coordinate by binary search */",
                *search, *["    " + line for line in body], f"{pad}}}"]

    def end_row(self, s: Stmt, lines: list[str], pad: str) -> list[str]:
        """``lines`` (the C of loop ``s``) with, if ``s`` is the sparse output's row loop, the end of a row as
        the last statement of its body."""
        if s is not self.row_loop or self.counting:  # (a first run only counts)
            return lines
        if lines[-1] != f"{pad}}}" or self.sparse_out is None:
            raise InternalError(f"C emitter: the row loop over {s.var} does not end its body last")  # type: ignore
        return [*lines[:-1], f"{pad}    {sparse_out.row_end(self.sparse_out, s.var)}", lines[-1]]  # type: ignore

    def lower_bound(self, first: str, end: str, coords: str, key: str, pad: str) -> list[str]:
        """Lines that move ``first`` (a variable, at a fiber's first position) to the first position before
        ``end`` whose coordinate is at least ``key``, by binary search of the sorted coordinates.  (Measured
        on sparse SSYRK: a branch-free search, a conditional move per halving, was slower — each step waits
        for the load before it, where predicted branches let the next load start.)"""
        last, mid = generated("hi", first), generated("mid", first)
        return [f"{pad}for (int64_t {last} = {end}; {first} < {last};) {{",
                f"{pad}    const int64_t {mid} = {first} + ({last} - {first}) / 2;",
                f"{pad}    if ({coords}[{mid}] < {key}) {first} = {mid} + 1; else {last} = {mid};",
                f"{pad}}}"]

    def sparse_locate(self, s: SparseLocate, ind: int) -> list[str]:
        """Find a coordinate in one level (see :class:`SparseLocate`): computed for a dense level, by binary
        search for a compressed one; the body runs if it is stored."""
        pad = "    " * ind
        q = "0" if s.parent is None else self.index(s.parent)
        key = self.index(s.coord)
        what = f"{fmt_index(s.coord)} in {s.tensor}{fmt_face(s.face)}.level{s.level}"
        match self.layout(s.tensor, s.face).levels[s.level]:
            case Compressed(pos, crd):
                starts, coords = face_array(s.tensor, s.face, pos), face_array(s.tensor, s.face, crd)
                first, end = generated("lo", s.pos), f"{starts}[{q} + 1]"
                return [f"{pad}{{  /* find {what}: binary search */",
                        f"{pad}    int64_t {first} = {starts}[{q}];",
                        *self.lower_bound(first, end, coords, key, pad + "    "),
                        f"{pad}    if ({first} < {end} && {coords}[{first}] == {key}) {{",
                        f"{pad}        const int64_t {s.pos} = {first}; (void){s.pos};",
                        *self.stmt(s.body, ind + 2), f"{pad}    }}", f"{pad}}}"]
            case Dense():
                t = self.p.tensor(s.tensor)
                size = self.dim(t.dims[face_modes(t.order, t.symmetry, s.face)[s.level]])
                at = key if s.parent is None else f"({q}) * {size} + {key}"
                return [f"{pad}{{  /* {what}: a dense level, every coordinate stored */",
                        f"{pad}    const int64_t {s.pos} = {at}; (void){s.pos};",
                        *self.stmt(s.body, ind + 1), f"{pad}}}"]
            case other:
                raise unknown(other, "C emitter (located level kind)")

    def merge_arrays(self, s: SparseMerge) -> list[tuple[str, str, str]]:
        """(start, end, coordinates) of each operand of a merge: C expressions of its range under its parent
        and the name of its coordinate array, as its level kind says."""
        out = []
        for o in s.operands:
            q = "0" if o.parent is None else self.index(o.parent)
            match self.layout(o.tensor, o.face).levels[o.level]:
                case Compressed(pos, crd):
                    starts = face_array(o.tensor, o.face, pos)
                    out.append((f"{starts}[{q}]", f"{starts}[{q} + 1]", face_array(o.tensor, o.face, crd)))
                case other:
                    raise unknown(other, "C emitter (merged level kind)")
        return out

    def sparse_merge(self, s: SparseMerge, ind: int) -> list[str]:
        """Two-pointer co-iteration of the operands' sorted coordinates (see :class:`SparseMerge`).

        Each step binds ``var`` to the smallest current coordinate and advances the operands that store it.
        ``intersect`` walks while every operand has entries left and runs the body where all store the
        coordinate; ``union`` runs it at every step, with the position of an operand that does not store the
        coordinate bound to -1: for two operands, while both have entries left and then over the tail of
        each; for more, while any has (an exhausted operand's coordinate reads as ``INT64_MAX``)."""
        pad = "    " * ind
        ranges = self.merge_arrays(s)
        at = [generated("p", o.pos) for o in s.operands]
        end = [generated("e", o.pos) for o in s.operands]
        crd = [generated("c", o.pos) for o in s.operands]
        v = s.var
        text = ", ".join(f"{o.tensor}{fmt_face(o.face)}.level{o.level}" for o in s.operands)
        out = [f"{pad}{{  /* {s.mode} of {text}: merge their sorted coordinates */"]
        out += [f"{pad}    int64_t {a} = {lo}, {e} = {hi};" for a, e, (lo, hi, _) in zip(at, end, ranges)]
        unused = " ".join(f"(void){o.pos};" for o in s.operands)

        def bind(positions: list[str]) -> str:
            return f"const int64_t {', '.join(f'{o.pos} = {x}' for o, x in zip(s.operands, positions))}; {unused}"
        advance = " ".join(f"{a} += {c} == {v};" for a, c in zip(at, crd))

        def minimum() -> str:
            m = crd[0]
            for c in crd[1:]:
                m = f"({c} < {m} ? {c} : {m})"
            return m

        def step(cond: str, loaded: list[str], positions: list[str], guard: str | None) -> list[str]:
            lines = [f"{pad}    while ({cond}) {{",
                     f"{pad}        const int64_t {', '.join(f'{c} = {x}' for c, x in zip(crd, loaded))};",
                     f"{pad}        const int64_t {v} = {minimum()}; (void){v};"]
            inner = ind + 2
            if guard:
                lines.append(f"{pad}        if ({guard}) {{")
                inner += 1
            ipad = "    " * inner
            lines.append(f"{ipad}{bind(positions)}")
            lines += self.stmt(s.body, inner)
            if guard:
                lines.append(f"{pad}        }}")
            return [*lines, f"{pad}        {advance}", f"{pad}    }}"]

        if s.mode == "intersect":
            live = " && ".join(f"{a} < {e}" for a, e in zip(at, end))
            out += step(live, [f"{c_arr}[{a}]" for a, (_, _, c_arr) in zip(at, ranges)], at,
                        " && ".join(f"{c} == {v}" for c in crd))
        elif len(s.operands) == 2:
            live = " && ".join(f"{a} < {e}" for a, e in zip(at, end))
            out += step(live, [f"{c_arr}[{a}]" for a, (_, _, c_arr) in zip(at, ranges)],
                        [f"{c} == {v} ? {a} : -1" for a, c in zip(at, crd)], None)
            for n, (a, e, (_, _, c_arr)) in enumerate(zip(at, end, ranges)):  # the tail of each: it alone
                positions = [a if m == n else "-1" for m in range(len(at))]
                out += [f"{pad}    for (; {a} < {e}; ++{a}) {{",
                        f"{pad}        const int64_t {v} = {c_arr}[{a}]; (void){v};",
                        f"{pad}        {bind(positions)}",
                        *self.stmt(s.body, ind + 2), f"{pad}    }}"]
        else:
            live = " || ".join(f"{a} < {e}" for a, e in zip(at, end))
            out += step(live, [f"{a} < {e} ? {c_arr}[{a}] : INT64_MAX" for a, e, (_, _, c_arr) in zip(at, end, ranges)],
                        [f"{c} == {v} ? {a} : -1" for a, c in zip(at, crd)], None)
        return [*out, f"{pad}}}"]

    def split_level(self, s: SparseLevel, lo_expr: str, hi_expr: str, coord: Callable[[str], str],
                    acc: dict[str, str], ind: int) -> list[str]:
        """An innermost level whose reductions go to scalar accumulators, unrolled by two with a
        second accumulator each: two independent dependency chains instead of one (the loop is otherwise
        bound by the latency of one add per stored entry).  Statements run in the same order; only the
        order of the accumulators' own additions changes, which the float tolerance allows."""
        pad = "    " * ind
        lo, hi, p = generated("lo"), generated("hi"), generated("p")
        twin = {a: f"{a}_b" for a in acc}
        second = postwalk(lambda n: Local(twin[n.name]) if isinstance(n, Local) and n.name in twin else None)(s.body)
        out = [f"{pad}{{  /* two accumulators per reduction: independent add chains */",
               f"{pad}    const int64_t {lo} = {lo_expr}, {hi} = {hi_expr};"]
        out += [f"{pad}    {self.ctype} {twin[a]} = {self.number(identity(op, self.p.dtype))};"
                for a, op in sorted(acc.items())]
        bind = f"const int64_t {s.var} = {coord(s.pos)}; (void){s.var};"
        out += [f"{pad}    int64_t {p} = {lo};",
                f"{pad}    for (; {p} + 1 < {hi}; {p} += 2) {{",
                f"{pad}        {{ const int64_t {s.pos} = {p}; {bind}",
                *self.stmt(s.body, ind + 3), f"{pad}        }}",
                f"{pad}        {{ const int64_t {s.pos} = {p} + 1; {bind}",
                *self.stmt(second, ind + 3), f"{pad}        }}",
                f"{pad}    }}",
                f"{pad}    if ({p} < {hi}) {{ const int64_t {s.pos} = {p}; {bind}",
                *self.stmt(s.body, ind + 2), f"{pad}    }}"]
        for a, op in sorted(acc.items()):
            out += self.stmt(Assign(Local(a), op, Local(twin[a])), ind + 1)
        return out + [f"{pad}}}"]

    def puts(self, s: Stmt) -> bool:
        """Does ``s`` update the sparse output (a call into its buffer: no loop around it is vectorized)?"""
        out = self.sparse_out
        return out is not None and any(isinstance(n, Elem) and n.tensor == out.name for n in nodes(s))

    # -- the function ------------------------------------------------------------
    def function(self) -> str:
        p = self.p
        params = abi.parameters(p)
        # every dimension and dense input is named once, so a kernel that ignores one compiles warning-free
        body: list[str] = [f"    (void){q.name};" for q in params if isinstance(q.source, (abi.Dim, abi.DenseInput))]
        # a stored copy of a sparse input (the ``sparse_copies`` fact) arrives as its face arrays: not allocated
        temps = [t for t in p.tensors if t.role == "temp" and t.format != "sparse"]
        for t in temps:
            size = " * ".join(f"(size_t){self.dim(d)}" for d in t.dims) or "1"
            body.append(f"    {self.ctype} *restrict {t.name} = malloc(({size}) * sizeof({self.ctype}) + 1);")
        # the cursors of stored-entry loops from a growing coordinate (_plan_cursors), one per fiber
        cursors = list(dict.fromkeys((name, fibers) for _, name, fibers, _ in self.cursors.values()))
        for name, fibers in cursors:
            body.append(f"    int64_t *restrict {name} = malloc((size_t){fibers} * sizeof(int64_t) + 1);")
        allocated = [t.name for t in temps] + [name for name, _ in cursors]
        if allocated:
            cond = " || ".join(f"!{a}" for a in allocated)
            body.append(f"    if ({cond}) {{ {' '.join(f'free({a});' for a in allocated)} return 1; }}")
        out = self.sparse_out
        twice = out is not None and sparse_out.runs_twice(p)
        if out is not None:
            groups = p.facts.output_symmetry
            self.helper_src.append(sparse_out.helper(p, out, groups, self.number(identity(p.reduction, p.dtype)),
                                                     twice, self.row_loop is not None))
            frees = " ".join(f"free({a});" for a in allocated)
            body.append(f"    {sparse_out.init(out, [self.dim(d) for d in out.dims])} {{ {frees} return 1; }}")
        i = generated("i")
        for t in p.tensors:
            if t.role == "in" or t.format == "sparse" or t.init is None:  # None: each element assigned first
                continue
            size = " * ".join(f"(size_t){self.dim(d)}" for d in t.dims) or "1"
            body.append(f"    for (size_t {i} = 0; {i} < {size}; ++{i}) {t.name}[{i}] = {self.number(t.init)};"
                        f"  /* {'start at the identity of ' + p.reduction if t.role == 'out' else 'zeroed'} */")
        if twice:
            # a first run that counts each row's updates, so the second puts every one in its place at once
            self.counting = True
            # (not when the rows come in order and are accumulated one at a time: nothing to count for)
            skip = f"!({sparse_out.by_rows(out)})" if self.row_loop is not None else "1"
            body += [f"    if ({skip}) {{  /* first run: count the updates of each row of the output */",
                     *self.stmt(p.body, 2), f"        {sparse_out.counted(out)}", "    }"]
            self.counting = False
            body += ["    {  /* second run: the updates */", *self.stmt(p.body, 2), "    }"]
        else:
            body += self.stmt(p.body, 1)
        for a in allocated:
            body.append(f"    free({a});")
        if out is not None:
            n = sparse_out.names(out)
            body.append(f"    return {n['finish']}(&{n['acc']}, {out.name});")
            block = generated("block")
            return (abi.signature(p, params) + " {\n" + "\n".join(body) + "\n}\n\n"
                    f"/* frees the block a finished call put its sparse output in */\n"
                    f"void {sparse_out.free_name(p.name)}(void *{block}) {{ free({block}); }}")
        body.append("    return 0;")
        return abi.signature(p, params) + " {\n" + "\n".join(body) + "\n}"


def _fixed_trips(loop: Loop) -> int:
    """A constant bound on the trip count of ``loop`` that the C compiler can see (bounds that differ by a
    constant, ``i+1 .. i+4``, or a constant upper bound, ``.. 3``, as subscripts are never negative), else 0.
    The compiler may unroll such a loop completely."""
    def split(e):
        match simplify_index(e):
            case IConst(value):
                return None, value
            case IPlus(base, offset):
                return base, offset
            case Idx() | DimSize() | IMin() as e:  # (a tile's end, min(I+T,n): at most T trips, not a fixed count)
                return e, 0
            case e:
                raise unknown(e, "C emitter (trip count)")
    (b0, o0), (b1, o1) = split(loop.lo), split(loop.hi)
    if b0 == b1:
        return max(0, -(-(o1 - o0) // loop.step))
    return max(0, -(-o1 // loop.step)) if b1 is None else 0


def _opaque_bound(loop: Loop, dtype: str) -> bool:
    """Is ``loop`` a float reduction over a bounded number of trips (:func:`_fixed_trips`: a dim like 2, a
    triangle peeled by unroll-and-jam) — a statement of its body adds into a target its variable does not
    move?  The C compiler would unroll it into one sum whose terms share the loop's invariant factors, and
    factor them (``h*a + h*b`` -> ``h*(a + b)``: inf where the sum is NaN).  Its bound is emitted through
    ``SX_OPAQUE``, which hides the trip count: a loop of unknown trip count is not unrolled, and its sum
    not factored."""
    if dtype == "int64" or _fixed_trips(loop) < 2:
        return False

    def straight(stmts):
        return [x for st in stmts for x in (straight(st.body) if isinstance(st, Block) else [st])]
    return any(isinstance(st, Assign) and st.op == "+" and loop.var not in index_names(st.target)
               for st in straight(loop.body.body))


def signed_zeros_needed(p: Program) -> str | None:
    """Why the C of float program ``p`` must be compiled with signed zeros honoured (None: it need not).

    Under ``-fno-signed-zeros`` GCC's vectorized code let NaN through where the program does not: it
    turned the min/max update ``t = (v < t) ? v : t`` into instructions that take a NaN ``v`` and
    then replace it, and computed ``0 * x`` as 0 for x = NaN or inf.  ``#pragma GCC optimize
    ("signed-zeros")`` for such programs keeps both as written, and reductions still vectorize."""
    if p.dtype == "int64":
        return None
    body = list(nodes(p.body))
    if any(isinstance(n, Assign) and n.op in ("min", "max") for n in body):
        return "a min/max update keeps its rule (a NaN never replaces the current value) when vectorized"
    if any(isinstance(n, Mul) and any(_zero(a) for a in n.args) for n in body):
        return "0 * x stays NaN for x = NaN or inf when vectorized"
    return None


def _zero(e: object) -> bool:
    """A literal zero of either sign (``-0`` parses as the negation of 0)."""
    match e:
        case Const(value):
            return value == 0
        case Neg(arg):
            return _zero(arg)
        case _:
            return False


def reassociation_risk(p: Program) -> str | None:
    """Why letting the C compiler reassociate could change a NaN or ±inf result of ``p`` (None: it cannot).

    ``-fassociative-math`` lets the compiler reorder sums and products, which moves rounding but never
    changes which results are NaN or ±inf (``inf - inf`` is NaN in any order) — reductions stay
    vectorizable.  It also lets it *cancel* (``-x + x`` to 0) and *factor* (``a*b + a*c`` to
    ``a*(b + c)``), which can: for x = inf, ``-x + x`` is NaN, and for a = inf, b = 1, c = -0.5,
    ``a*b + a*c`` is NaN but ``a*(b + c)`` is inf.  Cancelling needs a negation; factoring needs two
    terms with a common non-constant factor summed into one place: one expression, or one target updated
    twice in a straight line of code — seen through the ``let``s in scope, and through loops of a few
    fixed trips, which the compiler unrolls (unless :func:`_opaque_bound` hides their trip count).  It
    does not factor across the iterations of a loop of unknown trip count.  A float program with either
    is compiled with reassociation off (a pragma; its reductions then do not vectorize); the others keep
    it.  (GCC's ``__builtin_assoc_barrier`` around each term is not enough: after vectorizing a loop,
    GCC still factored the terms of SYPRD's jammed rows.)"""
    if p.dtype == "int64":
        return None
    for n in nodes(p.body):
        if isinstance(n, Neg) or (isinstance(n, Const) and n.value < 0) or \
                (isinstance(n, Lookup) and any(v < 0 for v in n.values)):
            return "it subtracts: -x + x must not cancel to 0 (it is NaN for x = inf)"

    # accumulators hold run-time sums: opaque; any other local is its let's value, as the compiler sees it
    accumulators = {n.target.name for n in nodes(p.body) if isinstance(n, Assign) and isinstance(n.target, Local)}

    def inlined(e, env: dict):
        return env.get(e.name) if isinstance(e, Local) and e.name not in accumulators else None

    def addends(e, env: dict) -> list:
        match e:
            case Add(args):
                return [t for a in args for t in addends(a, env)]
            case Local() if isinstance(inlined(e, env), Add):
                return addends(inlined(e, env), env)
            case Const() | Read() | SparseVal() | Local() | Neg() | Lookup() | Mul():
                return [e]
            case _:
                raise unknown(e, "C emitter (reassociation: terms)")

    def factors(e, env: dict) -> frozenset:
        match e:
            case Mul(args):
                return frozenset().union(*(factors(a, env) for a in args))
            case Lookup():
                return frozenset()
            case Const(value) if math.isfinite(value):
                # positive finite constants: factoring them out is exact for inf and NaN operands (rounding
                # aside); an infinite one is not (inf*a + inf*b is NaN where inf*(a + b) is ±inf)
                return frozenset()
            case Local() if inlined(e, env) is not None:
                return factors(inlined(e, env), env)
            case Const() | Read() | SparseVal() | Local() | Neg() | Add():
                return frozenset({e})
            case _:
                raise unknown(e, "C emitter (reassociation: factors)")

    def shared(terms: list[frozenset]) -> bool:
        seen: set = set()
        for f in terms:
            if f & seen:
                return True
            seen |= f
        return False

    def walk(stmts, env: dict, chains: dict) -> bool:
        """Straight-line statements sharing ``env`` (lets in scope) and ``chains`` (the factors of the terms
        summed into each target so far)."""
        for s in stmts:
            match s:
                case Block(body):
                    found = walk(body, env, chains)
                case Let(name, value):
                    found = shared([factors(t, env) for t in addends(value, env)])
                    env[name] = value
                case Assign(target, op, value):
                    terms = [factors(t, env) for t in addends(value, env)]
                    if op == "+":
                        terms = chains[target] = chains.get(target, []) + terms
                    found = shared(terms)
                case If(_, then, orelse):
                    found = walk(then.body, dict(env), {}) or (orelse is not None and walk(orelse.body, dict(env), {}))
                case SparseLocate(body=body):  # its body runs at most once, like an If's
                    found = walk(body.body, dict(env), {})
                case Loop(var, body=body) if _fixed_trips(s) > 1 and not _opaque_bound(s, p.dtype):
                    # the C compiler unrolls a loop of a few fixed trips (a dim like 2, or a triangle peeled by
                    # unroll-and-jam) into straight-line code, then factors: two copies of its body join the
                    # chains of the code around it (in the second, its variable is another)
                    found = walk([body, rename_indices(body, {var: var + "_2"})], env, chains)
                case Permute(groups, body):
                    # the C runs a copy of the body per rearrangement, one after another (see
                    # _Emitter.permute): the copies may sum terms with a common factor into one target
                    copies = [body]
                    for g in groups:
                        copies = [rename_indices(c, dict(zip(g, perm))) for c in copies
                                  for perm in itertools.permutations(g)]
                    found = walk(copies, dict(env), {})
                case Loop(body=body) | SparseLevel(body=body) | SparseMerge(body=body):
                    found = walk(body.body, dict(env), {})
                case BlasCall(nest=nest):  # (BLAS sums in its own order; the nest is what runs past 2**31)
                    found = walk(nest.body, dict(env), {})
                case _:
                    raise unknown(s, "C emitter (reassociation)")
            if found:
                return True
        return False

    if walk(p.body.body, {}, {}):
        return "two terms with a common factor are summed: a*b + a*c must not become a*(b + c)"
    return None


def _split_accumulators(level: SparseLevel, dtype: str) -> dict[str, str]:
    """Accumulators of an innermost sparse loop that may be split in two: float locals (integer adds stay in
    program order: a different order could overflow where the program does not) updated only by
    ``+=``/``min=``/``max=`` and not read otherwise inside the loop.  Empty if the loop does not qualify."""
    if dtype == "int64" or any(isinstance(n, (Loop, If, SparseLevel, SparseMerge, Permute)) for n in nodes(level.body)):
        return {}
    acc: dict[str, str] = {}
    for n in nodes(level.body):
        if isinstance(n, Assign) and isinstance(n.target, Local):
            if n.op == "=" or acc.get(n.target.name, n.op) != n.op:
                return {}
            acc[n.target.name] = n.op
    if not acc:
        return {}
    for n in nodes(level.body):
        if isinstance(n, Let) and n.name in acc:
            return {}
        values = [n.value] if isinstance(n, (Assign, Let)) else []
        if any(isinstance(x, Local) and x.name in acc for v in values for x in nodes(v)):
            return {}
    return acc


def _independent(loop: Loop) -> bool:
    """May the iterations of an innermost loop be reordered (vectorized) freely?

    True when every access to a tensor written inside it that depends on the
    loop variable ``j`` has ``j`` as its last subscript and no other subscript
    depends on ``j``: then two iterations ``j != j'`` never touch the same
    element (the offsets differ by ``j - j'``, less than a row), and within one
    iteration the statements keep their order.  This tells the C compiler
    what it cannot prove (e.g. that rows ``C[i,:]`` and ``C[k,:]`` do not
    overlap within a sweep), sparing it run-time alias checks.
    """
    if any(isinstance(n, (Loop, If, SparseLevel, SparseMerge, Permute)) for n in nodes(loop.body)):
        return False  # (a Permute rebinds the loop's variables: its body's subscripts say nothing)
    j = loop.var
    written = {n.tensor for n in nodes(loop.body) if isinstance(n, Elem)}
    for n in nodes(loop.body):
        # read-only tensors cannot carry a dependence between iterations
        if isinstance(n, (Read, Elem)) and n.tensor in written and j in index_names(n):
            if not n.idx or n.idx[-1] != Idx(j) or any(j in index_names(x) for x in n.idx[:-1]):
                return False
            if isinstance(n, Read) and n.sort:
                return False
    return True


def emit_c(p: Program, stage: str = "") -> str:
    """C99 source for ``p`` (any stage)."""
    e = _Emitter(p)
    fn = e.function()
    head = [
        f"/* kernel {p.name}{', stage ' + stage if stage else ''}: generated by systec_ref */",
        *(f"/*   {_comment(line)} */" for line in _describe(p)),
        "#include <math.h>",
        "#include <stddef.h>",
        "#include <stdint.h>",
        "#include <stdlib.h>",
        *(["#include <string.h>"] if e.sparse_out is not None else []),
        "",
        "/* iterations of the marked loops touch disjoint elements (see _independent in emit/c.py) */",
        "#if defined(__clang__)",
        f'#define {IVDEP} _Pragma("clang loop vectorize(assume_safety)")',
        "#elif defined(__GNUC__)",
        f'#define {IVDEP} _Pragma("GCC ivdep")',
        "#else",
        f"#define {IVDEP}",
        "#endif",
        "",
    ]
    if e.opaque:
        o = generated("o")
        head += [
            "/* hides a loop bound from the optimizer: a reduction over a few fixed trips would be unrolled into one",
            "   sum whose terms share a factor, and -fassociative-math would factor it (see _opaque_bound) */",
            "#if defined(__GNUC__)",
            f'#define {OPAQUE}(x) __extension__ ({{ int64_t {o} = (x); __asm__("" : "+r"({o})); {o}; }})',
            "#else",
            f"#define {OPAQUE}(x) (x)",
            "#endif",
            "",
        ]
    routines = abi.blas_routines(p)
    if routines:
        head += ["/* BLAS routines (double precision, Fortran calling convention), passed by the caller (abi.py) */",
                 *(f"typedef void (*{abi.blas_type(r)})({_BLAS_PARAMS[r]});" for r in routines), ""]
    risk = reassociation_risk(p)
    gcc: list[str] = []
    if risk:
        head.append(f"/* sums stay in program order: {_comment(risk)} (see reassociation_risk in emit/c.py) */")
        gcc.append('"no-associative-math"')
    zeros = signed_zeros_needed(p)
    if zeros:
        head.append(f"/* signed zeros honoured: {zeros} (see signed_zeros_needed in emit/c.py) */")
        gcc.append('"signed-zeros"')
    if gcc:
        head += ["#if defined(__clang__)", *(["#pragma clang fp reassociate(off)"] if risk else []),
                 "#elif defined(__GNUC__)", f"#pragma GCC optimize ({', '.join(gcc)})", "#endif", ""]
    return "\n".join(head) + ("\n\n".join(e.helper_src) + "\n\n" if e.helper_src else "") + fn + "\n"


#: the parameters of each BLAS routine a program may call, in C
_BLAS_PARAMS = {
    "gemm": "const char *, const char *, const int *, const int *, const int *, const double *, const double *, "
            "const int *, const double *, const int *, const double *, double *, const int *",
    "gemv": "const char *, const int *, const int *, const double *, const double *, const int *, const double *, "
            "const int *, const double *, double *, const int *",
    "syrk": "const char *, const char *, const int *, const int *, const double *, const double *, const int *, "
            "const double *, double *, const int *",
    "syr2k": "const char *, const char *, const int *, const int *, const double *, const double *, const int *, "
             "const double *, const int *, const double *, double *, const int *",
}


def _describe(p: Program) -> list[str]:
    return [fmt_tensor(t) for t in p.tensors] + [f"{k}: {v}" for k, v in p.facts.items()]


