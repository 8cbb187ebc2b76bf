"""The Python API: ``compile`` / ``load``, ``Kernel.run`` and input validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from helpers import EXAMPLES, example, sizes_for, sparse_variant

import systec_ref
from systec_ref import InputError, SourceError, SystecError
from systec_ref.compare import agree


def load(name: str) -> systec_ref.Kernel:
    return systec_ref.load(example(name))


def inputs_for(name: str, n: int = 3, r: int = 2, seed: int = 0) -> tuple[systec_ref.Kernel, dict]:
    k = load(name)
    return k, k.random_inputs(sizes_for(k, n, r), seed=seed)


# -- running -------------------------------------------------------------------------------

SHAPES = {  # n = 3, r = m = 2
    "bellman": (3,), "coulomb": (3, 3), "cubic": (), "mttkrp3": (3, 2), "mttkrp4": (3, 2), "mttkrp5": (3, 2),
    "ssymv": (3,), "ssyrk": (3, 3), "syprd": (), "syr2k": (3, 3), "triangles": (), "ttm": (2, 3, 3), "widest": (3,),
}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_run_shapes_dtypes_and_optimize_false(path):
    k, inputs = inputs_for(path.stem)
    got = k.run(**inputs)
    naive = k.run(optimize=False, **inputs)
    assert isinstance(got, np.ndarray) and isinstance(naive, np.ndarray)
    assert got.shape == naive.shape == SHAPES[path.stem]
    dtype = k.ast.output.dtype
    assert got.dtype == naive.dtype == np.dtype(dtype)
    assert agree(got, naive, dtype)
    assert agree(naive, k.definition(inputs).value, dtype)


def test_scalar_output_is_a_0d_array():
    k, inputs = inputs_for("syprd")
    s = k.run(**inputs)
    assert s.shape == () and s.ndim == 0
    x, a = inputs["x"], inputs["A"]
    assert agree(s, np.asarray(x @ a @ x), "float64")


def test_run_accepts_array_likes_and_safe_casts():
    k = load("ssymv")
    a = [[1, 2], [2, 3]]  # nested lists of ints: int64 -> float64 is safe
    assert k.run(A=a, x=np.array([1, 1], dtype=np.int32)).tolist() == [3.0, 5.0]
    assert k.run(A=np.array(a, dtype=np.float32), x=[1.0, 1.0]).tolist() == [3.0, 5.0]
    t = load("triangles")
    assert int(t.run(A=np.ones((3, 3), dtype=np.int32) - np.eye(3, dtype=np.int32))) == 6
    assert int(t.run(A=np.ones((3, 3), dtype=bool) & ~np.eye(3, dtype=bool))) == 6


def test_run_accepts_non_contiguous_views():
    k = load("ssymv")
    big = np.arange(16.0).reshape(4, 4)
    a = big + big.T
    view = a[::2, ::2]  # symmetric, not contiguous
    x = np.arange(6.0)[::3]
    assert agree(k.run(A=view, x=x), view @ x, "float64")


def test_interpret_and_definition_return_counts():
    k, inputs = inputs_for("ssymv")
    res = k.interpret(inputs, "lower")
    assert res.counts.updates == 9 and res.counts.mults == 9
    assert k.definition(inputs).counts.updates == 9
    assert agree(res.value, k.run(**inputs), "float64")


def test_stages_start_with_lower():
    k = load("ssymv")
    assert k.stages[0].name == "lower"
    assert k.stage("lower").program is k.naive
    assert k.final is k.stages[-1].program
    names = [s.name for s in k.stages]
    assert len(names) == len(set(names))


def test_unknown_stage_and_backend():
    k, inputs = inputs_for("ssymv")
    with pytest.raises(SystecError, match="has no stage 'nope'.*lower"):
        k.stage("nope")
    with pytest.raises(SystecError, match="unknown backend 'fortran'"):
        k.run(backend="fortran", **inputs)


def test_public_random_inputs_accepts_kernel_or_ast():
    k = load("mttkrp3")
    a = systec_ref.random_inputs(k, {"n": 2, "r": 2}, seed=4)
    b = systec_ref.random_inputs(k.ast, {"n": 2, "r": 2}, seed=4)
    assert a.keys() == b.keys() == {"A", "B"}
    assert all(np.array_equal(a[t], b[t]) for t in a)


# -- input validation -------------------------------------------------------------------------

@pytest.fixture
def ssymv():
    k = load("ssymv")
    rng = np.random.default_rng(0)
    a = rng.uniform(size=(3, 3))
    return k, a + a.T, rng.uniform(size=3)


def test_missing_input(ssymv):
    k, a, _ = ssymv
    with pytest.raises(InputError, match="kernel ssymv needs input x$"):
        k.run(A=a)
    with pytest.raises(InputError, match="needs inputs A, x"):
        k.run()


def test_unknown_keyword(ssymv):
    k, a, x = ssymv
    with pytest.raises(InputError, match=r"'z' is not an input of kernel ssymv \(its inputs are A, x\)"):
        k.run(A=a, x=x, z=x)
    with pytest.raises(InputError, match="'y' is the output of kernel ssymv"):
        k.run(A=a, x=x, y=x)


def test_wrong_ndim(ssymv):
    k, a, x = ssymv
    with pytest.raises(InputError, match=r"x has 2 dimensions \(shape \(3, 1\)\) but is declared x\[n\]"):
        k.run(A=a, x=x.reshape(3, 1))
    with pytest.raises(InputError, match=r"A has 1 dimension \(shape \(9,\)\) but is declared A\[n, n\]"):
        k.run(A=a.reshape(9), x=x)
    s = load("syprd")
    with pytest.raises(InputError, match="x has 0 dimensions"):
        s.run(A=a, x=1.0)


def test_inconsistent_dims(ssymv):
    k, a, _ = ssymv
    with pytest.raises(InputError, match=r"dimension n is 3 from A \(mode 0\) but 4 from x \(mode 0\)"):
        k.run(A=a, x=np.ones(4))
    with pytest.raises(InputError, match=r"dimension n is 3 from A \(mode 0\) but 4 from A \(mode 1\)"):
        k.run(A=np.ones((3, 4)), x=np.ones(3))
    m = load("mttkrp3")
    with pytest.raises(InputError, match=r"dimension n is 2 from A \(mode 0\) but 3 from B \(mode 0\)"):
        m.run(A=np.ones((2, 2, 2)), B=np.ones((3, 2)))


def test_integer_declared_dim_mismatch():
    k = systec_ref.compile("kernel t\nin A[3, n]\nout y[3]\ny[i] += A[i, j]\n")
    assert k.run(A=np.ones((3, 5))).tolist() == [5.0, 5.0, 5.0]
    with pytest.raises(InputError, match=r"A \(mode 0\) has size 4 but is declared 3"):
        k.run(A=np.ones((4, 5)))


def test_unsafe_casts_are_refused():
    t = load("triangles")
    with pytest.raises(InputError, match="A has dtype float64, which does not convert safely to the declared int64"):
        t.run(A=np.ones((3, 3)))
    k = load("ssymv")
    with pytest.raises(InputError, match="x has dtype complex128"):
        k.run(A=np.eye(2), x=np.ones(2, dtype=complex))
    f32 = systec_ref.compile("kernel t\nin A[n] float32\nout y[n] float32\ny[i] += A[i]\n")
    with pytest.raises(InputError, match="does not convert safely to the declared float32"):
        f32.run(A=np.ones(2))


def test_non_numeric_inputs(ssymv):
    k, a, _ = ssymv
    with pytest.raises(InputError, match="x: elements of type object are not numbers"):
        k.run(A=a, x=np.array([1.0, None, 2.0], dtype=object))
    with pytest.raises(InputError, match="x: elements of type <U1 are not numbers"):
        k.run(A=a, x=np.array(["a", "b", "c"]))
    with pytest.raises(InputError, match="x: cannot be made an array"):
        k.run(A=a, x=[[1.0], [1.0, 2.0]])


def test_asymmetric_input_is_refused_with_the_largest_deviation(ssymv):
    k, _, x = ssymv
    a = np.zeros((3, 3))
    a[0, 1], a[1, 0] = 1.0, 1.5  # off by 0.5
    a[1, 2], a[2, 1] = 3.0, -2.0  # off by 5: the largest
    with pytest.raises(InputError) as info:
        k.run(A=a, x=x)
    msg = str(info.value)
    assert msg.startswith("A is declared symmetric in modes (0, 1) but is not")
    assert "A[1,2] = 3.0" in msg and "A[2,1] = -2.0" in msg
    assert "largest difference 5" in msg
    assert "np.float64" not in msg
    assert "check=False" in msg


def test_partial_asymmetry_names_the_group():
    k = load("coulomb")
    inputs = k.random_inputs({"n": 2}, seed=1)
    g = inputs["G"].copy()
    g[0, 1, 0, 0] += 0.25  # breaks the (0,1) group only
    with pytest.raises(InputError, match=r"G is declared symmetric in modes \(0, 1\) but is not: G\[0,1,0,0\]"):
        k.run(G=g, D=inputs["D"])
    g = inputs["G"].copy()
    g[1, 1, 0, 1] -= 2.0  # breaks the (2,3) group only
    with pytest.raises(InputError, match=r"modes \(2, 3\).*G\[1,1,0,1\].*G\[1,1,1,0\].*largest difference 2"):
        k.run(G=g, D=inputs["D"])
    # swapping the groups is not a declared symmetry: an input without it is fine
    assert not np.array_equal(inputs["G"], inputs["G"].transpose(2, 3, 0, 1))
    k.run(**inputs)


def test_symmetry_check_treats_nan_and_inf_as_equal_to_themselves(ssymv):
    k, a, x = ssymv
    a = a.copy()
    a[0, 1] = a[1, 0] = math.nan
    a[0, 2] = a[2, 0] = math.inf
    assert np.isnan(k.run(A=a, x=x)[0])


def test_check_false_skips_the_symmetry_check():
    k = load("ssymv")
    a = np.zeros((3, 3))
    a[0, 1], a[1, 0] = 1.0, 1.5
    a[1, 2], a[2, 1] = 3.0, -2.0
    x = np.ones(3)
    # the naive nest reads the whole matrix
    assert k.run(A=a, x=x, check=False, optimize=False).tolist() == (a @ x).tolist()
    # the optimized kernel reads only the canonical (upper) triangle, as the message promises
    upper = np.triu(a) + np.triu(a, 1).T
    assert agree(k.run(A=a, x=x, check=False), upper @ x, "float64")


# -- scipy.sparse inputs -----------------------------------------------------------------------

def test_scipy_sparse_matrix_for_a_sparse_input_keeps_every_value():
    k = systec_ref.compile(sparse_variant(example("ssymv").read_text()))
    assert k.ast.decl("A").format == "sparse"
    rows = [0, 1, 0, 1, 2, 2]
    cols = [1, 0, 1, 0, 2, 2]
    vals = [1.0, 1.0, 0.5, 0.5, 2.0, 3.0]  # duplicates are summed, as scipy does
    a = sp.coo_matrix((vals, (rows, cols)), shape=(3, 3))
    dense = np.array([[0.0, 1.5, 0.0], [1.5, 0.0, 0.0], [0.0, 0.0, 5.0]])
    x = np.array([1.0, 2.0, 3.0])
    for fmt in (a, a.tocsr(), a.tocsc()):
        assert k.run(A=fmt, x=x, optimize=False).tolist() == (dense @ x).tolist()
        assert agree(k.run(A=fmt, x=x), dense @ x, "float64")


def test_scipy_sparse_uses_the_declared_fill_and_keeps_explicit_zeros():
    k = load("bellman")  # A sparse fill inf
    a = sp.coo_matrix(([0.0, 0.0, 4.0], ([0, 1, 2], [1, 0, 2])), shape=(3, 3))
    x = np.array([5.0, 7.0, 1.0])
    # A[0,1] = A[1,0] = 0 are stored weights; A[2,2] = 4; the rest is +inf
    want = [7.0, 5.0, 5.0]
    assert k.run(A=a, x=x, optimize=False).tolist() == want
    assert k.run(A=a.tocsr(), x=x).tolist() == want


def test_scipy_sparse_refused_where_it_does_not_fit():
    k = load("ssymv")  # A dense
    with pytest.raises(InputError, match="scipy.sparse matrix was given for a dense tensor"):
        k.run(A=sp.eye(3, format="csr"), x=np.ones(3))
    s = systec_ref.compile(sparse_variant(example("ssymv").read_text()))
    with pytest.raises(InputError, match="x: a scipy.sparse matrix was given for a tensor of order 1"):
        s.run(A=sp.eye(3, format="csr"), x=sp.csr_matrix(np.ones((1, 3))))
    with pytest.raises(InputError, match="A is declared symmetric"):
        s.run(A=sp.coo_matrix(([1.0], ([0], [1])), shape=(3, 3)), x=np.ones(3))


# -- compile / load -----------------------------------------------------------------------------

def test_compile_errors_are_source_errors():
    with pytest.raises(SourceError) as info:
        systec_ref.compile("kernel t\nin A[n]\nout y[n]\ny[i] += B[i]\n", "mine.ein")
    assert isinstance(info.value, SystecError)
    assert str(info.value).startswith("mine.ein:4:9: error: unknown tensor 'B'")


def test_load_missing_file(tmp_path):
    missing = tmp_path / "nope.ein"
    with pytest.raises(SystecError, match="nope.ein: no such file"):
        systec_ref.load(missing)
    with pytest.raises(SystecError, match="no such file"):
        systec_ref.load(str(missing))


def test_load_directory_and_non_utf8(tmp_path):
    with pytest.raises(SystecError, match="cannot read"):
        systec_ref.load(tmp_path)
    p = tmp_path / "latin1.ein"
    p.write_bytes(b"# caf\xe9\n" + example("ssymv").read_bytes())
    with pytest.raises(SystecError, match=r"not UTF-8 text \(invalid continuation byte at byte 5\)"):
        systec_ref.load(p)


def test_load_keeps_the_path_for_messages(tmp_path):
    p = tmp_path / "k.ein"
    p.write_text(example("ssymv").read_text())
    k = systec_ref.load(p)
    assert k.ast.path == str(p) and k.name == "ssymv"
    assert repr(k) == f"<Kernel ssymv from {p}>"
