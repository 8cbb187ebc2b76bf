"""Helpers the tutorials share: show a stage, draw a pass, tabulate counts, mark live figures.

A tutorial runs in two ways, and these helpers behave the same in both except
where a file or a machine-dependent figure is involved:

* as a script (``python tutorials/01_ssymv_triangle.py``): everything is
  printed; diagrams are written to a scratch directory and their paths printed;
* under the runner (``python tutorials/run.py``), which records each code
  cell's output into ``tutorials/out/NN_slug.md``: diagrams are written next
  to it and embedded as images, and every value passed through :func:`live`
  (timings, speed ratios, machine names) is recorded as ``⟨machine-dependent⟩``
  so that the recorded document can be compared with a fresh run.

Nothing here computes a count: counts come from the interpreter
(``Kernel.interpret(...).counts``, ``systec_ref.check``); these helpers only
print them.
"""

from __future__ import annotations

import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EXAMPLES = ROOT / "examples"

# A checkout without `pip install -e .` (e.g. the system python): make the package importable.
try:  # pragma: no cover - depends on how the reader installed it
    import systec_ref  # noqa: F401
except ModuleNotFoundError:  # pragma: no cover
    sys.path.insert(0, str(ROOT))

from systec_ref.ir.graph import to_graph  # noqa: E402
from systec_ref.ir.printer import print_program  # noqa: E402
from systec_ref.viz.diff import line_diff, tree_diff  # noqa: E402
from systec_ref.viz.draw import pass_dot, stage_dot  # noqa: E402

#: what the recorded document shows instead of a machine-dependent value
PLACEHOLDER = "⟨machine-dependent⟩"
#: the command that regenerates the recorded outputs (stamped into every diagram)
REGENERATE = "python tutorials/run.py"
# live values are wrapped in these while the runner records (never in a script run)
LIVE_START, LIVE_END = "\x02", "\x03"
LIVE_RE = re.compile(re.escape(LIVE_START) + ".*?" + re.escape(LIVE_END), re.S)


@dataclass
class Display:
    """A diagram to embed below the output of the cell that made it."""

    caption: str
    dot: Path  # the Graphviz source written


@dataclass
class _Context:
    recording: bool = False
    out_dir: Path | None = None  # where this tutorial's diagrams go
    displays: list[Display] = field(default_factory=list)
    names: set[str] = field(default_factory=set)


_ctx = _Context()


def begin(out_dir: Path) -> None:
    """Called by the runner before a tutorial: record into ``out_dir``."""
    global _ctx
    _ctx = _Context(recording=True, out_dir=out_dir)


def end() -> None:
    """Called by the runner after a tutorial: back to script behaviour."""
    global _ctx
    _ctx = _Context()


def take_displays() -> list[Display]:
    """The diagrams made since the last call (the runner embeds them)."""
    out, _ctx.displays = _ctx.displays, []
    return out


def _diagram_dir() -> Path:
    if _ctx.out_dir is None:
        stem = Path(sys.argv[0]).stem or "tutorial"
        _ctx.out_dir = Path(tempfile.gettempdir()) / "systec_ref_tutorials" / stem
    _ctx.out_dir.mkdir(parents=True, exist_ok=True)
    return _ctx.out_dir


# -- machine-dependent values -----------------------------------------------------


def live(value, fmt: str = "{}") -> str:
    """``fmt.format(value)``, marked as machine-dependent (a timing, a ratio of timings, a CPU name).

    Printed as is; in the recorded document it becomes ``⟨machine-dependent⟩``,
    the only text excluded from the comparison with a fresh run.
    """
    text = fmt.format(value)
    return f"{LIVE_START}{text}{LIVE_END}" if _ctx.recording else text


def mask_live(text: str) -> str:
    return LIVE_RE.sub(PLACEHOLDER, text)


def strip_live(text: str) -> str:
    return text.replace(LIVE_START, "").replace(LIVE_END, "")


# -- showing programs ---------------------------------------------------------------


def show_source(path: Path) -> None:
    """Print a ``.ein`` file as it is."""
    print(Path(path).read_text(encoding="utf-8").rstrip("\n"))


def program_text(k, stage: str, header: bool = False) -> str:
    return print_program(k.stage(stage).program, header=header)


def show(k, stage: str, header: bool = False) -> None:
    """Print the loop nest of one stage (``header=True``: with declarations and facts)."""
    print(program_text(k, stage, header).rstrip("\n"))


def _index(k, stage: str) -> int:
    names = [s.name for s in k.stages]
    if stage not in names:
        raise KeyError(f"{k.name} has no stage {stage!r} (stages: {', '.join(names)})")
    return names.index(stage)


def show_pass(k, stage: str, header: bool = False, tag: str = "", draw: bool = True) -> None:
    """What pass ``stage`` did to ``k``: its note, the loop nest with changed lines marked
    ``+``/``-`` (against the stage before it), and a before/after diagram."""
    n = _index(k, stage)
    st, prev = k.stages[n], k.stages[n - 1]
    print(f"pass {st.name} ({'changed the program' if st.changed else 'no change'}): {st.note}")
    before = print_program(prev.program, header=header)
    after = print_program(st.program, header=header)
    for mark, line in line_diff(before, after):
        print(f"{mark} {line}")
    if draw:
        diagram(k, stage, tag=tag)


def diagram(k, stage: str, tag: str = "") -> Path:
    """Write the before/after sheet of pass ``stage`` (Graphviz; green added, red removed,
    gold changed) and embed it (runner) or print where it is (script)."""
    n = _index(k, stage)
    st, prev = k.stages[n], k.stages[n - 1]
    gb, ga = to_graph(prev.program), to_graph(st.program)
    sb, sa = tree_diff(gb, ga)
    label = f"{k.name}{'-' + tag if tag else ''}"
    dot = pass_dot(gb, ga, sb, sa, f"{label}: pass {st.name}: {st.note}", f"before ({prev.name})",
                   f"after ({st.name})", REGENERATE)
    return _emit(f"{label}-{n:02d}-{st.name}.pass.dot", dot,
                 f"{label}: before/after {st.name} (green added, red removed, gold changed)")


def stage_diagram(k, stage: str, tag: str = "") -> Path:
    """Write the drawing of one stage's loop nest and embed it."""
    n = _index(k, stage)
    st = k.stages[n]
    label = f"{k.name}{'-' + tag if tag else ''}"
    dot = stage_dot(to_graph(st.program), f"{label}: {n:02d} {st.name}", REGENERATE)
    return _emit(f"{label}-{n:02d}-{st.name}.dot", dot, f"{label}: loop nest after {st.name}")


def _emit(name: str, dot: str, caption: str) -> Path:
    if _ctx.recording and name in _ctx.names:
        raise ValueError(f"diagram {name} drawn twice in one tutorial (give a tag)")
    _ctx.names.add(name)
    path = _diagram_dir() / name
    path.write_text(dot, encoding="utf-8")
    if _ctx.recording:
        _ctx.displays.append(Display(caption, path))
    else:
        print(f"[diagram] {caption}: {path}")
    return path


def updates(program) -> list[tuple[str, object]]:
    """Every assignment of a program with the equality pattern it belongs to: a list of
    ``(pattern, Assign)``, ``pattern`` taken from the innermost enclosing block comment
    ``pattern …: N rearrangements`` that ``define-assignments`` writes (``""`` outside one)."""
    from systec_ref.ir.nodes import Assign, Block, If, Loop, Permute, SparseLevel

    out: list[tuple[str, object]] = []

    def walk(s, face: str) -> None:
        if isinstance(s, Block):
            if s.comment.startswith("pattern "):
                face = s.comment.removeprefix("pattern ").split(":")[0]
            for x in s.body:
                walk(x, face)
        elif isinstance(s, (Loop, Permute, SparseLevel)):
            walk(s.body, face)
        elif isinstance(s, If):
            walk(s.then, face)
            if s.orelse is not None:
                walk(s.orelse, face)
        elif isinstance(s, Assign):
            out.append((face, s))

    walk(program.body, "")
    return out


# -- counts and checks --------------------------------------------------------------------


def table(headers: list[str], rows: list[list[object]]) -> str:
    """A plain-text table (numbers right-aligned), the same on every terminal.

    A cell made with :func:`live` is as wide as its placeholder, so the recorded table is
    aligned the same way whatever the machine's figures are."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]

    def width(x: str) -> int:
        return len(mask_live(x)) if LIVE_START in x else len(x)

    widths = [max(width(r[c]) for r in cells) for c in range(len(headers))]
    numeric = [all(isinstance(r[c], int) for r in rows) for c in range(len(headers))]

    def pad(x: str, w: int, right: bool) -> str:
        fill = " " * max(0, w - width(x))
        return fill + x if right else x + fill

    def fmt(r: list[str]) -> str:
        return "  ".join(pad(x, w, num) for x, w, num in zip(r, widths, numeric)).rstrip()

    lines = [fmt(cells[0]), "  ".join("-" * w for w in widths)]
    lines += [fmt(r) for r in cells[1:]]
    return "\n".join(lines)


def _reads(d: dict[str, int]) -> str:
    return " ".join(f"{k}:{v}" for k, v in sorted(d.items()))


def counts_row(c) -> list[object]:
    return [c.mults, c.adds, c.work, c.iterations, _reads(c.reads), _reads(c.distinct)]


COUNT_HEADERS = ["mults", "adds", "work", "iterations", "reads", "distinct elements read"]


def counts_table(report, stages: list[str] | None = None) -> None:
    """Print the interpreter's counts for the stages of a :func:`systec_ref.check` report
    (all of them, or those named), with whether each agrees with the definition."""
    rows = []
    for n, s in enumerate(report.stages):
        if stages is None or s.name in stages:
            ok = "yes" if s.vs_previous.ok and s.vs_definition.ok else "NO"
            rows.append([n, s.name, ok, *counts_row(s.counts)])
    print(table(["#", "stage", "agrees", *COUNT_HEADERS], rows))


def verify(k, inputs: dict, label: str = "") -> object:
    """Run every stage of ``k`` in the interpreter on ``inputs``; raise unless each agrees
    with the stage before it and with the kernel's definition.  Returns the report."""
    import systec_ref

    report = systec_ref.check(k, inputs)
    bad = [s.name for s in report.stages if not (s.vs_previous.ok and s.vs_definition.ok)]
    what = label or k.name
    if bad:
        raise AssertionError(f"{what}: stages that disagree: {', '.join(bad)}")
    print(f"{what}: all {len(report.stages)} stages agree with the previous stage and with the definition")
    return report


def stage_counts(report, stage: str):
    """The counts of one stage of a check report."""
    for s in report.stages:
        if s.name == stage:
            return s.counts
    raise KeyError(stage)
