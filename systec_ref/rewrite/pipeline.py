"""The pipeline: ``lower``, then the symmetry passes of SPEC §3.4 in order."""

from __future__ import annotations

from ..lang.ast import Kernel
from . import lower as lower_pass
from .manager import Stage, run_pipeline

#: the passes after ``lower``, in pipeline order (each a module with NAME and run)
PASSES: list = []


def compile_stages(k: Kernel) -> list[Stage]:
    naive = lower_pass.lower(k)
    first = Stage(lower_pass.NAME, naive, True, f"naive loop nest, loop order {naive.note('loop order')}")
    return run_pipeline(first, PASSES)
