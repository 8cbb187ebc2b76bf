"""Jupyter displays: ``systec_ref.explain_view(kernel)`` shows what ``explain`` shows in a notebook.

A :class:`~systec_ref.api.Kernel` and a :class:`~systec_ref.rewrite.manager.Stage` display
themselves as HTML (their ``_repr_html_``: the source, the stages, the loop nest); this module adds
what needs the drawing code: each pass as a before/after text diff and the loop nest of a stage
as an SVG drawing (with Graphviz's ``dot`` installed; text only without it).
"""

from __future__ import annotations

import html
import subprocess

from ..api import Kernel
from ..check import CheckReport, check_stages
from ..ir.graph import to_graph
from ..ir.printer import print_program
from .diff import line_diff
from .draw import have_dot, stage_dot

_STYLE = ("<style>.sx pre{margin:0;font-size:12px;line-height:1.3}.sx .add{background:#e6ffec}"
          ".sx .del{background:#ffebe9}.sx td{vertical-align:top;padding:2px 8px}</style>")


def svg(dot_source: str) -> str | None:
    """``dot_source`` drawn as inline SVG, or None without a working ``dot``."""
    if not have_dot():
        return None
    try:
        r = subprocess.run(["dot", "-Tsvg"], input=dot_source, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return None
    if r.returncode != 0:
        return None
    text = r.stdout
    return text[text.find("<svg"):] if "<svg" in text else None


def _diff_html(before: str, after: str) -> str:
    rows = []
    for tag, line in line_diff(before, after):
        cls = {"+": "add", "-": "del"}.get(tag, "")
        rows.append(f'<span class="{cls}">{html.escape(tag or " ")} {html.escape(line)}</span>')
    return "<pre>" + "\n".join(rows) + "</pre>"


class ExplainView:
    """Every pass that changed the program (its note, a text diff), the interpreter's verdict per stage,
    and a drawing of the final loop nest; displays as HTML in Jupyter, ``str()`` gives plain text."""

    def __init__(self, kernel: Kernel, report: CheckReport | None):
        self.kernel, self.report = kernel, report

    def __str__(self) -> str:
        out = [f"kernel {self.kernel.name}"]
        for st in self.kernel.stages:
            out.append(f"-- {st.name}: {st.note}")
        if self.report is not None:
            out.append(f"every stage agrees with the definition: {self.report.ok}")
        return "\n".join(out)

    def _repr_html_(self) -> str:
        k = self.kernel
        parts = [_STYLE, '<div class="sx">', f"<h3>kernel {html.escape(k.name)}</h3>",
                 f"<pre>{html.escape(k.ast.source)}</pre>"]
        if self.report is not None:
            verdict = "every stage agrees with the definition" if self.report.ok else "A STAGE DISAGREES"
            parts.append(f"<p><b>{verdict}</b> (interpreter, sizes "
                         f"{html.escape(', '.join(f'{d}={n}' for d, n in self.report.dims.items()))})</p>")
        stages = k.stages
        parts.append(f"<details open><summary>{html.escape(stages[0].name)}: {html.escape(stages[0].note)}"
                     f"</summary><pre>{html.escape(print_program(stages[0].program, header=False))}</pre></details>")
        for prev, st in zip(stages, stages[1:]):
            if not st.changed:
                continue
            parts.append(f"<details><summary>{html.escape(st.name)}: {html.escape(st.note)}</summary>"
                         + _diff_html(print_program(prev.program, header=False),
                                      print_program(st.program, header=False)) + "</details>")
        drawing = svg(stage_dot(to_graph(k.final), f"{k.name}: final stage"))
        if drawing is not None:
            parts.append(f"<details><summary>drawing of the final loop nest</summary>{drawing}</details>")
        return "\n".join(parts + ["</div>"])


def explain_view(kernel: Kernel, sizes: dict[str, int] | None = None, verify: bool = True,
                 seed: int = 0) -> ExplainView:
    """What ``explain`` shows, for a notebook; ``verify`` runs every stage in the interpreter on random
    inputs of ``sizes`` (default: sizes that exercise every loop nest)."""
    report = None
    if verify:
        dims = kernel.default_sizes(sizes)
        report = check_stages(kernel, kernel.random_inputs(dims, seed=seed))
    return ExplainView(kernel, report)
