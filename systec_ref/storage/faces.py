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
import math

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


#: The default relative tolerance of the symmetry check of a floating-point input (``check=True``):
#: see :func:`symmetry_rtol`.  Read at every check, so setting it changes every later one.
SYMMETRY_RTOL: float = 1e-12

# The default tolerance of a type less precise than float64 is raised to this many of its epsilons:
# averaging k! permutations in float32 differs from exact symmetry by about k! epsilons.
_EPS_FLOOR = 64


def symmetry_rtol(check: object, dtype: np.dtype | type) -> float | None:
    """The relative tolerance a symmetry check of a ``dtype`` array uses, or None for no check.

    ``check`` is ``True`` (default: :data:`SYMMETRY_RTOL`, raised to 64 epsilons of a less precise
    float type), ``"exact"`` (0: bitwise equality), ``False`` (no check) or a number in [0, 1)
    (that relative tolerance).  Integer and boolean arrays are always compared exactly.

    With tolerance ``rtol`` an entry passes when ``|a[p] - a[c]| <= rtol * max(|a[p]|, |a[c]|) + atol``,
    ``c`` the canonical point of ``p`` (subscripts sorted in each group) and ``atol = rtol * M``,
    ``M`` the largest finite magnitude in the tensor (with the fill of a sparse tensor): the floor
    lets an entry near zero carry the rounding of averaging larger values.  NaN equals only NaN
    and an infinity only itself, as in the exact check."""
    if isinstance(check, (bool, np.bool_)) or check is None:
        if not check:
            return None
        rtol = None
    elif isinstance(check, str) and check == "exact":
        rtol = 0.0
    elif isinstance(check, (int, float, np.integer, np.floating)) and 0 <= float(check) < 1:
        rtol = float(check)
    else:
        raise InputError(f"check={check!r} is not True, False, 'exact' or a relative tolerance in [0, 1)")
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        return 0.0
    if rtol is None:
        rtol = max(SYMMETRY_RTOL, _EPS_FLOOR * float(np.finfo(dtype).eps))
    return rtol


def tolerance_text(rtol: float, atol: float) -> str:
    """The tolerance of a symmetry check, for an error message."""
    if rtol == 0:
        return "compared exactly (check='exact', or an integer type)"
    return (f"allowed: {rtol:.3g} x the larger magnitude + {atol:.3g} ({rtol:.3g} x the largest magnitude "
            f"in the tensor)")


def largest_magnitude(values: np.ndarray, fill: float | None = None) -> float:
    """The largest finite magnitude among ``values`` (and ``fill``): the scale of the absolute floor."""
    mags = np.abs(values[np.isfinite(values)]) if values.size else values
    top = float(mags.max()) if mags.size else 0.0
    if fill is not None and math.isfinite(fill):
        top = max(top, abs(float(fill)))
    return top


def within_tolerance(a: np.ndarray, b: np.ndarray, rtol: float, atol: float) -> np.ndarray:
    """Per entry: are ``a`` and ``b`` the same value up to the tolerance (NaN matches only NaN, an
    infinity only itself; an integer compares exactly when ``rtol`` is 0)?"""
    same = a == b
    if a.dtype.kind == "f" or b.dtype.kind == "f":
        same = same | (np.isnan(a) & np.isnan(b))
    if rtol == 0:
        return same
    a, b = a.astype(np.float64), b.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        close = np.abs(a - b) <= rtol * np.maximum(np.abs(a), np.abs(b)) + atol
    return same | (close & np.isfinite(a) & np.isfinite(b))


def _exactly_symmetric(arr: np.ndarray, groups: tuple[tuple[int, ...], ...]) -> tuple | None:
    """None if ``arr`` is bitwise symmetric, else the first transposition that changes it and where."""
    for g in groups:
        for a, b in zip(g, g[1:]):  # adjacent transpositions generate the group
            axes = list(range(arr.ndim))
            axes[a], axes[b] = axes[b], axes[a]
            other = arr.transpose(axes)
            same = (arr == other) | (np.isnan(arr) & np.isnan(other) if arr.dtype.kind == "f" else False)
            if not same.all():
                return g, a, b, other, same
    return None


def is_exactly_symmetric(arr: np.ndarray, groups: tuple[tuple[int, ...], ...]) -> bool:
    """Is ``arr`` bitwise symmetric in ``groups`` (NaN equal to NaN)?  One comparison per adjacent
    transposition, no index arrays."""
    return _exactly_symmetric(arr, tuple(tuple(g) for g in groups)) is None


def check_symmetry(name: str, arr: np.ndarray, groups: tuple[tuple[int, ...], ...],
                   check: object = True) -> bool:
    """Raise :class:`InputError` naming the largest asymmetry, if there is any beyond the tolerance.

    ``check`` selects the tolerance (see :func:`symmetry_rtol`): ``True`` compares a float array
    up to :data:`SYMMETRY_RTOL`, ``"exact"`` or an integer array bitwise (NaN equals NaN here),
    ``False`` not at all.  Returns whether ``arr`` is exactly symmetric (True when unchecked);
    an array only symmetric within the tolerance should be read through its canonical entries,
    ``arr[symmetrize_index(arr.shape, groups)]``, which is what a kernel does.
    """
    groups = tuple(tuple(g) for g in groups)
    rtol = symmetry_rtol(check, arr.dtype)
    if rtol is None or not groups:
        return True
    found = _exactly_symmetric(arr, groups)  # the fast path: most inputs are symmetric bitwise
    if found is None:
        return True
    fmt = lambda p: f"{name}[{','.join(map(str, map(int, p)))}]"  # noqa: E731
    advice = "symmetrize it (systec_ref.symmetrize) or pass check=False to use its canonical triangle as is"
    if rtol == 0:
        g, a, b, other, same = found
        with np.errstate(invalid="ignore", over="ignore"):
            diff = np.abs(arr.astype(np.float64) - other.astype(np.float64))
        diff = np.where(same, -1.0, np.nan_to_num(diff, nan=np.inf, posinf=np.inf))
        where = np.unravel_index(int(np.argmax(diff)), arr.shape)
        twin = list(where)
        twin[a], twin[b] = twin[b], twin[a]
        raise InputError(
            f"{name} is declared symmetric in modes {g} but is not: {fmt(where)} = {arr[where].item()!r} while "
            f"{fmt(twin)} = {arr[tuple(twin)].item()!r} (largest difference {float(diff[where]):.6g}); "
            f"{tolerance_text(0, 0)}; {advice}")
    # every entry against its canonical one: comparing neighbours would let the tolerance add up
    canon = arr[symmetrize_index(arr.shape, groups)]
    atol = rtol * largest_magnitude(arr)
    ok = within_tolerance(arr, canon, rtol, atol)
    if ok.all():
        return False
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(arr.astype(np.float64) - canon.astype(np.float64))
    diff = np.where(ok, -1.0, np.nan_to_num(diff, nan=np.inf, posinf=np.inf))
    where = np.unravel_index(int(np.argmax(diff)), arr.shape)
    twin = sorted_point(where, groups)
    modes = " ".join(str(g) for g in groups if any(where[m] != twin[m] for m in g))
    raise InputError(
        f"{name} is declared symmetric in modes {modes} but is not: {fmt(twin)} = {arr[twin].item()!r} while "
        f"{fmt(where)} = {arr[where].item()!r} (largest difference {float(diff[where]):.6g}); "
        f"{tolerance_text(rtol, atol)}; {advice}")


def sorted_point(point: tuple[int, ...], groups: tuple[tuple[int, ...], ...]) -> tuple[int, ...]:
    """The canonical point of one point: its subscripts sorted within each group."""
    out = [int(x) for x in point]
    for g in groups:
        for m, v in zip(g, sorted(out[m] for m in g)):
            out[m] = v
    return tuple(out)


def symmetrize_index(shape: tuple[int, ...], groups: tuple[tuple[int, ...], ...]) -> tuple[np.ndarray, ...]:
    """Fancy index that maps every point to its canonical point (each group's
    subscripts sorted), so ``X[symmetrize_index(...)]`` is symmetric."""
    idx = list(np.indices(shape))
    for g in groups:
        stacked = np.sort(np.stack([idx[p] for p in g]), axis=0)
        for n, p in enumerate(g):
            idx[p] = stacked[n]
    return tuple(idx)


def symmetry_groups(symmetry: object, shape: tuple[int, ...], arg: str = "symmetry") -> tuple[tuple[int, ...], ...]:
    """``symmetry`` checked as groups of modes of a tensor of ``shape`` and returned as a tuple of tuples.

    Each group is a tuple or list of at least two distinct modes in ``range(len(shape))``, all of
    one size; groups are disjoint.  ``None`` means no symmetry.  Raises :class:`InputError` naming
    ``arg``."""
    if symmetry is None:
        return ()
    if isinstance(symmetry, np.ndarray):  # e.g. np.array([[0, 1]]): the same nesting as lists
        symmetry = symmetry.tolist()
    order = len(shape)
    where = f"{arg}={symmetry!r}"
    if isinstance(symmetry, (str, bytes)) or not isinstance(symmetry, (tuple, list)):
        raise InputError(f"{where} is not a tuple of groups of modes, e.g. ((0, 1),) for a symmetric matrix or "
                         f"({tuple(range(order)) if order > 1 else (0, 1)},) for symmetry in every mode")
    if symmetry and all(_is_mode(g) for g in symmetry):
        raise InputError(f"{where} is a flat tuple of modes; {arg} is a tuple of groups: write "
                         f"({tuple(int(m) for m in symmetry)},)")
    groups: list[tuple[int, ...]] = []
    seen: set[int] = set()
    for g in symmetry:
        g = g.tolist() if isinstance(g, np.ndarray) else g
        if not isinstance(g, (tuple, list)) or not all(_is_mode(m) for m in g):
            raise InputError(f"{where}: the group {g!r} is not a tuple of modes (integers)")
        g = tuple(int(m) for m in g)
        if len(g) < 2:
            raise InputError(f"{where}: the group {g} has fewer than two modes")
        if len(set(g)) != len(g):
            raise InputError(f"{where}: the group {g} names a mode twice")
        if any(not 0 <= m < order for m in g):
            raise InputError(f"{where}: the group {g} names a mode outside 0..{order - 1} (the tensor has order "
                             f"{order})")
        if seen & set(g):
            raise InputError(f"{where}: mode {min(seen & set(g))} is in two groups (groups are disjoint)")
        if len({shape[m] for m in g}) > 1:
            raise InputError(f"{where}: the modes of the group {g} have different sizes "
                             f"{tuple(int(shape[m]) for m in g)} in the shape {tuple(shape)}")
        seen |= set(g)
        groups.append(g)
    return tuple(groups)


def _is_mode(m: object) -> bool:
    return isinstance(m, (int, np.integer)) and not isinstance(m, (bool, np.bool_))


def symmetrize(array: object, groups: object) -> np.ndarray:
    """The average of ``array`` over every permutation of the modes of each group, e.g. ``(A + A.T) / 2``
    for ``groups=((0, 1),)``; ``((0, 1), (2, 3))`` averages over both pairs independently.

    The result is exactly (bitwise) symmetric: each entry is its canonical entry's average, so it
    passes even ``check="exact"``.  A float array keeps its type; an integer or boolean one becomes
    float64.  Raises :class:`InputError` for groups that do not fit the array (see
    :func:`symmetry_groups`)."""
    arr = np.asarray(array)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise InputError(f"symmetrize: elements of type {arr.dtype} are not numbers")
    groups = symmetry_groups(groups, arr.shape, "groups")
    out = arr.astype(arr.dtype if arr.dtype.kind in "fc" else np.float64)
    for g in groups:
        total = np.zeros_like(out)
        perms = list(itertools.permutations(g))
        for perm in perms:
            axes = list(range(arr.ndim))
            for m, q in zip(g, perm):
                axes[m] = q
            total += out.transpose(axes)
        out = total / len(perms)
    # sums taken in different orders differ in the last bit: every entry takes its canonical one's
    return np.ascontiguousarray(out[symmetrize_index(out.shape, groups)]) if groups and out.size else out
