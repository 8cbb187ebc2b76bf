"""Compressed sparse fibers: one compressed level per mode.

Level ``l`` holds ``crd[l]`` (the coordinates of the stored fibers at that
level) and ``pos[l]`` (where each parent's children start in ``crd[l]``);
level 0 has a single parent, so ``pos[0] == [0, len(crd[0])]``.  For order 2
this is CSR with a compressed row level (only non-empty rows are stored), so
a mode of size beyond 2^31 with few entries costs memory per entry, not per
row.  All arrays are ``int64``.

Example, entries (0,1)=a, (0,3)=b, (2,2)=c::

    pos[0] = [0, 2]      crd[0] = [0, 2]
    pos[1] = [0, 2, 3]   crd[1] = [1, 3, 2]
    vals   = [a, b, c]

:class:`CSFFormat` describes CSF as a storage format (see :mod:`.formats`): the one place that
names CSF's arrays (``pos<l>``, ``crd<l>``, ``vals``) and their types for the kernels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .formats import INT64, Array, Compressed, FaceFormat, IndexType, SparseFormat, StoredTensor, register


@dataclass(frozen=True)
class CSF:
    shape: tuple[int, ...]
    pos: tuple[np.ndarray, ...]
    crd: tuple[np.ndarray, ...]
    vals: np.ndarray

    @property
    def nnz(self) -> int:
        return int(self.vals.shape[0])

    @property
    def order(self) -> int:
        return len(self.shape)

    @classmethod
    def from_sorted(cls, shape: tuple[int, ...], coords: np.ndarray, vals: np.ndarray) -> CSF:
        """Build from coordinates sorted lexicographically without duplicates, shape (nnz, order)."""
        coords = np.asarray(coords, dtype=np.int64).reshape(-1, len(shape))
        return cls.from_sorted_columns(shape, lambda lvl: coords[:, lvl], len(coords), np.asarray(vals).copy())

    @classmethod
    def from_sorted_columns(cls, shape: tuple[int, ...], column: Callable[[int], np.ndarray], nnz: int,
                            vals: np.ndarray) -> CSF:
        """Like :meth:`from_sorted`, with ``column(l)`` giving the coordinates of mode ``l`` (asked for
        once per level, so a caller can gather them one column at a time); ``vals`` is kept, not copied."""
        order = len(shape)
        pos, crd = [], []
        # starts[p]: entry p opens a new fiber at the current level (its prefix up to here changed)
        starts = np.zeros(nnz, dtype=bool)
        starts[:1] = True
        parent_of_entry = np.zeros(nnz, dtype=np.int64)  # fiber of the level above that holds entry p
        n_parents = 1
        for lvl in range(order):
            col = np.asarray(column(lvl), dtype=np.int64)
            new = starts.copy()
            new[1:] |= col[1:] != col[:-1]
            idx = np.flatnonzero(new)
            crd.append(col[idx])
            del col
            counts = np.bincount(parent_of_entry[idx], minlength=n_parents)
            pos.append(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
            n_parents = len(idx)
            del idx
            np.cumsum(new, out=parent_of_entry)
            parent_of_entry -= 1
            starts = new
        return cls(tuple(int(s) for s in shape), tuple(pos), tuple(crd), np.asarray(vals))

    def coords(self) -> np.ndarray:
        """The stored coordinates, shape (nnz, order), in storage order."""
        out = np.zeros((self.nnz, self.order), dtype=np.int64)
        for lvl in range(self.order):
            out[:, lvl] = np.repeat(self.crd[lvl], self._leaves_below(lvl))
        return out

    def _leaves_below(self, lvl: int) -> np.ndarray:
        """How many stored entries lie under each fiber of level ``lvl``."""
        counts = np.ones(len(self.crd[-1]), dtype=np.int64)
        for deeper in range(self.order - 1, lvl, -1):
            acc = np.concatenate([[0], np.cumsum(counts)])
            p = self.pos[deeper]
            counts = acc[p[1:]] - acc[p[:-1]]
        return counts

    def memory_bytes(self) -> int:
        return int(sum(a.nbytes for a in self.pos) + sum(a.nbytes for a in self.crd) + self.vals.nbytes)


# -- CSF as a storage format ----------------------------------------------------------


@dataclass(frozen=True)
class CSFFormat(SparseFormat):
    """CSF handed to a kernel: every stored mode of a face a :class:`~.formats.Compressed` level with
    arrays ``<pos_name><l>`` and ``<crd_name><l>`` of type ``index``, then the values ``<vals_name>``.

    :data:`CSF_FORMAT` is today's (``csf``: ``pos0``, ``crd0``, ``vals``, int64); another instance,
    registered under another name, is the same layout with other names or narrower indices."""

    name: str = "csf"
    index: IndexType = INT64
    pos_name: str = "pos"
    crd_name: str = "crd"
    vals_name: str = "vals"

    def face(self, levels: int) -> FaceFormat:
        return FaceFormat(tuple(Compressed(Array(self.pos_name, lvl, self.index), Array(self.crd_name, lvl, self.index))
                                for lvl in range(levels)), Array(self.vals_name, None, None))

    def arrays(self, st: StoredTensor, key: tuple[int, ...], dtype: np.dtype) -> dict[Array, np.ndarray]:
        layout = self.layout(len(st.shape), st.symmetry, key)
        f: CSF | None = st.faces.get(key)
        out: dict[Array, np.ndarray] = {}
        for lvl, level in enumerate(layout.levels):
            if f is None:  # an empty face: no fiber at level 0, so no parent below it
                pos, crd = np.zeros(2 if lvl == 0 else 1, dtype=np.int64), np.zeros(0, dtype=np.int64)
            else:
                pos, crd = f.pos[lvl], f.crd[lvl]
            out[level.pos] = self._index(level.pos, pos)
            out[level.crd] = self._index(level.crd, crd)
        out[layout.vals] = np.ascontiguousarray(f.vals if f is not None else np.zeros(0), dtype=dtype)
        return out

    def _index(self, array: Array, a: np.ndarray) -> np.ndarray:
        if self.index.high < INT64.high and len(a) and int(a.max()) > self.index.high:
            raise InputError(f"storage format '{self.name}': {array.name} holds {int(a.max())}, more than "
                             f"{self.index.name} can (at most {self.index.high})")
        return np.ascontiguousarray(a, dtype=self.index.numpy)


#: today's CSF, the format the language's ``sparse`` means (:data:`~.formats.DEFAULT_FORMAT`)
CSF_FORMAT = register(CSFFormat())
