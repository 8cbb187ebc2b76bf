"""Storage formats chosen from the data: index widths and dense levels.

A kernel's C is compiled for one storage format per sparse input (its element types and level kinds
are in the signature), so the choice is made where the data is first seen — ``Kernel.run``,
``Kernel.prepare``, ``einsum`` — and the kernel compiled for it (cached like every compile).  For a
tensor as the program stores it (canonical faces, or every entry):

* **coordinates** are 32-bit when every mode's extent fits (``< 2**31``), else 64-bit: a 5·10⁹-wide
  hypersparse mode keeps 64-bit coordinates;
* **positions** are 32-bit when every face stores fewer than ``2**31`` entries (a position never
  exceeds the number of entries of its level), else 64-bit;
* the **first level of a face is dense** (no coordinate array; the level below gets a slot per
  coordinate, the values level the fill where nothing is stored) when it is nearly full: at least
  :data:`DENSE_FRACTION` of the mode's coordinates hold a fiber, or, for a face of one level (the
  diagonal of a matrix: a vector of values), at least :data:`DENSE_VALUES_FRACTION` hold a value;
  the diagonal face of a matrix then is a dense vector.

Why those fractions: a compressed level costs, per stored fiber, one coordinate and one position
(4 + 4 bytes at 32 bits), a dense one a position per coordinate of the mode (4 bytes): dense is
no larger from half full on, and its loop needs no load to find the coordinate.  A values level
costs a coordinate and a value per stored entry (4 + 8) compressed, a value per coordinate (8)
dense: no larger from two thirds on.

The choice is a :class:`~.csf.CSFFormat` named by its parameters (``csf[pos=int32,crd=int32,
dense=f0+f1]``); :func:`explain_choice` says why in words.  It is overridable: ``sparse_format=``
on ``run``/``prepare``/``einsum`` (a format name for every sparse input, a dict per input, or
``"auto"``, the default).  Every conversion goes through the format's ``arrays``, which refuses an
index its type cannot hold.
"""

from __future__ import annotations

import numpy as np

from .csf import CSFFormat
from .faces import face_modes
from .formats import INT32, INT64, IndexType, StoredTensor

#: a non-last level is dense from this share of its mode's coordinates holding a fiber
DENSE_FRACTION = 0.5
#: a values level (a face of one level) is dense from this share of its coordinates holding a value
DENSE_VALUES_FRACTION = 2 / 3


def _fits(high: int) -> IndexType:
    return INT32 if high <= INT32.high else INT64


def _dense_faces(st: StoredTensor) -> dict[tuple[int, ...], tuple[int, int]]:
    """The faces whose first level is to be dense, each with (coordinates holding a fiber, extent)."""
    out: dict[tuple[int, ...], tuple[int, int]] = {}
    integer_fill = not (np.dtype(st.dtype).kind in "iu" and not float(st.fill).is_integer())
    for key, f in st.faces.items():
        kept = face_modes(len(st.shape), st.symmetry, key)
        if not kept:
            continue
        size, held = int(st.shape[kept[0]]), len(f.crd[0])
        if size == 0:
            continue
        if len(kept) == 1:
            if integer_fill and held >= DENSE_VALUES_FRACTION * size:
                out[key] = (held, size)
        elif held >= DENSE_FRACTION * size:
            out[key] = (held, size)
    return out


# (a SparseTensor is passed: this module does not import it, SparseTensor.report imports this one)


def choose_format(st: StoredTensor) -> CSFFormat:
    """The format for ``st`` as a kernel iterates it (see the module's rules)."""
    crd = _fits(max((int(s) - 1 for s in st.shape), default=0))
    pos = _fits(max((f.nnz for f in st.faces.values()), default=0))
    return CSFFormat.named(pos, crd, frozenset(_dense_faces(st)))


def explain_choice(st: StoredTensor, name: str = "tensor") -> str:
    """One line: the format :func:`choose_format` picks for ``st`` and why."""
    fmt = choose_format(st)
    top = max((int(s) - 1 for s in st.shape), default=0)
    most = max((f.nnz for f in st.faces.values()), default=0)
    parts = [f"{fmt.crd_type.name} coordinates (largest {top})", f"{fmt.pos_type.name} positions (largest face "
             f"{most} entries)"]
    for key, (held, size) in sorted(_dense_faces(st).items()):
        what = "a dense vector" if len(face_modes(len(st.shape), st.symmetry, key)) == 1 else "a dense first level"
        parts.append(f"{st.face_name(key)} as {what} ({held} of {size} coordinates stored)")
    return f"{name}: format {fmt.name}: " + "; ".join(parts)
