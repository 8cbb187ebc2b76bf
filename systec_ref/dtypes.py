"""Element types: everything the compiler knows about ``float64``, ``float32`` and ``int64``.

One table, read by every stage: the parser (which names are element types), the checks (the
range of an int64 literal), the comparison of results (the tolerance of each type), the
interpreter and the definition (numpy type, rounding, identity of each reduction), the C emitter
(C type, suffix of a float literal) and the runtime (numpy type of each argument).  A new
element type starts as a new row here; the integer-only code (int64 literals written with
``INT64_C``, arithmetic in ``uint64_t`` so overflow wraps) is written for int64 and would need
its own case.

The identity of a reduction is the value an output starts at and the value an unstored entry
must hold for a sparse nest to skip it: 0 for ``+``; for ``min`` the largest value of the type
(``+inf`` for floats, ``INT64_MAX`` for int64) and for ``max`` the smallest.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

#: the reduction operators of the language (``=`` and ``+=`` both reduce with ``+``)
REDUCTIONS = ("+", "min", "max")


@dataclass(frozen=True)
class ElementType:
    """One element type: its names in the language, numpy and C, and its limits."""

    name: str
    numpy: type
    c_type: str
    is_int: bool
    #: smallest and largest value (floats: the infinities)
    low: int | float
    high: int | float
    #: how close two results must be to agree (:func:`systec_ref.agree`): 0 means exactly
    rtol: float
    #: what follows a floating literal of this type in C (``1.5f`` is a float, ``1.5`` a double)
    c_suffix: str = ""

    def identity(self, reduction: str) -> int | float:
        """The value that leaves ``x`` unchanged under ``reduction`` (``+``, ``min`` or ``max``)."""
        match reduction:
            case "+":
                return 0 if self.is_int else 0.0
            case "min":
                return self.high
            case "max":
                return self.low
        raise ValueError(f"unknown reduction {reduction!r}")

    def round(self, v: float) -> float:
        """``v`` rounded to this type (float32: to the nearest float32; others unchanged)."""
        return _f32(v) if self.name == "float32" else v


def _f32(v: float) -> float:
    return struct.unpack("f", struct.pack("f", v))[0]


ELEMENT_TYPES: dict[str, ElementType] = {
    t.name: t for t in (
        ElementType("float64", np.float64, "double", False, -math.inf, math.inf, 1e-12),
        ElementType("float32", np.float32, "float", False, -math.inf, math.inf, 1e-5, "f"),
        ElementType("int64", np.int64, "int64_t", True, INT64_MIN, INT64_MAX, 0.0),
    )
}

#: the element type names, in the order the language documents them
DTYPES: tuple[str, ...] = tuple(ELEMENT_TYPES)


def element(name: str) -> ElementType:
    return ELEMENT_TYPES[name]


def identity(reduction: str, dtype: str) -> int | float:
    """The identity of ``reduction`` in element type ``dtype``."""
    return ELEMENT_TYPES[dtype].identity(reduction)


def numpy_type(dtype: str) -> type:
    return ELEMENT_TYPES[dtype].numpy


def wrap_int64(v: int) -> int:
    """``v`` modulo 2^64 as a signed int64: two's-complement wrap-around, what numpy's int64 and the
    generated C (which computes in uint64_t) do.  ``+`` and ``*`` commute with it, so wrapping where a
    value is stored or compared gives what wrapping every operation would: every stage, however it
    regroups a sum or a product, computes the same int64 result."""
    return ((v + 2**63) & (2**64 - 1)) - 2**63
