"""The reference interpreters: the definition, the naive loop nest, and the numpy reference agree;
operation counts are exact; bounds and int64 overflow are checked; random inputs honour declarations."""

from __future__ import annotations

import itertools
import math
import pickle

import numpy as np
import pytest
from helpers import EXAMPLES, dense_variant, example, naive, sizes_for, sparse_variant
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import kernels

import systec_ref
from systec_ref.errors import InputError, InternalError, MiscompileError
from systec_ref.interp import InterpError, run_program
from systec_ref.ir.nodes import (
    Assign,
    Block,
    DimSize,
    Elem,
    IConst,
    Idx,
    IPlus,
    Loop,
    Program,
    Read,
    TensorInfo,
)
from systec_ref.lang.ast import index_dims, index_vars
from systec_ref.reference import numpy_reference
from systec_ref.rewrite.lower import lower

SEEDS = (0, 1, 2)


def index_space(kernel: systec_ref.Kernel, sizes: dict[str, int]) -> int:
    dims = index_dims(kernel.ast)
    return math.prod(sizes[d] if isinstance(d, str) else d for d in (dims[v] for v in index_vars(kernel.ast)))


def three_ways(kernel: systec_ref.Kernel, inputs: dict[str, np.ndarray]):
    """(definition, naive loop nest, numpy reference) on the same inputs."""
    arrays, dims = kernel.bind(inputs)
    d = kernel.definition(arrays, check=False)
    n = kernel.interpret(arrays, naive(kernel), check=False)
    ref, _ = numpy_reference(kernel.ast, arrays, dims)
    return d, n, ref


def assert_three_agree(kernel: systec_ref.Kernel, inputs: dict[str, np.ndarray], what: str = "") -> None:
    d, n, ref = three_ways(kernel, inputs)
    dtype = kernel.ast.output.dtype
    for label, got in (("naive loop nest", n.value), ("numpy reference", ref)):
        a = systec_ref.agree(got, d.value, dtype)
        assert a, f"{what}: {label} differs from the definition: {a.detail}"
    # the naive nest does exactly the work of the definition
    assert (n.counts.mults, n.counts.adds, n.counts.updates, n.counts.reads) == \
        (d.counts.mults, d.counts.adds, d.counts.updates, d.counts.reads), what


# -- (a) every example, dense and sparse, several sizes and seeds -----------------------

def _example_cases():
    for path in EXAMPLES:
        text = path.read_text()
        k = systec_ref.compile(text)
        has_r = any(d in ("r", "m") for t in k.ast.decls for d in t.dims)
        variants = [("dense", dense_variant(text), 1.0)]
        sparse = sparse_variant(text)
        variants += [(f"sparse-{dens}", sparse, dens) for dens in (0.0, 0.3, 1.0)]
        for (label, variant, dens), n, r in itertools.product(variants, (1, 2, 4), (1, 3) if has_r else (1,)):
            sizes = sizes_for(k, n, r)
            # mttkrp5 at n=4 is the heavy one (3072 points, 3 seeds, 4 variants)
            marks = [pytest.mark.slow] if index_space(k, sizes) >= 3000 else []
            yield pytest.param(variant, sizes, dens, marks=marks, id=f"{path.stem}-{label}-n{n}-r{r}")


@pytest.mark.parametrize("text,sizes,density", list(_example_cases()))
def test_examples_definition_naive_and_numpy_agree(text, sizes, density):
    k = systec_ref.compile(text)
    for seed in SEEDS:
        inputs = k.random_inputs(sizes, seed=seed, density=density)
        assert_three_agree(k, inputs, f"seed {seed}")


def test_sparse_variants_really_are_sparse():
    # the parametrization above is only worth something if sparse_variant made inputs sparse
    formats = {p.stem: [d.format for d in systec_ref.compile(sparse_variant(p.read_text())).ast.inputs]
               for p in EXAMPLES}
    assert formats["ssymv"] == ["sparse", "sparse"]
    assert formats["bellman"] == ["sparse", "sparse"]
    assert formats["widest"] == ["dense", "dense"]
    assert sum(f.count("sparse") for f in formats.values()) >= 18


def test_naive_is_the_lower_stage():
    for path in EXAMPLES:
        k = systec_ref.load(path)
        assert k.stages[0].name == "lower"
        assert k.naive == lower(k.ast)


# -- (b) random kernels ---------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(kernels(), st.integers(1, 3), st.integers(1, 3), st.integers(0, 2**32 - 1), st.sampled_from([0.0, 0.5, 1.0]))
def test_random_kernels_definition_naive_and_numpy_agree(text, n, r, seed, density):
    k = systec_ref.compile(text)
    sizes = sizes_for(k, n, r)
    inputs = k.random_inputs(sizes, seed=seed, density=density)
    assert_three_agree(k, inputs, text)
    d, nv, _ = three_ways(k, inputs)
    assert d.counts.updates == index_space(k, sizes)
    assert nv.value.shape == tuple(sizes[x] if isinstance(x, str) else x for x in k.ast.output.dims)


# -- (c) hand-counted operations ----------------------------------------------------------

def counts_both(kernel: systec_ref.Kernel, inputs):
    arrays, _ = kernel.bind(inputs)
    return kernel.definition(arrays).counts, kernel.interpret(arrays, naive(kernel)).counts


def test_counts_ssymv_n3():
    k = systec_ref.load(example("ssymv"))
    for c in counts_both(k, k.random_inputs({"n": 3})):
        # 3*3 points, one A[i,j]*x[j] each
        assert (c.mults, c.adds, c.updates) == (9, 0, 9)
        assert c.reads == {"A": 9, "x": 9}
        assert c.distinct == {"A": 9, "x": 3}
    _, nv = counts_both(k, k.random_inputs({"n": 3}))
    assert nv.iterations == 3 + 9  # outer loop 3 times, inner loop 3*3 times
    assert (nv.local_updates, nv.copies) == (0, 0)


def test_counts_syprd_n2():
    k = systec_ref.load(example("syprd"))
    for c in counts_both(k, k.random_inputs({"n": 2})):
        # 2*2 points, x[i]*A[i,j]*x[j] is two multiplications and two reads of x
        assert (c.mults, c.adds, c.updates) == (8, 0, 4)
        assert c.reads == {"A": 4, "x": 8}
        assert c.distinct == {"A": 4, "x": 2}
    assert counts_both(k, k.random_inputs({"n": 2}))[1].iterations == 2 + 4


def test_counts_mttkrp3_n2_r2():
    k = systec_ref.load(example("mttkrp3"))
    for c in counts_both(k, k.random_inputs({"n": 2, "r": 2})):
        # index space: i, k, l in n=2 and j in r=2 -> 2*2*2*2 = 16 points;
        # A[i,k,l] * B[l,j] * B[k,j] is 2 multiplications, 1 read of A, 2 reads of B per point:
        # mults 2*16 = 32, reads A 16, reads B 32, updates 16; every A[i,k,l] (2^3 = 8) and
        # every B[., j] (2*2 = 4) is read at least once
        assert (c.mults, c.adds, c.updates) == (32, 0, 16)
        assert c.reads == {"A": 16, "B": 32}
        assert c.distinct == {"A": 8, "B": 4}
    # four loops of extent 2, whatever the order: 2 + 4 + 8 + 16 body executions
    assert counts_both(k, k.random_inputs({"n": 2, "r": 2}))[1].iterations == 30


def test_counts_bellman_n3():
    k = systec_ref.load(example("bellman"))
    for c in counts_both(k, k.random_inputs({"n": 3}, density=0.5)):
        # 9 points, A[i,j] + x[j] is one addition; min= is an update, not an addition
        assert (c.mults, c.adds, c.updates) == (0, 9, 9)
        assert c.reads == {"A": 9, "x": 9}


def test_counts_literal_and_subtraction():
    k = systec_ref.compile("kernel t\nin A[n, n]\nin x[n]\nout y[n]\ny[i] += 2 * A[i, j] - x[j]\n")
    inputs = k.random_inputs({"n": 3}, seed=5)
    for c in counts_both(k, inputs):
        # per point: 2*A is one multiplication (literals count), '-' one addition
        assert (c.mults, c.adds, c.updates) == (9, 9, 9)
        assert c.reads == {"A": 9, "x": 9}
        assert c.distinct == {"A": 9, "x": 3}
    want = 2 * inputs["A"].sum(axis=1) - inputs["x"].sum()
    for res in (k.definition(inputs), k.interpret(inputs, naive(k))):
        assert systec_ref.agree(res.value, want, "float64")


def test_counts_negation_is_free():
    k = systec_ref.compile("kernel t\nin A[n, n]\nin x[n]\nout s\ns += -(A[i, j] - 3) * -x[j]\n")
    inputs = k.random_inputs({"n": 2}, seed=1)
    for c in counts_both(k, inputs):
        assert (c.mults, c.adds, c.updates) == (4, 4, 4)  # 4 points: one '-' and one '*' each; negation free
    want = sum((inputs["A"][i, j] - 3) * inputs["x"][j] for i in range(2) for j in range(2))
    assert systec_ref.agree(k.definition(inputs).value, np.float64(want), "float64")


def test_counts_repeated_reads_are_distinct_once():
    k = systec_ref.compile("kernel t\nin A[n, n] symmetric\nout s\ns += A[i, j] * A[j, i]\n")
    for c in counts_both(k, k.random_inputs({"n": 3})):
        assert c.reads == {"A": 18}
        assert c.distinct == {"A": 9}


# -- known answers, computed by hand ---------------------------------------------------------

def both_values(kernel, **inputs):
    return [kernel.definition(inputs).value, kernel.interpret(inputs, naive(kernel)).value]


def test_known_ssymv():
    k = systec_ref.load(example("ssymv"))
    for v in both_values(k, A=np.array([[1.0, 2.0], [2.0, 3.0]]), x=np.array([1.0, 1.0])):
        assert v.tolist() == [3.0, 5.0]


def test_known_triangles_of_k4():
    k = systec_ref.load(example("triangles"))
    a = np.ones((4, 4), dtype=np.int64) - np.eye(4, dtype=np.int64)
    for v in both_values(k, A=a):
        assert v.dtype == np.int64 and v.shape == ()
        assert int(v) == 6 * 4  # K4 has 4 triangles


def test_known_bellman_step():
    k = systec_ref.load(example("bellman"))
    inf = math.inf
    a = np.array([[inf, 1.0, inf], [1.0, inf, 2.0], [inf, 2.0, inf]])
    for v in both_values(k, A=a, x=np.array([0.0, 10.0, 10.0])):
        assert v.tolist() == [11.0, 1.0, 12.0]


def test_known_bellman_isolated_vertex_stays_inf():
    k = systec_ref.load(example("bellman"))
    a = np.full((2, 2), math.inf)
    for v in both_values(k, A=a, x=np.array([0.0, 1.0])):
        assert v.tolist() == [math.inf, math.inf]


def test_known_widest():
    k = systec_ref.load(example("widest"))
    for v in both_values(k, W=np.array([[0, 5], [5, 1]]), d=np.array([1, 2])):
        assert v.dtype == np.int64
        assert v.tolist() == [7, 6]


def test_plain_assignment_means_sum_into_zero():
    k = systec_ref.compile("kernel t\nin A[n, n]\nout y[n]\ny[i] = A[i, j]\n")
    a = np.arange(6.0).reshape(2, 3)[:, :2]  # a non-contiguous view
    for v in both_values(k, A=a):
        assert v.tolist() == [1.0, 7.0]


# -- (d) bounds checking ---------------------------------------------------------------------

def _prog(target_idx, read_idx, hi=None) -> Program:
    """``for i in 0..hi (default n): y[target_idx] += A[read_idx]`` with A and y of size n."""
    body = Block((Assign(Elem("y", target_idx), "+", Read("A", read_idx)),))
    tensors = (TensorInfo("A", "in", ("n",)), TensorInfo("y", "out", ("n",)))
    return Program("oob", tensors, Block((Loop("i", IConst(0), hi or DimSize("n"), body),)))


def _run(prog):
    return run_program(prog, {"A": np.arange(3.0)}, {"n": 3})


def test_interp_in_bounds_program_runs():
    outs, counts = _run(_prog((Idx("i"),), (Idx("i"),)))
    assert outs["y"].tolist() == [0.0, 1.0, 2.0]
    assert counts.iterations == 3 and counts.updates == 3


def test_interp_read_past_the_end():
    with pytest.raises(InterpError, match=r"out-of-range access A\[3\] \(shape \[3\]\)") as info:
        _run(_prog((Idx("i"),), (IPlus(Idx("i"), 1),)))
    assert "i" in str(info.value).split(" at ")[-1]  # names the subscript as written


def test_interp_negative_subscript_is_not_python_wraparound():
    with pytest.raises(InterpError, match=r"out-of-range access A\[-1\]"):
        _run(_prog((Idx("i"),), (IPlus(Idx("i"), -1),)))


def test_interp_write_past_the_end():
    with pytest.raises(InterpError, match=r"out-of-range access y\[3\]"):
        _run(_prog((IPlus(Idx("i"), 1),), (Idx("i"),)))


def test_interp_loop_past_the_dimension():
    with pytest.raises(InterpError, match=r"out-of-range access A\[3\]"):
        _run(_prog((IConst(0),), (Idx("i"),), hi=IConst(4)))


def test_interp_unbound_index_and_bad_arity():
    with pytest.raises(InterpError, match="index 'j' used outside its loop"):
        _run(_prog((Idx("i"),), (Idx("j"),)))
    with pytest.raises(InterpError, match="2 subscripts for a tensor of order 1"):
        _run(_prog((Idx("i"),), (Idx("i"), Idx("i"))))


def test_interp_error_is_a_compiler_bug_not_the_users():
    # a stage the interpreter cannot run was miscompiled: an internal error (CLI exit 3), never exit 2
    assert issubclass(InterpError, MiscompileError) and issubclass(InterpError, InternalError)
    assert not issubclass(InterpError, systec_ref.SystecError)
    with pytest.raises(InterpError, match=r"compiler bug.*out-of-range access A\[3\]") as info:
        _run(_prog((Idx("i"),), (IPlus(Idx("i"), 1),)))
    assert info.value.detail.startswith("out-of-range access A[3] (shape [3]) at A[i+1]")
    assert pickle.loads(pickle.dumps(info.value)).args == info.value.args


# -- (e) int64 wraps around ------------------------------------------------------------------

def test_int64_overflow_wraps_like_numpy():
    k = systec_ref.compile("kernel t\nin a[n] int64\nout s int64\ns += a[i] * a[i]\n")
    big = {"a": np.array([2**32, 1], dtype=np.int64)}  # 2^64 + 1 wraps to 1
    arrays, dims = k.bind(big)
    want = int(numpy_reference(k.ast, arrays, dims)[0])
    assert want == 1
    assert int(k.definition(big).value) == want
    assert int(k.interpret(big, naive(k)).value) == want
    assert int(k.interpret(big).value) == want


def test_int64_sum_wraps_at_both_ends():
    k = systec_ref.compile("kernel t\nin a[n] int64\nout s int64\ns += a[i]\n")
    top = 2**63 - 1
    for res in (k.definition({"a": np.array([top - 1, 1])}), k.interpret({"a": np.array([top - 1, 1])}, naive(k))):
        assert int(res.value) == top
    for run in (lambda x: k.definition(x).value, lambda x: k.interpret(x, naive(k)).value,
                lambda x: k.run(backend="c", **x)):
        assert int(run({"a": np.array([top, 1])})) == -top - 1
        assert int(run({"a": np.array([-top - 1, -1])})) == top


# -- (f) random inputs honour declarations --------------------------------------------------

def test_random_inputs_full_symmetry_is_exact():
    k = systec_ref.load(example("mttkrp4"))
    a = k.random_inputs({"n": 3, "r": 2}, seed=7)["A"]
    assert a.shape == (3, 3, 3, 3) and a.dtype == np.float64
    for perm in itertools.permutations(range(4)):
        assert np.array_equal(a, a.transpose(perm))
    assert len(np.unique(a)) == math.comb(3 + 4 - 1, 4)  # one random value per canonical entry


def test_random_inputs_partial_symmetry_is_exact_and_only_that():
    k = systec_ref.load(example("coulomb"))
    g = k.random_inputs({"n": 3}, seed=3)["G"]
    assert np.array_equal(g, g.transpose(1, 0, 2, 3))
    assert np.array_equal(g, g.transpose(0, 1, 3, 2))
    assert not np.array_equal(g, g.transpose(2, 3, 0, 1))  # the groups are not swapped
    assert not np.array_equal(g, g.transpose(0, 2, 1, 3))


def test_random_inputs_mixed_dim_group():
    k = systec_ref.compile("kernel t\nin T[n, r, n] symmetric(0,2)\nout s\ns += T[i, a, j]\n")
    t = k.random_inputs({"n": 3, "r": 2}, seed=1)["T"]
    assert t.shape == (3, 2, 3)
    assert np.array_equal(t, t.transpose(2, 1, 0))


@pytest.mark.parametrize("density", [0.0, 0.3, 1.0])
def test_random_inputs_sparse_density_and_fill(density):
    k = systec_ref.load(example("bellman"))  # A symmetric sparse fill inf, x dense
    inp = k.random_inputs({"n": 12}, seed=2, density=density)
    a, x = inp["A"], inp["x"]
    assert np.array_equal(a, a.T)
    assert np.isfinite(x).all()
    stored = np.isfinite(a)
    if density == 0.0:
        assert not stored.any()
        assert (a == math.inf).all()
    elif density == 1.0:
        assert stored.all()
    else:
        frac = stored[np.triu_indices(12)].mean()
        assert 0.1 < frac < 0.5
    k = systec_ref.compile(sparse_variant(example("ssymv").read_text()))  # under +=: fill 0
    inp = k.random_inputs({"n": 12}, seed=2, density=density)
    nonzero = inp["A"] != 0
    assert np.array_equal(nonzero, nonzero.T)
    if density == 0.0:
        assert not nonzero.any() and not inp["x"].any()
    elif density == 1.0:
        assert nonzero.all()


def test_random_inputs_int64_and_float32():
    k = systec_ref.load(example("widest"))
    inp = k.random_inputs({"n": 5}, seed=0)
    assert inp["W"].dtype == np.int64 and inp["d"].dtype == np.int64
    assert inp["W"].min() >= -4 and inp["W"].max() <= 4
    k = systec_ref.compile("kernel t\nin A[n] float32\nout y[n] float32\ny[i] += A[i]\n")
    assert k.random_inputs({"n": 2})["A"].dtype == np.float32


def test_random_inputs_scalar_input_stays_0d():
    k = systec_ref.compile("kernel t\nin a\nin x[n]\nout y[n]\ny[i] += a * x[i]\n")
    inp = k.random_inputs({"n": 2})
    assert inp["a"].shape == () and inp["x"].shape == (2,)
    assert_three_agree(k, inp, "scalar input")


def test_random_inputs_deterministic_per_seed():
    k = systec_ref.load(example("mttkrp3"))
    a = k.random_inputs({"n": 3, "r": 2}, seed=11)
    b = k.random_inputs({"n": 3, "r": 2}, seed=11)
    c = k.random_inputs({"n": 3, "r": 2}, seed=12)
    assert all(np.array_equal(a[t], b[t]) for t in a)
    assert not np.array_equal(a["B"], c["B"])


def test_random_inputs_errors():
    k = systec_ref.load(example("mttkrp3"))
    with pytest.raises(InputError, match="no size given for dimension r"):
        k.random_inputs({"n": 3})
    with pytest.raises(InputError, match="no size given for dimensions n, r"):
        k.random_inputs({})
    with pytest.raises(InputError, match="density 1.5 is not between 0 and 1"):
        k.random_inputs({"n": 2, "r": 2}, density=1.5)
    with pytest.raises(InputError, match="not a non-negative integer"):
        k.random_inputs({"n": -1, "r": 2})


# -- NaN from inf - inf under min=/max= ---------------------------------------------------------

@pytest.mark.parametrize("lhs", ["y[i]", "y[i, j]"])
def test_nan_right_hand_side_is_ignored_by_min_everywhere(lhs):
    # A NaN right-hand side (here from NaN data) is skipped by min, like C's `new < old ? new : old`:
    # the definition, the loop nest and the numpy reference (fmin) must treat it alike.
    out = "out y[n]" if lhs == "y[i]" else "out y[n, n]"
    k = systec_ref.compile(f"kernel t\nin A[n, n]\nin x[n]\n{out}\n{lhs} min= A[i, j] + x[j]\n")
    inputs = k.random_inputs({"n": 3}, seed=1)
    inputs["A"][0, 1] = np.nan
    inputs["A"][2, 2] = np.nan
    assert_three_agree(k, inputs, lhs)
    assert not np.isnan(k.definition(inputs).value).any()


def test_nan_right_hand_side_is_ignored_by_max():
    k = systec_ref.compile("kernel t\nin A[n, n]\nin x[n]\nout y[n]\ny[i] max= A[i, j] + x[j]\n")
    inputs = k.random_inputs({"n": 4}, seed=0)
    inputs["A"][1, :2] = np.nan
    assert_three_agree(k, inputs, "max")


@pytest.mark.parametrize("rhs", ["A[i, j] - x[j] * A[j, i]", "A[i, j] * x[j]", "x[j] - A[i, j]"])
def test_sparse_inf_fill_that_could_make_nan_or_flip_sign_is_rejected(rhs):
    # inf - x*inf is NaN or inf depending on x: unstored entries could change the result
    with pytest.raises(systec_ref.SourceError, match="cannot be skipped"):
        systec_ref.compile(f"kernel t\nin A[n, n] sparse fill inf\nin x[n]\nout y[n]\ny[i] min= {rhs}\n")
