"""Sparse storage: compressed levels (CSF; CSR for order 2) with 64-bit positions and
coordinates, and canonical-only storage of symmetric tensors split by face."""

from .csf import CSF
from .faces import face_of
from .symmetric import SparseTensor

__all__ = ["CSF", "SparseTensor", "face_of", "for_program"]


def for_program(program, arrays: dict) -> dict[str, SparseTensor]:
    """The storage a program iterates (its ``sparse storage`` note) from validated inputs (see
    :func:`systec_ref.tensors.bind`): canonical-only by face for ``canonical``, every entry for
    ``full``.  A :class:`SparseTensor` input is used as it is when its layout fits, else re-stored
    once (and kept on the object); a dense input is compressed."""
    out = {}
    for name, layout in program.facts.sparse_storage:
        t = program.tensor(name)
        groups = t.symmetry if layout == "canonical" else ()
        a = arrays[name]
        if isinstance(a, SparseTensor):
            out[name] = a.with_symmetry(groups, check=False, name=name)  # bind verified the declared groups
        else:
            out[name] = SparseTensor.from_dense(a, groups, t.fill, check=False, name=name)
    return out
