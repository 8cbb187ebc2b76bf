"""A sparse tensor that stores a symmetric tensor's canonical entries only, split by face.

Canonical coordinates have the subscripts of each symmetry group sorted
(``i <= j <= k``).  Stored entries are grouped by *face*: for each group, the
equality pattern of its sorted subscripts as a bitmask (bit t set when the
t-th and (t+1)-th are equal); the face with every mask 0 is the strict part,
which a kernel can iterate with no equality test at all.  Each face is a
:class:`~systec_ref.storage.csf.CSF` over the modes the face does not pin
(:func:`face_modes`): on the diagonal face of a matrix ``i == j`` the column
is the row, so only one level is stored.  A tensor without symmetry has one
face.

Conversions (``from_dense``, ``from_scipy``, ``from_coo``, ``from_pydata``) check
their ``symmetry`` argument (:func:`~systec_ref.storage.faces.symmetry_groups`) and
verify the declared symmetry — the error names the largest difference and where.
``check=True`` (default) compares floats up to a relative tolerance
(:data:`~systec_ref.storage.faces.SYMMETRY_RTOL`, see
:func:`~systec_ref.storage.faces.symmetry_rtol`), ``check="exact"`` bitwise, a number
is that tolerance, and ``check=False`` skips the verification.  In every case the
tensor stores the canonical entry — the value at sorted subscripts (the upper
triangle of a matrix); for ``from_coo`` unchecked, the entry given at the canonical
coordinate, else the first permutation given.  In ``from_coo``, entries given twice at
the very same coordinate are **summed** (scipy's convention); entries at permutations
of one canonical coordinate are the same entry and must be equal (up to the tolerance).

``to_coo``, ``to_scipy`` and ``to_pydata`` give every entry back, mirrored (non-canonical
storage), for other libraries.
"""

from __future__ import annotations

import itertools
import math
import sys
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError, InternalError, ToolError
from .csf import CSF
from .faces import (
    canonical_coords,
    check_symmetry,
    distinct_permutations,
    expand_permutations,
    face_modes,
    face_of,
    fill_pinned,
    largest_magnitude,
    symmetry_groups,
    symmetry_rtol,
    tolerance_text,
    within_tolerance,
)


def _is_canonical(coords: np.ndarray, groups: tuple[tuple[int, ...], ...]) -> np.ndarray:
    """Per row: are the subscripts of every group already sorted?  (One column pair at a time: no
    temporary as large as ``coords``.)"""
    ok = np.ones(len(coords), dtype=bool)
    for g in groups:
        for a, b in zip(g, g[1:]):
            ok &= coords[:, a] <= coords[:, b]
    return ok


def _row_changes(coords: np.ndarray) -> np.ndarray:
    """Per row: does it differ from the previous one (the first row always does)?"""
    new = np.zeros(len(coords), dtype=bool)
    new[:1] = True
    for m in range(coords.shape[1]):
        new[1:] |= coords[1:, m] != coords[:-1, m]
    return new


def _lex_order(coords: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """The stable permutation that sorts the rows lexicographically, or None if they already are.

    Rows of a shape whose size fits in int64 are sorted by one packed key (far less time and memory
    than a lexsort on every column)."""
    n, order = coords.shape
    if n < 2:
        return None
    ahead = np.zeros(n - 1, dtype=bool)  # row i+1 > row i, decided by an earlier column
    tied = np.ones(n - 1, dtype=bool)
    for m in range(order):
        a, b = coords[:-1, m], coords[1:, m]
        ahead |= tied & (a < b)
        tied &= a == b
    if (ahead | tied).all():
        return None
    del ahead, tied
    key = _packed(coords, shape)
    return np.argsort(key, kind="stable") if key is not None else np.lexsort(coords.T[::-1])


def _packed(coords: np.ndarray, shape: tuple[int, ...], spare_bits: int = 0) -> np.ndarray | None:
    """Each row (within ``shape``) as one int64 in lexicographic order, shifted left by ``spare_bits``;
    None if the shape is too large for that."""
    if not coords.shape[1] or math.prod(int(x) for x in shape) >= 2 ** (63 - spare_bits):
        return None
    key = coords[:, 0].copy()
    for m in range(1, coords.shape[1]):
        key *= int(shape[m])
        key += coords[:, m]
    key <<= spare_bits
    return key


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
    # other layouts of this tensor already built, with whether their symmetry was verified
    # (see with_symmetry); not part of its value
    _layouts: dict = field(default_factory=dict, compare=False, repr=False)

    # -- construction ----------------------------------------------------------
    @classmethod
    def _build(cls, shape, symmetry, fill, dtype, coords: np.ndarray, vals: np.ndarray) -> SparseTensor:
        """From entries at distinct coordinates (canonical or not, in any order).  Lean on memory: no
        copy of the coordinates when they are already canonical and sorted, and each face's levels
        are gathered one column at a time."""
        symmetry = tuple(tuple(g) for g in symmetry)
        if symmetry and len(coords) and not _is_canonical(coords, symmetry).all():
            coords = canonical_coords(coords, symmetry)
        order = _lex_order(coords, tuple(shape))
        if order is not None:
            coords, vals = coords[order], vals[order]
            del order
        faces: dict[tuple[int, ...], CSF] = {}
        if len(coords):
            # one number per face (masks have fewer bits than a group has modes) to split with
            base = 1 << max((len(g) for g in symmetry), default=1)
            packed = np.zeros(len(coords), dtype=np.int64)
            for g in symmetry:
                packed *= base
                for t, (a, b) in enumerate(zip(g, g[1:])):
                    packed += (coords[:, a] == coords[:, b]).astype(np.int64) << t
            top = int(packed.max())
            codes = np.flatnonzero(np.bincount(packed)) if top < 1 << 20 else np.unique(packed)
            for code in codes:
                idx = np.flatnonzero(packed == code) if len(codes) > 1 else None
                first = coords[:1] if idx is None else coords[idx[:1]]
                key = tuple(int(x) for x in face_of(first, symmetry)[0])
                kept = face_modes(len(shape), symmetry, key)
                # dropping a mode equal to an earlier one keeps the lexicographic order
                column = (lambda lvl, kept=kept: coords[:, kept[lvl]]) if idx is None else \
                    (lambda lvl, kept=kept, idx=idx: coords[idx, kept[lvl]])
                faces[key] = CSF.from_sorted_columns(tuple(shape[m] for m in kept), column,
                                                     len(coords) if idx is None else len(idx),
                                                     vals.copy() if idx is None else vals[idx])
        return cls(tuple(int(s) for s in shape), symmetry, fill, np.dtype(dtype), faces)

    @classmethod
    def from_dense(cls, arr: np.ndarray, symmetry=(), fill: float = 0, check: bool | str | float = True,
                   name: str = "tensor") -> SparseTensor:
        """From a dense array; entries equal to ``fill`` are not stored.  Only the canonical entries
        (sorted subscripts in each group) are read once the symmetry is verified per ``check``."""
        arr = np.asarray(arr)
        symmetry = symmetry_groups(symmetry, arr.shape)
        check_symmetry(name, arr, symmetry, check)
        mask = _is_stored(arr, fill)
        coords = np.argwhere(mask).astype(np.int64)
        if symmetry and len(coords):
            canon = canonical_coords(coords, tuple(symmetry))
            keep = (canon == coords).all(axis=1)
            coords = coords[keep]
        # order 0: arr[()] is the one value; reshape keeps one value per coordinate row
        vals = np.asarray(arr[tuple(coords[:, m] for m in range(arr.ndim))]).reshape(len(coords)) if len(coords) \
            else np.zeros(0, dtype=arr.dtype)
        return cls._build(arr.shape, tuple(symmetry), fill, arr.dtype, coords, vals)

    @classmethod
    def from_scipy(cls, mat, symmetry=(), check: bool | str | float = True, name: str = "tensor",
                   fill: float = 0) -> SparseTensor:
        """From a ``scipy.sparse`` matrix; entries it does not store hold ``fill``, and entries it
        stores explicitly are kept even when they are zero (unless ``fill`` is 0)."""
        coo = mat.tocoo()
        coords = np.stack([coo.row, coo.col], axis=1).astype(np.int64)
        return cls.from_coo(coords, np.asarray(coo.data), coo.shape, symmetry, fill, check, name)

    @classmethod
    def from_coo(cls, coords, values, shape, symmetry=(), fill: float = 0, check: bool | str | float = True,
                 name: str = "tensor") -> SparseTensor:
        """From coordinates (one row per entry) and values; see the module's notes on duplicates,
        permutations and ``check``."""
        values = np.asarray(values)
        symmetry = symmetry_groups(symmetry, tuple(shape))
        coords = np.asarray(coords, dtype=np.int64).reshape(values.size if not len(shape) else -1, len(shape))
        values = np.asarray(values)
        if values.shape != (coords.shape[0],):
            raise InputError(f"{name}: {coords.shape[0]} coordinates but {values.size} values")
        if len(coords):
            low, high = coords.min(axis=0), coords.max(axis=0)
            for m, s in enumerate(shape):
                if low[m] < 0 or high[m] >= s:
                    at = coords[np.argmax((coords[:, m] < 0) | (coords[:, m] >= s))]
                    raise InputError(f"{name}: coordinate {tuple(int(x) for x in at)} is outside the shape "
                                     f"{tuple(shape)}")
        coords, values = _sum_duplicates(coords, values, tuple(shape))  # scipy's convention
        keep = _is_stored(values, fill)
        if not keep.all():
            coords, values = coords[keep], values[keep]
        del keep
        if symmetry and len(coords):
            groups = symmetry
            rtol = symmetry_rtol(check, values.dtype)
            atol = rtol * largest_magnitude(values, fill) if rtol else 0.0
            if _is_canonical(coords, groups).all():
                # given canonical (and distinct): every entry stands for itself, nothing to merge or copy
                if rtol is not None:
                    every = np.arange(len(coords))
                    worst = _worst_class(values, every, every, np.ones(len(coords), dtype=bool), coords, groups,
                                         fill, rtol, atol)
                    if worst is not None:
                        _check_coo_symmetry(name, coords[worst:worst + 1], values[worst:worst + 1],
                                            coords[worst:worst + 1], groups, fill, rtol, atol)
            else:
                canon = canonical_coords(coords, groups)
                first, cls_of = _classes(coords, canon, tuple(shape))
                if rtol is not None:
                    # has each class its canonical point given?  (_classes picks that entry when there is one)
                    given = np.ones(len(first), dtype=bool)
                    for m in range(coords.shape[1]):
                        given &= coords[first, m] == canon[first, m]
                    worst = _worst_class(values, first, cls_of, given, canon[first], groups, fill, rtol, atol)
                    if worst is not None:
                        mine = cls_of == worst
                        _check_coo_symmetry(name, coords[mine], values[mine], canon[mine], groups, fill, rtol, atol)
                    # verified: a class not given at its canonical point holds the fill there, so stores nothing
                    first = first[given]
                coords, values = canon[first], values[first]
        return cls._build(tuple(shape), tuple(symmetry), fill, values.dtype, coords, values)

    def with_symmetry(self, symmetry=(), check: bool | str | float = True, name: str = "tensor") -> SparseTensor:
        """The same tensor stored canonical-only for other symmetry groups (``()``: every entry).

        Dropping symmetry is exact.  Adding one verifies it per ``check`` (see :meth:`from_coo`).
        The result is kept, so a tensor object reused across calls converts once; a layout
        built unverified (``check=False``), or with a looser tolerance, is verified again the first
        time it is asked for with a stricter check, so skipping the check once never skips it later.
        """
        groups = symmetry_groups(symmetry, self.shape)
        if groups == self.symmetry:
            return self
        rtol = symmetry_rtol(check, self.dtype)
        have = self._layouts.get(groups)
        if have is not None and (rtol is None or not groups or (have[1] is not None and have[1] <= rtol)):
            return have[0]
        c, v = self.full_coo()  # sorted, each point once
        if groups:
            layout = SparseTensor.from_coo(c, v, self.shape, groups, self.fill, check, name)
        else:
            faces = {(): CSF.from_sorted(self.shape, c, v)} if len(c) else {}
            layout = SparseTensor(self.shape, (), self.fill, self.dtype, faces)
        self._layouts[groups] = (layout, rtol)  # the tolerance it was verified with (None: unverified)
        return layout

    def permuted(self, modes: tuple[int, ...]) -> SparseTensor:
        """The tensor with its modes rearranged, every entry stored (no symmetry): mode ``q`` of the result
        is mode ``modes[q]`` of this one (``(1, 0)``: the transpose).  The storage of a transposed copy
        a kernel iterates (the ``sparse_copies`` fact); kept like :meth:`with_symmetry`'s layouts."""
        modes = tuple(int(m) for m in modes)
        if sorted(modes) != list(range(len(self.shape))):
            raise InternalError(f"permuted: {modes} is not a permutation of the {len(self.shape)} modes")
        key = ("modes", modes)  # beside with_symmetry's keys (tuples of groups): never equal to one
        have = self._layouts.get(key)
        if have is not None:
            return have[0]
        c, v = self.full_coo()
        out = SparseTensor._build(tuple(self.shape[m] for m in modes), (), self.fill, self.dtype,
                                  np.ascontiguousarray(c[:, list(modes)]), v)
        self._layouts[key] = (out, None)
        return out

    def astype(self, dtype) -> SparseTensor:
        """Values converted to ``dtype`` (the caller checks that the conversion is safe)."""
        dtype = np.dtype(dtype)
        if dtype == self.dtype:
            return self
        faces = {k: CSF(f.shape, f.pos, f.crd, f.vals.astype(dtype)) for k, f in self.faces.items()}
        return SparseTensor(self.shape, self.symmetry, self.fill, dtype, faces)

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
        return (np.concatenate([self.face_coords(k) for k in keys]),
                np.concatenate([self.faces[k].vals for k in keys]))

    def face_coords(self, key: tuple[int, ...]) -> np.ndarray:
        """Full coordinates of the entries of one face, in storage order."""
        return fill_pinned(self.faces[key].coords(), len(self.shape), self.symmetry, key)

    def full_coo(self) -> tuple[np.ndarray, np.ndarray]:
        """Every coordinate of the full tensor (all distinct permutations of each canonical entry)."""
        coords, vals = self.coo()
        return expand_permutations(coords, vals, self.symmetry)

    def to_dense(self) -> np.ndarray:
        # an integer tensor whose fill is +-inf needs a float array to hold it; a float one keeps its dtype
        inf_fill = isinstance(self.fill, float) and math.isinf(self.fill) and self.dtype.kind != "f"
        out = np.full(self.shape, self.fill, dtype=np.float64 if inf_fill else self.dtype)
        c, v = self.full_coo()
        if len(v) and not self.shape:
            out[()] = v[0]  # order 0: the one value
        elif len(v):
            out[tuple(c[:, m] for m in range(len(self.shape)))] = v
        return out

    # -- other libraries -----------------------------------------------------------
    def to_coo(self) -> tuple[np.ndarray, np.ndarray]:
        """Every entry of the full tensor: coordinates ``(nnz, order)`` int64, sorted, and values.

        Non-canonical storage: each canonical entry appears at every distinct permutation of its
        subscripts.  Entries holding the fill are not listed."""
        return self.full_coo()

    def to_scipy(self, format: str = "csr"):
        """The matrix as a ``scipy.sparse`` matrix of ``format`` (``"csr"``, ``"csc"``, ``"coo"``, ...)
        holding every entry (mirrored, not just the canonical triangle).  Order 2 with fill 0 only:
        scipy holds 0 where it stores nothing."""
        import scipy.sparse as sp

        if len(self.shape) != 2:
            raise InputError(f"to_scipy: scipy.sparse holds matrices, this tensor has order {len(self.shape)} "
                             f"(use to_coo() or to_pydata())")
        if not (self.fill == 0 and not (isinstance(self.fill, float) and math.isnan(self.fill))):
            raise InputError(f"to_scipy: the tensor holds {self.fill!r} where it stores nothing, but a scipy.sparse "
                             f"matrix holds 0 there (use to_pydata(), which keeps the fill, or to_dense())")
        c, v = self.full_coo()
        mat = sp.coo_matrix((v, (c[:, 0], c[:, 1])), shape=self.shape, dtype=self.dtype)
        try:
            return mat.asformat(format)
        except (ValueError, TypeError) as e:
            raise InputError(f"to_scipy: format={format!r} is not a scipy.sparse format ({e})") from None

    def to_pydata(self):
        """The tensor as a pydata ``sparse.COO`` holding every entry (mirrored) and the fill as its
        ``fill_value`` (needs the optional ``sparse`` package)."""
        sparse = _pydata()
        c, v = self.full_coo()
        if isinstance(self.fill, float) and not math.isfinite(self.fill) and v.dtype.kind != "f":
            v = v.astype(np.float64)  # an int tensor whose fill is inf or nan: only a float array holds both
        return sparse.COO(c.T, v, shape=self.shape, fill_value=self.fill, has_duplicates=False, sorted=True)

    @classmethod
    def from_pydata(cls, arr, symmetry=(), check: bool | str | float = True, fill: float | None = None,
                    name: str = "tensor") -> SparseTensor:
        """From a pydata sparse array (``sparse.COO``, ``sparse.GCXS``, ...): its ``fill_value`` holds
        where it stores nothing, so ``fill``, if given, must be that value.  ``symmetry`` and ``check``
        as in :meth:`from_coo`."""
        sparse = _pydata()
        if not isinstance(arr, sparse.SparseArray):
            raise InputError(f"{name}: from_pydata takes a pydata sparse array (sparse.COO or sparse.GCXS), "
                             f"not {type(arr).__name__}")
        own = np.asarray(arr.fill_value).item()
        if fill is not None and not (fill == own or (_isnan(fill) and _isnan(own))):
            raise InputError(f"{name}: fill={fill!r} but the pydata array holds its fill_value {own!r} where it "
                             f"stores nothing (build it with fill_value={fill!r})")
        coo = arr if isinstance(arr, sparse.COO) else arr.tocoo()
        return cls.from_coo(np.asarray(coo.coords, dtype=np.int64).T, np.asarray(coo.data), tuple(coo.shape),
                            symmetry, own, check, name)

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
        from .choose import explain_choice  # (it reads this class: imported when asked)

        return (f"{name}: {self.stored} canonical entries stored ({mine} bytes) vs {full} bytes for every "
                f"permutation: {ratio}; by face: {faces or 'none'}\n  handed to kernels as "
                + explain_choice(self, name).split(": ", 1)[1])


def _sum_duplicates(coords: np.ndarray, values: np.ndarray,
                    shape: tuple[int, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Entries sorted by coordinate, those given at one coordinate more than once summed (the arrays
    given come back as they are when they are sorted without duplicates already)."""
    if not len(coords):
        return coords, values
    order = _lex_order(coords, shape if shape is not None else tuple(int(x) + 1 for x in coords.max(axis=0)))
    if order is not None:
        coords, values = coords[order], values[order]
        del order
    new = _row_changes(coords)
    if new.all():
        return coords, values
    starts = np.flatnonzero(new)
    acc = values.astype(np.float64) if values.dtype.kind == "f" else values
    return coords[starts], np.add.reduceat(acc, starts).astype(values.dtype)


def _classes(coords: np.ndarray, canon: np.ndarray,
             shape: tuple[int, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Group entries by canonical point: the entry that represents each class (the one given at the
    canonical coordinate itself when there is one, else the first), and every entry's class number."""
    is_canon = np.ones(len(coords), dtype=bool)
    for m in range(coords.shape[1]):
        is_canon &= canon[:, m] == coords[:, m]
    key = _packed(canon, shape, spare_bits=1) if shape is not None else None
    if key is not None:  # one int64 per entry: canonical point, then "not given canonical"
        key += ~is_canon
        order = np.argsort(key, kind="stable")
        key = key[order]
        key >>= 1
        new = np.ones(len(order), dtype=bool)
        new[1:] = key[1:] != key[:-1]
        del key
    else:
        order = np.lexsort([~is_canon] + [canon[:, m] for m in reversed(range(canon.shape[1]))])
        new = _row_changes(canon[order])
    cls_sorted = np.cumsum(new) - 1
    cls_of = np.empty(len(order), dtype=np.int64)
    cls_of[order] = cls_sorted
    return order[new], cls_of


def _worst_class(values, first, cls_of, given, reps, groups, fill, rtol: float, atol: float) -> int | None:
    """The class with the largest asymmetry beyond the tolerance, or None if the entries are symmetric.

    A class's value is its entry at the canonical point (``given``), else the fill; every entry of
    the class, and every permutation not given at all (which holds the fill), must match it."""
    fill_arr = np.asarray(fill)
    rep = values[first]
    ref = rep[cls_of]
    ok = within_tolerance(values, ref, rtol, atol)
    if not given.all():
        ok = np.where(given[cls_of], ok, within_tolerance(values, fill_arr, rtol, atol))
    missing = np.bincount(cls_of, minlength=len(first)) < _permutation_counts(reps, groups)
    # a permutation not given holds the fill: a mismatch only if the canonical value is given and differs
    fill_bad = missing & given & ~within_tolerance(rep, fill_arr, rtol, atol)
    if ok.all() and not fill_bad.any():
        return None
    with np.errstate(invalid="ignore", over="ignore"):
        against = np.where(given[cls_of], ref.astype(np.float64), float(fill))
        dev = np.nan_to_num(np.abs(values.astype(np.float64) - against), nan=np.inf, posinf=np.inf)
        gap = np.nan_to_num(np.abs(rep.astype(np.float64) - float(fill)), nan=np.inf, posinf=np.inf)
    per_class = np.full(len(first), -1.0)
    bad = ~ok
    np.maximum.at(per_class, cls_of[bad], dev[bad])
    per_class = np.where(fill_bad, np.maximum(per_class, gap), per_class)
    return int(np.argmax(per_class))


def _permutation_counts(reps: np.ndarray, groups) -> np.ndarray:
    """Per canonical point: how many distinct points its permutations are."""
    want = np.ones(len(reps), dtype=np.int64)
    for g in groups:
        want *= sum(keep.astype(np.int64) for _, keep in distinct_permutations(reps, g))
    return want


def _check_coo_symmetry(name, coords, values, canon, groups, fill, rtol: float, atol: float) -> None:
    """Every permutation of a stored entry must be stored with the same value (up to the tolerance):
    raise naming the worst pair of one class (the one :func:`_worst_class` found)."""
    by_canon: dict[tuple, dict[tuple, object]] = {}
    for c, x, v in zip(map(tuple, canon), map(tuple, coords), values):
        by_canon.setdefault(c, {})[x] = v

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
        ref = given.get(c, fill)
        for p in sorted(set(perms)):
            v = given.get(p, fill)
            if not within_tolerance(np.asarray(v), np.asarray(ref), rtol, atol):
                diff = abs(float(v) - float(ref)) if not (math.isinf(float(v)) or math.isinf(float(ref))) else math.inf
                diff = math.inf if math.isnan(diff) else diff
                if worst is None or diff > worst[0]:
                    worst = (diff, c, p, ref, v)
    if worst is None:  # _worst_class and this search disagree: a bug, never a pass
        raise AssertionError(f"{name}: an asymmetry was found but not located")
    diff, c, p, ref, v = worst
    at = lambda x: f"{name}[{','.join(str(int(q)) for q in x)}]"  # noqa: E731
    modes = " ".join("(" + ",".join(map(str, g)) + ")" for g in groups)
    raise InputError(f"{name} is declared symmetric in modes {modes} but is not: {at(c)} = {_num(ref)} "
                     f"while {at(p)} = {_num(v)} (largest difference {diff:.6g}); {tolerance_text(rtol, atol)}; "
                     f"give every permutation with the same value, or pass check=False to use the canonical entries")


def pydata_module(value: object):
    """The pydata ``sparse`` module if it is loaded, else None (then ``value`` cannot be one of its
    arrays, and nothing needs importing it)."""
    mod = sys.modules.get("sparse")
    return mod if mod is not None and isinstance(getattr(mod, "SparseArray", None), type) else None


def _pydata():
    """The pydata ``sparse`` module (an optional dependency: the ``pydata`` extra)."""
    try:
        import sparse
    except ImportError:
        raise ToolError("pydata sparse arrays need the 'sparse' package: pip install 'systec_ref[pydata]'") from None
    return sparse


def _isnan(v: object) -> bool:
    return isinstance(v, float) and math.isnan(v)


def _num(v) -> str:
    return repr(v.item()) if hasattr(v, "item") else repr(v)
