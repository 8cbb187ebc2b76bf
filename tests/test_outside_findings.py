"""Regressions for what testing from outside (public API only, ~130 new kernels) found.

Each test failed before its fix.  The fuzz generators that reach these classes of bugs by themselves
are in ``test_fuzz_edges.py``; this file pins the smallest cases.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from helpers import ROOT

import systec_ref
from systec_ref.errors import InputError, SourceError
from systec_ref.storage import SparseTensor

pytestmark = pytest.mark.usefixtures("private_c_cache")

UPPER = np.array([[0.0, 1.0], [0.0, 0.0]])  # A[0,1] stored, A[1,0] not


def _every_way(k: systec_ref.Kernel, **inputs) -> dict[str, np.ndarray]:
    """The kernel's result by every route a user can take: definition, interpreter (optimized and
    naive), C (optimized and symmetry-off), sparse inputs given dense and compressed."""
    out = {"definition": k.definition(inputs).value,
           "interp": k.run(**inputs), "interp naive": k.run(optimize=False, **inputs),
           "c": k.run(backend="c", **inputs), "c baseline": k.run(backend="c", optimize=False, **inputs)}
    packed = {n: SparseTensor.from_dense(a, k.ast.decl(n).symmetry, k.ast.decl(n).fill)
              if k.ast.decl(n).format == "sparse" else a for n, a in inputs.items()}
    out["c compressed"] = k.run(backend="c", **packed)
    out["interp compressed"] = k.run(**packed)
    return out


def _all_equal(results: dict[str, np.ndarray], want) -> None:
    for how, got in results.items():
        assert np.array_equal(np.asarray(got), np.asarray(want), equal_nan=True), f"{how}: {got} != {want}"


# -- a sparse input read in two orientations -------------------------------------------------

@pytest.mark.parametrize("rhs, x, want", [
    ("A[i,j] + A[j,i]", None, 2.0),
    ("A[i,j]*x[j] + A[j,i]*x[j]", [1.0, 1.0], [1.0, 1.0]),
    ("A[i,j]*x[j] - A[j,i]*x[i]", [1.0, 2.0], [2.0, -2.0]),
    ("A[i,j] * A[j,i]", None, 0.0),
])
def test_sparse_input_read_transposed(rhs, x, want):
    decl = "in x[n]\n" if x is not None else ""
    out, lhs = ("y[n]", "y[i]") if "x[i]" in rhs or "x[j]" in rhs else ("s", "s")
    k = systec_ref.compile(f"kernel t\nin A[n,n] sparse\n{decl}out {out}\n{lhs} += {rhs}\n")
    inputs = {"A": UPPER} | ({"x": np.array(x)} if x is not None else {})
    _all_equal(_every_way(k, **inputs), want)
    _all_equal({"scipy": k.run(backend="c", A=sp.csr_matrix(UPPER), **{n: v for n, v in inputs.items() if n != "A"})},
               want)


def test_sparse_order3_read_in_three_rotations():
    k = systec_ref.compile("kernel t\nin A[n,n,n] sparse\nout y[n]\ny[i] += A[i,j,k] + A[j,k,i] - A[k,i,j]\n")
    a = np.zeros((3, 3, 3))
    a[0, 1, 2], a[2, 0, 0], a[1, 1, 0] = 1.0, 2.0, -3.0
    want = k.definition({"A": a}).value
    _all_equal(_every_way(k, A=a), want)


def test_infinite_fill_times_a_negative_entry():
    # inf * -2 = -inf: an unstored A[0,1] times a stored A[1,0] = -2 is an update under min=
    k = systec_ref.compile("kernel t\nin A[n,n] sparse fill inf\nout y[n]\ny[i] min= A[i,j] * A[j,i]\n")
    a = np.array([[1.0, math.inf], [-2.0, 1.0]])
    _all_equal(_every_way(k, A=a), [-math.inf, -math.inf])


def test_a_nest_that_cannot_skip_says_so():
    k = systec_ref.compile("kernel t\nin A[n,n] sparse\nout s\ns += A[i,j] + A[j,i]\n")
    assert "not applied" in k.stage("sparse-iterate").note
    k = systec_ref.compile("kernel t\nin A[n,n] sparse\nin x[n]\nout y[n]\ny[i] += A[i,j] * x[j]\n")
    assert "iterates stored entries" in k.stage("sparse-iterate").note  # the common case still skips


# -- a symmetry check skipped once is not skipped again --------------------------------------

@pytest.mark.parametrize("backend", ["interp", "c"])
def test_check_false_once_does_not_disable_the_check(backend):
    k = systec_ref.load(ROOT / "examples" / "sparse" / "ssymv.ein")
    t = SparseTensor.from_dense(np.array([[1.0, 2.0], [0.0, 1.0]]))  # not symmetric
    x = np.ones(2)
    assert np.array_equal(k.run(backend=backend, A=t, x=x, check=False), [3.0, 3.0])  # upper triangle
    for _ in range(2):
        with pytest.raises(InputError, match="declared symmetric"):
            k.run(backend=backend, A=t, x=x)
    # a verified layout stays verified, and a symmetric tensor passes
    s = SparseTensor.from_dense(np.array([[1.0, 2.0], [2.0, 1.0]]))
    k.run(backend=backend, A=s, x=x, check=False)
    assert np.array_equal(k.run(backend=backend, A=s, x=x), [3.0, 3.0])


# -- literals that overflow or fold to NaN ----------------------------------------------------

HUGE = "9" * 310


@pytest.mark.parametrize("text, want", [
    ("in x[n]\nout y[n]\ny[i] += x[i] * 1e400 * 0", [math.nan, math.nan]),
    ("in A[n,n]\nin x[n]\nout y[n]\ny[i] min= A[i,j] + x[j] + 1e400 * 0", [math.inf, math.inf]),
    (f"in x[n]\nout y[n]\ny[i] += x[i] * {HUGE}", [math.inf, -math.inf]),
    (f"in A[n,n] sparse fill inf\nin x[n]\nout y[n]\ny[i] min= A[i,j] + x[j] * {HUGE}", [math.inf, -math.inf]),
    ("in A[n,n]\nin x[n]\nout y[n]\ny[i] += A[i,j] * 1e400 + x[j] * 1e400", [math.nan, math.nan]),
])
def test_extreme_literals_give_results(text, want):
    k = systec_ref.compile("kernel t\n" + text + "\n")
    inputs = {"x": np.array([1.0, -1.0])}
    if "A[" in text:
        inputs["A"] = np.array([[1.0, 2.0], [2.0, 3.0]])
    if "min=" in text and "sparse" in text:
        inputs["A"] = np.array([[1.0, math.inf], [math.inf, 3.0]])
    _all_equal(_every_way(k, **inputs), want)


def test_literal_factors_fold_first_in_every_stage():
    # the passes gather a product's constants into one coefficient; the definition does the same, so
    # x * 1e200 * 1e200 is x * inf everywhere (NaN for x = 0, not 0 in one stage and NaN in another)
    k = systec_ref.compile("kernel t\nin A[n,n] symmetric\nin x[n]\nout y[n]\ny[i] += A[i,j] * x[j] * 1e200 * 1e200\n")
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    x = np.array([0.0, 1.0])
    _all_equal(_every_way(k, A=a, x=x), [math.nan, math.nan])  # 0 * inf in each row (was [0, inf] in the definition)
    k = systec_ref.compile("kernel t\nin x[n] int64\nout y[n] int64\ny[i] += x[i] * 4294967296 * 3 * 4294967296\n")
    _all_equal(_every_way(k, x=np.array([1, 2], dtype=np.int64)), [0, 0])  # 3 * 2^64 wraps to 0


def test_a_huge_fill_is_a_located_error():
    with pytest.raises(SourceError, match=r"<string>:2:4: error: sparse 'A' with fill inf under '\+='"):
        systec_ref.compile(f"kernel t\nin A[n,n] sparse fill {HUGE}\nin x[n]\nout y[n]\ny[i] += A[i,j] * x[j]\n")


def test_a_huge_literal_in_the_cli_is_no_internal_error(tmp_path):
    f = tmp_path / "huge.ein"
    f.write_text(f"kernel t\nin x[n]\nout y[n]\ny[i] += x[i] * {HUGE}\n")
    r = subprocess.run([sys.executable, "-m", "systec_ref", "run", str(f), "--backend", "c", "--size", "n=3"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "internal error" not in r.stdout + r.stderr


def test_a_sparse_input_too_large_to_densify_says_what_and_why():
    # read in two orientations, the nest stays dense: the tensor must be passed dense, and cannot be
    n = 5 * 10**9
    t = SparseTensor.from_coo([[0, 1], [n - 1, 2]], [1.0, 2.0], (n, n))
    k = systec_ref.compile("kernel t\nin A[n,n] sparse\nout s\ns += A[i,j] + A[j,i]\n")
    for backend in ("c", "interp"):
        with pytest.raises(InputError, match=r"A: cannot make the dense array of shape .* because"):
            k.run(backend=backend, A=t)


# -- int64 wraps around, in every stage and in C ------------------------------------------------

def test_int64_result_does_not_depend_on_the_pipeline():
    # optimized: 2 * A[0,1] is formed before the sum; naive: A[0,1] + A[1,0] + A[1,1]
    k = systec_ref.compile("kernel t\nin A[n,n] symmetric int64\nout s int64\ns += A[i,j]\n")
    big = 2**62
    a = np.array([[0, big], [big, -5]], dtype=np.int64)
    want = np.sum(a)  # numpy wraps: 2^63 - 5 fits, though 2 * 2^62 does not
    assert int(want) == 2**63 - 5
    _all_equal(_every_way(k, A=a), want)
    assert systec_ref.check(k, {"A": a}).ok


def test_int64_wraps_like_numpy_when_the_true_result_does_not_fit():
    k = systec_ref.compile("kernel t\nin A[n,n] int64\nin x[n] int64\nout y[n] int64\ny[i] += A[i,j] * x[j]\n")
    a = np.array([[2**62, 3], [-(2**63), 2**63 - 1]], dtype=np.int64)
    x = np.array([5, 2**40], dtype=np.int64)
    with np.errstate(over="ignore"):
        want = a @ x
    _all_equal(_every_way(k, A=a, x=x), want)
