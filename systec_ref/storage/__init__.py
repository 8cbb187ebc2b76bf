"""Sparse storage: compressed levels (CSF; CSR for order 2) with 64-bit positions and
coordinates, and canonical-only storage of symmetric tensors split by face."""

from .csf import CSF
from .symmetric import SparseTensor, face_of

__all__ = ["CSF", "SparseTensor", "face_of", "for_program"]


def for_program(program, arrays: dict) -> dict[str, SparseTensor]:
    """The storage a program iterates (its ``sparse storage`` note), built from validated dense arrays:
    canonical-only by face for ``canonical``, every entry for ``full``."""
    out = {}
    for name, layout in program.note("sparse storage", ()):
        t = program.tensor(name)
        groups = t.symmetry if layout == "canonical" else ()
        out[name] = SparseTensor.from_dense(arrays[name], groups, t.fill, check=False, name=name)
    return out
