"""The pipeline: ``lower``, then the symmetry passes of SPEC §3.4 in order."""

from __future__ import annotations

from ..lang.ast import Kernel
from . import (
    concordize,
    define_assignments,
    group_assignments,
    hoist_reads,
    identify_symmetry,
    normalize,
    replicate_output,
    restrict_iteration,
    split_diagonals,
    workspace,
)
from . import lower as lower_pass
from .manager import Stage, run_pipeline

#: the passes after ``lower``, in pipeline order (each a module with NAME and run)
PASSES: list = [
    concordize,
    identify_symmetry,
    restrict_iteration,
    define_assignments,
    normalize,
    group_assignments,
    replicate_output,
    split_diagonals,
    hoist_reads,
    workspace,
]


def compile_stages(k: Kernel) -> list[Stage]:
    naive = lower_pass.lower(k)
    first = Stage(lower_pass.NAME, naive, True, f"naive loop nest, loop order {naive.note('loop order')}")
    return run_pipeline(first, PASSES)
