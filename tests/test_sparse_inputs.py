"""Sparse inputs handed over compressed: SparseTensor and scipy.sparse reach the kernel without a
dense copy, give the definition's result in the interpreter and in C, and bad ones are refused."""

from __future__ import annotations

import itertools

import helpers
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import systec_ref
from systec_ref.errors import InputError
from systec_ref.storage import SparseTensor
from systec_ref.storage.faces import expand_permutations
from systec_ref.tensors import symmetrize_index

SSYMV = "kernel ssymv\nin A[n, n] symmetric sparse\nin x[n]\nout y[n]\ny[i] += A[i, j] * x[j]\n"


def _sizes(kernel, n: int) -> dict[str, int]:
    names = sorted({d for t in kernel.ast.decls for d in t.dims if isinstance(d, str)})
    return {d: (n if d == "n" else 2) for d in names}


def _compressed(kernel, inputs: dict, how: str) -> dict:
    """The sparse inputs as SparseTensor (canonical for the declared groups, or with none) or scipy."""
    out = dict(inputs)
    for d in kernel.ast.inputs:
        if d.format != "sparse":
            continue
        a = inputs[d.name]
        if how == "scipy" and d.order == 2 and d.fill == 0:
            out[d.name] = sp.csr_matrix(a)
        elif how == "unsymmetric":
            out[d.name] = SparseTensor.from_dense(a, (), d.fill)  # bind re-stores it canonical, verifying
        else:
            out[d.name] = SparseTensor.from_dense(a, d.symmetry, d.fill)
    return out


SPARSE_EXAMPLES = sorted((helpers.ROOT / "examples" / "sparse").glob("*.ein"))


@pytest.mark.parametrize("path", helpers.EXAMPLES + SPARSE_EXAMPLES,
                         ids=lambda p: p.stem if p.parent.name == "examples" else f"sparse/{p.stem}")
def test_every_example_declared_sparse_agrees_given_compressed(path):
    """Acceptance: every example with every input the language accepts as sparse made sparse (and the
    shipped examples/sparse/ kernels as they are), n = 1, 2, 3, densities 0 (empty) to 1 (full), several
    seeds; interpreter and C (symmetric and baseline) against the dense definition."""
    text = path.read_text(encoding="utf-8")
    kernel = systec_ref.compile(text if path.parent.name == "sparse" else helpers.sparse_variant(text), str(path))
    dtype = kernel.ast.output.dtype
    for n, density, seed in itertools.product((1, 2, 3), (0.0, 0.3, 1.0), (0, 1)):
        dense = kernel.random_inputs(_sizes(kernel, n), seed=seed, density=density)
        want = kernel.definition(dense).value
        if seed == 0:  # every stage in the interpreter, too
            report = systec_ref.check(kernel, _compressed(kernel, dense, "canonical"))
            assert report.ok, report.notes()
        for how in ("canonical", "unsymmetric", "scipy"):
            given_ = _compressed(kernel, dense, how)
            where = f"{path.stem} n={n} density={density} seed={seed} given {how}"
            assert systec_ref.agree(kernel.run(**given_), want, dtype), where
            assert systec_ref.agree(kernel.run(backend="c", **given_), want, dtype), where
            assert systec_ref.agree(kernel.run(backend="c", optimize=False, **given_), want, dtype), where


@pytest.mark.parametrize("example", ["ssymv", "syprd", "mttkrp3", "mttkrp4", "mttkrp5", "ttm", "bellman"])
def test_a_fully_sparse_input_is_never_passed_dense(example):
    """Where every read of A iterates its stored entries, the C function takes no dense A at all."""
    path = helpers.ROOT / "examples" / ("bellman.ein" if example == "bellman" else f"sparse/{example}.ein")
    kernel = systec_ref.load(path)
    for stage in (None, "baseline"):
        fn = kernel.c_function(stage)
        assert "A" not in fn.dense, (example, stage)
        assert "const double *restrict A," not in fn.source and "*restrict A)" not in fn.source


def test_scipy_input_stays_compressed_and_agrees():
    k = systec_ref.compile(SSYMV)
    rng = np.random.default_rng(0)
    m = sp.random(50, 50, density=0.1, random_state=1, format="csr")
    m = (m + m.T).tocsr()
    x = rng.random(50)
    want = m @ x
    got = k.run(backend="c", A=m, x=x)
    assert systec_ref.agree(got, want, "float64") or np.allclose(got, want, rtol=1e-12, atol=0)
    arrays, _ = k.bind({"A": m, "x": x})
    assert isinstance(arrays["A"], SparseTensor)
    assert arrays["A"].stored == sp.triu(m).nnz


def test_reused_tensor_converts_once():
    k = systec_ref.compile(SSYMV)
    a = SparseTensor.from_dense(k.random_inputs({"n": 6}, density=0.5)["A"], ((0, 1),))
    assert a.with_symmetry(()) is a.with_symmetry(())  # the full layout (baseline) is built once
    arrays, _ = k.bind({"A": a, "x": np.ones(6)})
    assert arrays["A"] is a  # already canonical for the declared groups: used as it is


def test_asymmetric_sparse_tensor_rejected_then_accepted_with_check_false():
    k = systec_ref.compile(SSYMV)
    a = np.zeros((3, 3))
    a[0, 2] = 1.0  # a[2, 0] missing
    with pytest.raises(InputError, match=r"A\[0,2\] = 1.0 while A\[2,0\] = 0"):
        k.run(A=SparseTensor.from_dense(a), x=np.ones(3))
    with pytest.raises(InputError, match="declared symmetric"):
        k.run(A=sp.csr_matrix(a), x=np.ones(3))
    # opted out: the canonical (upper) triangle is used
    got = k.run(backend="c", check=False, A=SparseTensor.from_dense(a), x=np.array([1.0, 2.0, 3.0]))
    assert np.array_equal(got, [3.0, 0.0, 1.0])


@pytest.mark.parametrize("bad, message", [
    ("fill", "declared fill 0"),
    ("dense-decl", "SparseTensor was given for a dense tensor"),
    ("dtype", "does not convert safely"),
    ("shape", "dimension n is 3 from A"),
    ("order", "has 3 dimensions"),
])
def test_bad_sparse_tensors_are_refused(bad, message):
    k = systec_ref.compile(SSYMV)
    a = SparseTensor.from_dense(np.eye(3), ((0, 1),))
    x = np.ones(3)
    if bad == "fill":
        a = SparseTensor.from_dense(np.eye(3), ((0, 1),), fill=np.inf)
    elif bad == "dense-decl":
        k = systec_ref.compile(SSYMV.replace(" sparse", ""))
    elif bad == "dtype":
        k = systec_ref.compile(SSYMV.replace("in A[n, n] symmetric sparse", "in A[n, n] symmetric sparse int64")
                               .replace("in x[n]", "in x[n] int64").replace("out y[n]", "out y[n] int64"))
        x = np.ones(3, dtype=np.int64)
    elif bad == "shape":
        x = np.ones(4)
    elif bad == "order":
        a = SparseTensor.from_dense(np.ones((3, 3, 3)), ((0, 1, 2),))
    with pytest.raises(InputError, match=message):
        k.run(A=a, x=x)


def test_int_sparse_tensor_into_float_kernel_is_converted():
    k = systec_ref.compile(SSYMV)
    a = SparseTensor.from_dense(np.array([[1, 2], [2, 0]], dtype=np.int64), ((0, 1),))
    got = k.run(backend="c", A=a, x=np.array([1.0, 1.0]))
    assert np.array_equal(got, [3.0, 2.0])


def test_bellman_ford_step_with_scipy_edges_holds_inf_where_no_edge():
    """scipy does not store 'no edge': those entries hold the declared fill (inf), and an explicit zero-weight
    edge stays an edge."""
    text = (helpers.ROOT / "examples" / "bellman.ein").read_text()
    k = systec_ref.compile(text)
    w = sp.csr_matrix((np.array([0.0, 2.0, 2.0, 0.0]), (np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]))),
                      shape=(3, 3))
    names = [d.name for d in k.ast.inputs]
    dense = np.full((3, 3), np.inf)
    dense[0, 0] = dense[1, 1] = 0.0
    dense[0, 1] = dense[1, 0] = 2.0
    sparse_name = next(d.name for d in k.ast.inputs if d.format == "sparse")
    other = next(n for n in names if n != sparse_name)
    d = np.array([0.0, 5.0, 1.0])
    want = k.definition({sparse_name: dense, other: d}).value
    got = k.run(backend="c", **{sparse_name: w, other: d})
    assert np.array_equal(got, want)


def _brute_full(coords, vals, groups):
    out = {}
    for c, v in zip(map(tuple, coords), vals):
        choices = [sorted(set(itertools.permutations([c[q] for q in g]))) for g in groups]
        for combo in itertools.product(*choices):
            x = list(c)
            for g, perm in zip(groups, combo):
                for q, val in zip(g, perm):
                    x[q] = val
            out[tuple(x)] = v
    return out


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([((0, 1, 2),), ((0, 1), (2, 3)), ((1, 2, 3, 4),), ((0, 1),)]), st.integers(1, 4),
       st.integers(0, 2**16))
def test_expand_permutations_is_every_distinct_point_once(groups, n, seed):
    order = max(q for g in groups for q in g) + 1
    shape = (n,) * order
    rng = np.random.default_rng(seed)
    arr = np.where(rng.random(shape) < 0.5, rng.integers(1, 9, size=shape), 0).astype(np.int64)
    arr = arr[symmetrize_index(shape, groups)]
    t = SparseTensor.from_dense(arr, groups)
    c, v = t.coo()
    fc, fv = expand_permutations(c, v, groups)
    assert len({tuple(x) for x in fc}) == len(fc)  # no point twice
    assert dict(zip(map(tuple, fc), fv)) == _brute_full(c, v, groups)
    assert len(fc) == np.count_nonzero(arr)


def test_largest_asymmetry_is_named_among_many():
    n = 200
    rng = np.random.default_rng(3)
    a = rng.random((n, n))
    a = a + a.T
    a[3, 7] += 0.5
    a[150, 20] += 2.5  # the largest
    a[9, 9] += 9.0  # a diagonal entry has no partner: never asymmetric
    m = sp.csr_matrix(a)
    with pytest.raises(InputError, match=r"A\[20,150\] = .* while A\[150,20\] = .*largest difference 2.5"):
        SparseTensor.from_scipy(m, ((0, 1),), name="A")


def test_a_million_entries_convert_and_nothing_is_lost():
    """Duplicates (the same random pair drawn twice) are summed; the sum of all values survives."""
    n = 200_000
    rng = np.random.default_rng(0)
    i = rng.integers(0, n, size=500_000)
    j = rng.integers(0, n, size=500_000)
    m = sp.coo_matrix((np.ones(1_000_000), (np.concatenate([i, j]), np.concatenate([j, i]))), shape=(n, n))
    t = SparseTensor.from_scipy(m, ((0, 1),), name="A")
    assert t.stored == sp.triu(m.tocsr()).nnz
    c, v = t.full_coo()
    assert v.sum() == 1_000_000 and len(c) == m.tocsr().nnz
