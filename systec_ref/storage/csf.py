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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
        nnz, order = coords.shape
        pos, crd = [], []
        # starts[p]: entry p opens a new fiber at the current level (its prefix up to here changed)
        starts = np.zeros(nnz, dtype=bool)
        starts[:1] = True
        parent_of_entry = np.zeros(nnz, dtype=np.int64)  # fiber of the level above that holds entry p
        n_parents = 1
        for lvl in range(order):
            new = starts.copy()
            new[1:] |= coords[1:, lvl] != coords[:-1, lvl]
            idx = np.flatnonzero(new)
            crd.append(coords[idx, lvl].copy())
            counts = np.bincount(parent_of_entry[idx], minlength=n_parents)
            pos.append(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
            parent_of_entry = np.cumsum(new) - 1
            n_parents = len(idx)
            starts = new
        return cls(tuple(int(s) for s in shape), tuple(pos), tuple(crd), np.asarray(vals).copy())

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
