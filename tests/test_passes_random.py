"""Random kernels through every pass.

Two generators: ``strategies.kernels()`` (1-3 inputs of order up to 4, random
full/partial symmetry, ``+= = min= max=``, float64 and int64, dense and
sparse) and ``sym_kernels()`` from ``test_passes_support`` (built around a
symmetric tensor, so that nearly every kernel has a permutable set and the
later symmetry passes — group-assignments, replicate-output,
consolidate-blocks — have work to do).  Sizes stay tiny (1-3): every stage
runs in the pure-Python interpreter and is compared with the definition.

Besides agreement, on each kernel:

* in the final stage every read of a symmetric input is of a canonical
  element (subscripts sorted within each symmetry group the final stage
  declares: ``gemm-form`` may keep a part of a group) — normalize sorts
  every such read, statically or at run time, whether or not a permutable
  set was found;
* with ``faces="split"`` the final stage does no more work (updates plus
  local updates) than the naive nest.  (Not with ``faces="compact"``: there a
  diagonal face runs the strict part's whole body scaled by 1/prod(run
  sizes!), which can be more updates than the face has points — by design,
  the published artifact, MTTKRP-5.)
"""

from __future__ import annotations

import strategies
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_passes_support import assert_stages_agree, canonical, sizes, sym_kernels, touched_points

import systec_ref

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _check_kernel(text: str, faces: str, n: int, r: int, seed: int, symmetry: bool = True, tile: int = 64) -> None:
    kernel = systec_ref.compile(text, faces=faces, symmetry=symmetry, tile=tile)
    inputs = kernel.random_inputs(sizes(kernel, n, r), seed=seed, density=0.7)
    context = f"faces={faces} symmetry={symmetry} tile={tile} n={n} r={r} seed={seed}\n{text}"
    report = assert_stages_agree(kernel, inputs, context)

    final = report.stages[-1].counts
    if faces == "split":
        assert final.work <= report.stages[0].counts.work, f"final stage does more work than the naive one\n{context}"
    if not symmetry:
        return
    arrays, _ = kernel.bind(inputs)
    res = kernel.interpret(inputs)  # the counts of check's run of the final stage, with the touched sets
    for d in kernel.ast.inputs:
        # the symmetry the final stage declares: the kernel's, or the part of it gemm-form kept (whose products
        # read beyond the whole set's canonical elements; with check=False such an input is canonicalized)
        groups = kernel.final.tensor(d.name).symmetry
        if groups:
            read = touched_points(res.counts, d.name, arrays[d.name].shape)
            bad = sorted(p for p in read if not canonical(p, groups))
            assert not bad, f"final stage reads non-canonical elements of {d.name}: {bad[:5]}\n{context}"


@settings(max_examples=80, **SETTINGS)
@given(text=strategies.kernels(), n=st.integers(1, 3), r=st.integers(1, 3), seed=st.integers(0, 2**16),
       faces=st.sampled_from(["split", "compact"]))
def test_random_kernels_every_stage_agrees(text, n, r, seed, faces):
    _check_kernel(text, faces, n, r, seed)


@settings(max_examples=40, **SETTINGS)
@given(text=strategies.kernels(), n=st.integers(1, 3), r=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_random_kernels_without_symmetry(text, n, r, seed):
    _check_kernel(text, "split", n, r, seed, symmetry=False)


@settings(max_examples=150, **SETTINGS)
@given(text=sym_kernels(), n=st.integers(1, 3), r=st.integers(1, 3), seed=st.integers(0, 2**16),
       faces=st.sampled_from(["split", "compact"]))
def test_random_symmetric_kernels_every_stage_agrees(text, n, r, seed, faces):
    _check_kernel(text, faces, n, r, seed)


@settings(max_examples=60, **SETTINGS)
@given(text=sym_kernels(), n=st.integers(2, 5), r=st.integers(1, 3), seed=st.integers(0, 2**16),
       tile=st.integers(1, 3))
def test_random_symmetric_kernels_tiled(text, n, r, seed, tile):
    """Tiles smaller than n (and than n's factors): off-diagonal tiles, partial tiles, BLAS calls."""
    _check_kernel(text, "split", n, r, seed, tile=tile)
