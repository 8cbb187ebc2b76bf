"""Stage checking: run every stage in the interpreter and compare.

The untransformed program is the reference for the transformed one (loopy's
``auto_test_vs_ref``): each stage is compared with the stage before it and
with the kernel's definition, on the same inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table

from .compare import Agreement, agree
from .interp.counts import Counts


@dataclass(frozen=True)
class StageCheck:
    name: str
    changed: bool
    note: str
    vs_previous: Agreement
    vs_definition: Agreement
    counts: Counts


@dataclass(frozen=True)
class CheckReport:
    kernel: str
    stages: tuple[StageCheck, ...]

    @property
    def ok(self) -> bool:
        return all(s.vs_previous.ok and s.vs_definition.ok for s in self.stages)

    def table(self, title: str = "") -> Table:
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
    return CheckReport(kernel.name, tuple(out))


def check(kernel, inputs: dict[str, object]) -> CheckReport:
    """Public name: ``systec_ref.check(kernel, inputs)``."""
    return check_stages(kernel, inputs)
