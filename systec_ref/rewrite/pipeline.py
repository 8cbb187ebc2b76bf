"""The pipeline: ``lower``, then the passes in order (README, "The pipeline")."""

from __future__ import annotations

from ..lang.ast import Kernel
from . import (
    blas_calls,
    concordize,
    consolidate_blocks,
    define_assignments,
    fuse_faces,
    gemm_form,
    group_assignments,
    hoist_reads,
    identify_symmetry,
    lookup_table,
    mirror_written,
    normalize,
    replicate_output,
    restrict_iteration,
    reverse_sweep,
    sparse_iterate,
    split_diagonals,
    tile,
    unroll_and_jam,
    workspace,
)
from . import lower as lower_pass
from .manager import DEFAULT_OPTIONS, DEFAULT_TILE, FACES, Options, Pass, Stage, run_pipeline

__all__ = ["BY_NAME", "DEFAULT_TILE", "FACES", "NON_SYMMETRY", "PASSES", "Options", "compile_stages", "resume"]

#: the passes after ``lower``, in pipeline order
PASSES: list[Pass] = [
    gemm_form.PASS,
    concordize.PASS,
    identify_symmetry.PASS,
    restrict_iteration.PASS,
    define_assignments.PASS,
    normalize.PASS,
    group_assignments.PASS,
    replicate_output.PASS,
    split_diagonals.PASS,
    consolidate_blocks.PASS,
    lookup_table.PASS,
    sparse_iterate.PASS,
    fuse_faces.PASS,
    tile.PASS,
    blas_calls.PASS,
    hoist_reads.PASS,
    workspace.PASS,
    unroll_and_jam.PASS,
    reverse_sweep.PASS,
    mirror_written.PASS,
]

#: the passes that have nothing to do with symmetry: the baseline keeps them
NON_SYMMETRY: list[Pass] = [p for p in PASSES if not p.symmetry]

BY_NAME: dict[str, Pass] = {p.name: p for p in PASSES}


#: the first pass whose output depends on the storage formats of sparse inputs
FIRST_STORAGE_PASS = sparse_iterate.PASS.name


def resume(stages: list[Stage], options: Options) -> list[Stage]:
    """``stages`` (a compile's) again under other storage formats (``options.tensor_formats``,
    ``sparse_format``): the stages before :data:`FIRST_STORAGE_PASS` do not depend on them and are kept;
    the passes from it on run again."""
    names = [s.name for s in stages]
    if FIRST_STORAGE_PASS not in names:
        return list(stages)
    at = names.index(FIRST_STORAGE_PASS)
    return stages[:at - 1] + run_pipeline(stages[at - 1], [BY_NAME[n] for n in names[at:]], options)


def compile_stages(k: Kernel, options: Options = DEFAULT_OPTIONS) -> list[Stage]:
    naive = lower_pass.lower(k, options.packed)
    first = Stage(lower_pass.NAME, naive, True, f"naive loop nest, loop order {naive.facts.loop_order}")
    passes = PASSES if options.symmetry else NON_SYMMETRY
    stages = run_pipeline(first, passes, options)
    # gemm-form trades the whole symmetric set for a part of it because the part's nests are matrix
    # products; if blas-calls made no call of them, the trade bought nothing (and left a loop order chosen
    # for BLAS): compile again with the pass declining, so the whole set is used
    formed = next((s for s in stages if s.name == gemm_form.NAME), None)
    traded = gemm_form.traded(naive, formed.program) if formed is not None and formed.changed else None
    if traded is not None and not gemm_form.made_products(stages[-1].program, *traded):
        declined = gemm_form.declining("blas-calls made no matrix product of the part's strict nest")
        stages = run_pipeline(first, [declined if p.name == gemm_form.NAME else p for p in passes], options)
    return stages
