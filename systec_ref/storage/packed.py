"""Packed storage of a dense symmetric tensor: its canonical entries only, in one flat array.

A tensor symmetric in groups of modes (``((0, 1, 2),)``, or ``((0, 1), (2, 3))``) is determined by
its *canonical* entries, those whose subscripts are sorted within every group: for a symmetric
matrix the upper triangle ``i <= j``, ``n(n+1)/2`` of ``n²``; for a fully symmetric tensor of
order ``k``, ``C(n+k-1, k) ≈ nᵏ/k!``.  :class:`PackedTensor` holds just those, so a tensor of order
4 with ``n = 100`` takes 35 MB instead of 800 MB.

**The layout** (one formula, shared by the numpy packing here and the generated C, which computes it
for every read: :func:`offset_terms`).  The modes are cut into *units*: each symmetric group is one
unit, each mode in no group a unit of its own; units are ordered by their first mode.  A canonical
point's offset is the mixed-radix number of its units' ranks, the first unit most significant::

    offset = ((rank₁ · size₂ + rank₂) · size₃ + rank₃) ...

A free mode's rank is its subscript and its size the extent ``n``.  A group of ``k`` modes of extent
``n`` has size ``T(k, 0)`` and ranks its sorted subscripts ``a₁ <= ... <= a_k`` in lexicographic
order; with ``T(L, a) = C(n - a + L - 1, L)`` the number of sorted ``L``-tuples with entries in
``a .. n-1`` and ``a₀ = 0``::

    rank = Σ_{m=1..k} T(k-m+1, a_{m-1}) - T(k-m+1, a_m)

(the ``m``-th term counts the tuples that agree on ``a₁ .. a_{m-1}`` and have a smaller ``m``-th
subscript).  The last term is ``a_k - a_{k-1}``: within a row of a group the entries are adjacent,
so a loop over the last subscript reads consecutive memory, and everything else in the formula is
invariant in that loop.  For a matrix (``k = 2``) it is the upper triangle stored row after row
(LAPACK's lower-packed ``AP`` in column-major terms): ``offset(i, j) = i·n - i(i-1)/2 + (j - i)``.

Built from a numpy array (verified symmetric like every input, :func:`~.faces.check_symmetry`) and
unpacked back (:meth:`PackedTensor.to_dense`); accepted wherever a kernel takes a dense input
(``Kernel.run``, ``prepare``, ``einsum``) when its groups are the ones the kernel declares.  A
compiled kernel then reads the entries through the offset (``emit/c.py``, ``emit/packed.py``), and
a matrix product that needs a slab of the tensor copies it out first (``blas-calls``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .faces import check_symmetry, symmetrize_index, symmetry_groups


def units(order: int, groups: tuple[tuple[int, ...], ...]) -> tuple[tuple[int, ...], ...]:
    """The units of the layout, in order: each group (its modes ascending) and each free mode alone,
    ordered by first mode."""
    grouped = {m for g in groups for m in g}
    out = [tuple(sorted(g)) for g in groups] + [(m,) for m in range(order) if m not in grouped]
    return tuple(sorted(out, key=lambda u: u[0]))


def simplex(length: int, x: int) -> int:
    """``T``: the number of sorted ``length``-tuples over ``x`` values, ``C(x + length - 1, length)``."""
    return math.comb(x + length - 1, length) if x > 0 else (1 if length == 0 else 0)


def unit_size(unit: tuple[int, ...], n: int) -> int:
    return simplex(len(unit), n) if len(unit) > 1 else n


def packed_size(shape: tuple[int, ...], groups: tuple[tuple[int, ...], ...]) -> int:
    """The number of canonical entries (the length of the packed array)."""
    return math.prod(unit_size(u, int(shape[u[0]])) for u in units(len(shape), groups))


def unit_rank(sub: tuple[int, ...], n: int) -> int:
    """The rank of sorted subscripts ``sub`` of one group among all sorted tuples (the module's formula)."""
    k, prev, rank = len(sub), 0, 0
    for m, a in enumerate(sub, start=1):
        rank += simplex(k - m + 1, n - prev) - simplex(k - m + 1, n - a)
        prev = a
    return rank


def offset(point: tuple[int, ...], shape: tuple[int, ...], groups: tuple[tuple[int, ...], ...]) -> int:
    """The position of ``point``'s canonical entry in the packed array (the reference for the C)."""
    out = 0
    for u in units(len(shape), groups):
        n = int(shape[u[0]])
        out = out * unit_size(u, n) + unit_rank(tuple(sorted(int(point[m]) for m in u)), n)
    return out


def _sorted_tuples(k: int, n: int) -> np.ndarray:
    """Every sorted ``k``-tuple over ``0 .. n-1`` in lexicographic order (shape (T(k, n), k)).

    Those with first entry ``a`` are ``a`` followed by the sorted ``(k-1)``-tuples whose entries are
    all ``>= a``: a suffix of the ``(k-1)``-tuples in lexicographic order, starting at the rank of
    ``(a, ..., a)``."""
    dtype = np.int32 if n < 2**31 else np.int64
    rest = np.arange(n, dtype=dtype)[:, None]
    for length in range(2, k + 1):
        total = simplex(length - 1, n)
        parts = []
        for a in range(n):
            tail = rest[total - simplex(length - 1, n - a):]
            parts.append(np.concatenate([np.full((len(tail), 1), a, dtype=dtype), tail], axis=1))
        rest = np.concatenate(parts) if parts else np.zeros((0, length), dtype=dtype)
    return rest


def _unit_points(u: tuple[int, ...], n: int) -> np.ndarray:
    return _sorted_tuples(len(u), n) if len(u) > 1 else np.arange(n)[:, None]


def _flat(points: np.ndarray, n: int) -> np.ndarray:
    """Row-major positions of the points of one unit in its block of ``n^k`` entries."""
    out = np.zeros(len(points), dtype=np.int64)
    for col in range(points.shape[1]):
        out = out * n + points[:, col]
    return out


@dataclass(frozen=True, eq=False)
class PackedTensor:
    """A dense tensor symmetric in ``symmetry``, stored as its canonical entries in ``values`` (see the
    module's docstring for the layout)."""

    shape: tuple[int, ...]
    symmetry: tuple[tuple[int, ...], ...]
    #: the canonical entries, one-dimensional and C-contiguous, in the layout's order
    values: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        groups = symmetry_groups(self.symmetry, self.shape)  # (equal extents within a group, disjoint, ...)
        object.__setattr__(self, "symmetry", tuple(sorted(tuple(sorted(g)) for g in groups)))
        if not self.symmetry:
            raise InputError(f"packed storage needs symmetry (groups of modes), got {self.symmetry!r}")
        object.__setattr__(self, "values", np.ascontiguousarray(self.values))
        want = packed_size(self.shape, self.symmetry)
        if self.values.ndim != 1 or len(self.values) != want:
            raise InputError(f"packed values of shape {self.values.shape} for a tensor of shape {self.shape} "
                             f"symmetric in {self.symmetry}: expected {want} values")

    @classmethod
    def from_dense(cls, arr: object, symmetry: object, check: bool | str | float = True,
                   name: str = "tensor") -> PackedTensor:
        """Pack ``arr``, verified symmetric in ``symmetry`` (groups of modes, or True: every mode) (``check`` as
        for kernel inputs: True within the float tolerance, ``"exact"`` bitwise, False not at all: the
        canonical entries are taken as they are)."""
        a = np.asarray(arr)
        if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
            raise InputError(f"{name}: elements of type {a.dtype} are not numbers")
        if symmetry is True:  # every mode, as einsum's symmetric={p: True}
            symmetry = (tuple(range(a.ndim)),)
        groups = symmetry_groups(symmetry, a.shape)
        if not groups:
            raise InputError(f"{name}: packed storage needs symmetry (groups of modes), got {symmetry!r}")
        groups = tuple(tuple(sorted(g)) for g in sorted(groups))
        if not check_symmetry(name, a, groups, check):
            # symmetric within the tolerance only: the canonical entries are what every kernel reads anyway
            a = a[symmetrize_index(a.shape, groups)]
        us = units(a.ndim, groups)
        moved = a.transpose([m for u in us for m in u]).reshape([int(a.shape[u[0]]) ** len(u) for u in us])
        flats = [_flat(_unit_points(u, int(a.shape[u[0]])), int(a.shape[u[0]])) for u in us]
        values = moved[np.ix_(*flats)].reshape(-1) if us else a.reshape(1)
        return cls(tuple(int(s) for s in a.shape), groups, np.ascontiguousarray(values))

    @property
    def dtype(self) -> np.dtype:
        return self.values.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def astype(self, dtype) -> PackedTensor:
        if self.values.dtype == np.dtype(dtype):
            return self
        return PackedTensor(self.shape, self.symmetry, self.values.astype(dtype))

    def to_dense(self) -> np.ndarray:
        """The full array: every entry its canonical entry's value."""
        us = units(len(self.shape), self.symmetry)
        if not us:
            return self.values.reshape(())
        sizes = [int(self.shape[u[0]]) for u in us]
        moved = np.empty([n ** len(u) for u, n in zip(us, sizes)], dtype=self.values.dtype)
        points = [_unit_points(u, n) for u, n in zip(us, sizes)]
        block = self.values.reshape([len(p) for p in points])
        # every arrangement of every unit's subscripts holds the canonical value (repeats write it again)
        for perms in itertools.product(*(itertools.permutations(range(len(u))) for u in us)):
            flats = [_flat(p[:, list(perm)], n) for p, perm, n in zip(points, perms, sizes)]
            moved[np.ix_(*flats)] = block
        order = [m for u in us for m in u]
        full = moved.reshape([n for u, n in zip(us, sizes) for _ in u])
        return np.ascontiguousarray(full.transpose(np.argsort(order)))

    def offset(self, point: tuple[int, ...]) -> int:
        """Where the entry at ``point`` (any arrangement) is stored."""
        return offset(point, self.shape, self.symmetry)

    def __getitem__(self, point: tuple[int, ...]):
        if not isinstance(point, tuple) or len(point) != len(self.shape):
            raise InputError(f"a packed tensor of shape {self.shape} is read at a point of {len(self.shape)} "
                             f"subscripts, not {point!r}")
        for m, (p, s) in enumerate(zip(point, self.shape)):
            if not 0 <= int(p) < s:
                raise InputError(f"subscript {p} of mode {m} is outside 0..{s - 1}")
        return self.values[self.offset(point)]

    def memory_bytes(self) -> int:
        return int(self.values.nbytes)

    def full_memory_bytes(self) -> int:
        return math.prod(self.shape) * self.values.dtype.itemsize

    def report(self, name: str = "tensor") -> str:
        full, mine = self.full_memory_bytes(), self.memory_bytes()
        ratio = f"{full / mine:.2f}x smaller" if mine else "empty"
        groups = " ".join(f"symmetric{g}" for g in self.symmetry)
        return (f"{name}: packed {groups}: {len(self.values)} canonical entries ({mine} bytes) vs {full} bytes "
                f"for the full array: {ratio}")

    def __repr__(self) -> str:
        return (f"<PackedTensor shape={self.shape} symmetry={self.symmetry} {self.values.dtype} "
                f"{len(self.values)} values>")
