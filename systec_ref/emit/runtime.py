"""Calling a compiled kernel: the last check before C sees an array.

Arrays arrive validated by :func:`systec_ref.tensors.bind` (shape, dtype,
symmetry); non-contiguous or Fortran-ordered arrays were copied to C order
there (documented in the README).  Here every pointer is checked once more —
dtype, C-contiguity, shape against the dimensions passed — so generated code
never indexes an array whose extent it was not told.
"""

from __future__ import annotations

import ctypes

import numpy as np

from ..errors import InputError, ToolError
from ..interp.loops import NP_DTYPES
from ..ir.nodes import Program
from .build import load
from .c import dim_names, emit_c, function_name


class CFunction:
    """A program compiled to C and loaded; call it with validated arrays and dims."""

    def __init__(self, program: Program, stage: str = ""):
        self.program = program
        self.source = emit_c(program, stage)
        lib = load(self.source, program.name)
        fn = getattr(lib, function_name(program))
        self.dims = dim_names(program)
        args = [ctypes.c_int64] * len(self.dims)
        args += [ctypes.c_void_p for t in program.tensors if t.role in ("in", "out")]
        fn.argtypes = args
        fn.restype = ctypes.c_int
        self.fn = fn

    def __call__(self, arrays: dict[str, np.ndarray], dims: dict[str, int]) -> dict[str, np.ndarray]:
        p = self.program
        dtype = np.dtype(NP_DTYPES[p.dtype])
        args: list[object] = [int(dims[d]) for d in self.dims]
        keep = []
        outs = {}
        for t in p.tensors:
            if t.role == "temp":
                continue
            shape = tuple(dims[d] if isinstance(d, str) else d for d in t.dims)
            if t.role == "in":
                a = arrays[t.name]
                if a.dtype != dtype or not a.flags.c_contiguous or a.shape != shape:
                    raise InputError(f"{t.name}: expected a C-contiguous {dtype} array of shape {shape}, got "
                                     f"{a.dtype} {a.shape} ({'C' if a.flags.c_contiguous else 'not C'}-contiguous)")
            else:
                a = np.empty(shape, dtype=dtype)
                outs[t.name] = a
            keep.append(a)
            args.append(a.ctypes.data)
        status = self.fn(*args)
        if status != 0:
            raise ToolError(f"kernel {p.name}: out of memory for its temporaries")
        return outs
