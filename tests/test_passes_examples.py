"""Every example, every stage, against the definition.

Each example is compiled in float64 and in int64 (``int64`` added to every
declaration; bellman needs ``fill inf`` and has no int64 version), with
``faces="split"`` and ``faces="compact"``, and with ``symmetry=False``; every
stage is run in the interpreter on several seeds and sizes — n=1 and n=2 are
the cases where (almost) every point lies on a diagonal face — and must agree
with the kernel's definition: exactly for int64, to 1e-12 relative for float64
(``systec_ref.agree``, through ``systec_ref.check``).
"""

from __future__ import annotations

import functools

import helpers
import pytest
from test_passes_support import assert_stages_agree, sizes, variant

import systec_ref
from systec_ref.rewrite import pipeline

# (n, r): r sizes the factor-matrix / second dimension (r of MTTKRP and TTM, m of SSYRK)
SIZES = [(1, 1), (2, 1), (2, 3), (3, 2), (4, 2)]
SEEDS = (0, 1)

CASES = [
    pytest.param(path, dtype, id=f"{path.stem}-{dtype}")
    for path in helpers.EXAMPLES
    for dtype in ("float64", "int64")
    if variant(path.read_text(encoding="utf-8"), dtype) is not None
]


@functools.cache
def _kernel(path, dtype: str, **options) -> systec_ref.Kernel:
    """Compiled once per (example, dtype, options): the stages are shared by the tests below."""
    text = variant(path.read_text(encoding="utf-8"), dtype)
    assert text is not None
    return systec_ref.compile(text, str(path), **options)


def test_every_example_has_both_variants_but_bellman():
    names = {p.values[0].stem for p in CASES if p.values[1] == "int64"}
    assert names == {p.stem for p in helpers.EXAMPLES} - {"bellman"}


@pytest.mark.parametrize("faces", pipeline.FACES)
@pytest.mark.parametrize("path, dtype", CASES)
def test_every_stage_agrees_with_definition(path, dtype, faces):
    kernel = _kernel(path, dtype, faces=faces)
    assert [s.name for s in kernel.stages] == ["lower", *(p.name for p in pipeline.PASSES)]
    for n, r in SIZES:
        for seed in SEEDS:
            inputs = kernel.random_inputs(sizes(kernel, n, r), seed=seed, density=0.6)
            assert_stages_agree(kernel, inputs, f"{path.stem} {dtype} faces={faces} n={n} r={r} seed={seed}")


@pytest.mark.parametrize("path, dtype", CASES)
def test_without_symmetry_every_stage_agrees(path, dtype):
    kernel = _kernel(path, dtype, symmetry=False)
    assert [s.name for s in kernel.stages] == ["lower", *(p.name for p in pipeline.NON_SYMMETRY)]
    for n, r in SIZES:
        inputs = kernel.random_inputs(sizes(kernel, n, r), seed=n, density=0.6)
        assert_stages_agree(kernel, inputs, f"{path.stem} {dtype} symmetry=False n={n} r={r}")


@pytest.mark.parametrize("density", [0.0, 0.5])
@pytest.mark.parametrize("path", helpers.EXAMPLES, ids=lambda p: p.stem)
def test_sparse_variants_agree(path, density):
    """Every input the language accepts as sparse made sparse; density 0 leaves only fills (bellman: all inf)."""
    kernel = systec_ref.compile(helpers.sparse_variant(path.read_text(encoding="utf-8")), str(path))
    for n, r in ((1, 1), (2, 2), (3, 2)):
        inputs = kernel.random_inputs(sizes(kernel, n, r), seed=7, density=density)
        assert_stages_agree(kernel, inputs, f"sparse {path.stem} density={density} n={n} r={r}")


@pytest.mark.parametrize("path", helpers.EXAMPLES, ids=lambda p: p.stem)
def test_empty_dimensions(path):
    """n=0 or r=0: every loop is empty; every stage still gives the definition's (identity) output."""
    kernel = _kernel(path, "float64", faces="split")
    for n, r in ((0, 2), (2, 0)):
        assert_stages_agree(kernel, kernel.random_inputs(sizes(kernel, n, r), seed=0), f"n={n} r={r}")


# -- item 9: a pass that does not apply says so and changes nothing -----------------------

SYMMETRY_PASSES = [p.name for p in pipeline.PASSES if p.symmetry and p.name != "normalize"]

NO_SYMMETRY = [
    "kernel gemv\nin A[n, m]\nin x[m]\nout y[n]\ny[i] += A[i, j] * x[j]\n",
    "kernel gemm\nin A[n, m]\nin B[m, q]\nout C[n, q]\nC[i, j] += A[i, k] * B[k, j]\n",
    "kernel dot\nin x[n] int64\nin y[n] int64\nout s int64\ns += x[i] * y[i]\n",
    "kernel relax\nin A[n, n]\nin x[n]\nout y[n]\ny[i] min= A[i, j] + x[j]\n",
]


@pytest.mark.parametrize("text", NO_SYMMETRY, ids=lambda t: t.split()[1])
def test_symmetry_passes_do_not_apply_without_symmetry(text):
    kernel = systec_ref.compile(text)
    stages = kernel.stages
    for prev, st in zip(stages, stages[1:]):
        if st.name in SYMMETRY_PASSES:
            assert not st.changed, f"{st.name} changed a kernel with no symmetry: {st.note}"
            assert st.program == prev.program
            assert st.note and st.note.strip(), f"{st.name} gave no reason"
    assert not kernel.final.facts.permutable
    inputs = kernel.random_inputs({d: 3 for d in ("n", "m", "q") if d in text}, seed=2)
    assert_stages_agree(kernel, inputs)


@pytest.mark.parametrize("faces", pipeline.FACES)
@pytest.mark.parametrize("path", helpers.EXAMPLES, ids=lambda p: p.stem)
def test_changed_flag_and_notes_are_truthful(path, faces):
    """``changed`` is exactly "the program differs from the previous stage's", and every stage has a note."""
    stages = _kernel(path, "float64", faces=faces).stages
    assert stages[0].name == "lower" and stages[0].changed
    for prev, st in zip(stages, stages[1:]):
        assert st.changed == (st.program != prev.program), st.name
        assert st.note.strip(), st.name
        if not st.changed:
            assert st.program == prev.program


@pytest.mark.parametrize("path", helpers.EXAMPLES, ids=lambda p: p.stem)
def test_split_only_passes_say_why_they_did_not_apply(path):
    """Under faces="split" consolidate-blocks and lookup-table never apply, and say why."""
    kernel = _kernel(path, "float64", faces="split")
    for name in ("consolidate-blocks", "lookup-table"):
        st = kernel.stage(name)
        assert not st.changed
        assert "split" in st.note
