"""Stage checking: run every stage in the interpreter and compare.

The untransformed program is the reference for the transformed one (loopy's
``auto_test_vs_ref``): each stage is compared with the stage before it and
with the kernel's definition, on the same inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .compare import Agreement, agree
from .interp.counts import Counts

if TYPE_CHECKING:
    from rich.table import Table


@dataclass(frozen=True)
class StageCheck:
    name: str
    changed: bool
    note: str
    vs_previous: Agreement
    vs_definition: Agreement
    counts: Counts

    @property
    def unexercised(self) -> tuple[int, ...]:
        """Positions of the stage's assignments that never ran (``Counts.never_ran``)."""
        return self.counts.never_ran


@dataclass(frozen=True)
class CheckReport:
    kernel: str
    stages: tuple[StageCheck, ...]
    dims: dict[str, int] = field(default_factory=dict)

    @property
    def unexercised(self) -> dict[str, tuple[int, ...]]:
        """Stage name -> positions of its assignments that never ran, for each stage that has any.

        Not a failure: the check just says nothing about those statements.  Small sizes
        (or sparse inputs with few entries) leave loop nests empty."""
        return {s.name: s.unexercised for s in self.stages if s.unexercised}

    @property
    def ok(self) -> bool:
        return all(s.vs_previous.ok and s.vs_definition.ok for s in self.stages)

    def table(self, title: str = "") -> Table:
        from rich.table import Table  # imported when a table is printed: importing rich is slow
        t = Table(title=title or f"{self.kernel}: stage check", title_justify="left")
        for col in ("#", "stage", "changed", "vs previous", "vs definition", "mults", "adds", "work", "reads",
                    "distinct"):
            t.add_column(col, justify="right" if col in ("#", "mults", "adds", "work") else "left")
        for n, s in enumerate(self.stages):
            c = s.counts
            t.add_row(str(n), s.name, "yes" if s.changed else "no",
                      "ok" if s.vs_previous.ok else f"DIFFERS {s.vs_previous.detail}",
                      "ok" if s.vs_definition.ok else f"DIFFERS {s.vs_definition.detail}",
                      str(c.mults), str(c.adds), str(c.work),
                      " ".join(f"{k}:{v}" for k, v in sorted(c.reads.items())),
                      " ".join(f"{k}:{v}" for k, v in c.distinct.items()))
        return t

    def notes(self) -> str:
        """One line per stage: what the pass did, or why it did not apply."""
        return "\n".join(f"{n:>2} {s.name}: {s.note}" for n, s in enumerate(self.stages))

    def never_ran_notes(self, hint: str = "raise --size to exercise them") -> list[str]:
        """One line per stage some of whose assignments never ran (none when every one ran); consecutive
        stages with the same numbers (a pass that left those nests alone) share a line."""
        runs: list[list[StageCheck]] = []
        for s in self.stages:
            key = (len(s.unexercised), len(s.counts.runs))
            if runs and (len(runs[-1][-1].unexercised), len(runs[-1][-1].counts.runs)) == key:
                runs[-1].append(s)
            else:
                runs.append([s])
        notes = []
        for run in runs:
            name = run[0].name if len(run) == 1 else f"{run[0].name} to {run[-1].name}"
            notes.append(never_ran_note(name, run[0].counts, self.dims, hint, stages=len(run)))
        return [n for n in notes if n]


def never_ran_note(stage: str, counts: Counts, dims: dict[str, int],
                   hint: str = "raise --size to exercise them", stages: int = 1) -> str:
    """``note: stage S: 3 of 16 assignments never ran at n=4, r=2 (hint)``, or "" if every one ran
    (``stages`` > 1: ``stage`` names several, each with these numbers)."""
    missed = counts.never_ran
    if not missed:
        return ""
    at = ", ".join(f"{k}={v}" for k, v in dims.items()) or "these sizes"
    which = f"stage {stage}" if stages == 1 else f"stages {stage} (each)"
    return f"note: {which}: {len(missed)} of {len(counts.runs)} assignments never ran at {at} ({hint})"


def check_stages(kernel, inputs: dict[str, object]) -> CheckReport:
    """Run every stage of ``kernel`` (a :class:`systec_ref.Kernel`) on ``inputs``."""
    arrays, dims = kernel.bind(inputs)
    dtype = kernel.ast.output.dtype
    definition = kernel.definition(arrays, check=False).value
    out: list[StageCheck] = []
    prev = definition
    for st in kernel.stages:
        res = kernel.interpret(arrays, st.program, check=False)
        out.append(StageCheck(st.name, st.changed, st.note, agree(res.value, prev, dtype),
                              agree(res.value, definition, dtype), res.counts))
        prev = res.value
    return CheckReport(kernel.name, tuple(out), dict(sorted(dims.items())))


def check(kernel, inputs: dict[str, object]) -> CheckReport:
    """Public name: ``systec_ref.check(kernel, inputs)``."""
    return check_stages(kernel, inputs)
