"""Operation counts: how later stages prove that symmetry saved work."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Counts:
    """What one run of a program did.

    * ``mults`` / ``adds``: binary multiplications and additions (a subtraction
      counts as an addition) in right-hand sides; ``a*b*c`` is two multiplications;
    * ``updates``: executions of ``T[...] op= e`` into a tensor (``+ min max``);
    * ``local_updates``: the same into a scalar local (workspaces);
    * ``flushes``: ``T[...] op= t`` of a workspace local ``t`` into its tensor
      (bookkeeping of the workspace transform, not arithmetic work);
    * ``copies``: executions of ``T[...] = e`` (transposed copies, mirrors);
    * ``reads[T]``: element reads of ``T``; ``distinct[T]``: how many different
      elements of ``T`` were read; ``iterations``: loop-body executions;
    * ``statements`` / ``runs``: every assignment statement of the program, in
      program order (its position: the n-th assignment of the printed program),
      and how many times each ran; ``never_ran`` lists the positions of those
      that ran zero times (a loop nest the inputs never entered).
    """

    mults: int = 0
    adds: int = 0
    updates: int = 0
    local_updates: int = 0
    flushes: int = 0
    copies: int = 0
    iterations: int = 0
    reads: dict[str, int] = field(default_factory=dict)
    touched: dict[str, set] = field(default_factory=dict, repr=False)
    statements: list = field(default_factory=list, repr=False, compare=False)
    runs: list[int] = field(default_factory=list, repr=False, compare=False)

    @property
    def work(self) -> int:
        """Reductions that carry a right-hand side: ``updates + local_updates``."""
        return self.updates + self.local_updates

    @property
    def never_ran(self) -> tuple[int, ...]:
        """Positions (in :attr:`statements`) of the assignments that never ran."""
        return tuple(n for n, r in enumerate(self.runs) if r == 0)

    @property
    def distinct(self) -> dict[str, int]:
        return {k: len(v) for k, v in sorted(self.touched.items())}

    def summary(self) -> dict[str, object]:
        return {
            "mults": self.mults,
            "adds": self.adds,
            "updates": self.updates,
            "local_updates": self.local_updates,
            "flushes": self.flushes,
            "copies": self.copies,
            "iterations": self.iterations,
            "reads": dict(sorted(self.reads.items())),
            "distinct": self.distinct,
        }
