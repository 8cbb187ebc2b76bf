"""Regression: ``faces="compact"`` multiplies by integers only, so integer-valued inputs give exact results.

``lookup-table`` used to give every diagonal face of MTTKRP-k one shared body times
``(k-1)!/(r1!·r2!·…)`` — on the all-equal face ``1/k``: ``k`` equal updates of one element, each
times a rounded ``0.2`` (k = 5), and an exact ``2`` came out as ``1.9999999999999998``.
``consolidate-blocks`` did the same with its decoupled bodies (MTTKRP-4: ``3/2`` and ``1/4``). Now
only integer factors are used; a face whose factor would be a fraction keeps its own body, whose
coefficients are its integer counts of rearrangements.  On integer-valued float64 inputs (small
enough that every partial sum is an exactly representable integer) the final stage then equals the
definition *exactly*, in the interpreter and in C.
"""

from __future__ import annotations

import math

import helpers
import numpy as np
import pytest

import systec_ref
from systec_ref.ir.nodes import Const, Lookup
from systec_ref.tensors import symmetrize_index
from systec_ref.term import nodes

#: compile into the session's private cache (conftest.py)
pytestmark = pytest.mark.usefixtures("private_c_cache")

MTTKRP6 = """kernel mttkrp6
in  A[n, n, n, n, n, n]  symmetric
in  B[n, r]
out C[n, r]
C[i, j] += A[i, k, l, m, o, p] * B[k, j] * B[l, j] * B[m, j] * B[o, j] * B[p, j]
"""

MTTKRP5_INT64 = """kernel mttkrp5_int64
in  A[n, n, n, n, n]  symmetric int64
in  B[n, r] int64
out C[n, r] int64
C[i, j] += A[i, k, l, m, o] * B[l, j] * B[k, j] * B[m, j] * B[o, j]
"""


def integer_inputs(kernel: systec_ref.Kernel, n: int, r: int, seed: int) -> dict[str, np.ndarray]:
    """float64 inputs holding integers in [-3, 3]; the symmetric ones symmetrized like ``random_inputs``."""
    rng = np.random.default_rng(seed)
    out = {}
    for d in kernel.ast.inputs:
        shape = tuple(n if dim == "n" else r for dim in d.dims)
        x = rng.integers(-3, 4, size=shape).astype(np.float64)
        if d.symmetry and x.size:
            x = x[symmetrize_index(shape, d.symmetry)]
        out[d.name] = np.ascontiguousarray(x)
    return out


def lookups(program) -> list[Lookup]:
    return [x for x in nodes(program.body) if isinstance(x, Lookup)]


def assert_exact(kernel: systec_ref.Kernel, n: int, r: int, seed: int) -> None:
    inputs = integer_inputs(kernel, n, r, seed)
    want = kernel.definition(inputs).value
    assert np.array_equal(want, np.round(want)), "the definition itself is not integer-valued"
    for backend in ("interp", "c"):
        got = kernel.run(backend=backend, **inputs)
        bad = np.argwhere(got != want)
        assert not bad.size, (f"{kernel.name} n={n} {backend}: {len(bad)} elements differ, e.g. C{tuple(bad[0])} = "
                              f"{got[tuple(bad[0])]!r}, definition {want[tuple(bad[0])]!r}")


def assert_integral_factors(kernel: systec_ref.Kernel) -> None:
    """Every table entry, and every constant a pass wrote from ``split-diagonals`` on, is an integer."""
    for look in lookups(kernel.final):
        assert all(float(v).is_integer() for v in look.values), look.values
    names = [s.name for s in kernel.stages]
    after = kernel.stages[names.index("split-diagonals"):]
    for stage in after:
        for x in nodes(stage.program.body):
            if isinstance(x, Const) and math.isfinite(x.value):  # inf: the identity of min=
                assert float(x.value).is_integer(), f"{kernel.name}, {stage.name}: constant {x.value!r}"


@pytest.fixture(scope="module")
def mttkrp5():
    return systec_ref.load(helpers.example("mttkrp5"), faces="compact", blas=False)


@pytest.fixture(scope="module")
def mttkrp6():
    return systec_ref.compile(MTTKRP6, "mttkrp6.ein", faces="compact", blas=False)


@pytest.mark.parametrize("n", [0, 1, 6])
def test_mttkrp5_compact_is_exact_on_integers(mttkrp5, n):
    """n = 6 >= 5: every one of the 16 faces has points (the all-equal one at every i)."""
    assert mttkrp5.stage("lookup-table").changed
    assert_exact(mttkrp5, n, 2, seed=n)


@pytest.mark.slow  # compiling the order-6 kernel takes ~12 s (define-assignments: 32 faces of 720 permutations)
def test_mttkrp6_compact_is_exact_on_integers(mttkrp6):
    """n = 7 >= 6: every one of the 32 faces has points."""
    for n in (0, 1, 7):
        assert_exact(mttkrp6, n, 2, seed=n)
    stage = mttkrp6.stage("lookup-table")
    assert stage.changed
    # the faces whose factor 5!/(r1!·r2!·…) is a fraction keep their own bodies, and the note says so
    for face, frac in (("i == k == l == m == o == p", "1/6"), ("i == k == l < m == o == p", "10/3"),
                       ("i == k < l == m == o == p", "5/2"), ("i == k == l == m < o == p", "5/2")):
        assert f"{face}: {frac}" in stage.note, stage.note
    assert stage.note.startswith("27 faces share one body")
    (look,) = set(lookups(mttkrp6.final))
    assert len(look.values) == 32
    assert_integral_factors(mttkrp6)


def test_mttkrp5_table_entries_are_the_integer_face_factors(mttkrp5):
    """Entry = 4!/(r1!·r2!·…) for every face where that is an integer; the all-equal face (1/5) is not in
    the table (entry 0, never read): it comes first, with its own one-update body."""
    (look,) = set(lookups(mttkrp5.final))
    want = []
    for mask in range(16):
        runs, size = [], 1
        for t in range(4):
            if mask >> t & 1:
                size += 1
            else:
                runs.append(size)
                size = 1
        runs.append(size)
        factor = math.factorial(4) / math.prod(math.factorial(x) for x in runs)
        want.append(int(factor) if mask and factor.is_integer() else 0)
    assert list(look.values) == want
    assert "i == k == l == m == o: 1/5" in mttkrp5.stage("lookup-table").note


@pytest.mark.parametrize("path", helpers.EXAMPLES, ids=lambda p: p.stem)
def test_compact_examples_multiply_by_integers_only(path):
    assert_integral_factors(systec_ref.load(path, faces="compact", blas=False))


def test_mttkrp4_consolidated_faces_keep_their_own_bodies_for_fractions():
    """i == k < l == m (3!/(2!·2!) = 3/2) and i == k == l == m (1/4) are not decoupled; the other five
    faces still merge into two blocks."""
    k = systec_ref.load(helpers.example("mttkrp4"), faces="compact", blas=False)
    assert k.stage("consolidate-blocks").note == "3 face blocks merged into others"
    assert_exact(k, 5, 2, seed=3)


def test_int64_mttkrp5_gets_the_table_too():
    """int64 has no fractions: the pass used to give up on the whole nest; now the all-equal face keeps
    its own body and the other 14 share the table."""
    k = systec_ref.compile(MTTKRP5_INT64, "mttkrp5_int64.ein", faces="compact", blas=False)
    assert k.stage("lookup-table").note.startswith("14 faces share one body"), k.stage("lookup-table").note
    inputs = {name: x.astype(np.int64) for name, x in integer_inputs(k, 6, 2, seed=2).items()}
    want = k.definition(inputs).value
    for backend in ("interp", "c"):
        assert np.array_equal(k.run(backend=backend, **inputs), want), backend
