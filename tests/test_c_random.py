"""Random kernels compiled to C agree with their definition.

A sample of kernels from ``strategies.kernels()`` (every assignment operator,
float64 and int64, partial and full symmetry, sparse inputs, explicit loop
orders that make temporaries), each compiled to C from its final stage (split
or compact faces) and run on random inputs honouring its declarations; the
result must agree with :meth:`Kernel.definition` by :func:`systec_ref.agree`.
"""

from __future__ import annotations

import helpers
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from strategies import kernels, with_sparse_output

import systec_ref

#: compile into the session's private cache (conftest.py)
pytestmark = pytest.mark.usefixtures("private_c_cache")


@settings(max_examples=15, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(text=kernels(), faces=st.sampled_from(["split", "compact"]), seed=st.integers(0, 2**16),
       density=st.sampled_from([1.0, 0.5, 0.0]), tile=st.sampled_from([64, 2]), n=st.sampled_from([3, 5]))
def test_random_kernel_in_c_agrees_with_definition(text, faces, seed, density, tile, n):
    note(text)
    k = systec_ref.compile(text, "<random>.ein", faces=faces, tile=tile)
    inputs = systec_ref.random_inputs(k, helpers.sizes_for(k, n, 2), seed, density)
    want = k.definition(inputs).value
    got = k.run(backend="c", **inputs)
    a = systec_ref.agree(got, want, k.ast.output.dtype)
    assert a.ok, f"C (final stage {k.stages[-1].name}, faces={faces}) disagrees with the definition: {a.detail}"


@settings(max_examples=15, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(text=kernels().map(with_sparse_output), seed=st.integers(0, 2**16), density=st.sampled_from([1.0, 0.5, 0.0]),
       n=st.sampled_from([3, 5]))
def test_random_kernel_with_a_sparse_output(text, seed, density, n):
    """The same kernels returning their output sparse: C, the interpreter's final stage and the definition
    agree, and C and the interpreter store the same canonical entries."""
    note(text)
    k = systec_ref.compile(text, "<random>.ein")
    inputs = systec_ref.random_inputs(k, helpers.sizes_for(k, n, 2), seed, density)
    want = k.definition(inputs).value
    got = k.run(backend="c", **inputs)
    interp = k.run(backend="interp", **inputs)
    if k.ast.output.dims:
        assert isinstance(got, systec_ref.SparseTensor) and got.symmetry == k.final.facts.output_symmetry
        assert got.stored == interp.stored
    for value, where in ((got, "C"), (interp, "interpreter")):
        a = systec_ref.agree(value, want, k.ast.output.dtype)
        assert a.ok, f"{where} (final stage {k.stages[-1].name}) disagrees with the definition: {a.detail}"


# -- regressions found by the sample above -------------------------------------------

@pytest.mark.parametrize("dtype", ["int64", "float64"])
@pytest.mark.parametrize("rhs", ["A[i] - -(A[i] + 1)", "-(-A[i])", "A[i] - -(0 + 0)", "A[i] - -A[i] * -A[i]"])
def test_double_negation_compiles(rhs, dtype):
    """A negation of a negation was emitted as ``--x``, which C reads as a decrement (a compile error)."""
    k = systec_ref.compile(f"kernel negneg\nin A[n] {dtype}\nout Y {dtype}\nY += {rhs}\n")
    inputs = systec_ref.random_inputs(k, {"n": 5}, 1)
    want = k.definition(inputs).value
    for optimize in (True, False):
        assert "--" not in k.c_source(None if optimize else "baseline").split("#include", 1)[1]
        assert systec_ref.agree(k.run(backend="c", optimize=optimize, **inputs), want, dtype)
