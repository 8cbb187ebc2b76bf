"""Calling a compiled kernel: the last check before C sees an array.

Arrays arrive validated by :func:`systec_ref.tensors.bind` (shape, dtype,
symmetry); non-contiguous or Fortran-ordered arrays were copied to C order
there (documented in the README).  Here every pointer is checked once more —
dtype, C-contiguity, shape against the dimensions passed — so generated code
never indexes an array whose extent it was not told.

The arguments are packed by walking the kernel's parameters (:func:`systec_ref.emit.abi.parameters`,
the list the C signature was made from): a dimension, a dense input, an output (fresh per call), or
an array of a stored face, which the program's storage format extracts from the
:class:`~systec_ref.storage.SparseTensor` (:meth:`~systec_ref.storage.formats.SparseFormat.arrays`).

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
from ..errors import InputError, InternalError, ToolError
from ..ir.nodes import Let, Local, Program
from ..lang.names import c_conflict, function_name
from ..storage import formats
from ..storage.formats import Array
from ..storage.packed import PackedTensor
from ..term import nodes, unknown
from . import abi, sparse_out
from .abi import BlasRoutine, DenseInput, Dim, FaceArray, Output, PackedInput, SparseOutput
from .build import load
from .c import emit_c

_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,62}\Z")


def check_names(program: Program) -> None:
    """Raise :class:`ToolError` unless the kernel, tensor and dimension names of ``program`` are C
    identifiers (a letter, then letters, digits and '_'; at most 63 characters; not reserved in C)."""
    names = [("kernel", program.name)] + [("tensor", t.name) for t in program.tensors]
    names += [("dimension", d) for d in abi.dim_names(program)]
    for what, name in names:
        if not isinstance(name, str) or not _IDENT.match(name) or c_conflict(name):
            raise ToolError(f"{what} name {name!r} of kernel {program.name!r} is not a valid C identifier; "
                            f"refusing to compile it")
    # the parser keeps user names apart; this catches a pass (or a hand-built program) that does not
    params = [n for _, n in names[1:]]
    params += [q.name for q in abi.parameters(program) if isinstance(q.source, FaceArray)]
    local = set()
    for n in nodes(program.body):
        local |= {getattr(n, "var", None), getattr(n, "pos", None)}
        if isinstance(n, (Let, Local)):
            local.add(n.name)
    clash = sorted({n for n, c in Counter(params).items() if c > 1} | (set(params) & local))
    if clash:
        raise ToolError(f"kernel {program.name!r} would give C the name {clash[0]!r} twice; refusing to compile it")


_BLAS: dict[str, int] = {}


def blas_address(routine: str) -> int:
    """The address of double-precision BLAS ``routine`` (``gemm``: ``dgemm``) in the BLAS scipy is built with,
    from the C-API capsules of ``scipy.linalg.cython_blas`` (no link-time dependency: the compiled kernel is
    handed the address at every call)."""
    if routine not in _BLAS:
        try:
            from scipy.linalg import cython_blas
            capsule = cython_blas.__pyx_capi__["d" + routine]
        except (ImportError, AttributeError, KeyError) as e:  # scipy is a dependency; a broken install says so
            raise ToolError(f"no BLAS routine d{routine}: scipy.linalg.cython_blas is unavailable ({e})") from None
        name = ctypes.pythonapi.PyCapsule_GetName
        name.restype, name.argtypes = ctypes.c_char_p, [ctypes.py_object]
        pointer = ctypes.pythonapi.PyCapsule_GetPointer
        pointer.restype, pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
        _BLAS[routine] = int(pointer(capsule, name(capsule)))
    return _BLAS[routine]


class CFunction:
    """A program compiled to C and loaded; call it with validated arrays and dims."""

    def __init__(self, program: Program, stage: str = ""):
        check_names(program)
        self.program = program
        self.source = emit_c(program, stage)
        lib = load(self.source, program.name)
        fn = getattr(lib, function_name(program.name))
        #: the calling convention: the C signature was made from the same list
        self.params = abi.parameters(program)
        fn.argtypes = abi.argtypes(self.params)
        fn.restype = ctypes.c_int
        self.fn = fn
        #: a sparse output's record reader frees its block with the library's own ``free``
        self._free = None
        if sparse_out.sparse_output(program) is not None:
            self._free = getattr(lib, sparse_out.free_name(program.name))
            self._free.argtypes, self._free.restype = [ctypes.c_void_p], None
        self.dims = abi.dim_names(program)
        #: the inputs passed as dense arrays
        self.dense = [q.source.tensor for q in self.params if isinstance(q.source, DenseInput)]
        #: the (tensor, face) pairs iterated as stored entries
        self.faces = abi.sparse_faces(program)
        # where each face's arrays go in the argument list, found once: a call then asks the storage
        # format for a face's arrays and drops them in place
        self._face_slots: dict[tuple[str, tuple[int, ...]], list[tuple[int, Array, type]]] = {}
        for n, q in enumerate(self.params):
            if isinstance(q.source, FaceArray):
                self._face_slots.setdefault((q.source.tensor, q.source.face), []).append((n, q.source.array, q.numpy))
        self._other = [(n, q.source) for n, q in enumerate(self.params) if not isinstance(q.source, FaceArray)]

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
        def shape_of(tensor: str) -> tuple[int, ...]:
            return tuple(dims[d] if isinstance(d, str) else d for d in p.tensor(tensor).dims)
        args: list[object] = [None] * len(self.params)  # an output's place is filled per call
        keep: list[np.ndarray] = []
        outs: list[tuple[int, str, tuple[int, ...]]] = []
        sparse_outs: list[tuple[int, str, tuple[int, ...]]] = []
        for n, source in self._other:
            match source:
                case Dim(name):
                    args[n] = int(dims[name])
                case DenseInput(tensor):
                    a, shape = arrays.get(tensor), shape_of(tensor)
                    if not isinstance(a, np.ndarray):
                        raise InputError(f"kernel {p.name} reads {tensor} element by element: pass it as a dense array")
                    if a.dtype != dtype or not a.flags.c_contiguous or a.shape != shape:
                        raise InputError(f"{tensor}: expected a C-contiguous {dtype} array of shape {shape}, got "
                                         f"{a.dtype} {a.shape} ({'C' if a.flags.c_contiguous else 'not C'}-contiguous)")
                    keep.append(a)
                    args[n] = a.ctypes.data
                case PackedInput(tensor):
                    a, shape = arrays.get(tensor), shape_of(tensor)
                    if not isinstance(a, PackedTensor):
                        raise InputError(f"kernel {p.name} was compiled for {tensor} packed: pass a PackedTensor")
                    groups = p.facts.packed_groups(tensor)
                    if a.dtype != dtype or a.shape != shape or set(a.symmetry) != set(groups):
                        raise InputError(f"{tensor}: expected a {dtype} PackedTensor of shape {shape} symmetric in "
                                         f"{groups}, got {a.dtype} {a.shape} symmetric in {a.symmetry}")
                    vals = a.values if len(a.values) else np.zeros(1, dtype=dtype)  # a valid pointer; never read
                    keep.append(vals)
                    args[n] = vals.ctypes.data
                case Output(tensor):
                    outs.append((n, tensor, shape_of(tensor)))
                case SparseOutput(tensor):
                    sparse_outs.append((n, tensor, shape_of(tensor)))
                case BlasRoutine(routine):
                    args[n] = blas_address(routine)
                case other:
                    raise unknown(other, "C runtime (argument)")
        for (tensor, face), slots in self._face_slots.items():
            st = (sparse or {}).get(tensor)
            if st is None:
                raise InputError(f"kernel {p.name} iterates the stored entries of {tensor}: pass its sparse storage")
            got = formats.get(p.facts.format_of(tensor)).arrays(st, face, dtype)
            for n, array, numpy in slots:
                a = np.ascontiguousarray(got[array], dtype=numpy)
                if not len(a):
                    a = np.zeros(1, dtype=numpy)  # a valid pointer; never read
                keep.append(a)
                args[n] = a.ctypes.data
        fn = self.fn
        groups = p.facts.output_symmetry
        scratch = {name: sparse_out.Workspace(sparse_out.record_length(len(p.tensor(name).dims), groups))
                   for _, name, _ in sparse_outs}  # a sparse output's scratch, kept for this prepared call's next runs

        def call(out: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
            """Run once; ``out`` may hand over the output arrays to write (the kernel overwrites every
            element), checked here; the others are fresh."""
            try:
                made = {name: _given(p.name, name, out[name], shape, dtype, keep) if out and name in out
                        else np.empty(shape, dtype=dtype) for _, name, shape in outs}
            except (ValueError, MemoryError):
                _, name, shape = max(outs, key=lambda o: math.prod(o[2]))  # the largest is the culprit
                raise InputError(f"kernel {p.name}: cannot allocate its output {name} of shape {shape} "
                                 f"({math.prod(shape) * dtype.itemsize:.3g} bytes)") from None
            now = list(args)
            for n, name, _ in outs:
                now[n] = made[name].ctypes.data
            records = {}
            for n, name, _ in sparse_outs:
                if out and name in out:
                    raise InputError(f"kernel {p.name}: out= cannot take its sparse output {name} (it is returned as "
                                     f"a SparseTensor)")
                records[name], now[n] = scratch[name].give()
            status = fn(*now)
            _ = keep  # the arrays behind the pointers live as long as this call
            if status == 1:
                raise ToolError(f"kernel {p.name}: out of memory for its temporaries")
            if status == 2:
                raise ToolError(f"kernel {p.name}: out of memory for the entries of its sparse output")
            if status != 0:
                raise InternalError(f"kernel {p.name} wrote a non-canonical entry of its sparse output (status "
                                    f"{status})")
            for _, name, shape in sparse_outs:
                made[name] = sparse_out.read_record(p, p.tensor(name), groups, shape, records[name], self._free,
                                                    scratch[name].space())
                scratch[name].ended(records[name])
            return made
        return call


def _given(kernel: str, name: str, a: object, shape: tuple[int, ...], dtype: np.dtype,
           inputs: list[np.ndarray]) -> np.ndarray:
    """A caller's output array, if the C may write it: right type, shape and layout, writeable, and
    overlapping no input (the generated C declares its pointers ``restrict``)."""
    if not isinstance(a, np.ndarray):
        raise InputError(f"kernel {kernel}: out= must be a numpy array, not {type(a).__name__}")
    if a.dtype != dtype or a.shape != shape or not a.flags.c_contiguous or not a.flags.writeable:
        raise InputError(f"kernel {kernel}: out= for {name} must be a writeable C-contiguous {dtype} array of shape "
                         f"{shape}, got {'a writeable' if a.flags.writeable else 'a read-only'} "
                         f"{'C' if a.flags.c_contiguous else 'non-C'}-contiguous {a.dtype} array of shape {a.shape}")
    if any(np.may_share_memory(a, x) for x in inputs):
        raise InputError(f"kernel {kernel}: out= for {name} overlaps an input (the kernel reads its inputs while it "
                         f"writes its output): pass a separate array")
    return a
