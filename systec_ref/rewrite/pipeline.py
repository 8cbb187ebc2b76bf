"""The pipeline: ``lower``, then the passes in order (README, "The pipeline")."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import SystecError
from ..lang.ast import Kernel
from . import (
    concordize,
    consolidate_blocks,
    define_assignments,
    group_assignments,
    hoist_reads,
    identify_symmetry,
    lookup_table,
    normalize,
    replicate_output,
    restrict_iteration,
    sparse_iterate,
    split_diagonals,
    unroll_and_jam,
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
    consolidate_blocks,
    lookup_table,
    sparse_iterate,
    hoist_reads,
    workspace,
    unroll_and_jam,
]


#: the passes that have nothing to do with symmetry: the baseline keeps them
NON_SYMMETRY = [concordize, sparse_iterate, hoist_reads, workspace, unroll_and_jam]

FACES = ("split", "compact")


@dataclass(frozen=True)
class Options:
    """How to compile.

    * ``symmetry=False`` runs only the passes that have nothing to do with
      symmetry (:data:`NON_SYMMETRY`): the baseline symmetric kernels are
      measured against;
    * ``faces="split"`` gives every diagonal face its own nest (least work);
      ``"compact"`` keeps the faces of sets of four or more variables together
      so ``consolidate-blocks`` and ``lookup-table`` can shrink the code.
    """

    symmetry: bool = True
    faces: str = "split"

    def __post_init__(self) -> None:
        if self.faces not in FACES:
            raise SystecError(f"faces must be one of {', '.join(FACES)}, not {self.faces!r}")


def compile_stages(k: Kernel, options: Options = Options()) -> list[Stage]:
    naive = lower_pass.lower(k)
    if options.faces != "split":
        naive = naive.with_notes(faces=options.faces)
    first = Stage(lower_pass.NAME, naive, True, f"naive loop nest, loop order {naive.note('loop order')}")
    return run_pipeline(first, PASSES if options.symmetry else NON_SYMMETRY)
