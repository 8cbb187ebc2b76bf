"""``gemm-form`` on generated kernels of its two shapes, and the BLAS calls it leads to.

The generator writes TTM-like kernels (a symmetric order-3 ``A`` with one summed index, the output
keeping the other two) and MTTKRP-like ones (a symmetric order-3 or order-4 ``A`` whose every index but
one is summed, each summed index also in a factor ``B[.., j]``), with the subscripts of ``A`` and of the
factors in random orders, an optional factor on an index outside the set, and a constant.  Each kernel
is checked where it matters:

* ``gemm-form`` applied (or said why not), and every stage agrees with the definition in the interpreter
  (tiny sizes, past the set so every face runs);
* the C agrees with the definition at n = 0, 1 and sizes that are not multiples of anything, with the
  BLAS calls of ``blas-calls`` (a scaled copy for MTTKRP-like kernels);
* ``check=False`` with an input that is symmetric only on the canonical part of its declared set still
  gives the result of that part (the kernel reads beyond it, so the input is canonicalized first).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_passes_support import assert_stages_agree

import systec_ref
from systec_ref.ir.nodes import BlasCall
from systec_ref.storage.faces import symmetrize_index
from systec_ref.term import nodes

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def gemm_shaped(draw) -> str:
    """Source text of a TTM-like or MTTKRP-like kernel (see the module's docstring)."""
    order = draw(st.sampled_from([3, 3, 4]))
    sub = list(draw(st.permutations(["k", "l", "m", "o"][: order - 1] + ["p"])))  # p: the index A keeps
    ttm = order == 3 and draw(st.booleans())
    extra = draw(st.sampled_from(["", " * E[j]", " * 0.5"]))
    transposed = draw(st.booleans())  # B held as B_T[r, n]

    def factor(v: str) -> str:
        return f"B_T[j, {v}]" if transposed else f"B[{v}, j]"

    decls = [f"in  A[{', '.join(['n'] * order)}]  symmetric", "in  B_T[r, n]" if transposed else "in  B[n, r]"]
    if "E[" in extra:
        decls.append("in  E[r]")
    if ttm:  # one index of A summed (against B), the output keeps the other two and the rank index j
        summed = draw(st.sampled_from(sub))
        kept = [v for v in sub if v != summed]
        out, dims = draw(st.sampled_from([(f"C[j, {kept[0]}, {kept[1]}]", "[r, n, n]"),
                                          (f"C[{kept[0]}, {kept[1]}, j]", "[n, n, r]")]))
        rhs = f"A[{', '.join(sub)}] * {factor(summed)}{extra}"
    else:  # every index of A but p summed, each against B
        out, dims = draw(st.sampled_from([("C[p, j]", "[n, r]"), ("C[j, p]", "[r, n]")]))
        rhs = f"A[{', '.join(sub)}] * " + " * ".join(factor(v) for v in sub if v != "p") + extra
    return "kernel g\n" + "\n".join(decls) + f"\nout C{dims}\n{out} += {rhs}\n"


def _calls(k: systec_ref.Kernel) -> list[str]:
    return sorted(n.routine for n in nodes(k.final.body) if isinstance(n, BlasCall))


@pytest.mark.slow
@settings(max_examples=40, **SETTINGS)
@given(text=gemm_shaped(), seed=st.integers(0, 2**16))
def test_generated_kernels_every_stage_and_c(text, seed):
    k = systec_ref.compile(text)
    order = len(next(d for d in k.ast.inputs if d.name == "A").dims)
    assert k.stage("gemm-form").changed, f"{k.stage('gemm-form').note}\n{text}"
    assert _calls(k), f"no BLAS call\n{text}"
    # every stage in the interpreter, n past the kept part (every face of it runs)
    inputs = k.random_inputs({"n": order + 1, "r": 2}, seed=seed)
    assert_stages_agree(k, inputs, text)
    for n, r in ((0, 2), (1, 2), (order + 2, 3), (11, 1)):
        inputs = k.random_inputs({"n": n, "r": r}, seed=seed + n)
        want = k.definition(inputs).value
        got = k.run(backend="c", check=False, **inputs)
        assert systec_ref.agree(got, want, "float64").ok, f"n={n} r={r}\n{text}"


@settings(max_examples=10, **SETTINGS)
@given(text=gemm_shaped(), seed=st.integers(0, 2**16))
def test_check_false_reads_the_canonical_part_of_the_declared_set(text, seed):
    """An input symmetric only where it is canonical (noise elsewhere), run with check=False, gives the result
    of its canonical part, as the kernel declares it: gemm-form's products read more, so it is canonicalized."""
    k = systec_ref.compile(text)
    inputs = k.random_inputs({"n": 5, "r": 2}, seed=seed)
    A = inputs["A"]
    noisy = A + np.random.default_rng(seed).uniform(-1, 1, A.shape)
    canonical = np.ascontiguousarray(noisy[symmetrize_index(noisy.shape, ((0, 1, 2, 3)[: A.ndim],))])
    got = k.run(backend="c", check=False, **{**inputs, "A": noisy})
    want = k.definition({**inputs, "A": canonical}).value
    assert systec_ref.agree(got, want, "float64").ok, text
