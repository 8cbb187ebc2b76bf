"""A sparse tensor that stores a symmetric tensor's canonical entries only, split by face.

Canonical coordinates have the subscripts of each symmetry group sorted
(``i <= j <= k``).  Stored entries are grouped by *face*: for each group, the
equality pattern of its sorted subscripts as a bitmask (bit t set when the
t-th and (t+1)-th are equal); the face with every mask 0 is the strict part,
which a kernel can iterate with no equality test at all.  Each face is a
:class:`~systec_ref.storage.csf.CSF`.  A tensor without symmetry has one face.

Conversions (``from_dense``, ``from_scipy``, ``from_coo``) verify the declared
symmetry — the error names the largest difference and where — and keep every
value.  ``check=False`` skips the verification; the canonical entry is then
used (for ``from_dense``: the value at sorted subscripts, i.e. the upper
triangle of a matrix).  In ``from_coo``, entries given twice at the very same
coordinate are **summed** (scipy's convention); entries at permutations of one
canonical coordinate are the same entry and must be equal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..tensors import check_symmetry
from .csf import CSF


def canonical_coords(coords: np.ndarray, groups: tuple[tuple[int, ...], ...]) -> np.ndarray:
    out = np.array(coords, dtype=np.int64, copy=True)
    for g in groups:
        out[:, list(g)] = np.sort(out[:, list(g)], axis=1)
    return out


def face_of(coords: np.ndarray, groups: tuple[tuple[int, ...], ...]) -> np.ndarray:
    """Face key of canonical coordinates: one bitmask per group, packed as columns."""
    keys = np.zeros((coords.shape[0], len(groups)), dtype=np.int64)
    for n, g in enumerate(groups):
        for t, (a, b) in enumerate(zip(g, g[1:])):
            keys[:, n] |= (coords[:, a] == coords[:, b]).astype(np.int64) << t
    return keys


def _is_stored(vals: np.ndarray, fill: float) -> np.ndarray:
    if isinstance(fill, float) and math.isnan(fill):
        return ~np.isnan(vals)
    return (vals != fill) | (np.isnan(vals) if vals.dtype.kind == "f" else False)


@dataclass(frozen=True)
class SparseTensor:
    shape: tuple[int, ...]
    symmetry: tuple[tuple[int, ...], ...]
    fill: float
    dtype: np.dtype
    faces: dict[tuple[int, ...], CSF]

    # -- construction ----------------------------------------------------------
    @classmethod
    def _build(cls, shape, symmetry, fill, dtype, coords: np.ndarray, vals: np.ndarray) -> SparseTensor:
        coords = canonical_coords(coords, symmetry)
        order = np.lexsort(coords.T[::-1]) if len(coords) else np.zeros(0, dtype=np.int64)
        coords, vals = coords[order], vals[order]
        keys = face_of(coords, symmetry)
        faces: dict[tuple[int, ...], CSF] = {}
        if len(coords):
            uniq, inv = np.unique(keys, axis=0, return_inverse=True)
            inv = inv.reshape(-1)
            for n, key in enumerate(uniq):
                sel = inv == n
                faces[tuple(int(x) for x in key)] = CSF.from_sorted(shape, coords[sel], vals[sel])
        return cls(tuple(int(s) for s in shape), tuple(tuple(g) for g in symmetry), fill, np.dtype(dtype), faces)

    @classmethod
    def from_dense(cls, arr: np.ndarray, symmetry=(), fill: float = 0, check: bool = True,
                   name: str = "tensor") -> SparseTensor:
        arr = np.asarray(arr)
        if check and symmetry:
            check_symmetry(name, arr, tuple(symmetry))
        mask = _is_stored(arr, fill)
        coords = np.argwhere(mask).astype(np.int64)
        if symmetry and len(coords):
            canon = canonical_coords(coords, tuple(symmetry))
            keep = (canon == coords).all(axis=1)
            coords = coords[keep]
        vals = arr[tuple(coords.T)] if len(coords) else np.zeros(0, dtype=arr.dtype)
        return cls._build(arr.shape, tuple(symmetry), fill, arr.dtype, coords, vals)

    @classmethod
    def from_scipy(cls, mat, symmetry=(), check: bool = True, name: str = "tensor") -> SparseTensor:
        coo = mat.tocoo()
        coords = np.stack([coo.row, coo.col], axis=1).astype(np.int64)
        return cls.from_coo(coords, np.asarray(coo.data), coo.shape, symmetry, 0, check, name)

    @classmethod
    def from_coo(cls, coords, values, shape, symmetry=(), fill: float = 0, check: bool = True,
                 name: str = "tensor") -> SparseTensor:
        coords = np.asarray(coords, dtype=np.int64).reshape(-1, len(shape))
        values = np.asarray(values)
        if values.shape != (coords.shape[0],):
            raise InputError(f"{name}: {coords.shape[0]} coordinates but {values.size} values")
        for m, s in enumerate(shape):
            bad = (coords[:, m] < 0) | (coords[:, m] >= s)
            if bad.any():
                at = coords[np.argmax(bad)]
                raise InputError(f"{name}: coordinate {tuple(int(x) for x in at)} is outside the shape {tuple(shape)}")
        # exact duplicates are summed (scipy's convention)
        if len(coords):
            uniq, inv = np.unique(coords, axis=0, return_inverse=True)
            summed = np.zeros(len(uniq), dtype=np.result_type(values.dtype, np.float64)
                              if values.dtype.kind == "f" else values.dtype)
            np.add.at(summed, inv.reshape(-1), values)
            coords, values = uniq, summed.astype(values.dtype)
        keep = _is_stored(values, fill)
        coords, values = coords[keep], values[keep]
        if symmetry and len(coords):
            canon = canonical_coords(coords, tuple(symmetry))
            if check:
                _check_coo_symmetry(name, coords, values, canon, tuple(symmetry), fill)
            first = {}
            for n, c in enumerate(map(tuple, canon)):
                # prefer the entry given at the canonical coordinate itself
                if c not in first or tuple(coords[n]) == c:
                    first[c] = n
            idx = np.array(sorted(first.values()), dtype=np.int64)
            coords, values = canon[idx], values[idx]
        return cls._build(tuple(shape), tuple(symmetry), fill, values.dtype, coords, values)

    # -- views ------------------------------------------------------------------
    @property
    def stored(self) -> int:
        """Entries stored (canonical coordinates only)."""
        return sum(f.nnz for f in self.faces.values())

    def coo(self) -> tuple[np.ndarray, np.ndarray]:
        """Canonical coordinates and values, face by face (strict part first)."""
        keys = sorted(self.faces)
        if not keys:
            return np.zeros((0, len(self.shape)), dtype=np.int64), np.zeros(0, dtype=self.dtype)
        return (np.concatenate([self.faces[k].coords() for k in keys]),
                np.concatenate([self.faces[k].vals for k in keys]))

    def full_coo(self) -> tuple[np.ndarray, np.ndarray]:
        """Every coordinate of the full tensor (all distinct permutations of each canonical entry)."""
        import itertools

        coords, vals = self.coo()
        out_c, out_v = [], []
        for c, v in zip(map(tuple, coords), vals):
            choices = []
            for g in self.symmetry:
                choices.append(sorted(set(itertools.permutations([c[q] for q in g]))))
            for combo in itertools.product(*choices):
                x = list(c)
                for g, perm in zip(self.symmetry, combo):
                    for q, val in zip(g, perm):
                        x[q] = val
                out_c.append(x)
                out_v.append(v)
        if not out_c:
            return np.zeros((0, len(self.shape)), dtype=np.int64), np.zeros(0, dtype=self.dtype)
        return np.array(out_c, dtype=np.int64), np.array(out_v, dtype=self.dtype)

    def to_dense(self) -> np.ndarray:
        out = np.full(self.shape, self.fill, dtype=np.result_type(self.dtype, type(self.fill))
                      if isinstance(self.fill, float) and math.isinf(self.fill) else self.dtype)
        c, v = self.full_coo()
        if len(c):
            out[tuple(c.T)] = v
        return out

    def memory_bytes(self) -> int:
        return sum(f.memory_bytes() for f in self.faces.values())

    def face_name(self, key: tuple[int, ...]) -> str:
        """``strict``, or the equalities of a face, e.g. ``m0==m1`` (modes numbered from 0)."""
        eq = [f"m{a}==m{b}" for g, mask in zip(self.symmetry, key) for t, (a, b) in enumerate(zip(g, g[1:]))
              if mask >> t & 1]
        return " ".join(eq) if eq else "strict"

    def full_memory_bytes(self) -> int:
        """What CSF storage of every permutation would take (the non-symmetric baseline)."""
        c, v = self.full_coo()
        order = np.lexsort(c.T[::-1]) if len(c) else np.zeros(0, dtype=np.int64)
        return CSF.from_sorted(self.shape, c[order], v[order]).memory_bytes() if len(c) else 0

    def report(self, name: str = "tensor") -> str:
        full = self.full_memory_bytes()
        mine = self.memory_bytes()
        ratio = f"{full / mine:.2f}x smaller" if mine else "empty"
        faces = ", ".join(f"{self.face_name(k)}: {f.nnz}" for k, f in sorted(self.faces.items()))
        return (f"{name}: {self.stored} canonical entries stored ({mine} bytes) vs {full} bytes for every "
                f"permutation: {ratio}; by face: {faces or 'none'}")


def _check_coo_symmetry(name, coords, values, canon, groups, fill) -> None:
    """Every permutation of a stored entry must be stored with the same value."""
    by_canon: dict[tuple, dict[tuple, object]] = {}
    for c, x, v in zip(map(tuple, canon), map(tuple, coords), values):
        by_canon.setdefault(c, {})[x] = v
    import itertools

    worst = None
    for c, given in by_canon.items():
        perms = [c]
        for g in groups:
            new = []
            for p in perms:
                for perm in set(itertools.permutations([p[q] for q in g])):
                    x = list(p)
                    for q, val in zip(g, perm):
                        x[q] = val
                    new.append(tuple(x))
            perms = new
        vals = [given.get(p, fill) for p in sorted(set(perms))]
        ref = given.get(c, fill)
        for p, v in zip(sorted(set(perms)), vals):
            same = (v == ref) or (isinstance(v, float) and isinstance(ref, float) and math.isnan(v) and math.isnan(ref))
            if not same:
                diff = abs(float(v) - float(ref)) if not (math.isinf(float(v)) or math.isinf(float(ref))) else math.inf
                if worst is None or diff > worst[0]:
                    worst = (diff, c, p, ref, v)
    if worst is not None:
        diff, c, p, ref, v = worst
        at = lambda x: f"{name}[{','.join(str(int(q)) for q in x)}]"  # noqa: E731
        modes = " ".join("(" + ",".join(map(str, g)) + ")" for g in groups)
        raise InputError(f"{name} is declared symmetric in modes {modes} but is not: {at(c)} = {_num(ref)} "
                         f"while {at(p)} = {_num(v)} (largest difference {diff:.6g}); give every permutation "
                         f"with the same value, or pass check=False to use the canonical entries")


def _num(v) -> str:
    return repr(v.item()) if hasattr(v, "item") else repr(v)
