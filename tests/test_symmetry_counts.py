"""What symmetry saves, counted by the interpreter.

Reads: the final stage reads a symmetric input only on its canonical triangle,
each canonical element once.  Work (updates + local updates): MTTKRP-k drops
from n^k r to the canonical triangle's rearrangement-merged updates; SSYRK and
SYPRD halve.  Output symmetry: SSYRK and TTM write only the canonical triangle
of their output and mirror it.  Partial symmetry and kernels the passes only
partly exploit must still agree with the definition, exactly for int64.

Every kernel here is compiled with BLAS calls off (``blas=False``): the passes on the whole symmetric
set.  With them on, ``gemm-form`` keeps a part of TTM's and MTTKRP's set, which reads more of A in
matrix products for as many multiply-adds (``tests/test_tile_blas.py``).
"""

from __future__ import annotations

import dataclasses
from math import comb

import helpers
import numpy as np
import pytest
from test_passes_support import (
    assert_stages_agree,
    canonical,
    canonical_count,
    example_text,
    poison,
    sizes,
    touched_points,
    variant,
)

import systec_ref
from systec_ref.ir.nodes import Assign, Block, Elem, Program
from systec_ref.term import nodes

# -- item 3: reads ----------------------------------------------------------------------


def test_ssymv_reads_each_canonical_element_of_A_once():
    kernel = systec_ref.load(helpers.example("ssymv"), blas=False)
    n = 50
    inputs = kernel.random_inputs({"n": n}, seed=3)
    res = kernel.interpret(inputs)
    assert res.counts.reads["A"] == n * (n + 1) // 2 == 1275
    assert res.counts.distinct["A"] == 1275
    assert all(i <= j for i, j in touched_points(res.counts, "A", (n, n)))
    assert systec_ref.agree(res.value, kernel.definition(inputs).value, "float64")
    # the naive nest reads all of A
    assert kernel.interpret(inputs, "lower").counts.distinct["A"] == n * n
    # NaN below the diagonal: the final stage never sees it, the naive one does
    bad = dict(inputs, A=np.where(np.tril(np.ones((n, n), dtype=bool), -1), np.nan, inputs["A"]))
    got = kernel.interpret(bad, check=False).value
    assert systec_ref.agree(got, kernel.definition(inputs).value, "float64")
    assert np.isnan(kernel.interpret(bad, "lower", check=False).value[1:]).all()  # rows 1.. have NaN


@pytest.mark.parametrize("k", [3, 4, 5])
def test_mttkrp_reads_each_canonical_element_of_A_once(k):
    kernel = systec_ref.load(helpers.example(f"mttkrp{k}"), blas=False)
    n, r = 8, 3
    inputs = kernel.random_inputs({"n": n, "r": r}, seed=k)
    res = kernel.interpret(inputs)
    assert res.counts.reads["A"] == comb(n + k - 1, k)
    assert res.counts.distinct["A"] == comb(n + k - 1, k)
    group = (tuple(range(k)),)
    assert all(canonical(p, group) for p in touched_points(res.counts, "A", (n,) * k))
    assert systec_ref.agree(res.value, kernel.definition(inputs).value, "float64")


# Every example's symmetric inputs, in the final stage, for both face options: every element read is
# canonical, every canonical element is read, and (except where noted) each exactly once.
#   ttm:       loop order k i j l (chosen so that B[k,i] and C[i,j,l] are concordant) puts the r-loop
#              between k and (j,l), so A is re-read once per i: 156 reads of 56 canonical elements at
#              n=6, r=3 (the all-equal face is hoisted out of the i loop).
#   triangles: A is used three times with different indices: 2 reads per canonical point (i<=j<=k) of
#              the loop nest; A is still read only on its canonical triangle.
MULTIPLE_READS = {"ttm", "triangles"}
SYMMETRIC_EXAMPLES = [p for p in helpers.EXAMPLES if any(d.symmetry for d in systec_ref.load(p).ast.inputs)]


@pytest.mark.parametrize("faces", ["split", "compact"])
@pytest.mark.parametrize("path", SYMMETRIC_EXAMPLES, ids=lambda p: p.stem)
def test_final_stage_reads_exactly_the_canonical_triangle(path, faces):
    kernel = systec_ref.load(path, faces=faces, blas=False)
    inputs = kernel.random_inputs(sizes(kernel, 6, 3), seed=1)
    counts = kernel.interpret(inputs).counts
    for d in kernel.ast.inputs:
        if not d.symmetry:
            continue
        shape = inputs[d.name].shape
        read = touched_points(counts, d.name, shape)
        assert all(canonical(p, d.symmetry) for p in read), f"{d.name}: non-canonical reads"
        assert counts.distinct[d.name] == len(read) == canonical_count(shape, d.symmetry)
        if path.stem not in MULTIPLE_READS:
            assert counts.reads[d.name] == canonical_count(shape, d.symmetry)


def _poison_value(kernel: systec_ref.Kernel):
    """Garbage that changes the result wherever it is read: NaN under +, a huge winner under min/max."""
    red = kernel.ast.assignment.reduction
    is_int = kernel.ast.output.dtype == "int64"
    if red == "+":
        return 10**6 if is_int else np.nan
    big = 10**6 if is_int else 1e300
    return -big if red == "min" else big


POISON_CASES = [pytest.param(p, dtype, id=f"{p.stem}-{dtype}") for p in SYMMETRIC_EXAMPLES
                for dtype in ("float64", "int64") if variant(p.read_text(encoding="utf-8"), dtype) is not None]


@pytest.mark.parametrize("path, dtype", POISON_CASES)
def test_final_stage_never_looks_outside_the_canonical_triangle(path, dtype):
    """Non-canonical entries of every symmetric input hold garbage (NaN for + in float64); with
    check=False the final stage still computes the definition on the true, symmetric input."""
    text = variant(path.read_text(encoding="utf-8"), dtype)
    for faces in ("split", "compact"):
        kernel = systec_ref.compile(text, str(path), faces=faces, blas=False)
        for n, r in ((1, 1), (2, 2), (4, 3)):
            true = kernel.random_inputs(sizes(kernel, n, r), seed=n, density=0.7)
            want = kernel.definition(true).value
            bad = dict(true)
            for d in kernel.ast.inputs:
                if d.symmetry:
                    bad[d.name] = poison(true[d.name], d.symmetry, _poison_value(kernel))
            got = kernel.interpret(bad, check=False).value
            ok = systec_ref.agree(got, want, dtype)
            assert ok, f"{path.stem} {dtype} faces={faces} n={n}: {ok.detail}"
            if dtype == "float64" and n > 1:
                # the poison is effective: the naive nest, which reads everything, is wrong on it
                naive = kernel.interpret(bad, "lower", check=False).value
                assert not systec_ref.agree(naive, want, dtype)


@pytest.mark.parametrize("k", [3, 4, 5])
def test_mttkrp_with_nan_outside_the_canonical_triangle(k):
    kernel = systec_ref.load(helpers.example(f"mttkrp{k}"), blas=False)
    true = kernel.random_inputs({"n": 5, "r": 3}, seed=11)
    bad = dict(true, A=poison(true["A"], (tuple(range(k)),), np.nan))
    got = kernel.interpret(bad, check=False).value
    assert not np.isnan(got).any()
    assert systec_ref.agree(got, kernel.definition(true).value, "float64")


# -- item 4: work --------------------------------------------------------------------------

MTTKRP_WORK = {3: (3744, 6912), 4: (17472, 82944), 5: (65520, 995328)}  # (final, naive) at n=12, r=4


@pytest.mark.parametrize("k", [3, 4, 5])
def test_mttkrp_work_in_final_stage(k):
    kernel = systec_ref.load(helpers.example(f"mttkrp{k}"), blas=False)
    n, r = 12, 4
    inputs = kernel.random_inputs({"n": n, "r": r}, seed=0)
    counts = kernel.interpret(inputs).counts
    assert counts.work == MTTKRP_WORK[k][0]
    # each update costs at most k-1 multiplications plus a small constant per canonical element
    # (multiplicity factors 2*A, 24*A hoisted per element).  hoist-reads' shared prefix/suffix
    # products take the strict part below that: 3k-4 instead of k(k-1) per strict element and rank.
    # Measured at n=12, r=4 (canonical = C(n+k-1, k)):
    #   k=3: mults   6960 (without shared products  7840 = 2*3744  + 352)
    #   k=4: mults  46509 (without shared products 54429 = 3*17472 + 2013)
    #   k=5: mults 241356 (without shared products 269868 = 4*65520 + 7788)
    canonical_elements = comb(n + k - 1, k)
    assert counts.mults <= (k - 1) * counts.work + 2 * canonical_elements, counts.mults
    strict = comb(n, k) * r
    assert counts.mults <= (k - 1) * counts.work + 2 * canonical_elements - (k * (k - 1) - (3 * k - 4)) * strict


@pytest.mark.parametrize("k", [3, 4])
def test_mttkrp_work_in_naive_stage(k):
    kernel = systec_ref.load(helpers.example(f"mttkrp{k}"), blas=False)
    counts = kernel.interpret(kernel.random_inputs({"n": 12, "r": 4}, seed=0), "lower").counts
    assert counts.work == MTTKRP_WORK[k][1] == 12**k * 4


def test_mttkrp5_work_in_naive_stage_small():
    kernel = systec_ref.load(helpers.example("mttkrp5"), blas=False)
    n, r = 6, 2
    counts = kernel.interpret(kernel.random_inputs({"n": n, "r": r}, seed=0), "lower").counts
    assert counts.work == n**5 * r


@pytest.mark.slow
def test_mttkrp5_work_in_naive_stage_n12():
    kernel = systec_ref.load(helpers.example("mttkrp5"), blas=False)
    counts = kernel.interpret(kernel.random_inputs({"n": 12, "r": 4}, seed=0), "lower").counts
    assert counts.work == MTTKRP_WORK[5][1]


def test_ssyrk_work_halves():
    kernel = systec_ref.load(helpers.example("ssyrk"), blas=False)
    n, m = 7, 5
    inputs = kernel.random_inputs({"n": n, "m": m}, seed=2)
    assert kernel.interpret(inputs).counts.work == n * (n + 1) // 2 * m
    assert kernel.interpret(inputs, "lower").counts.work == n * n * m


def test_syprd_work_halves():
    kernel = systec_ref.load(helpers.example("syprd"), blas=False)
    n = 9
    inputs = kernel.random_inputs({"n": n}, seed=2)
    assert kernel.interpret(inputs).counts.work == n * (n + 1) // 2
    assert kernel.interpret(inputs, "lower").counts.work == n * n


@pytest.mark.parametrize("path", helpers.EXAMPLES, ids=lambda p: p.stem)
def test_split_faces_never_do_more_work_than_naive(path):
    kernel = systec_ref.load(path, blas=False)
    inputs = kernel.random_inputs(sizes(kernel, 5, 2), seed=0)
    assert kernel.interpret(inputs).counts.work <= kernel.interpret(inputs, "lower").counts.work


# -- item 5: output symmetry ---------------------------------------------------------------------


def _without_mirror(p: Program) -> Program:
    body = tuple(s for s in p.body.body if not (isinstance(s, Block) and "mirror" in s.comment))
    assert len(body) == len(p.body.body) - 1, "expected exactly one top-level mirror block"
    return dataclasses.replace(p, body=Block(body, p.body.comment))


def test_ssyrk_computes_the_upper_triangle_and_mirrors_it():
    kernel = systec_ref.load(helpers.example("ssyrk"), blas=False)
    st = kernel.stage("replicate-output")
    assert st.changed and "C symmetric in modes (0,1)" in st.note and "mirror" in st.note
    assert "visible output symmetry of C" in kernel.stage("identify-symmetry").note
    assert kernel.final.facts.output_symmetry == ((0, 1),)
    # statically: every update of C writes C[a,b] with a before b in the permutable set (i <= j)
    (group,) = kernel.final.facts.permutable
    rank = {v: t for t, v in enumerate(group)}
    updates = [a for a in nodes(kernel.final.body) if isinstance(a, Assign) and a.op == "+"
               and isinstance(a.target, Elem) and a.target.tensor == "C"]
    assert updates
    for a in updates:
        u, v = (x.name for x in a.target.idx)
        assert rank[u] <= rank[v], a
    n, m = 6, 4
    inputs = kernel.random_inputs({"n": n, "m": m}, seed=5)
    want = kernel.definition(inputs).value
    res = kernel.interpret(inputs)
    assert res.counts.copies == n * (n - 1) // 2
    assert systec_ref.agree(res.value, want, "float64")
    # without the mirror, the updates alone fill the upper triangle (diagonal included), never the lower
    half = kernel.interpret(inputs, _without_mirror(kernel.final)).value
    lower = np.tril_indices(n, -1)
    assert np.all(half[lower] == 0.0)
    upper = np.triu_indices(n)
    assert systec_ref.agree(half[upper], want[upper], "float64")


def test_ttm_output_symmetry_is_invisible_and_found_by_replicate_output():
    kernel = systec_ref.load(helpers.example("ttm"), blas=False)
    ident = kernel.stage("identify-symmetry")
    assert "visible output symmetry" not in ident.note
    assert ident.program.facts.visible_output_symmetry == ()
    assert kernel.stage("replicate-output").program.facts.output_symmetry == ((1, 2),)
    st = kernel.stage("replicate-output")
    assert st.changed and "symmetric in modes (1,2)" in st.note
    n, r = 5, 3
    inputs = kernel.random_inputs({"n": n, "r": r}, seed=4)
    want = kernel.definition(inputs).value
    res = kernel.interpret(inputs)
    assert res.counts.copies == r * n * (n - 1) // 2
    assert systec_ref.agree(res.value, want, "float64")
    half = kernel.interpret(inputs, _without_mirror(kernel.final)).value
    j, l = np.tril_indices(n, -1)
    assert np.all(half[:, j, l] == 0.0)
    j, l = np.triu_indices(n)
    assert systec_ref.agree(half[:, j, l], want[:, j, l], "float64")


# -- item 8: partial symmetry and fallbacks ---------------------------------------------------------


def test_coulomb_reads_G_on_its_partial_canonical_triangle():
    kernel = systec_ref.load(helpers.example("coulomb"), blas=False)
    assert kernel.final.facts.permutable == (("i", "j"), ("k", "l"))
    n = 5
    inputs = kernel.random_inputs({"n": n}, seed=6)
    res = kernel.interpret(inputs)
    assert res.counts.distinct["G"] == (n * (n + 1) // 2) ** 2 == res.counts.reads["G"]
    assert all(i <= j and k <= l for i, j, k, l in touched_points(res.counts, "G", (n,) * 4))
    assert systec_ref.agree(res.value, kernel.definition(inputs).value, "float64")


FALLBACKS = {
    # two different symmetric inputs: only one of the overlapping sets {i,j}, {j,k} can be used
    "two_symmetric": "kernel two\nin A[n, n] symmetric\nin B[n, n] symmetric\nin x[n]\nout s\n"
                     "s += x[i] * A[i, j] * B[j, k] * x[k]\n",
    # one symmetric tensor used twice with different indices (C = A*A is symmetric, but not visibly)
    "square": "kernel sq\nin A[n, n] symmetric\nout C[n, n]\nC[i, j] += A[i, k] * A[k, j]\n",
    "triangles": example_text("triangles"),
    # a partially symmetric tensor whose groups meet other tensors
    "partial": "kernel part\nin G[n, n, n] symmetric(0,2)\nin B[n, r]\nout Y[n, r]\n"
               "Y[i, p] += G[i, j, k] * B[j, p] * B[k, p]\n",
    # a symmetric tensor with a repeated index
    "repeated": "kernel rep\nin A[n, n, n] symmetric\nin x[n]\nout y[n]\ny[i] += A[i, i, j] * x[j] * x[i]\n",
}


@pytest.mark.parametrize("dtype", ["float64", "int64"])
@pytest.mark.parametrize("name", sorted(FALLBACKS))
def test_partial_and_fallback_kernels_agree(name, dtype):
    text = variant(FALLBACKS[name], dtype)
    assert text is not None
    for faces in ("split", "compact"):
        kernel = systec_ref.compile(text, faces=faces, blas=False)
        for n, r in ((1, 1), (2, 2), (3, 2), (5, 3)):
            inputs = kernel.random_inputs(sizes(kernel, n, r), seed=n + r)
            assert_stages_agree(kernel, inputs, f"{name} {dtype} faces={faces} n={n}")
            counts = kernel.interpret(inputs).counts
            for d in kernel.ast.inputs:
                if d.symmetry:
                    read = touched_points(counts, d.name, inputs[d.name].shape)
                    assert all(canonical(p, d.symmetry) for p in read), d.name


def test_two_symmetric_inputs_use_one_and_read_the_other_canonically():
    kernel = systec_ref.compile(FALLBACKS["two_symmetric"], blas=False)
    note = kernel.stage("identify-symmetry").note
    assert "input symmetry of A" in note and "input symmetry of B" in note
    assert len(kernel.final.facts.permutable) == 1
    n = 6
    inputs = kernel.random_inputs({"n": n}, seed=1)
    counts = kernel.interpret(inputs).counts
    assert counts.distinct["A"] == counts.distinct["B"] == n * (n + 1) // 2
    naive = kernel.interpret(inputs, "lower").counts
    # A's symmetry is used to read A once per canonical element (like SSYMV: the rearranged updates do
    # not merge, so the work stays n^3); B is read through run-time sorted subscripts
    assert counts.reads["A"] == n * (n + 1) // 2 < naive.reads["A"] == n**3
    assert counts.work <= naive.work
