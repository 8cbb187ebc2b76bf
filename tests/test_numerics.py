"""Numerics: NaN, ±inf and float32 behave the same in the interpreter and in C.

The rules (README, "Numerics"):

* ``+=``: IEEE arithmetic, literally — NaN propagates, ``inf - inf`` and ``0 * inf`` are NaN;
* ``min=``/``max=``: the output starts at +inf/-inf; an update replaces it only if it is smaller
  (larger), so a NaN right-hand side never changes the output (C: ``t = (v < t) ? v : t``);
* a ``sparse`` input's unstored entries are skipped, which is exact for the fills the language
  admits as long as the other factors are finite: where a dense factor is ±inf or NaN, an
  unstored entry contributes nothing (the definition would compute ``0 * inf = NaN``);
* float32: every literal and every operation's result is rounded to float32 (the interpreter does
  it per operation; C computes in ``float``, possibly reassociated or fused: agreement within the
  float32 tolerance of :mod:`systec_ref.compare`).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from strategies import InputSpec, fuzz_inputs

import systec_ref
from systec_ref.interp.loops import _combine
from systec_ref.ir.nodes import Assign
from systec_ref.reference import numpy_reference
from systec_ref.term import nodes

#: compile into the session's private cache (conftest.py)
pytestmark = pytest.mark.usefixtures("private_c_cache")


def kernel(decls: str, assignment: str, out: str) -> str:
    return f"kernel num\n{decls}\nout {out}\n{assignment}\n"


# (id, source): dense and sparse, symmetric and not, +=, min=, max=
KERNELS = {
    "plus-dense": kernel("in A[n, n]\nin x[n]", "y[i] += A[i, j] * x[j]", "y[n]"),
    "plus-symmetric": kernel("in A[n, n] symmetric\nin x[n]", "y[i] += A[i, j] * x[j]", "y[n]"),
    "plus-symmetric-3": kernel("in A[n, n, n] symmetric\nin B[n, r]", "C[i, j] += A[i, k, l] * B[l, j] * B[k, j]",
                               "C[n, r]"),
    "plus-partial": kernel("in G[n, n, n, n] symmetric(0,1) symmetric(2,3)\nin D[n, n]",
                           "J[i, j] += G[i, j, k, l] * D[k, l]", "J[n, n]"),
    "plus-scalar": kernel("in A[n, n, n] symmetric\nin x[n]", "s += A[i, j, k] * x[i] * x[j] * x[k]", "s"),
    "plus-sum": kernel("in A[n, n] symmetric\nin x[n]", "y[i] += A[i, j] - x[j] + 2 * x[i]", "y[n]"),
    "plus-sparse": kernel("in A[n, n] sparse\nin x[n]", "y[i] += A[i, j] * x[j]", "y[n]"),
    "plus-sparse-symmetric": kernel("in A[n, n] symmetric sparse\nin x[n]", "y[i] += A[i, j] * x[j]", "y[n]"),
    "plus-sparse-symmetric-3": kernel("in A[n, n, n] symmetric sparse\nin B[n, r]",
                                      "C[i, j] += A[i, k, l] * B[l, j] * B[k, j]", "C[n, r]"),
    "min-dense": kernel("in A[n, n]\nin x[n]", "y[i] min= A[i, j] + x[j]", "y[n]"),
    "min-symmetric": kernel("in A[n, n] symmetric\nin x[n]", "y[i] min= A[i, j] + x[j]", "y[n]"),
    "min-product": kernel("in A[n, n] symmetric\nin x[n]", "y[i] min= A[i, j] * x[j] - x[i]", "y[n]"),
    "min-sparse": kernel("in A[n, n] sparse fill inf\nin x[n]", "y[i] min= A[i, j] + x[j]", "y[n]"),
    "min-sparse-symmetric": kernel("in A[n, n] symmetric sparse fill inf\nin x[n]", "y[i] min= A[i, j] + x[j]",
                                   "y[n]"),
    "max-dense": kernel("in A[n, n]\nin x[n]", "y[i] max= A[i, j] - x[j]", "y[n]"),
    "max-symmetric-3": kernel("in A[n, n, n] symmetric\nin x[n]", "y[i] max= A[i, j, k] + x[j] + x[k]", "y[n]"),
    "max-scalar": kernel("in A[n, n] symmetric\nin x[n]", "s max= x[i] * A[i, j] * x[j]", "s"),
    "max-sparse-symmetric": kernel("in A[n, n] symmetric sparse fill -inf\nin x[n]", "y[i] max= A[i, j] + x[j]",
                                   "y[n]"),
}
SPECIAL_KINDS = ("nan", "inf", "-inf", "mixed")


def agree_everywhere(text: str, spec: InputSpec) -> np.ndarray:
    """Every stage, the final C and the baseline C agree with the definition; returns the definition."""
    k = systec_ref.compile(text, faces=spec.faces)
    inputs = fuzz_inputs(k, spec)
    report = systec_ref.check(k, inputs)
    assert report.ok, report.notes() + "\n" + "\n".join(
        f"{s.name}: {s.vs_definition.detail}" for s in report.stages if not s.vs_definition.ok)
    want = k.definition(inputs).value
    dtype = k.ast.output.dtype
    for optimize in (True, False):
        a = systec_ref.agree(k.run(backend="c", optimize=optimize, **inputs), want, dtype)
        assert a.ok, f"C ({'final' if optimize else 'baseline'}): {a.detail}"
    ref, _ = numpy_reference(k.ast, *k.bind(inputs))
    assert systec_ref.agree(want, ref, dtype), "the definition disagrees with numpy"
    return want


@pytest.mark.parametrize("kind", SPECIAL_KINDS)
@pytest.mark.parametrize("name", sorted(KERNELS))
def test_nan_and_inf_agree_in_interpreter_and_c(name, kind):
    text = KERNELS[name]
    seen_special = False
    for seed, density, faces in ((1, 1.0, "split"), (2, 0.5, "compact"), (3, 0.3, "split")):
        spec = InputSpec(sizes={"n": 4, "r": 2}, seed=seed, density=density, special=kind, specials=3, faces=faces)
        got = agree_everywhere(text, spec)
        seen_special |= not np.all(np.isfinite(got))
    if not name.startswith("min") and not name.startswith("max"):
        assert seen_special, "no NaN or inf reached the output: the test does not test what it says"


def test_min_max_ignore_a_nan_update():
    """The interpreter's rule, in one line each (C: ``t = (v < t) ? v : t``)."""
    lo, hi = _combine("min", None), _combine("max", None)
    assert lo(math.inf, math.nan) == math.inf and lo(1.0, math.nan) == 1.0 and lo(1.0, -2.0) == -2.0
    assert hi(-math.inf, math.nan) == -math.inf and hi(1.0, math.nan) == 1.0 and hi(1.0, 2.0) == 2.0
    assert math.isnan(_combine("+", None)(1.0, math.nan))


@pytest.mark.parametrize("op, want", [("min=", math.inf), ("max=", -math.inf), ("+=", math.nan)])
def test_all_nan_inputs(op, want):
    """Only NaN on the right: min/max keep their identity (±inf), + gives NaN — everywhere."""
    k = systec_ref.compile(kernel("in A[n, n] symmetric\nin x[n]", f"y[i] {op} A[i, j] + x[j]", "y[n]"))
    inputs = {"A": np.full((3, 3), np.nan), "x": np.full(3, np.nan)}
    for got in (k.definition(inputs).value, k.run(**inputs), k.run(backend="c", **inputs),
                k.run(backend="c", optimize=False, **inputs)):
        assert np.array_equal(got, np.full(3, want), equal_nan=True), got


def test_cancellation_is_not_folded_in_c():
    """Found by the differential fuzzer: with -fassociative-math the C compiler folded ``-x + x`` to 0,
    but for x = -inf it is NaN (ignored by ``max=``).  Kernels that subtract keep their sums in order."""
    text = ("kernel k57\nin A[3, 3] symmetric(0,1)\nin B[3, 3] sparse fill -inf\nout Y[3, 3]\norder j k\n"
            "Y[j, k] max= B[j, k] - (A[k, j] - -(-(A[j, j]) - 1.5))\n")
    k = systec_ref.compile(text)
    assert "no-associative-math" in k.c_source()  # the pragma that keeps sums in order
    A = np.array([[0.5, 0.25, -0.75], [0.25, -np.inf, 0.125], [-0.75, 0.125, 1.0]])
    B = np.arange(9, dtype=float).reshape(3, 3) / 8
    want = k.definition({"A": A, "B": B}).value
    assert want[1, 1] == -np.inf  # -(-A + A) is NaN there: the only update is ignored
    assert systec_ref.agree(k.run(backend="c", A=A, B=B), want, "float64")
    # kernels that do not subtract keep the fast flags
    assert "no-associative-math" not in systec_ref.load("examples/ssymv.ein").c_source()


def test_zero_times_nan_is_not_dropped():
    """Found by the differential fuzzer: group-assignments dropped an update with coefficient 0, but in
    floating point ``0 * x`` is NaN for x = ±inf or NaN (an int64 ``0 * x`` is still dropped)."""
    k = systec_ref.compile("kernel k24\nin A[r] sparse\nout Y[r]\nY[i] = A[i] * -0\n")
    A = np.array([np.nan, 1.0, np.inf])
    for got in (k.run(A=A), k.run(backend="c", A=A)):
        assert np.isnan(got[0]) and got[1] == 0 and np.isnan(got[2])
    k = systec_ref.compile("kernel k24\nin A[r] int64\nout Y[r] int64\nY[i] = A[i] * 0\n")
    assert not any(isinstance(n, Assign) for n in nodes(k.final.body))


def test_sparse_skips_unstored_entries_even_against_inf():
    """Documented: an unstored entry of a sparse input is skipped, so a dense ±inf/NaN factor meets no
    ``0 * inf``.  The naive nest and the definition compute it; every sparse-iterating stage and C skip it."""
    k = systec_ref.compile(KERNELS["plus-sparse-symmetric"])
    A = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.5], [0.0, 0.5, 0.0]])
    x = np.array([np.inf, 1.0, 1.0])
    want = k.definition({"A": A, "x": x}).value
    assert np.isnan(want[1]) and np.isnan(want[2])  # 0 * inf in the definition
    final = k.run(A=A, x=x)
    assert np.array_equal(final, [np.inf, 2.5, 0.5])
    assert np.array_equal(k.run(backend="c", A=A, x=x), final)


# -- float32 --------------------------------------------------------------------------------


def test_float32_rounds_every_operation():
    """The definition equals numpy's float32 arithmetic exactly: literals and every result rounded."""
    k = systec_ref.compile("kernel f\nin x[n] float32\nin z[n] float32\nout y[n] float32\n"
                           "y[i] += 0.1 * x[i] * z[i] + 0.3\n")
    rng = np.random.default_rng(0)
    x, z = rng.uniform(-1, 1, 50).astype(np.float32), rng.uniform(-1, 1, 50).astype(np.float32)
    want = (np.float32(0.1) * x) * z + np.float32(0.3)
    got = k.definition({"x": x, "z": z}).value
    assert got.dtype == np.float32 and np.array_equal(got, want)
    assert np.array_equal(k.run(backend="interp", x=x, z=z), want)
    assert systec_ref.agree(k.run(backend="c", x=x, z=z), want, "float32")  # C may contract a*b+c: not exact


def test_float32_overflows_to_inf_in_both():
    k = systec_ref.compile("kernel f\nin x[n] float32\nout y float32\ny += x[i] * x[i]\n")
    x = np.array([3e38, 1.0], dtype=np.float32)
    for got in (k.definition({"x": x}).value, k.run(x=x), k.run(backend="c", x=x)):
        assert got == np.inf


@pytest.mark.parametrize("name", ["plus-symmetric-3", "plus-sum", "min-symmetric", "max-symmetric-3",
                                  "plus-sparse-symmetric", "min-sparse-symmetric"])
def test_float32_kernels_agree_within_float32_tolerance(name):
    text = "\n".join(line + " float32" if line.startswith(("in ", "out ")) else line
                     for line in KERNELS[name].split("\n"))
    for seed, kind in ((1, None), (2, "mixed")):
        spec = InputSpec(sizes={"n": 5, "r": 3}, seed=seed, density=0.6, special=kind, specials=2)
        got = agree_everywhere(text, spec)
        assert got.dtype == np.float32
