"""The pass manager: runs named passes in order and records every stage.

A pass is a module in this package with a ``NAME`` and a pure function
``run(program) -> (program, note)``; ``note`` says in one line what the pass
did, or why it did not apply (then the program comes back unchanged).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from ..ir.nodes import Program


@dataclass(frozen=True)
class Stage:
    """One named program of the pipeline: ``lower`` first, then one per pass."""

    name: str
    program: Program
    changed: bool
    note: str = ""


PassFn = Callable[[Program], tuple[Program, str]]


def run_pipeline(first: Stage, passes: list[ModuleType] | list[tuple[str, PassFn]]) -> list[Stage]:
    stages = [first]
    prog = first.program
    for p in passes:
        name, fn = (p.NAME, p.run) if isinstance(p, ModuleType) else p
        new, note = fn(prog)
        changed = new != prog
        stages.append(Stage(name, new, changed, note if changed or note else "no change"))
        prog = new
    return stages
