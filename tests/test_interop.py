"""Symmetry checks up to rounding, ``systec_ref.symmetrize``, the validation of ``symmetry``
arguments, and SparseTensor's conversions to and from scipy, COO arrays and pydata ``sparse``."""

from __future__ import annotations

import itertools
import re
import sys

import helpers
import numpy as np
import pytest
import scipy.sparse as sp
import sparse
from hypothesis import given, settings
from hypothesis import strategies as st

import systec_ref
from systec_ref.errors import InputError, ToolError
from systec_ref.storage import SparseTensor, faces
from systec_ref.storage.faces import symmetrize_index

# kernel text and the groups of its symmetric input A: orders 2-4, partial groups
DENSE_KERNELS = {
    "order2": ("kernel k2\nin A[n, n] symmetric\nin x[n]\nout y[n]\ny[i] += A[i, j] * x[j]\n", ((0, 1),)),
    "order3": ("kernel k3\nin A[n, n, n] symmetric\nin x[n]\nout y[n]\ny[i] += A[i, j, k] * x[j] * x[k]\n",
               ((0, 1, 2),)),
    "order3-partial": ("kernel k3p\nin A[n, n, n] symmetric(1,2)\nin x[n]\nout y[n]\n"
                       "y[i] += A[i, j, k] * x[j] * x[k]\n", ((1, 2),)),
    "order4-two-groups": ("kernel k4\nin A[n, n, n, n] symmetric(0,1) symmetric(2,3)\nin x[n]\nout y[n]\n"
                          "y[i] += A[i, j, k, l] * x[j] * x[k] * x[l]\n", ((0, 1), (2, 3))),
}

GROUPS = [((0, 1),), ((0, 1, 2),), ((1, 2),), ((0, 1), (2, 3)), ((0, 1, 2, 3),), ((2, 3),)]


def _order(groups) -> int:
    return max(m for g in groups for m in g) + 1


def _noncanonical_point(order: int, groups) -> tuple[int, ...]:
    """A point whose first group's subscripts are out of order (1 before 0)."""
    p = [0] * order
    p[groups[0][0]] = 1
    return tuple(p)


def _canonical(arr: np.ndarray, groups) -> np.ndarray:
    return arr[symmetrize_index(arr.shape, groups)]


def _nearly_symmetric(shape, groups, seed: int) -> np.ndarray:
    """Symmetric but for last-bit differences: what averaging permutations in floating point leaves."""
    rng = np.random.default_rng(seed)
    exact = systec_ref.symmetrize(rng.uniform(-1.0, 1.0, shape), groups)
    noisy = exact.copy()
    flip = rng.random(shape) < 0.5
    noisy[flip] = np.nextafter(noisy[flip], np.inf)
    p = _noncanonical_point(len(shape), groups)
    noisy[p] = np.nextafter(exact[p], -np.inf)  # at least one entry off its canonical one
    return noisy


def _averaged3(seed: int = 0, n: int = 5) -> np.ndarray:
    """An order-3 tensor symmetrized the usual way: the mean of its six transposes."""
    a = np.random.default_rng(seed).random((n, n, n))
    return sum(a.transpose(p) for p in itertools.permutations(range(3))) / 6


# -- symmetry up to rounding -----------------------------------------------------------------

def test_an_averaged_tensor_is_accepted_by_default_and_refused_by_the_exact_check():
    avg = _averaged3()
    assert not np.array_equal(avg, avg.transpose(1, 0, 2))  # the premise: not symmetric bitwise
    k = systec_ref.compile(DENSE_KERNELS["order3"][0])
    x = np.linspace(-1.0, 1.0, 5)
    arrays, _ = k.bind({"A": avg, "x": x})
    assert np.array_equal(arrays["A"], _canonical(avg, ((0, 1, 2),)))
    with pytest.raises(InputError, match=r"A is declared symmetric .* compared exactly"):
        k.bind({"A": avg, "x": x}, check="exact")
    t = SparseTensor.from_dense(avg, ((0, 1, 2),))
    assert np.array_equal(t.to_dense(), _canonical(avg, ((0, 1, 2),)))
    with pytest.raises(InputError, match="compared exactly"):
        SparseTensor.from_dense(avg, ((0, 1, 2),), check="exact")


@settings(max_examples=12, deadline=None)
@given(st.sampled_from(sorted(DENSE_KERNELS)), st.integers(2, 3), st.integers(0, 2**16))
def test_dense_inputs_within_rounding_are_accepted_and_every_backend_reads_the_canonical_entries(name, n, seed):
    text, groups = DENSE_KERNELS[name]
    k = systec_ref.compile(text)
    A = _nearly_symmetric((n,) * _order(groups), groups, seed)
    x = np.random.default_rng(seed).uniform(-1.0, 1.0, n)
    canon = _canonical(A, groups)
    with pytest.raises(InputError, match="compared exactly"):
        k.bind({"A": A, "x": x}, check="exact")
    arrays, _ = k.bind({"A": A, "x": x})
    assert np.array_equal(arrays["A"], canon)
    # the naive nest reads every entry: it agrees with the optimized one because it is handed canonical ones
    want = k.run(A=canon, x=x, optimize=False)
    assert np.array_equal(k.run(A=A, x=x, optimize=False), want)
    assert np.array_equal(k.definition({"A": A, "x": x}).value, k.definition({"A": canon, "x": x}).value)


@settings(max_examples=15, deadline=None)
@given(st.sampled_from(GROUPS), st.integers(2, 3), st.integers(0, 2**16))
def test_sparse_tensors_within_rounding_are_accepted_and_store_the_canonical_entries(groups, n, seed):
    A = _nearly_symmetric((n,) * _order(groups), groups, seed)
    canon = _canonical(A, groups)
    coords = np.argwhere(np.ones(A.shape, dtype=bool))
    values = A[tuple(coords.T)]
    for build in (lambda check: SparseTensor.from_dense(A, groups, check=check),
                  lambda check: SparseTensor.from_coo(coords, values, A.shape, groups, check=check),
                  lambda check: SparseTensor.from_coo(coords[::-1], values[::-1], A.shape, groups, check=check),
                  lambda check: SparseTensor.from_dense(A, check=check).with_symmetry(groups, check=check)):
        assert np.array_equal(build(True).to_dense(), canon)
        with pytest.raises(InputError, match="compared exactly"):
            build("exact")


def test_from_coo_keeps_the_value_given_at_the_canonical_coordinate():
    x = 0.1 + 0.2
    near = np.nextafter(x, 1.0)
    for coords, values in (([[0, 1], [1, 0]], [x, near]), ([[1, 0], [0, 1]], [near, x])):
        t = SparseTensor.from_coo(coords, values, (2, 2), ((0, 1),))
        assert t.to_dense()[0, 1] == x and t.to_dense()[1, 0] == x
    # only the mirror given, within the tolerance of the fill (0): the canonical entry is the fill
    t = SparseTensor.from_coo([[1, 0], [0, 0]], [1e-300, 1.0], (2, 2), ((0, 1),))
    assert t.stored == 1 and np.array_equal(t.to_dense(), [[1.0, 0.0], [0.0, 0.0]])


@pytest.mark.parametrize("via", ["bind", "from_dense", "from_coo", "from_scipy"])
def test_a_real_asymmetry_is_refused_naming_both_entries_and_the_tolerance(via):
    A = systec_ref.symmetrize(np.random.default_rng(1).uniform(0.5, 1.0, (4, 4)), ((0, 1),))
    A[3, 1] += 1e-6
    with pytest.raises(InputError) as e:
        if via == "bind":
            systec_ref.compile(DENSE_KERNELS["order2"][0]).bind({"A": A, "x": np.ones(4)})
        elif via == "from_dense":
            SparseTensor.from_dense(A, ((0, 1),), name="A")
        elif via == "from_coo":
            SparseTensor.from_coo(np.argwhere(A != 0), A[A != 0], A.shape, ((0, 1),), name="A")
        else:
            SparseTensor.from_scipy(sp.csr_matrix(A), ((0, 1),), name="A")
    msg = str(e.value)
    assert re.search(r"A\[1,3\] = \S+ while A\[3,1\] = \S+ \(largest difference 1e-06\)", msg), msg
    assert "allowed: 1e-12 x the larger magnitude" in msg and "check=False" in msg and "\n" not in msg


def test_integers_are_compared_exactly_whatever_the_tolerance():
    A = np.full((3, 3), 10**6, dtype=np.int64)
    A[0, 2] += 1
    k = systec_ref.load(str(helpers.example("triangles")))
    for check in (True, 0.5):
        with pytest.raises(InputError, match=r"largest difference 1\).*compared exactly"):
            k.bind({"A": A}, check=check)
        with pytest.raises(InputError, match="compared exactly"):
            SparseTensor.from_dense(A, ((0, 1),), check=check)
    # the same relative difference in floats is within a tolerance of 0.5
    SparseTensor.from_dense(A.astype(np.float64), ((0, 1),), check=0.5)


def test_the_tolerance_is_configurable_per_call_and_module_wide(monkeypatch):
    A = systec_ref.symmetrize(np.random.default_rng(2).uniform(0.5, 1.0, (3, 3, 3)), ((0, 1, 2),))
    A[2, 1, 0] *= 1 + 1e-7
    with pytest.raises(InputError, match="allowed: 1e-12"):
        SparseTensor.from_dense(A, ((0, 1, 2),))
    SparseTensor.from_dense(A, ((0, 1, 2),), check=1e-6)
    with pytest.raises(InputError, match="allowed: 1e-08"):
        SparseTensor.from_dense(A, ((0, 1, 2),), check=1e-8)
    monkeypatch.setattr(faces, "SYMMETRY_RTOL", 1e-6)
    SparseTensor.from_dense(A, ((0, 1, 2),))
    systec_ref.compile(DENSE_KERNELS["order3"][0]).bind({"A": A, "x": np.ones(3)})


def test_nan_matches_only_nan_and_bad_check_values_are_refused():
    A = np.array([[1.0, np.nan], [np.nan, 2.0]])
    SparseTensor.from_dense(A, ((0, 1),))
    A[1, 0] = 0.0
    with pytest.raises(InputError, match=r"largest difference inf"):
        SparseTensor.from_dense(A, ((0, 1),))
    k = systec_ref.compile(DENSE_KERNELS["order2"][0])
    for bad in ("loose", 1.5, -1e-3, [1e-9]):
        with pytest.raises(InputError, match=r"check=.* is not True, False, 'exact' or a relative tolerance"):
            k.bind({"A": np.eye(2), "x": np.ones(2)}, check=bad)


def test_a_layout_verified_loosely_or_not_at_all_is_verified_again_when_asked_exactly():
    A = _nearly_symmetric((3, 3, 3), ((0, 1, 2),), seed=5)
    t = SparseTensor.from_dense(A)
    loose = t.with_symmetry(((0, 1, 2),), check=False)
    assert t.with_symmetry(((0, 1, 2),), check=False) is loose
    with pytest.raises(InputError, match="compared exactly"):
        t.with_symmetry(((0, 1, 2),), check="exact")
    checked = t.with_symmetry(((0, 1, 2),))
    assert t.with_symmetry(((0, 1, 2),), check=1e-6) is checked  # a looser check reuses it
    with pytest.raises(InputError, match="compared exactly"):
        t.with_symmetry(((0, 1, 2),), check="exact")


# -- symmetrize -------------------------------------------------------------------------------

@settings(max_examples=15, deadline=None)
@given(st.sampled_from(GROUPS), st.integers(1, 3), st.integers(0, 2**16))
def test_symmetrize_averages_every_permutation_and_is_exactly_symmetric(groups, n, seed):
    order = _order(groups)
    A = np.random.default_rng(seed).uniform(-1.0, 1.0, (n,) * order)
    S = systec_ref.symmetrize(A, groups)
    assert S.dtype == np.float64 and S.shape == A.shape
    faces.check_symmetry("S", S, groups, check="exact")
    # brute force: the mean over the product of the groups' permutations
    total = np.zeros_like(A)
    perms = list(itertools.product(*(itertools.permutations(g) for g in groups)))
    for combo in perms:
        axes = list(range(order))
        for g, perm in zip(groups, combo):
            for m, q in zip(g, perm):
                axes[m] = q
        total += A.transpose(axes)
    assert np.allclose(S, total / len(perms), rtol=1e-14, atol=1e-15)
    assert np.allclose(systec_ref.symmetrize(S, groups), S, rtol=1e-14, atol=1e-15)


def test_symmetrize_of_a_matrix_and_of_integers():
    A = np.arange(9.0).reshape(3, 3)
    assert np.array_equal(systec_ref.symmetrize(A, ((0, 1),)), (A + A.T) / 2)
    B = systec_ref.symmetrize(np.arange(8).reshape(2, 2, 2), [[1, 2]])
    assert B.dtype == np.float64 and B[0, 0, 1] == B[0, 1, 0] == 1.5
    assert systec_ref.symmetrize(np.ones((2, 2), dtype=np.float32), ((0, 1),)).dtype == np.float32


@pytest.mark.parametrize("groups, fragment", [
    ((0, 1), r"groups=\(0, 1\) is a flat tuple of modes; groups is a tuple of groups: write \(\(0, 1\),\)"),
    ("all", r"groups='all' is not a tuple of groups"),
    (((0, 2),), r"the modes of the group \(0, 2\) have different sizes \(3, 2\)"),
    (((0, 3),), r"names a mode outside 0..2"),
    (((0, 1), (1, 2)), r"mode 1 is in two groups"),
])
def test_symmetrize_validates_its_groups(groups, fragment):
    with pytest.raises(InputError, match=fragment):
        systec_ref.symmetrize(np.zeros((3, 3, 2)), groups)
    with pytest.raises(InputError, match="not numbers"):
        systec_ref.symmetrize(np.array([["a", "b"], ["c", "d"]]), ((0, 1),))


# -- validation of symmetry arguments ----------------------------------------------------------

def _constructors(symmetry):
    A = np.eye(3)
    return {
        "from_dense": lambda: SparseTensor.from_dense(A, symmetry),
        "from_coo": lambda: SparseTensor.from_coo([[0, 0], [1, 1]], [1.0, 2.0], (3, 3), symmetry),
        "from_scipy": lambda: SparseTensor.from_scipy(sp.csr_matrix(A), symmetry),
        "from_pydata": lambda: SparseTensor.from_pydata(sparse.COO.from_numpy(A), symmetry),
        "with_symmetry": lambda: SparseTensor.from_dense(A).with_symmetry(symmetry),
    }


@pytest.mark.parametrize("symmetry, fragment", [
    ((0, 1), r"symmetry=\(0, 1\) is a flat tuple of modes; symmetry is a tuple of groups: write \(\(0, 1\),\)"),
    ("all", r"symmetry='all' is not a tuple of groups of modes, e\.g\. \(\(0, 1\),\)"),
    (((0,),), r"the group \(0,\) has fewer than two modes"),
    (((0, 0),), r"the group \(0, 0\) names a mode twice"),
    (((0, 2),), r"names a mode outside 0..1"),
    (((0, 1.0),), r"the group \(0, 1.0\) is not a tuple of modes"),
    (3, r"symmetry=3 is not a tuple of groups"),
])
def test_every_constructor_validates_symmetry_with_one_clear_line(symmetry, fragment):
    for name, build in _constructors(symmetry).items():
        with pytest.raises(InputError, match=fragment) as e:
            build()
        assert "\n" not in str(e.value), name


def test_valid_symmetry_spellings_still_work():
    for symmetry in (((0, 1),), [[0, 1]], [(0, 1)], (), None, (np.array([0, 1]),), np.array([[0, 1]])):
        for build in _constructors(symmetry).values():
            build()
    assert SparseTensor.from_dense(np.eye(2), [[0, 1]]).symmetry == ((0, 1),)


# -- conversions ---------------------------------------------------------------------------

def _random_sparse(groups, n: int, seed: int, fill: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (n,) * _order(groups)
    A = np.where(rng.random(shape) < 0.4, rng.integers(-4, 5, shape).astype(np.float64), fill)
    return _canonical(A, groups)


@settings(max_examples=15, deadline=None)
@given(st.sampled_from(GROUPS + [()]), st.integers(1, 4), st.integers(0, 2**16), st.sampled_from([0.0, 7.0]))
def test_to_coo_to_pydata_and_from_pydata_round_trip(groups, n, seed, fill):
    A = _random_sparse(groups or ((0, 1),), n, seed, fill)
    t = SparseTensor.from_dense(A, groups, fill=fill)
    coords, values = t.to_coo()
    assert coords.dtype == np.int64 and coords.shape == (np.count_nonzero(A != fill), A.ndim)
    rebuilt = np.full(A.shape, fill)
    rebuilt[tuple(coords.T)] = values
    assert np.array_equal(rebuilt, A)  # every entry, mirrored
    P = t.to_pydata()
    assert isinstance(P, sparse.COO) and P.fill_value == fill and np.array_equal(P.todense(), A)
    for arr in (P, sparse.GCXS(P)):
        back = SparseTensor.from_pydata(arr, groups)
        assert back.fill == fill and back.symmetry == tuple(groups) and back.stored == t.stored
        assert np.array_equal(back.to_dense(), A)


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_to_scipy_gives_every_entry_of_a_matrix(fmt):
    A = _random_sparse(((0, 1),), 6, seed=3)
    M = SparseTensor.from_dense(A, ((0, 1),)).to_scipy(fmt)
    assert M.format == fmt and np.array_equal(M.toarray(), A)
    assert np.array_equal(SparseTensor.from_scipy(M, ((0, 1),)).to_dense(), A)


def test_to_scipy_refuses_what_scipy_cannot_hold():
    with pytest.raises(InputError, match=r"holds inf where it stores nothing, but a scipy.sparse matrix holds 0"):
        SparseTensor.from_dense(np.full((2, 2), np.inf), fill=np.inf).to_scipy()
    with pytest.raises(InputError, match="order 3"):
        SparseTensor.from_dense(np.zeros((2, 2, 2))).to_scipy()
    with pytest.raises(InputError, match="format='xyz'"):
        SparseTensor.from_dense(np.eye(2)).to_scipy("xyz")


def test_from_pydata_checks_its_input_and_fill():
    P = sparse.COO.from_numpy(np.eye(3), fill_value=0.0)
    with pytest.raises(InputError, match=r"fill=1.0 but the pydata array holds its fill_value 0.0"):
        SparseTensor.from_pydata(P, fill=1.0)
    with pytest.raises(InputError, match="takes a pydata sparse array"):
        SparseTensor.from_pydata(np.eye(3))
    bad = sparse.COO.from_numpy(np.array([[1.0, 2.0], [3.0, 4.0]]))
    with pytest.raises(InputError, match=r"A\[0,1\] = 2.0 while A\[1,0\] = 3.0"):
        SparseTensor.from_pydata(bad, ((0, 1),), name="A")


def test_a_missing_pydata_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sparse", None)  # import sparse now raises ImportError
    with pytest.raises(ToolError, match=r"pip install 'systec_ref\[pydata\]'"):
        SparseTensor.from_dense(np.eye(2)).to_pydata()


# -- pydata arrays as kernel inputs -----------------------------------------------------------------

@pytest.mark.parametrize("backend", ["c", "interp"])
def test_a_pydata_array_for_a_sparse_input_gives_the_dense_result(backend):
    k = systec_ref.load(str(helpers.example("sparse/ssymv")))
    A = _random_sparse(((0, 1),), 7, seed=4)
    x = np.random.default_rng(4).uniform(-1.0, 1.0, 7)
    want = k.run(A=A, x=x, backend=backend)
    for arr in (sparse.COO.from_numpy(A), sparse.GCXS.from_numpy(A)):
        assert np.array_equal(k.run(A=arr, x=x, backend=backend), want)
    assert isinstance(k.bind({"A": sparse.COO.from_numpy(A), "x": x})[0]["A"], SparseTensor)
    asym = A.copy()
    asym[0, 6] = asym[6, 0] + 1.0
    with pytest.raises(InputError, match=r"A is declared symmetric"):
        k.run(A=sparse.COO.from_numpy(asym), x=x, backend=backend)


def test_a_pydata_array_for_a_dense_input_or_with_another_fill_is_refused():
    A = np.eye(3)
    with pytest.raises(InputError, match=r"A: a pydata sparse array was given for a dense tensor .*\.todense\(\)"):
        systec_ref.load(str(helpers.example("ssymv"))).run(A=sparse.COO.from_numpy(A), x=np.ones(3))
    k = systec_ref.load(str(helpers.example("sparse/ssymv")))
    with pytest.raises(InputError, match=r"fill_value 1.0 was given for a tensor declared fill 0"):
        k.run(A=sparse.COO.from_numpy(A, fill_value=1.0), x=np.ones(3))
