"""The reference interpreter for loop-nest programs.

It turns a :class:`~systec_ref.ir.nodes.Program` into nested Python closures
(one per node, built once) and runs them over flat Python lists, counting every
operation.  Every subscript is bounds-checked; an out-of-range access raises an
error that names the tensor and the subscript.  It is slow by design: it is
the definition every faster thing is checked against.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from ..dtypes import element, numpy_type, wrap_int64
from ..errors import SystecError
from ..ir.nodes import (
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
)
from ..ir.printer import fmt_subscript
from ..storage.faces import face_modes
from ..term import nodes
from .counts import Counts


class InterpError(SystecError):
    """A program did something undefined (out-of-range access, unbound name)."""



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
        if isinstance(e, Idx):
            name = e.name

            def f(env):
                try:
                    return env[name]
                except KeyError:
                    raise InterpError(f"index '{name}' used outside its loop") from None
            return f
        if isinstance(e, IConst):
            v = e.value
            return lambda env: v
        if isinstance(e, DimSize):
            if e.name not in self.dims:
                raise InterpError(f"unknown dimension '{e.name}'")
            v = self.dims[e.name]
            return lambda env: v
        assert isinstance(e, IPlus)
        base, off = self.index(e.base), e.offset
        return lambda env: base(env) + off

    def cond(self, c) -> Callable[[dict], bool]:
        if isinstance(c, Cmp):
            a, b = self.index(c.a), self.index(c.b)
            return {
                "<": lambda env: a(env) < b(env),
                "<=": lambda env: a(env) <= b(env),
                "==": lambda env: a(env) == b(env),
                "!=": lambda env: a(env) != b(env),
            }[c.op]
        terms = [self.cond(t) for t in c.terms]
        if isinstance(c, And):
            return lambda env: all(t(env) for t in terms)
        assert isinstance(c, Or)
        return lambda env: any(t(env) for t in terms)

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
        if isinstance(e, Const):
            # a float32 literal is rounded to float32 first, as C's ``0.1f`` is
            v = int(e.value) if self.is_int else rnd(float(e.value)) if rnd else float(e.value)
            return lambda env: v
        if isinstance(e, Read):
            off, data, name = self.offset(e.tensor, e.idx, e.sort), self.bufs[e.tensor].data, e.tensor
            c.reads.setdefault(name, 0)
            touched = c.touched.setdefault(name, set())

            def read(env):
                o = off(env)
                c.reads[name] += 1
                touched.add(o)
                return data[o]
            return read
        if isinstance(e, Local):
            name = e.name

            def local(env):
                try:
                    return env[name]
                except KeyError:
                    raise InterpError(f"local '{name}' read before it is defined") from None
            return local
        if isinstance(e, Neg):
            a = self.value(e.arg)
            return lambda env: -a(env)
        if isinstance(e, SparseVal):
            face = self._face(e.tensor, e.face)
            vals, offsets, pos, name = face[2], face[3], self.index(e.pos), e.tensor
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
        if isinstance(e, Lookup):
            values = [int(v) if self.is_int else rnd(float(v)) if rnd else float(v) for v in e.values]
            bits = [self.cond(b) for b in e.bits]

            def lookup(env):
                key = 0
                for n, b in enumerate(bits):
                    if b(env):
                        key |= 1 << n
                return values[key]
            return lookup
        args = [self.value(a) for a in e.args]
        if isinstance(e, Mul):
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
        assert isinstance(e, Add)

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
        if isinstance(s, Block):
            fns = [self.stmt(x) for x in s.body]

            def block(env):
                for f in fns:
                    f(env)
            return block
        if isinstance(s, Loop):
            lo, hi, body, var, step = self.index(s.lo), self.index(s.hi), self.stmt(s.body), s.var, s.step

            def loop(env):
                for v in range(lo(env), hi(env), step):
                    env[var] = v
                    c.iterations += 1
                    body(env)
                env.pop(var, None)
            return loop
        if isinstance(s, If):
            cond, then = self.cond(s.cond), self.stmt(s.then)
            other = self.stmt(s.orelse) if s.orelse is not None else None

            def if_(env):
                if cond(env):
                    then(env)
                elif other is not None:
                    other(env)
            return if_
        if isinstance(s, SparseLevel):
            pos_arr, crd = self._face(s.tensor, s.face)[0][s.level], self._face(s.tensor, s.face)[1][s.level]
            parent = self.index(s.parent) if s.parent is not None else None
            body, var, pvar = self.stmt(s.body), s.var, s.pos

            def level(env):
                q = parent(env) if parent is not None else 0
                if not 0 <= q < len(pos_arr) - 1:
                    raise InterpError(f"{s.tensor}{s.face} level {s.level}: parent position {q} out of range")
                for p in range(pos_arr[q], pos_arr[q + 1]):
                    env[pvar] = p
                    env[var] = crd[p]
                    c.iterations += 1
                    body(env)
            return level
        if isinstance(s, Permute):
            groups, body = s.groups, self.stmt(s.body)

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
        if isinstance(s, Let):
            val, name = self.value(s.value), s.name

            def let(env):
                env[name] = val(env)
            return let
        assert isinstance(s, Assign)
        val, op = self.value(s.value), s.op
        if isinstance(s.target, Local):
            name = s.target.name
            combine = _combine(op, self.rnd, self.is_int)
            # one accumulator added into another (unroll-and-jam's per-row partials) is a flush, not work
            partial = isinstance(s.value, Local) and s.value.name in self.accumulators

            def assign_local(env):
                if name not in env:
                    raise InterpError(f"local '{name}' updated before it is defined")
                env[name] = combine(env[name], val(env))
                if partial:
                    c.flushes += 1
                elif op != "=":
                    c.local_updates += 1
            return assign_local
        t: Elem = s.target
        off, data = self.offset(t.tensor, t.idx), self.bufs[t.tensor].data
        combine = _combine(op, self.rnd, self.is_int)
        if op == "=":
            def copy(env):
                o = off(env)
                data[o] = combine(None, val(env))
                c.copies += 1
            return copy

        if isinstance(s.value, Local) and s.value.name in self.accumulators:
            def flush(env):
                o = off(env)
                data[o] = combine(data[o], val(env))
                c.flushes += 1
            return flush

        def update(env):
            o = off(env)
            data[o] = combine(data[o], val(env))
            c.updates += 1
        return update

    def _face(self, tensor: str, face: tuple[int, ...]):
        """(pos lists, crd lists, vals) of one face; an absent face is empty."""
        if tensor not in self.sparse:
            raise InterpError(f"program iterates sparse storage of '{tensor}' but none was given")
        st = self.sparse[tensor]
        key = (tensor, face)
        cache = self.__dict__.setdefault("_faces", {})
        if key not in cache:
            f = st.faces.get(face)
            if f is None:
                levels = len(face_modes(len(st.shape), st.symmetry, face))
                cache[key] = ([[0, 0]] + [[0] for _ in range(levels - 1)], [[] for _ in range(levels)], [], [])
            else:
                strides = np.array([int(np.prod(st.shape[m + 1:])) for m in range(len(st.shape))], dtype=object)
                offsets = [int(x) for x in (st.face_coords(face).astype(object) @ strides)] if f.nnz else []
                cache[key] = ([p.tolist() for p in f.pos], [c.tolist() for c in f.crd], f.vals.tolist(), offsets)
        return cache[key]




def _combine(op: str, rnd, wrap: bool = False):
    """``old op= new`` (``=``: ``new``); ``wrap``: int64 values wrap around (see :func:`wrap_int64`)."""
    if wrap:
        inner = _combine(op, None)
        if op in ("+", "="):
            return lambda old, new: wrap_int64(inner(old, new))
        return lambda old, new: inner(old, wrap_int64(new))  # min/max compare the wrapped value
    if op == "=":
        return lambda old, new: new
    if op == "+":
        if rnd:
            return lambda old, new: rnd(old + new)
        return lambda old, new: old + new
    # NaN on the right is ignored, like C's ``new < old ? new : old``
    if op == "min":
        return lambda old, new: new if new < old else old
    assert op == "max"
    return lambda old, new: new if new > old else old


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
                raise InterpError(f"{t.name} has shape {arr.shape}, expected {shape}")
        else:
            arr = np.full(shape, t.init, dtype=np_dtype)
        bufs[t.name] = _Buffer(t.name, arr)
    _Compiler(prog, bufs, dims, counts, sparse).stmt(prog.body)({})
    out = {}
    for t in prog.tensors:
        if t.role != "in":
            b = bufs[t.name]
            out[t.name] = np.array(b.data, dtype=np_dtype).reshape(b.shape)
    return out, counts
