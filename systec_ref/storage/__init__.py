"""Sparse storage: compressed levels (CSF; CSR for order 2) with 64-bit positions and
coordinates, and canonical-only storage of symmetric tensors split by face."""

from .csf import CSF
from .symmetric import SparseTensor, face_of

__all__ = ["CSF", "SparseTensor", "face_of"]
