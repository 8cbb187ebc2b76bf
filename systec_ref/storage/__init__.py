"""Sparse storage: canonical-only storage of symmetric tensors split by face (each face a CSF:
compressed levels, CSR for order 2), and the storage formats that say how a kernel is handed a
face (:mod:`.formats`; today's is CSF with 64-bit positions and coordinates, :mod:`.csf`); and packed
storage of dense symmetric tensors, their canonical entries in one flat array (:mod:`.packed`)."""

from . import formats
from .csf import CSF, CSF_FORMAT, CSFFormat
from .faces import face_of
from .packed import PackedTensor
from .symmetric import SparseTensor

__all__ = ["CSF", "CSF_FORMAT", "CSFFormat", "PackedTensor", "SparseTensor", "face_of", "for_program", "formats"]


def for_program(program, arrays: dict) -> dict[str, SparseTensor]:
    """The storage a program iterates (its ``sparse_storage`` fact) from validated inputs (see
    :func:`systec_ref.tensors.bind`): canonical-only by face for ``canonical``, every entry for
    ``full``.  A :class:`SparseTensor` input is used as it is when its layout fits, else re-stored
    once (and kept on the object); a dense input is compressed.  A stored transposed copy (the
    ``sparse_copies`` fact) is its input's entries with the modes permuted (:meth:`SparseTensor.permuted`).
    The program's storage format (its ``sparse_format`` fact, or ``tensor_formats`` per tensor) says how
    a kernel is handed each face: see :mod:`.formats`."""
    for name, _ in program.facts.sparse_storage:
        formats.get(program.facts.format_of(name))  # a program naming no registered format fails here, by name
    out = {}
    copies = {copy: (src, modes) for copy, src, modes in program.facts.sparse_copies}
    for name, layout in program.facts.sparse_storage:
        if name in copies:
            src, modes = copies[name]
            a, t = arrays[src], program.tensor(src)
            full = a.with_symmetry((), check=False, name=src) if isinstance(a, SparseTensor) else \
                SparseTensor.from_dense(a, (), t.fill, check=False, name=src)
            out[name] = full.permuted(modes)
            continue
        t = program.tensor(name)
        groups = t.symmetry if layout == "canonical" else ()
        a = arrays[name]
        if isinstance(a, SparseTensor):
            out[name] = a.with_symmetry(groups, check=False, name=name)  # bind verified the declared groups
        else:
            out[name] = SparseTensor.from_dense(a, groups, t.fill, check=False, name=name)
    return out
