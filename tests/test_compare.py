"""``systec_ref.agree``: exact for int64, tight and relative for floats, infinities exact."""

from __future__ import annotations

import math

import numpy as np
import pytest

from systec_ref import agree


def test_int64_is_exact():
    assert agree(np.array([1, 2, 3]), np.array([1, 2, 3]), "int64")
    a = agree(np.array([1, 2, 3]), np.array([1, 2, 4]), "int64")
    assert not a and a.max_abs_err == 1.0 and a.detail == "at (2,): 3 != 4"
    big = 2**62
    assert not agree(np.array([big + 1]), np.array([big]), "int64")  # 1 in 4.6e18 is still a difference


def test_float64_tolerance_is_1e12_relative_to_entry_and_scale():
    w = np.array([1.0, 3.0])
    # tol at entry 0: 1e-12 * (|1| + max|w| = 3) = 4e-12
    assert agree(w + np.array([3.9e-12, 0.0]), w, "float64")
    assert not agree(w + np.array([4.1e-12, 0.0]), w, "float64")
    assert not agree(w * (1 + 1e-9), w, "float64")
    # an entry that cancelled to ~0 is judged against the largest entry
    assert agree(np.array([1e-13, 1.0]), np.array([0.0, 1.0]), "float64")
    assert not agree(np.array([1e-11, 1.0]), np.array([0.0, 1.0]), "float64")


def test_float32_tolerance():
    w = np.array([1.0, 1.0], dtype=np.float32)
    assert agree(w + np.float32(1e-6), w, "float32")
    assert not agree(w + np.float32(1e-4), w, "float32")


def test_infinities_and_nan():
    inf, nan = math.inf, math.nan
    assert agree(np.array([inf, -inf, 1.0]), np.array([inf, -inf, 1.0]), "float64")
    assert not agree(np.array([-inf]), np.array([inf]), "float64")
    a = agree(np.array([inf, 1.0]), np.array([1.0, 1.0]), "float64")
    assert not a and a.max_abs_err == inf and "inf != 1.0" in a.detail
    assert not agree(np.array([1.0]), np.array([inf]), "float64")
    assert agree(np.array([nan]), np.array([nan]), "float64")
    assert not agree(np.array([nan]), np.array([1.0]), "float64")
    assert not agree(np.array([1.0]), np.array([nan]), "float64")


def test_shapes_and_scalars():
    a = agree(np.zeros(3), np.zeros((3, 1)), "float64")
    assert not a and "shape" in a.detail
    assert agree(np.float64(2.0), np.array(2.0), "float64")
    a = agree(np.array(2.0), np.array(3.0), "float64")
    assert not a and a.detail == "at (): 2.0 != 3.0"
    assert agree(np.zeros((0, 3)), np.zeros((0, 3)), "float64")


@pytest.mark.parametrize("dtype", ["float64", "float32", "int64"])
def test_agreement_is_truthy_only_when_ok(dtype):
    x = np.arange(4).astype(dtype)
    assert bool(agree(x, x, dtype)) is True
    assert bool(agree(x, x + 1, dtype)) is False
