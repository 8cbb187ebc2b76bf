"""Face geometry of symmetric tensors: canonical coordinates, faces, and what each face stores.

A tensor symmetric in groups of modes (``symmetric(0,1,2)``: any permutation of modes 0, 1, 2
leaves it unchanged) is determined by its *canonical* entries, those whose subscripts within each
group are sorted (``i <= j <= k``).  Canonical points split into *faces* by their equality
pattern: for each group, a bitmask with bit t set when the t-th and (t+1)-th sorted subscripts
are equal.  The face with every mask 0 is the strict part (``i < j < k``).  On a face, a mode
whose bit says "equal to the previous member" is *pinned*: its coordinate is that member's, so a
face stores only the other modes (:func:`face_modes`) — the diagonal face of a matrix stores one.

Every room that deals with faces (storage, the sparse-iterate pass, the interpreter, the emitter,
the runtime) takes their geometry from here.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..errors import InputError


def canonical_coords(coords: np.ndarray, groups: tuple[tuple[int, ...], ...]) -> np.ndarray:
    out = np.array(coords, dtype=np.int64, copy=True)
    for g in groups:
        part = out[:, list(g)]
        part.sort(axis=1)
        out[:, list(g)] = part
    return out


def face_of(coords: np.ndarray, groups: tuple[tuple[int, ...], ...]) -> np.ndarray:
    """Face key of canonical coordinates: one bitmask per group, packed as columns."""
    keys = np.zeros((coords.shape[0], len(groups)), dtype=np.int64)
    for n, g in enumerate(groups):
        for t, (a, b) in enumerate(zip(g, g[1:])):
            keys[:, n] |= (coords[:, a] == coords[:, b]).astype(np.int64) << t
    return keys


def face_modes(order: int, groups: tuple[tuple[int, ...], ...], key: tuple[int, ...]) -> list[int]:
    """The modes a face stores: every mode but those its equality bits make equal to the previous
    member of their group (their coordinate is that member's)."""
    pinned = {b for g, mask in zip(groups, key) for t, (_, b) in enumerate(zip(g, g[1:])) if mask >> t & 1}
    return [m for m in range(order) if m not in pinned]


def fill_pinned(stored: np.ndarray, order: int, groups, key) -> np.ndarray:
    """Full coordinates from a face's stored ones (the inverse of dropping the pinned modes)."""
    out = np.zeros((len(stored), order), dtype=np.int64)
    out[:, face_modes(order, groups, key)] = stored
    for g, mask in zip(groups, key):
        for t, (a, b) in enumerate(zip(g, g[1:])):
            if mask >> t & 1:
                out[:, b] = out[:, a]
    return out


def distinct_permutations(coords: np.ndarray, group: tuple[int, ...]) -> list[tuple[tuple[int, ...], np.ndarray]]:
    """For canonical ``coords``, each permutation of ``group`` with the rows it maps to a *new* point.

    A permutation of a sorted tuple repeats an earlier point exactly when it
    swaps two equal subscripts; keeping, within every run of equal subscripts,
    their original relative order picks each distinct rearrangement once.
    """
    out = []
    k = len(group)
    for perm in itertools.permutations(range(k)):
        where = [0] * k  # where[t]: the new slot of the t-th sorted subscript
        for slot, t in enumerate(perm):
            where[t] = slot
        keep = np.ones(len(coords), dtype=bool)
        for t in range(k - 1):
            if where[t] > where[t + 1]:
                keep &= coords[:, group[t]] != coords[:, group[t + 1]]
        out.append((perm, keep))
    return out


def expand_permutations(coords: np.ndarray, vals: np.ndarray,
                        groups: tuple[tuple[int, ...], ...]) -> tuple[np.ndarray, np.ndarray]:
    """Canonical entries to every distinct point they stand for, vectorized (no Python loop per entry)."""
    coords = np.asarray(coords, dtype=np.int64)
    for g in groups:
        parts_c, parts_v = [], []
        canon = canonical_coords(coords, (g,))
        for perm, keep in distinct_permutations(canon, g):
            c = canon[keep]
            moved = c.copy()
            for slot, t in enumerate(perm):
                moved[:, g[slot]] = c[:, g[t]]
            parts_c.append(moved)
            parts_v.append(vals[keep])
        coords = np.concatenate(parts_c) if parts_c else coords
        vals = np.concatenate(parts_v) if parts_v else vals
    order = np.lexsort(coords.T[::-1]) if len(coords) and coords.shape[1] else np.arange(len(coords))
    return coords[order], vals[order]


def check_symmetry(name: str, arr: np.ndarray, groups: tuple[tuple[int, ...], ...]) -> None:
    """Raise :class:`InputError` naming the largest asymmetry, if there is any.

    Symmetry is exact: ``A[p] == A[q]`` for every pair of points that a
    permutation within a group relates (NaN equals NaN here).
    """
    for g in groups:
        for a, b in zip(g, g[1:]):  # adjacent transpositions generate the group
            axes = list(range(arr.ndim))
            axes[a], axes[b] = axes[b], axes[a]
            other = arr.transpose(axes)
            same = (arr == other) | (np.isnan(arr) & np.isnan(other) if arr.dtype.kind == "f" else False)
            if same.all():
                continue
            with np.errstate(invalid="ignore", over="ignore"):
                diff = np.abs(arr.astype(np.float64) - other.astype(np.float64))
            diff = np.where(same, -1.0, np.nan_to_num(diff, nan=np.inf, posinf=np.inf))
            where = np.unravel_index(int(np.argmax(diff)), arr.shape)
            twin = list(where)
            twin[a], twin[b] = twin[b], twin[a]
            fmt = lambda p: f"{name}[{','.join(map(str, map(int, p)))}]"  # noqa: E731
            raise InputError(
                f"{name} is declared symmetric in modes {g} but is not: {fmt(where)} = {arr[where].item()!r} while "
                f"{fmt(twin)} = {arr[tuple(twin)].item()!r} (largest difference {float(diff[where]):.6g}); "
                f"symmetrize it or pass check=False to use its canonical triangle as is")


def symmetrize_index(shape: tuple[int, ...], groups: tuple[tuple[int, ...], ...]) -> tuple[np.ndarray, ...]:
    """Fancy index that maps every point to its canonical point (each group's
    subscripts sorted), so ``X[symmetrize_index(...)]`` is symmetric."""
    idx = list(np.indices(shape))
    for g in groups:
        stacked = np.sort(np.stack([idx[p] for p in g]), axis=0)
        for n, p in enumerate(g):
            idx[p] = stacked[n]
    return tuple(idx)
