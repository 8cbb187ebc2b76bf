"""When do two results agree?  One definition, used by every check.

* integers: exactly;
* float64: ``|a - b| <= 1e-12 * (|b| + max|b|)`` elementwise — relative to the
  entry and to the largest entry, because reordering a sum that cancels moves
  its rounding error by a fraction of the terms' size, not of the result's;
* float32: the same with 1e-5 (the tolerances are in :mod:`systec_ref.dtypes`);
* infinities must match exactly, NaN only NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .dtypes import element


@dataclass(frozen=True)
class Agreement:
    ok: bool
    max_abs_err: float
    detail: str = ""

    def __bool__(self) -> bool:
        return self.ok


def agree(got: np.ndarray, want: np.ndarray, dtype: str) -> Agreement:
    """Does ``got`` agree with ``want``?  Either may be a stored tensor (a ``SparseTensor`` or
    ``PackedTensor``): its value is the dense array it stands for."""
    got, want = _dense(got), _dense(want)
    if got.shape != want.shape:
        return Agreement(False, float("inf"), f"shape {got.shape} != {want.shape}")
    if element(dtype).is_int:
        bad = got != want
        if not bad.any():
            return Agreement(True, 0.0)
        where = np.unravel_index(int(np.argmax(bad)), got.shape) if got.shape else ()
        err = float(np.max(np.abs(got.astype(object) - want.astype(object)))) if got.size else 0.0
        return Agreement(False, err, f"at {tuple(map(int, where))}: {got[where]} != {want[where]}")
    g, w = got.astype(np.float64), want.astype(np.float64)
    finite = np.isfinite(w)
    same_special = (~finite) & ((g == w) | (np.isnan(g) & np.isnan(w)))
    if not np.all(finite | same_special):
        where = np.unravel_index(int(np.argmax(~(finite | same_special))), w.shape) if w.shape else ()
        return Agreement(False, float("inf"), f"at {tuple(map(int, where))}: {g[where]} != {w[where]}")
    scale = float(np.max(np.abs(w[finite]))) if finite.any() else 0.0
    with np.errstate(invalid="ignore"):
        err = np.where(finite, np.abs(g - w), 0.0)
    err = np.nan_to_num(err, nan=np.inf, posinf=np.inf)  # keep inf: the default maps it to 1.8e308
    tol = element(dtype).rtol * (np.abs(np.where(finite, w, 0.0)) + scale)
    bad = err > tol
    max_err = float(err.max()) if err.size else 0.0
    if not bad.any():
        return Agreement(True, max_err)
    where = np.unravel_index(int(np.argmax(bad)), w.shape) if w.shape else ()
    return Agreement(False, max_err, f"at {tuple(map(int, where))}: {g[where].item()!r} != {w[where].item()!r}")


def _dense(x: object) -> np.ndarray:
    to_dense = getattr(x, "to_dense", None)
    return np.asarray(to_dense() if callable(to_dense) else x)
