"""The calling convention of a generated kernel, described once.

One C function per kernel (``int systec_<kernel>(...)``, 0 on success, 1 if a temporary could not
be allocated; a kernel with a sparse output also 2 and 3, see :mod:`systec_ref.emit.sparse_out`, and
exports ``sx_free_<kernel>``), whose parameters are, in order:

* every symbolic dimension, sorted by name (``int64_t n``);
* the inputs passed dense and the outputs, in declaration order (``const double *restrict A``,
  ``double *restrict C``; a sparse output is a record the kernel fills, ``int64_t *restrict C``,
  :mod:`systec_ref.emit.sparse_out`; a packed input, the program's ``packed`` fact, is its flat array of
  canonical entries, :mod:`systec_ref.storage.packed`); a sparse input that the program reads only through its stored
  entries is not among them;
* for each (tensor, face) the program iterates, sorted: every array its storage format passes for
  that face (:mod:`systec_ref.storage.formats`; CSF: ``pos`` and ``crd`` per level, then
  ``vals``), named by :func:`systec_ref.lang.names.face_array`;
* for each BLAS routine the program calls (``BlasCall``), sorted: a pointer to that double-precision
  routine with the Fortran calling convention (every argument by address, 32-bit ``int``), typed
  ``sx_dgemm_fn`` and named ``sx_dgemm`` (for ``gemm``); :mod:`systec_ref.emit.runtime` passes the
  routines of the BLAS scipy is built with (``scipy.linalg.cython_blas``), and a caller of the
  emitted C passes its own BLAS's ``dgemm_`` (and so on).

:func:`parameters` lists them as :class:`Param` values — name, C type, ctypes type, numpy type of
what is passed, and where the value comes from (:data:`Source`).  The C signature
(:func:`signature`, used by ``emit/c.py``) and the runtime's ctypes ``argtypes`` and argument
packing (``emit/runtime.py``) are both derived from that one list.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Union

import numpy as np

from ..dtypes import element
from ..ir.nodes import BlasCall, MergeOperand, Program, Read, SparseLevel, SparseLocate, SparseVal
from ..lang.names import face_array, function_name, generated
from ..storage import formats
from ..storage.formats import Array, FaceFormat
from ..term import nodes


@dataclass(frozen=True)
class Dim:
    """The extent of a symbolic dimension."""

    name: str


@dataclass(frozen=True)
class DenseInput:
    """An input's elements, row-major."""

    tensor: str


@dataclass(frozen=True)
class PackedInput:
    """A symmetric input's canonical entries, packed (:mod:`systec_ref.storage.packed`): one flat array."""

    tensor: str


@dataclass(frozen=True)
class Output:
    """An output's elements, row-major (fresh for every call)."""

    tensor: str


@dataclass(frozen=True)
class SparseOutput:
    """A sparse output's record: the kernel fills it with the address of the block holding the output's
    stored faces and where each array lies in it (:mod:`systec_ref.emit.sparse_out`)."""

    tensor: str


@dataclass(frozen=True)
class FaceArray:
    """One array of one stored face of a sparse input, as its storage format hands it over."""

    tensor: str
    face: tuple[int, ...]
    array: Array


@dataclass(frozen=True)
class BlasRoutine:
    """The address of a double-precision BLAS routine (``gemm``: ``dgemm``)."""

    routine: str


Source = Union[Dim, DenseInput, PackedInput, Output, SparseOutput, FaceArray, BlasRoutine]

#: ctypes of the scalar parameters, by C type
_SCALARS = {"int64_t": ctypes.c_int64}


@dataclass(frozen=True)
class Param:
    """One parameter of the kernel function."""

    name: str
    #: the C type of the value (scalars) or of the elements pointed to (arrays)
    c_type: str
    #: what the caller passes: an integer of this type, or (pointers) the address of an array of it
    numpy: type
    pointer: bool
    #: a pointer the function only reads
    const: bool
    source: Source

    def declaration(self) -> str:
        if isinstance(self.source, BlasRoutine):
            return f"{self.c_type} {self.name}"
        if not self.pointer:
            return f"{self.c_type} {self.name}"
        return f"{'const ' if self.const else ''}{self.c_type} *restrict {self.name}"

    @property
    def ctype(self) -> type:
        """The ctypes type of the argument: an address for arrays and routines."""
        return ctypes.c_void_p if self.pointer or isinstance(self.source, BlasRoutine) else _SCALARS[self.c_type]


def dim_names(p: Program) -> list[str]:
    return sorted({d for t in p.tensors for d in t.dims if isinstance(d, str)})


def dense_inputs(p: Program) -> list[str]:
    """Inputs passed as dense arrays: all but the sparse ones the program reads only through their
    stored entries (those arrive compressed and are never materialized)."""
    read = {n.tensor for n in nodes(p.body) if isinstance(n, Read)}
    return [t.name for t in p.tensors if t.role == "in" and (t.format != "sparse" or t.name in read)]


def sparse_faces(p: Program) -> list[tuple[str, tuple[int, ...]]]:
    """The (tensor, face) pairs a program iterates, in the order of their parameters."""
    return sorted({(n.tensor, n.face) for n in nodes(p.body)
                   if isinstance(n, (SparseLevel, SparseLocate, SparseVal, MergeOperand))})


def blas_routines(p: Program) -> list[str]:
    """The BLAS routines the program calls (``gemm``, ...), sorted."""
    return sorted({n.routine for n in nodes(p.body) if isinstance(n, BlasCall)})


def blas_name(routine: str) -> str:
    """The C parameter that holds the address of BLAS ``routine``: ``sx_dgemm``."""
    return generated("d" + routine)


def blas_type(routine: str) -> str:
    """The C type of that parameter: ``sx_dgemm_fn``."""
    return generated("d" + routine, "fn")


def face_layout(p: Program, tensor: str, face: tuple[int, ...]) -> FaceFormat:
    """What the program's storage format passes for one face of ``tensor``."""
    t = p.tensor(tensor)
    return formats.get(p.facts.format_of(tensor)).layout(t.order, t.symmetry, face)


def parameters(p: Program) -> tuple[Param, ...]:
    """The kernel function's parameters, in order (see the module's docstring)."""
    value = element(p.dtype)
    out = [Param(d, "int64_t", np.int64, False, False, Dim(d)) for d in dim_names(p)]
    dense = dense_inputs(p)
    for t in p.tensors:
        if t.role == "in" and t.name in dense:
            source = PackedInput(t.name) if p.facts.packed_groups(t.name) else DenseInput(t.name)
            out.append(Param(t.name, value.c_type, value.numpy, True, True, source))
        elif t.role == "out" and t.format == "sparse":
            out.append(Param(t.name, "int64_t", np.int64, True, False, SparseOutput(t.name)))
        elif t.role == "out":
            out.append(Param(t.name, value.c_type, value.numpy, True, False, Output(t.name)))
    for tensor, face in sparse_faces(p):
        for a in face_layout(p, tensor, face).arrays():
            c_type, numpy = (value.c_type, value.numpy) if a.type is None else (a.type.c_type, a.type.numpy)
            out.append(Param(face_array(tensor, face, a), c_type, numpy, True, True, FaceArray(tensor, face, a)))
    for routine in blas_routines(p):
        out.append(Param(blas_name(routine), blas_type(routine), np.uintp, False, False, BlasRoutine(routine)))
    return tuple(out)


def signature(p: Program, params: tuple[Param, ...] | None = None) -> str:
    """``int systec_<kernel>(<parameters>)``."""
    params = parameters(p) if params is None else params
    return f"int {function_name(p.name)}({', '.join(q.declaration() for q in params)})"


def argtypes(params: tuple[Param, ...]) -> list[type]:
    """The ctypes ``argtypes`` of the kernel function."""
    return [q.ctype for q in params]
