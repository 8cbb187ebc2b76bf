"""Co-iteration: nests over two or more sparse tensors merge their stored coordinates (intersection for
products, union for sums) and agree with the definition in every stage, in the interpreter and in C.

The examples ``sparse/inner3``, ``sparse/add2``, ``sparse/spgemm`` and ``sparse/spgemm_sym`` at n = 0, 1,
5, 7 and densities 0, small and 1 (each sparse input drawn at its own density, so a union meets
coordinates that one operand alone stores), in float64 and int64; then random kernels of two and three
sparse operands (dense, sparse or mixed) from Hypothesis.  Integers exactly, float64 to 1e-12 relative
(``systec_ref.agree``).
"""

from __future__ import annotations

import functools
import itertools

import helpers
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_passes_support import variant

import systec_ref
from systec_ref.errors import SourceError
from systec_ref.ir.nodes import Read, SparseLevel, SparseMerge
from systec_ref.storage import for_program
from systec_ref.term import nodes

SPARSE = helpers.EXAMPLES_DIR / "sparse"
EXAMPLES = ["inner3", "add2", "spgemm", "spgemm_sym"]
NS = (0, 1, 5, 7)
DENSITIES = (0.0, 0.1, 1.0)


@functools.cache
def _kernel(name: str, dtype: str, symmetry: bool = True) -> systec_ref.Kernel:
    text = variant((SPARSE / f"{name}.ein").read_text(encoding="utf-8"), dtype)
    assert text is not None
    return systec_ref.compile(text, f"{name}.ein", symmetry=symmetry)


def _inputs(k: systec_ref.Kernel, n: int, densities: dict[str, float], seed: int) -> dict[str, np.ndarray]:
    """Random inputs at size ``n``, each sparse input at its own density (the others full)."""
    sizes = {d: n for d in k.default_sizes()}
    by_density = {d: k.random_inputs(sizes, seed=seed, density=d) for d in set(densities.values()) | {1.0}}
    return {t.name: by_density[densities.get(t.name, 1.0)][t.name] for t in k.ast.inputs}


def _density_sets(k: systec_ref.Kernel) -> list[dict[str, float]]:
    """Every sparse input at every density of DENSITIES together, then each at its own (one full, one empty...)."""
    names = [t.name for t in k.ast.inputs if t.format == "sparse"]
    same = [dict.fromkeys(names, d) for d in DENSITIES]
    mixed = [dict(zip(names, ds)) for ds in itertools.product(DENSITIES, repeat=len(names)) if len(set(ds)) > 1]
    return same + mixed


def _c_stage(k: systec_ref.Kernel, stage: str | None, inputs: dict) -> np.ndarray:
    fn = k.c_function(stage)
    arrays, dims = k.bind(inputs)
    return fn(arrays, dims, for_program(fn.program, arrays))[k.ast.output.name]


CASES = [pytest.param(name, dtype, id=f"{name}-{dtype}") for name in EXAMPLES for dtype in ("float64", "int64")]


@pytest.mark.parametrize(("name", "dtype"), CASES)
def test_every_stage_agrees_in_the_interpreter(name, dtype):
    k = _kernel(name, dtype)
    for n in NS:
        for ds in _density_sets(k):
            inputs = _inputs(k, n, ds, seed=n)
            report = systec_ref.check(k, inputs)
            assert report.ok, f"{name} {dtype} n={n} densities={ds}\n{report.notes()}"


@pytest.mark.parametrize(("name", "dtype"), CASES)
def test_final_and_baseline_c_agree_with_the_definition(name, dtype):
    k = _kernel(name, dtype)
    for n in NS:
        for ds in _density_sets(k):
            inputs = _inputs(k, n, ds, seed=n + 1)
            want = k.definition(inputs).value
            for optimize in (True, False):
                got = k.run(backend="c", optimize=optimize, **inputs)
                assert systec_ref.agree(got, want, dtype), f"{name} {dtype} n={n} {ds} optimize={optimize}"


@pytest.mark.slow
@pytest.mark.parametrize(("name", "dtype"), CASES)
def test_every_stage_in_c_agrees_with_the_definition(name, dtype):
    k = _kernel(name, dtype)
    for n in NS:
        for ds in _density_sets(k):
            inputs = _inputs(k, n, ds, seed=n + 2)
            want = k.definition(inputs).value
            for st_ in k.stages:
                got = _c_stage(k, st_.name, inputs)
                assert systec_ref.agree(got, want, dtype), f"{name} {dtype} stage {st_.name} n={n} {ds}"


# -- what is iterated ----------------------------------------------------------------------------

def _merges(p) -> list[SparseMerge]:
    return [n for n in nodes(p.body) if isinstance(n, SparseMerge)]


def test_inner3_intersects_every_face_and_passes_nothing_dense():
    k = _kernel("inner3", "float64")
    merges = _merges(k.final)
    assert merges and all(m.mode == "intersect" and {o.tensor for o in m.operands} == {"A", "B"} for m in merges)
    assert not any(isinstance(n, Read) for n in nodes(k.final.body))
    assert len({o.face for m in merges for o in m.operands}) == 4  # the four faces of a symmetric 3-tensor
    assert "A, B co-iterated (4 nests by intersection)" in k.stage("sparse-iterate").note
    fn = k.c_function()
    assert not fn.dense
    assert "while (" in fn.source and "const double *restrict A," not in fn.source


def test_inner3_reads_each_common_entry_once():
    """The intersection: A and B are read only where both store an entry (each read once)."""
    k = _kernel("inner3", "float64")
    inputs = _inputs(k, 7, {"A": 0.3, "B": 0.3}, seed=3)
    res = k.interpret(inputs)
    arrays, _ = k.bind(inputs)
    stored = for_program(k.final, arrays)
    both = set()
    for key in stored["A"].faces:
        if key in stored["B"].faces:
            a = {tuple(c) for c in stored["A"].face_coords(key)}
            both |= a & {tuple(c) for c in stored["B"].face_coords(key)}
    assert res.counts.reads["A"] == res.counts.reads["B"] == len(both)
    assert systec_ref.agree(res.value, k.definition(inputs).value, "float64")


def test_add2_is_a_union_with_a_branch_per_set_of_operands():
    k = _kernel("add2", "float64")
    merges = _merges(k.final)
    assert merges and all(m.mode == "union" for m in merges)
    assert "A, B co-iterated (2 nests by union)" in k.stage("sparse-iterate").note
    assert not k.c_function().dense
    # A full, B empty: every entry comes from A alone, and B is never read
    inputs = _inputs(k, 5, {"A": 1.0, "B": 0.0}, seed=0)
    res = k.interpret(inputs)
    assert res.counts.reads.get("B", 0) == 0
    assert systec_ref.agree(res.value, inputs["A"], "float64")


def test_spgemm_merges_k_between_a_row_of_a_and_the_rows_of_b():
    k = _kernel("spgemm", "float64")
    (m,) = _merges(k.final)
    assert m.var == "k" and m.mode == "intersect"
    assert [(o.tensor, o.level) for o in m.operands] == [("A", 1), ("B", 0)]
    levels = [(n.var, n.tensor) for n in nodes(k.final.body) if isinstance(n, SparseLevel)]
    assert levels == [("i", "A"), ("j", "B")]


def test_spgemm_sym_says_why_b_stays_dense():
    k = _kernel("spgemm_sym", "float64")
    assert not _merges(k.final)
    note = k.stage("sparse-iterate").note
    assert "B stays dense in 2 nests (read at two places; read with subscripts sorted at run time)" in note
    assert "B" in k.c_function().dense


def test_baseline_merges_too():
    for name, mode in (("inner3", "intersect"), ("add2", "union"), ("spgemm", "intersect")):
        k = _kernel(name, "float64", symmetry=False)
        assert [m.mode for m in _merges(k.final)] and {m.mode for m in _merges(k.final)} == {mode}, name


def test_a_dense_operand_is_read_by_random_access():
    """The rule for a dense-ish operand: declare it dense, and the sparse one is iterated alone."""
    text = (SPARSE / "inner3.ein").read_text().replace("in  B[n, n, n]  symmetric sparse", "in  B[n, n, n]  symmetric")
    k = systec_ref.compile(text)
    assert not _merges(k.final)
    assert any(isinstance(n, SparseLevel) for n in nodes(k.final.body))
    assert k.c_function().dense == ["B"]


def test_three_operands_merge_in_one_loop():
    for op, fill in (("+=", ""), ("min=", " fill inf")):
        rhs = "A[i, j] * B[i, j] * D[i, j]" if op == "+=" else "A[i, j] + B[i, j] + D[i, j]"
        text = (f"kernel t3\nin A[n, n] sparse{fill}\nin B[n, n] sparse{fill}\nin D[n, n] sparse{fill}\n"
                f"out C[n, n]\nC[i, j] {op} {rhs}\n")
        k = systec_ref.compile(text)
        merges = _merges(k.final)
        assert merges and all(len(m.operands) == 3 for m in merges)
        for ds in ({"A": 1.0, "B": 0.5, "D": 0.5}, {"A": 0.0, "B": 1.0, "D": 1.0}, {"A": 0.5, "B": 0.5, "D": 0.5}):
            inputs = _inputs(k, 5, ds, seed=1)
            want = k.definition(inputs).value
            assert systec_ref.check(k, inputs).ok
            assert systec_ref.agree(k.run(backend="c", **inputs), want, "float64")


def test_a_union_of_three_in_c():
    text = ("kernel u3\nin A[n, n] sparse\nin B[n, n] sparse\nin D[n, n] sparse\nout C[n, n]\n"
            "C[i, j] += A[i, j] + 2 * B[i, j] - D[i, j]\n")
    k = systec_ref.compile(text)
    merges = _merges(k.final)
    assert merges and {m.mode for m in merges} == {"union"} and len(merges[0].operands) == 3
    for ds in itertools.product((0.0, 0.4, 1.0), repeat=3):
        inputs = _inputs(k, 5, dict(zip("ABD", ds)), seed=2)
        want = k.definition(inputs).value
        assert systec_ref.check(k, inputs).ok, ds
        assert systec_ref.agree(k.run(backend="c", **inputs), want, "float64"), ds


def test_the_language_admits_a_sum_of_sparse_inputs_only_where_all_fills_vanish():
    ok = "kernel a\nin A[n] sparse\nin B[n] sparse\nout y[n]\ny[i] += A[i] + B[i]\n"
    systec_ref.compile(ok)
    with pytest.raises(SourceError, match="unstored entries would still change the result"):
        systec_ref.compile("kernel a\nin A[n] sparse\nin B[n] sparse\nin x[n]\nout y[n]\ny[i] += A[i] + B[i] + x[i]\n")
    with pytest.raises(SourceError, match="unstored entries would still change the result"):
        systec_ref.compile("kernel a\nin A[n] sparse\nin B[n]\nout y[n]\ny[i] += A[i] + B[i]\n")


# -- random kernels of two and three sparse operands ----------------------------------------------

_SUBS = {1: ["i"], 2: ["i, j", "j, i"], 3: ["i, j, k", "i, k, j", "k, j, i"]}


@st.composite
def merge_kernels(draw) -> str:
    """A kernel reading two or three tensors of one order, each sparse or dense, symmetric or not, at the same
    or permuted subscripts, in a product, a sum or a mix, under ``+=`` (fill 0) or ``min=`` (fill inf)."""
    order = draw(st.integers(1, 3))
    count = draw(st.integers(2, 3))
    names = ["A", "B", "D"][:count]
    op = draw(st.sampled_from(["+=", "+=", "+=", "min="]))
    dtype = draw(st.sampled_from(["float64", "int64"])) if op == "+=" else "float64"
    dims = ", ".join(["n"] * order)
    decls = []
    for nm in names:
        sym = " symmetric" if order > 1 and draw(st.booleans()) else ""
        sparse = draw(st.sampled_from(["sparse", "sparse", "dense"]))
        fill = " fill inf" if sparse == "sparse" and op == "min=" else ""
        decls.append(f"in {nm}[{dims}]{sym} {sparse}{fill} {dtype}")
    reads = [f"{nm}[{draw(st.sampled_from(_SUBS[order][:2] if order > 1 else _SUBS[order]))}]" for nm in names]
    shape = draw(st.sampled_from(["product", "sum", "mixed"]))
    coef = draw(st.sampled_from(["", "2 * ", "-1 * "]))
    if shape == "product":
        rhs = coef + " * ".join(reads)
    elif shape == "sum":
        rhs = " + ".join(reads[:-1]) + (" - " if draw(st.booleans()) else " + ") + coef + reads[-1]
    else:
        rhs = " * ".join(reads[:2]) + (f" + {coef}{reads[2]}" if count == 3 else f" + {coef}{reads[0]} * {reads[1]}")
    out_idx = draw(st.sampled_from(["", "[i]"] + (["[i, j]"] if order > 1 else [])))
    out_dims = {"": "", "[i]": "[n]", "[i, j]": "[n, n]"}[out_idx]
    lines = ["kernel mk", *decls, f"out Y{out_dims} {dtype}", f"Y{out_idx} {op} {rhs}"]
    return "\n".join(lines) + "\n"


def _compile(text: str, symmetry: bool) -> systec_ref.Kernel:
    try:
        return systec_ref.compile(text, symmetry=symmetry)
    except SourceError:
        assume(False)
        raise


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=merge_kernels(), symmetry=st.booleans(), n=st.sampled_from([0, 1, 2, 3]),
       densities=st.lists(st.sampled_from(DENSITIES), min_size=3, max_size=3), seed=st.integers(0, 2**16))
def test_random_merge_kernels_agree_in_the_interpreter(text, symmetry, n, densities, seed):
    k = _compile(text, symmetry)
    inputs = _inputs(k, n, dict(zip("ABD", densities)), seed)
    report = systec_ref.check(k, inputs)
    assert report.ok, f"{text}\n{report.notes()}"


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=merge_kernels(), symmetry=st.booleans(), n=st.sampled_from([0, 1, 3, 5]),
       densities=st.lists(st.sampled_from(DENSITIES), min_size=3, max_size=3), seed=st.integers(0, 2**16))
def test_random_merge_kernels_agree_in_c(text, symmetry, n, densities, seed):
    k = _compile(text, symmetry)
    inputs = _inputs(k, n, dict(zip("ABD", densities)), seed)
    want = k.definition(inputs).value
    got = k.run(backend="c", **inputs)
    assert systec_ref.agree(got, want, k.ast.output.dtype), text


def test_the_random_kernels_do_merge():
    """The strategy reaches both modes (a guard against a generator that never exercises a merge)."""
    seen: set[str] = set()
    for text in ["kernel mk\nin A[n, n] sparse\nin B[n, n] sparse\nout Y\nY += A[i, j] * B[i, j]\n",
                 "kernel mk\nin A[n, n] sparse\nin B[n, n] sparse\nout Y\nY += A[i, j] + B[i, j]\n"]:
        seen |= {m.mode for m in _merges(systec_ref.compile(text).final)}
    assert seen == {"intersect", "union"}
