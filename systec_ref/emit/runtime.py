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
from .c import dim_names, emit_c, function_name, sparse_faces


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
        self.faces = sparse_faces(program)
        orders = {t.name: t.order for t in program.tensors}
        args += [ctypes.c_void_p for tensor, _ in self.faces for _ in range(2 * orders[tensor] + 1)]
        fn.argtypes = args
        fn.restype = ctypes.c_int
        self.fn = fn

    def __call__(self, arrays: dict[str, np.ndarray], dims: dict[str, int],
                 sparse: dict | None = None) -> dict[str, np.ndarray]:
        """Run on validated ``arrays``; ``sparse`` maps each iterated tensor to its
        :class:`~systec_ref.storage.SparseTensor` (see :func:`systec_ref.storage.for_program`)."""
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
        for tensor, face in self.faces:
            st = (sparse or {}).get(tensor)
            if st is None:
                raise InputError(f"kernel {p.name} iterates the stored entries of {tensor}: pass its sparse storage")
            for a in _face_arrays(st, face, dtype):
                keep.append(a)
                args.append(a.ctypes.data)
        status = self.fn(*args)
        if status != 0:
            raise ToolError(f"kernel {p.name}: out of memory for its temporaries")
        return outs


def _face_arrays(st, face: tuple[int, ...], dtype: np.dtype) -> list[np.ndarray]:
    """pos/crd per level, then vals, as C-contiguous arrays (an absent face is empty)."""
    f = st.faces.get(face)
    order = len(st.shape)
    out: list[np.ndarray] = []
    for lvl in range(order):
        if f is None:
            pos = np.zeros(2 if lvl == 0 else 1, dtype=np.int64)
            crd = np.zeros(1, dtype=np.int64)  # a valid pointer; never read
        else:
            pos, crd = f.pos[lvl], f.crd[lvl] if len(f.crd[lvl]) else np.zeros(1, dtype=np.int64)
        out += [np.ascontiguousarray(pos, dtype=np.int64), np.ascontiguousarray(crd, dtype=np.int64)]
    vals = f.vals if f is not None and len(f.vals) else np.zeros(1, dtype=dtype)
    out.append(np.ascontiguousarray(vals, dtype=dtype))
    return out
