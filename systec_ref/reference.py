"""An independent numpy evaluation of a kernel, to check the interpreter against.

Products under ``+=`` go to ``numpy.einsum``; everything else (sums, ``min=``,
``max=``) is evaluated by broadcasting the right-hand side over the full index
space and reducing with ``numpy.add`` / ``fmin`` / ``fmax``.  ``fmin``/``fmax``
ignore a NaN right-hand side, as the interpreters (and C's ``new < old ? new : old``)
do; ``minimum``/``maximum`` would propagate it (``inf - inf`` under ``min=`` with
a sparse ``fill inf`` input).
"""

from __future__ import annotations

import numpy as np

from .dtypes import identity, numpy_type, wrap_int64
from .lang.ast import Access, BinOp, Expr, Kernel, Neg, Number, index_dims, index_vars, literal_value
from .term import unknown

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _product_factors(e: Expr, dtype: str) -> tuple[float, list[Access]] | None:
    """(coefficient, factors) of a product of literals and accesses; None for anything else."""
    match e:
        case Number(value):
            return literal_value(value, dtype), []
        case Access():
            return 1, [e]
        case Neg(operand):
            f = _product_factors(operand, dtype)
            return None if f is None else (-f[0], f[1])
        case BinOp("*", left, right):
            a, b = _product_factors(left, dtype), _product_factors(right, dtype)
            if a is None or b is None:
                return None
            return a[0] * b[0], a[1] + b[1]
        case BinOp():  # a sum or a difference
            return None
        case _:
            raise unknown(e, "numpy reference (product)")


def numpy_reference(k: Kernel, arrays: dict[str, np.ndarray], dims: dict[str, int]) -> tuple[np.ndarray, str]:
    """Return (result, method) where method is ``"numpy.einsum"`` or ``"numpy broadcasting"``."""
    ivars = index_vars(k)
    letter = {v: _LETTERS[n] for n, v in enumerate(ivars)}
    dtype = numpy_type(k.output.dtype)
    lhs = k.assignment.lhs
    red = k.assignment.reduction
    prod = _product_factors(k.rhs, k.output.dtype) if red == "+" else None
    if prod is not None and prod[1]:
        coeff, factors = prod
        spec = ",".join("".join(letter[i] for i in a.indices) for a in factors)
        spec += "->" + "".join(letter[i] for i in lhs.indices)
        res = np.einsum(spec, *[arrays[a.tensor] for a in factors])
        if k.output.dtype == "int64":
            coeff = wrap_int64(coeff)  # numpy's int64 wraps; a folded literal product must too
        return np.asarray(coeff * res, dtype=dtype), "numpy.einsum"
    shape = [dims[d] if isinstance(d, str) else d for d in _index_extents(k)]

    def ev(e: Expr) -> np.ndarray:
        match e:
            case Number(value):
                return np.asarray(literal_value(value, k.output.dtype), dtype=dtype)
            case Access(tensor, indices):
                arr = arrays[tensor]
                uniq = sorted(set(indices), key=ivars.index)
                view = np.einsum("".join(letter[i] for i in indices) + "->" + "".join(letter[i] for i in uniq), arr)
                full = [shape[n] if v in uniq else 1 for n, v in enumerate(ivars)]
                return view.reshape(full)
            case Neg(operand):
                return -ev(operand)
            case BinOp(op, left, right):
                a, b = ev(left), ev(right)
                return {"*": np.multiply, "+": np.add, "-": np.subtract}[op](a, b)
            case _:
                raise unknown(e, "numpy reference")

    with np.errstate(invalid="ignore", over="ignore"):
        full = np.broadcast_to(ev(k.rhs), shape).astype(dtype)
        ufunc = {"+": np.add, "min": np.fmin, "max": np.fmax}[red]
        reduce_axes = tuple(n for n, v in enumerate(ivars) if v not in lhs.indices)
        # also with no axis to reduce: every point is combined with the identity (drops a NaN for min/max)
        res = ufunc.reduce(full, axis=reduce_axes, initial=identity(red, k.output.dtype))
    kept = [v for v in ivars if v in lhs.indices]
    res = np.transpose(res, [kept.index(i) for i in lhs.indices]) if lhs.indices else res
    return np.asarray(res, dtype=dtype), "numpy broadcasting"


def _index_extents(k: Kernel) -> list[str | int]:
    d = index_dims(k)
    return [d[v] for v in index_vars(k)]
