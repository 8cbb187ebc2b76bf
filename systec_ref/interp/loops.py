"""The reference interpreter for loop-nest programs.

It turns a :class:`~systec_ref.ir.nodes.Program` into nested Python closures
(one per node, built once) and runs them over flat Python lists, counting every
operation.  Every subscript is bounds-checked; an out-of-range access raises an
error that names the tensor and the subscript.  It is slow by design: it is
the definition every faster thing is checked against.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable

import numpy as np

from ..dtypes import element, numpy_type, wrap_int64
from ..errors import MiscompileError
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
    IndexExpr,
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
)
from ..ir.printer import fmt_subscript
from ..storage import formats
from ..storage.faces import face_modes, symmetrize_index
from ..storage.formats import Compressed, Dense
from ..term import nodes, unknown
from .counts import Counts


class InterpError(MiscompileError):
    """A program did something undefined (an out-of-range access, an unbound index or local).

    Every program the interpreter runs was built by the compiler from a checked kernel, on inputs
    already validated against its declarations: one that goes wrong is a miscompile, a bug of
    systec_ref and never the user's (an :class:`~systec_ref.errors.InternalError`, deliberately not
    a ``SystecError``).  ``detail`` is what went wrong; the message says whose fault it is.
    """

    def __init__(self, detail: str, fault: str = "invalid program (a compiler bug)"):
        self.detail, self.fault = detail, fault
        super().__init__(f"interpreter: {fault}: {detail}")

    def __reduce__(self):
        return type(self), (self.detail, self.fault)



class _Buffer:
    __slots__ = ("name", "shape", "strides", "data")

    def __init__(self, name: str, array: np.ndarray):
        self.name = name
        self.shape = tuple(int(s) for s in array.shape)
        strides, acc = [], 1
        for s in reversed(self.shape):
            strides.append(acc)
            acc *= s
        self.strides = tuple(reversed(strides))
        self.data = array.reshape(-1).tolist()



class _Compiler:
    def __init__(self, prog: Program, bufs: dict[str, _Buffer], dims: dict[str, int], counts: Counts,
                 sparse: dict | None = None):
        self.prog, self.bufs, self.dims, self.c = prog, bufs, dims, counts
        self.sparse = sparse or {}
        self.is_int = prog.dtype == "int64"
        # locals that are updated (workspace accumulators): writing one into a tensor is a flush
        self.accumulators = {n.target.name for n in nodes(prog.body) if isinstance(n, Assign)
                             and isinstance(n.target, Local)}
        self.rnd = element(prog.dtype).round if prog.dtype == "float32" else None

    # -- index expressions -------------------------------------------------
    def index(self, e: IndexExpr) -> Callable[[dict], int]:
        match e:
            case Idx(name):
                def f(env):
                    try:
                        return env[name]
                    except KeyError:
                        raise InterpError(f"index '{name}' used outside its loop") from None
                return f
            case IConst(v):
                return lambda env: v
            case DimSize(name):
                if name not in self.dims:
                    raise InterpError(f"unknown dimension '{name}'")
                v = self.dims[name]
                return lambda env: v
            case IPlus(base_expr, off):
                base = self.index(base_expr)
                return lambda env: base(env) + off
            case Stored(tensor, face, level):
                levels = self._face(tensor, face)[0]
                count = 1  # entries above level 0: the one root
                for stored in levels[:level + 1]:
                    if isinstance(stored, int):  # a dense level: every coordinate under every parent
                        count *= stored
                        continue
                    pos_arr, _ = stored
                    if not 0 <= count < len(pos_arr):
                        raise InterpError(f"{tensor}{face} level count: position {count} out of range")
                    count = pos_arr[count]
                return lambda env: count
            case ISum(args):
                fns = [self.index(a) for a in args]
                return lambda env: sum(f(env) for f in fns)
            case IMin(args):
                fns = [self.index(a) for a in args]
                return lambda env: min(f(env) for f in fns)
            case IMul(args):
                fns = [self.index(a) for a in args]

                def product(env):
                    out = 1
                    for f in fns:
                        out *= f(env)
                    return out
                return product
            case _:
                raise unknown(e, "interpreter (index)")

    def cond(self, c) -> Callable[[dict], bool]:
        match c:
            case Cmp(op, a_expr, b_expr):
                a, b = self.index(a_expr), self.index(b_expr)
                match op:
                    case "<":
                        return lambda env: a(env) < b(env)
                    case "<=":
                        return lambda env: a(env) <= b(env)
                    case "==":
                        return lambda env: a(env) == b(env)
                    case "!=":
                        return lambda env: a(env) != b(env)
                    case _:
                        raise InterpError(f"unknown comparison '{op}'")
            case And(terms):
                fns = [self.cond(t) for t in terms]
                return lambda env: all(t(env) for t in fns)
            case Or(terms):
                fns = [self.cond(t) for t in terms]
                return lambda env: any(t(env) for t in fns)
            case _:
                raise unknown(c, "interpreter (condition)")

    def offset(self, tensor: str, idx: tuple[IndexExpr, ...], sort=()) -> Callable[[dict], int]:
        if tensor not in self.bufs:
            raise InterpError(f"unknown tensor '{tensor}'")
        buf = self.bufs[tensor]
        if len(idx) != len(buf.shape):
            raise InterpError(f"{fmt_subscript(tensor, idx)}: {len(idx)} subscripts for a tensor of order "
                              f"{len(buf.shape)}")
        fns = [self.index(i) for i in idx]
        shape, strides = buf.shape, buf.strides
        groups = [tuple(g) for g in sort]

        def off(env):
            vals = [f(env) for f in fns]
            for g in groups:
                for p, v in zip(g, sorted(vals[q] for q in g)):
                    vals[p] = v
            o = 0
            for v, s, st in zip(vals, shape, strides):
                if not 0 <= v < s:
                    raise InterpError(f"out-of-range access {tensor}[{','.join(map(str, vals))}] "
                                      f"(shape {list(shape)}) at {fmt_subscript(tensor, idx, sort)}")
                o += v * st
            return o
        return off

    # -- values ----------------------------------------------------------------
    def value(self, e) -> Callable[[dict], object]:
        c, rnd = self.c, self.rnd
        match e:
            case Const(value):
                # a float32 literal is rounded to float32 first, as C's ``0.1f`` is
                v = int(value) if self.is_int else rnd(float(value)) if rnd else float(value)
                return lambda env: v
            case Read(tensor, idx, sort):
                off, data, name = self.offset(tensor, idx, sort), self.bufs[tensor].data, tensor
                c.reads.setdefault(name, 0)
                touched = c.touched.setdefault(name, set())

                def read(env):
                    o = off(env)
                    c.reads[name] += 1
                    touched.add(o)
                    return data[o]
                return read
            case Local(name):
                def local(env):
                    try:
                        return env[name]
                    except KeyError:
                        raise InterpError(f"local '{name}' read before it is defined") from None
                return local
            case Neg(arg):
                a = self.value(arg)
                return lambda env: -a(env)
            case SparseVal():
                _, vals, offsets = self._face(e.tensor, e.face)
                pos, name = self.index(e.pos), e.tensor
                c.reads.setdefault(name, 0)
                touched = c.touched.setdefault(name, set())

                def sval(env):
                    p = pos(env)
                    if not 0 <= p < len(vals):
                        raise InterpError(f"position {p} outside the {len(vals)} stored values of {name}{e.face}")
                    c.reads[name] += 1
                    touched.add(offsets[p])  # the dense offset of the entry, as for dense reads
                    return vals[p]
                return sval
            case Lookup(table, conds):
                values = [int(v) if self.is_int else rnd(float(v)) if rnd else float(v) for v in table]
                bits = [self.cond(b) for b in conds]

                def lookup(env):
                    key = 0
                    for n, b in enumerate(bits):
                        if b(env):
                            key |= 1 << n
                    return values[key]
                return lookup
            case Mul(terms):
                args = [self.value(a) for a in terms]

                def mul(env):
                    it = iter(args)
                    acc = next(it)(env)
                    for f in it:
                        acc = acc * f(env)
                        c.mults += 1
                        if rnd:
                            acc = rnd(acc)
                    return acc
                return mul
            case Add(terms):
                args = [self.value(a) for a in terms]

                def add(env):
                    it = iter(args)
                    acc = next(it)(env)
                    for f in it:
                        acc = acc + f(env)
                        c.adds += 1
                        if rnd:
                            acc = rnd(acc)
                    return acc
                return add
            case _:
                raise unknown(e, "interpreter (value)")

    # -- statements ------------------------------------------------------------
    def stmt(self, s: Stmt) -> Callable[[dict], None]:
        """``s`` compiled; an assignment also counts its runs (``Counts.runs``, in program order)."""
        fn = self._stmt(s)
        if not isinstance(s, Assign):
            return fn
        runs, n = self.c.runs, len(self.c.runs)
        self.c.statements.append(s)
        runs.append(0)

        def counted(env):
            fn(env)
            runs[n] += 1
        return counted

    def _stmt(self, s: Stmt) -> Callable[[dict], None]:
        c = self.c
        match s:
            case Block(stmts):
                fns = [self.stmt(x) for x in stmts]

                def block(env):
                    for f in fns:
                        f(env)
                return block
            case Loop(var, lo_expr, hi_expr, body_block, step):
                lo, hi, body = self.index(lo_expr), self.index(hi_expr), self.stmt(body_block)

                def loop(env):
                    for v in range(lo(env), hi(env), step):
                        env[var] = v
                        c.iterations += 1
                        body(env)
                    env.pop(var, None)
                return loop
            case If(cond_expr, then_block, else_block):
                cond, then = self.cond(cond_expr), self.stmt(then_block)
                other = self.stmt(else_block) if else_block is not None else None

                def if_(env):
                    if cond(env):
                        then(env)
                    elif other is not None:
                        other(env)
                return if_
            case SparseLevel():
                stored = self._face(s.tensor, s.face)[0][s.level]
                parent = self.index(s.parent) if s.parent is not None else None
                start = self.index(s.start) if s.start is not None else None
                low = self.index(s.low) if s.low is not None else None
                body, var, pvar = self.stmt(s.body), s.var, s.pos
                if isinstance(stored, int):  # a dense level: every coordinate, at position q*size + i
                    size = stored

                    def dense(env):
                        base = (parent(env) if parent is not None else 0) * size
                        first = 0
                        if start is not None:  # a position of the same fiber (or its end): the rest of it
                            first = start(env) - base
                            if not 0 <= first <= size:
                                raise InterpError(f"{s.tensor}{s.face} level {s.level}: start position {first + base} "
                                                  f"outside the dense fiber {base}..{base + size}")
                        if low is not None:  # coordinates from low on: here the coordinate is the offset
                            first = min(max(first, low(env)), size)
                        for i in (range(size - 1, first - 1, -1) if s.reverse else range(first, size)):
                            env[pvar] = base + i
                            env[var] = i
                            c.iterations += 1
                            body(env)
                    return dense
                pos_arr, crd = stored

                def level(env):
                    q = parent(env) if parent is not None else 0
                    if not 0 <= q < len(pos_arr) - 1:
                        raise InterpError(f"{s.tensor}{s.face} level {s.level}: parent position {q} out of range")
                    first = pos_arr[q]
                    if start is not None:  # a position of the same fiber (or its end): the rest of the fiber
                        first = start(env)
                        if not pos_arr[q] <= first <= pos_arr[q + 1]:
                            raise InterpError(f"{s.tensor}{s.face} level {s.level}: start position {first} outside "
                                              f"the fiber {pos_arr[q]}..{pos_arr[q + 1]} of parent {q}")
                    if low is not None:  # the first stored coordinate >= low: a binary search of the sorted fiber
                        first = bisect.bisect_left(crd, low(env), first, pos_arr[q + 1])
                    for p in (range(pos_arr[q + 1] - 1, first - 1, -1) if s.reverse else range(first, pos_arr[q + 1])):
                        env[pvar] = p
                        env[var] = crd[p]
                        c.iterations += 1
                        body(env)
                return level
            case SparseMerge():
                return self._merge(s)
            case SparseLocate():
                return self._locate(s)
            case Permute(groups, body_block):
                body = self.stmt(body_block)

                def permute(env):
                    saved = [[env[v] for v in g] for g in groups]
                    choices = [sorted(set(itertools.permutations(vals))) for vals in saved]
                    for combo in itertools.product(*choices):
                        for g, vals in zip(groups, combo):
                            env.update(zip(g, vals))
                        body(env)
                    for g, vals in zip(groups, saved):
                        env.update(zip(g, vals))
                return permute
            case BlasCall(nest=nest):  # its meaning: the loop nest it replaces
                return self._stmt(nest)
            case Let(name, value):
                val = self.value(value)

                def let(env):
                    env[name] = val(env)
                return let
            case Assign():
                return self._assign(s)
            case _:
                raise unknown(s, "interpreter (statement)")

    def _locate(self, s: SparseLocate) -> Callable[[dict], None]:
        """Find a coordinate in one level (see :class:`SparseLocate`): computed on a dense level, a binary
        search of the fiber on a compressed one; the body runs once if it is stored.  Not an iteration."""
        stored = self._face(s.tensor, s.face)[0][s.level]
        parent = self.index(s.parent) if s.parent is not None else None
        coord, body, pvar = self.index(s.coord), self.stmt(s.body), s.pos
        what = f"{s.tensor}{s.face} level {s.level}"

        def locate(env):
            q = parent(env) if parent is not None else 0
            i = coord(env)
            if isinstance(stored, int):  # dense: every coordinate 0..size-1, at q*size + i
                if not 0 <= i < stored:
                    raise InterpError(f"{what}: coordinate {i} outside 0..{stored}")
                env[pvar] = q * stored + i
            else:
                pos_arr, crd = stored
                if not 0 <= q < len(pos_arr) - 1:
                    raise InterpError(f"{what}: parent position {q} out of range")
                p = bisect.bisect_left(crd, i, pos_arr[q], pos_arr[q + 1])
                if p == pos_arr[q + 1] or crd[p] != i:
                    return  # not stored: the fill, which changes nothing here
                env[pvar] = p
            body(env)
            env.pop(pvar, None)
        return locate

    def _merge(self, s: SparseMerge) -> Callable[[dict], None]:
        """A merge of sorted coordinate lists, the two-pointer way (see :class:`SparseMerge`): each step visits
        the smallest coordinate any live operand is at, runs the body (``intersect``: only when every operand
        stores it), and advances the operands that store it; ``intersect`` stops when one operand is
        exhausted, ``union`` when all are.  An iteration is counted per run of the body."""
        c, union, var = self.c, s.mode == "union", s.var
        ops = []
        for o in s.operands:
            pos_arr, crd = self._face(o.tensor, o.face)[0][o.level]
            parent = self.index(o.parent) if o.parent is not None else None
            ops.append((pos_arr, crd, parent, o.pos, f"{o.tensor}{o.face} level {o.level}"))
        body = self.stmt(s.body)

        def merge(env):
            at, end = [], []
            for pos_arr, _, parent, _, what in ops:
                q = parent(env) if parent is not None else 0
                if not 0 <= q < len(pos_arr) - 1:
                    raise InterpError(f"{what}: parent position {q} out of range")
                at.append(pos_arr[q])
                end.append(pos_arr[q + 1])
            while True:
                live = [a < e for a, e in zip(at, end)]
                if not (any(live) if union else all(live)):
                    break
                coord = min(op[1][a] for op, a, alive in zip(ops, at, live) if alive)
                stored = [alive and op[1][a] == coord for op, a, alive in zip(ops, at, live)]
                env[var] = coord
                for op, a, here in zip(ops, at, stored):
                    env[op[3]] = a if here else -1
                if union or all(stored):
                    c.iterations += 1
                    body(env)
                for n, here in enumerate(stored):
                    at[n] += here
            env.pop(var, None)
            for op in ops:
                env.pop(op[3], None)
        return merge

    def _assign(self, s: Assign) -> Callable[[dict], None]:
        """``target op= value``: a local (an accumulator update, or a flush of one accumulator into
        another) or a tensor element (a copy, a flush of an accumulator, or an update)."""
        c = self.c
        val, op = self.value(s.value), s.op
        combine = _combine(op, self.rnd, self.is_int)
        # an accumulator written into a tensor, or added into another accumulator (unroll-and-jam's
        # per-row partials), is a flush, not work
        flush = isinstance(s.value, Local) and s.value.name in self.accumulators
        match s.target:
            case Local(name):
                def assign_local(env):
                    if name not in env:
                        raise InterpError(f"local '{name}' updated before it is defined")
                    env[name] = combine(env[name], val(env))
                    if flush:
                        c.flushes += 1
                    elif op != "=":
                        c.local_updates += 1
                return assign_local
            case Elem(tensor, idx):
                off, data = self.offset(tensor, idx), self.bufs[tensor].data
            case _:
                raise unknown(s.target, "interpreter (target)")
        if op == "=":
            def copy(env):
                o = off(env)
                data[o] = combine(None, val(env))
                c.copies += 1
            return copy

        if flush:
            def flush_(env):
                o = off(env)
                data[o] = combine(data[o], val(env))
                c.flushes += 1
            return flush_

        def update(env):
            o = off(env)
            data[o] = combine(data[o], val(env))
            c.updates += 1
        return update

    def _face(self, tensor: str, face: tuple[int, ...]):
        """One stored face as the program's storage format hands it to a kernel, as lists: (levels, vals,
        offsets), ``levels[l]`` the (pos, crd) of a compressed level and ``offsets[p]`` the dense offset of
        the point value ``p`` stands for (an absent face is empty)."""
        if tensor not in self.sparse:
            raise InterpError(f"program iterates sparse storage of '{tensor}' but none was given")
        st = self.sparse[tensor]
        key = (tensor, face)
        cache = self.__dict__.setdefault("_faces", {})
        if key not in cache:
            fmt = formats.get(self.prog.facts.format_of(tensor))
            layout = fmt.layout(len(st.shape), st.symmetry, face)
            arrays = fmt.arrays(st, face, np.dtype(numpy_type(self.prog.dtype)))
            kept = face_modes(len(st.shape), st.symmetry, face)
            levels: list[tuple[list[int], list[int]] | int] = []
            for n, level in enumerate(layout.levels):
                match level:
                    case Compressed(pos, crd):
                        levels.append((arrays[pos].tolist(), arrays[crd].tolist()))
                    case Dense():
                        levels.append(int(st.shape[kept[n]]))  # every coordinate below its extent
                    case _:
                        raise unknown(level, "interpreter (level kind)")
            coords = fmt.value_coords(st, face)
            strides = np.array([int(np.prod(st.shape[m + 1:])) for m in range(len(st.shape))], dtype=object)
            offsets = [int(x) for x in (coords.astype(object) @ strides)] if len(coords) else []
            cache[key] = (levels, arrays[layout.vals].tolist(), offsets)
        return cache[key]




def _combine(op: str, rnd, wrap: bool = False):
    """``old op= new`` (``=``: ``new``); ``wrap``: int64 values wrap around (see :func:`wrap_int64`)."""
    if wrap:
        inner = _combine(op, None)
        if op in ("+", "="):
            return lambda old, new: wrap_int64(inner(old, new))
        return lambda old, new: inner(old, wrap_int64(new))  # min/max compare the wrapped value
    match op:
        case "=":
            return lambda old, new: new
        case "+":
            if rnd:
                return lambda old, new: rnd(old + new)
            return lambda old, new: old + new
        # NaN on the right is ignored, like C's ``new < old ? new : old``
        case "min":
            return lambda old, new: new if new < old else old
        case "max":
            return lambda old, new: new if new > old else old
        case _:
            raise InterpError(f"unknown update '{op}'")


def run_program(prog: Program, arrays: dict[str, np.ndarray], dims: dict[str, int],
                sparse: dict | None = None) -> tuple[dict[str, np.ndarray], Counts]:
    """Run ``prog`` on validated input ``arrays``; return every output and temporary, and the counts.

    ``dims`` binds each symbolic dimension; inputs must already have the shapes
    and dtypes of their declarations (see :func:`systec_ref.api.bind`).
    ``sparse`` maps the tensors the program iterates as stored entries to
    their :class:`~systec_ref.storage.SparseTensor`.
    """
    counts = Counts()
    bufs: dict[str, _Buffer] = {}
    np_dtype = numpy_type(prog.dtype)
    for t in prog.tensors:
        shape = tuple(dims[d] if isinstance(d, str) else d for d in t.dims)
        if t.role == "in":
            arr = np.asarray(arrays[t.name], dtype=np_dtype, order="C")  # 0-d stays 0-d
            if arr.shape != shape:
                raise InterpError(f"{t.name} has shape {arr.shape}, expected {shape}",
                                  "inputs not bound to the declarations (a bug of the caller)")
        elif t.init is None:  # assigned before it is updated: a start that any missed element would show
            arr = np.full(shape, np.iinfo(np.int64).min if np.dtype(np_dtype).kind == "i" else np.nan, dtype=np_dtype)
        else:
            arr = np.full(shape, t.init, dtype=np_dtype)
        bufs[t.name] = _Buffer(t.name, arr)
    _Compiler(prog, bufs, dims, counts, sparse).stmt(prog.body)({})
    out = {}
    for t in prog.tensors:
        if t.role != "in":
            b = bufs[t.name]
            out[t.name] = np.array(b.data, dtype=np_dtype).reshape(b.shape)
            if t.role == "out" and t.format == "sparse" and prog.facts.output_symmetry:
                # stored canonical-only (replicate-output wrote no mirror): its value is the canonical
                # entries at every permutation of their subscripts
                out[t.name] = out[t.name][symmetrize_index(b.shape, prog.facts.output_symmetry)]
    return out, counts
