"""Calling a compiled kernel: the last check before C sees an array.

Arrays arrive validated by :func:`systec_ref.tensors.bind` (shape, dtype,
symmetry); non-contiguous or Fortran-ordered arrays were copied to C order
there (documented in the README).  Here every pointer is checked once more —
dtype, C-contiguity, shape against the dimensions passed — so generated code
never indexes an array whose extent it was not told.

Names reach C only as validated identifiers: the parser checks them, and
:func:`check_names` checks them again here (a :class:`Program` may be built
by hand).  One compiled kernel may be called from several threads at once:
ctypes releases the GIL during the call, every call gets fresh output arrays,
and the C keeps no state between calls (no globals; temporaries are
allocated per call).
"""

from __future__ import annotations

import ctypes
import math
import re
from collections import Counter
from collections.abc import Callable

import numpy as np

from ..dtypes import numpy_type
from ..errors import InputError, ToolError
from ..ir.nodes import Let, Local, Program
from ..lang.names import c_conflict
from ..storage.faces import face_modes
from ..term import nodes
from .build import load
from .c import dense_inputs, dim_names, emit_c, face_id, function_name, sparse_faces

_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,62}\Z")


def check_names(program: Program) -> None:
    """Raise :class:`ToolError` unless the kernel, tensor and dimension names of ``program`` are C
    identifiers (a letter, then letters, digits and '_'; at most 63 characters; not reserved in C)."""
    names = [("kernel", program.name)] + [("tensor", t.name) for t in program.tensors]
    names += [("dimension", d) for d in dim_names(program)]
    for what, name in names:
        if not isinstance(name, str) or not _IDENT.match(name) or c_conflict(name):
            raise ToolError(f"{what} name {name!r} of kernel {program.name!r} is not a valid C identifier; "
                            f"refusing to compile it")
    # the parser keeps user names apart; this catches a pass (or a hand-built program) that does not
    info = {t.name: t for t in program.tensors}
    params = [n for _, n in names[1:]]
    for tensor, face in sparse_faces(program):
        levels = range(len(face_modes(info[tensor].order, info[tensor].symmetry, face)))
        params += [f"{face_id(tensor, face)}_{kind}{lvl}" for lvl in levels for kind in ("pos", "crd")]
        params.append(f"{face_id(tensor, face)}_vals")
    local = set()
    for n in nodes(program.body):
        local |= {getattr(n, "var", None), getattr(n, "pos", None)}
        if isinstance(n, (Let, Local)):
            local.add(n.name)
    clash = sorted({n for n, c in Counter(params).items() if c > 1} | (set(params) & local))
    if clash:
        raise ToolError(f"kernel {program.name!r} would give C the name {clash[0]!r} twice; refusing to compile it")


class CFunction:
    """A program compiled to C and loaded; call it with validated arrays and dims."""

    def __init__(self, program: Program, stage: str = ""):
        check_names(program)
        self.program = program
        self.source = emit_c(program, stage)
        lib = load(self.source, program.name)
        fn = getattr(lib, function_name(program))
        self.dims = dim_names(program)
        args = [ctypes.c_int64] * len(self.dims)
        self.dense = dense_inputs(program)
        args += [ctypes.c_void_p for t in program.tensors
                 if (t.role == "in" and t.name in self.dense) or t.role == "out"]
        self.faces = sparse_faces(program)
        info = {t.name: t for t in program.tensors}
        args += [ctypes.c_void_p for tensor, face in self.faces
                 for _ in range(2 * len(face_modes(info[tensor].order, info[tensor].symmetry, face)) + 1)]
        fn.argtypes = args
        fn.restype = ctypes.c_int
        self.fn = fn

    def __call__(self, arrays: dict[str, np.ndarray], dims: dict[str, int],
                 sparse: dict | None = None) -> dict[str, np.ndarray]:
        """Run on validated ``arrays``; ``sparse`` maps each iterated tensor to its
        :class:`~systec_ref.storage.SparseTensor` (see :func:`systec_ref.storage.for_program`).
        Only the inputs in ``self.dense`` need a dense array."""
        return self.prepare(arrays, dims, sparse)()

    def prepare(self, arrays: dict[str, np.ndarray], dims: dict[str, int],
                sparse: dict | None = None) -> Callable[[], dict[str, np.ndarray]]:
        """Check the arguments once and return a call that runs the kernel on them (fresh outputs each
        time): what a benchmark times, without per-call argument conversion."""
        p = self.program
        dtype = np.dtype(numpy_type(p.dtype))
        before: list[object] = [int(dims[d]) for d in self.dims]
        keep: list[np.ndarray] = []
        outs: list[tuple[str, tuple[int, ...]]] = []
        after: list[object] = []
        for t in p.tensors:
            if t.role == "temp" or (t.role == "in" and t.name not in self.dense):
                continue
            shape = tuple(dims[d] if isinstance(d, str) else d for d in t.dims)
            if t.role == "in":
                a = arrays.get(t.name)
                if not isinstance(a, np.ndarray):
                    raise InputError(f"kernel {p.name} reads {t.name} element by element: pass it as a dense array")
                if a.dtype != dtype or not a.flags.c_contiguous or a.shape != shape:
                    raise InputError(f"{t.name}: expected a C-contiguous {dtype} array of shape {shape}, got "
                                     f"{a.dtype} {a.shape} ({'C' if a.flags.c_contiguous else 'not C'}-contiguous)")
                keep.append(a)
                (after if outs else before).append(a.ctypes.data)
            else:
                outs.append((t.name, shape))
                after.append(None)  # filled per call
        for tensor, face in self.faces:
            st = (sparse or {}).get(tensor)
            if st is None:
                raise InputError(f"kernel {p.name} iterates the stored entries of {tensor}: pass its sparse storage")
            for a in _face_arrays(st, face, dtype):
                keep.append(a)
                after.append(a.ctypes.data)
        fn = self.fn

        def call() -> dict[str, np.ndarray]:
            try:
                made = {name: np.empty(shape, dtype=dtype) for name, shape in outs}
            except (ValueError, MemoryError):
                name, shape = max(outs, key=lambda o: math.prod(o[1]))  # the largest is the culprit
                raise InputError(f"kernel {p.name}: cannot allocate its output {name} of shape {shape} "
                                 f"({math.prod(shape) * dtype.itemsize:.3g} bytes)") from None
            it = iter(made.values())
            args = before + [a if a is not None else next(it).ctypes.data for a in after]
            status = fn(*args)
            _ = keep  # the arrays behind the pointers live as long as this call
            if status != 0:
                raise ToolError(f"kernel {p.name}: out of memory for its temporaries")
            return made
        return call


def _face_arrays(st, face: tuple[int, ...], dtype: np.dtype) -> list[np.ndarray]:
    """pos/crd per level, then vals, as C-contiguous arrays (an absent face is empty)."""
    f = st.faces.get(face)
    out: list[np.ndarray] = []
    for lvl in range(len(face_modes(len(st.shape), st.symmetry, face))):
        if f is None:
            pos = np.zeros(2 if lvl == 0 else 1, dtype=np.int64)
            crd = np.zeros(1, dtype=np.int64)  # a valid pointer; never read
        else:
            pos, crd = f.pos[lvl], f.crd[lvl] if len(f.crd[lvl]) else np.zeros(1, dtype=np.int64)
        out += [np.ascontiguousarray(pos, dtype=np.int64), np.ascontiguousarray(crd, dtype=np.int64)]
    vals = f.vals if f is not None and len(f.vals) else np.zeros(1, dtype=dtype)
    out.append(np.ascontiguousarray(vals, dtype=dtype))
    return out
