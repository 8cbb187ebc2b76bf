"""Sparse storage: canonical-only symmetric tensors split by face, conversions that lose nothing."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import systec_ref
from systec_ref.storage import CSF, SparseTensor
from systec_ref.storage.faces import face_modes
from systec_ref.tensors import symmetrize_index

GROUPS = {"full3": ((0, 1, 2),), "full2": ((0, 1),), "pairs": ((0, 1), (2, 3)), "none": ()}
SHAPES = {"full3": (5, 5, 5), "full2": (7, 7), "pairs": (4, 4, 3, 3), "none": (3, 4)}


def symmetric_random(shape, groups, density, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    base = np.where(rng.random(shape) < density, rng.integers(1, 9, size=shape), 0).astype(dtype)
    return base[symmetrize_index(shape, groups)] if groups else base


def canonical_nonzeros(arr, groups):
    return {tuple(int(x) for x in c) for c in np.argwhere(arr != 0)
            if all(list(c[list(g)]) == sorted(c[list(g)]) for g in groups)}


@pytest.mark.parametrize("kind", sorted(GROUPS))
@pytest.mark.parametrize("density", [0.0, 0.1, 0.5, 1.0])
def test_dense_round_trip_and_canonical_count(kind, density):
    groups, shape = GROUPS[kind], SHAPES[kind]
    arr = symmetric_random(shape, groups, density, seed=3)
    t = SparseTensor.from_dense(arr, groups)
    assert np.array_equal(t.to_dense(), arr)
    assert t.stored == len(canonical_nonzeros(arr, groups))
    coords, vals = t.coo()
    assert {tuple(c) for c in coords} == canonical_nonzeros(arr, groups)
    # every face holds only its own pattern; the strict face has no equal neighbours in any group
    for key, face in t.faces.items():
        c = t.face_coords(key)
        assert face.order == len(face_modes(len(shape), groups, key))  # pinned modes are not stored
        for g, mask in zip(groups, key):
            for b, (x, y) in enumerate(zip(g, g[1:])):
                assert np.array_equal(c[:, x] == c[:, y], np.full(len(c), bool(mask >> b & 1)))


def test_memory_is_about_one_kth_factorial_for_large_n():
    n = 40
    rng = np.random.default_rng(0)
    coords = np.unique(np.sort(rng.integers(0, n, size=(3000, 3)), axis=1), axis=0)
    t = SparseTensor.from_coo(coords, np.ones(len(coords)), (n, n, n), ((0, 1, 2),), check=False)
    full_c, _ = t.full_coo()
    assert t.stored == len(coords)
    assert 5.0 < len(full_c) / t.stored <= 6.0  # most entries are strict: 3! permutations
    assert 4.0 < t.full_memory_bytes() / t.memory_bytes() <= 6.0


def test_coo_round_trip_and_duplicates_summed():
    arr = symmetric_random((6, 6), ((0, 1),), 0.4, seed=1)
    c, v = SparseTensor.from_dense(arr, ((0, 1),)).full_coo()
    t = SparseTensor.from_coo(c, v, arr.shape, ((0, 1),))
    assert np.array_equal(t.to_dense(), arr)
    # the same coordinate twice: summed, as scipy does
    c2 = np.concatenate([c, c[:1]])
    v2 = np.concatenate([v, v[:1]])
    i, j = c[0]
    if i != j:  # keep the tensor symmetric: duplicate the mirrored entry too
        c2 = np.concatenate([c2, [[j, i]]])
        v2 = np.concatenate([v2, v[:1]])
    dup = SparseTensor.from_coo(c2, v2, arr.shape, ((0, 1),)).to_dense()
    want = arr.copy()
    want[i, j] *= 2
    want[j, i] = want[i, j]
    assert np.array_equal(dup, want)


def test_asymmetric_input_is_rejected_with_a_location_and_accepted_with_check_false():
    arr = symmetric_random((5, 5, 5), ((0, 1, 2),), 0.5, seed=2)
    arr[1, 2, 3] += 7
    with pytest.raises(systec_ref.InputError, match=r"A is declared symmetric .* A\[1,2,3\]"):
        SparseTensor.from_dense(arr, ((0, 1, 2),), name="A")
    t = SparseTensor.from_dense(arr, ((0, 1, 2),), check=False)
    assert t.to_dense()[3, 2, 1] == arr[1, 2, 3]  # the canonical (sorted) entry is the one used
    c = np.argwhere(arr)
    v = arr[tuple(c.T)]
    with pytest.raises(systec_ref.InputError, match=r"largest difference 7"):
        SparseTensor.from_coo(c, v, arr.shape, ((0, 1, 2),), name="A")
    # a missing permutation is an asymmetry too
    with pytest.raises(systec_ref.InputError, match="not"):
        SparseTensor.from_coo(np.array([[0, 1]]), np.array([2.0]), (3, 3), ((0, 1),))


def test_bad_coo_is_rejected():
    with pytest.raises(systec_ref.InputError, match="outside the shape"):
        SparseTensor.from_coo(np.array([[0, 5]]), np.array([1.0]), (3, 3))
    with pytest.raises(systec_ref.InputError, match="2 coordinates but 1 values"):
        SparseTensor.from_coo(np.array([[0, 1], [1, 0]]), np.array([1.0]), (3, 3))


def test_scipy_and_fill_inf():
    m = sp.random(40, 40, density=0.1, random_state=3)
    m = (m + m.T).tocsr()
    t = SparseTensor.from_scipy(m, ((0, 1),), name="M")
    assert np.allclose(t.to_dense(), m.toarray())
    assert "canonical entries stored" in t.report("M")
    w = np.full((4, 4), np.inf)
    w[0, 1] = w[1, 0] = 2.0
    w[2, 2] = 5.0
    t = SparseTensor.from_dense(w, ((0, 1),), fill=np.inf)
    assert t.stored == 2 and np.array_equal(t.to_dense(), w)


def test_huge_mode_costs_memory_per_entry_not_per_row():
    n = 2**34  # far beyond int32
    coords = np.array([[5, 2**32 + 7], [2**33, 2**33]], dtype=np.int64)
    t = SparseTensor.from_coo(np.concatenate([coords, coords[:1, ::-1]]), np.array([1.0, 2.0, 1.0]), (n, n),
                              ((0, 1),))
    assert t.stored == 2 and t.memory_bytes() < 1000
    c, v = t.coo()
    assert {tuple(x) for x in c} == {(5, 2**32 + 7), (2**33, 2**33)}


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 4), st.integers(0, 40), st.integers(0, 2**31))
def test_csf_round_trip(order, nnz, seed):
    rng = np.random.default_rng(seed)
    coords = np.unique(rng.integers(0, 4, size=(nnz, order)), axis=0) if nnz else np.zeros((0, order), np.int64)
    t = CSF.from_sorted((4,) * order, coords, np.arange(len(coords), dtype=float))
    assert np.array_equal(t.coords(), coords)
    assert all(p.dtype == np.int32 for p in t.pos) and all(c.dtype == np.int32 for c in t.crd)  # they fit
    assert t.pos[0][0] == 0 and t.pos[-1][-1] == len(coords)


def test_every_permutation_restored():
    arr = symmetric_random((3, 3, 3), ((0, 1, 2),), 1.0, seed=5)
    t = SparseTensor.from_dense(arr, ((0, 1, 2),))
    c, v = t.full_coo()
    assert len(c) == 27
    for x in itertools.product(range(3), repeat=3):
        assert arr[x] == v[[tuple(r) for r in c].index(x)]


def test_order_zero_and_float32_inf_fill_round_trip():
    """Found by the differential fuzzer: a scalar tensor, and a float32 tensor whose fill is inf, come back as
    they went in (value and dtype)."""
    for v in (5.0, 0.0):
        assert SparseTensor.from_dense(np.array(v)).to_dense() == np.array(v)
    assert SparseTensor.from_coo(np.zeros((1, 0)), [3.0], ()).to_dense() == np.array(3.0)
    a = np.array([[np.inf, 1.0], [1.0, np.inf]], dtype=np.float32)
    back = SparseTensor.from_dense(a, ((0, 1),), fill=np.inf).to_dense()
    assert back.dtype == np.float32 and np.array_equal(back, a)
    b = np.array([[7, 1], [1, 7]], dtype=np.int64)
    assert SparseTensor.from_dense(b, ((0, 1),), fill=7).to_dense().dtype == np.int64
