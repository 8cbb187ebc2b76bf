"""The meaning of a kernel, implemented literally (README, "A kernel").

The output starts at the identity of the reduction; then, for every point of
the full index space, ``lhs op= rhs``.  Nothing else: no loop nest, no pass.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..dtypes import element, identity, numpy_type
from ..lang.ast import Access, BinOp, Expr, Kernel, Neg, Number, index_dims, index_vars, literal_value
from ..term import unknown
from .counts import Counts
from .loops import _combine


def run_definition(k: Kernel, arrays: dict[str, np.ndarray], dims: dict[str, int]) -> tuple[np.ndarray, Counts]:
    """Evaluate ``k`` on validated inputs; return the output array and the counts."""
    counts = Counts()
    out = k.output
    dtype = out.dtype
    is_int = dtype == "int64"
    rnd = element(dtype).round if dtype == "float32" else None
    data = {d.name: np.asarray(arrays[d.name], dtype=numpy_type(dtype)) for d in k.inputs}
    lists = {name: a.tolist() for name, a in data.items()}
    for name in lists:
        counts.reads[name] = 0
        counts.touched[name] = set()

    def ev(e: Expr, env: dict[str, int]):
        match e:
            case Number(value):
                v = literal_value(value, dtype)
                return v if is_int else rnd(v) if rnd else v
            case Access(tensor, indices):
                v = lists[tensor]
                for i in indices:
                    v = v[env[i]]
                counts.reads[tensor] += 1
                counts.touched[tensor].add(tuple(env[i] for i in indices))
                return v
            case Neg(operand):
                return -ev(operand, env)
            case BinOp(op, left, right):
                a, b = ev(left, env), ev(right, env)
                if op == "*":
                    counts.mults += 1
                    r = a * b
                else:
                    counts.adds += 1
                    r = a + b if op == "+" else a - b
                return rnd(r) if rnd else r
            case _:
                raise unknown(e, "definition interpreter")

    red = k.assignment.reduction
    combine = _combine(red, rnd, is_int)  # int64 wraps around, as in every stage and in C
    shape = tuple(dims[d] if isinstance(d, str) else d for d in out.dims)
    result = np.full(shape, identity(red, dtype), dtype=numpy_type(dtype)).tolist() if shape else None
    scalar = identity(red, dtype)
    ivars = index_vars(k)
    idims = index_dims(k)
    extents = [range(dims[idims[i]] if isinstance(idims[i], str) else idims[i]) for i in ivars]
    lhs = k.assignment.lhs.indices
    rhs = k.rhs
    for point in itertools.product(*extents):
        env = dict(zip(ivars, point))
        v = ev(rhs, env)
        counts.updates += 1
        if lhs:
            row = result
            for i in lhs[:-1]:
                row = row[env[i]]
            last = env[lhs[-1]]
            row[last] = combine(row[last], v)
        else:
            scalar = combine(scalar, v)
    counts.iterations = 0
    if lhs:
        return np.array(result, dtype=numpy_type(dtype)).reshape(shape), counts
    return np.array(scalar, dtype=numpy_type(dtype)), counts
