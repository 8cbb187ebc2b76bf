"""``python -m systec_ref explain``: every pass, before and after, with the evidence.

For each stage shown: a banner naming the pass and what it did, the loop nest
after it with the lines it changed marked (``+`` added, ``-`` removed), and —
with ``--verify`` (the default) — the interpreter's verdict and operation
counts for that stage on random inputs.  Then a summary table of all stages
and the generated C.  ``--out-dir`` also writes every stage as text, Graphviz
and SVG, a before/after sheet per pass, the C file and an ``index.html``.
"""

from __future__ import annotations

import html
import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from ..api import Kernel
from ..check import CheckReport, check_stages
from ..errors import InternalError, SystecError
from ..ir.graph import to_graph
from ..ir.printer import print_program
from ..rewrite import pipeline
from .diff import line_diff, tree_diff
from .draw import DOT_HINT, have_dot, pass_dot, render, stage_dot

FORMATS = ("text", "dot", "svg", "png", "json")


@dataclass(frozen=True)
class ExplainOptions:
    sizes: dict[str, int]  # of the dimensions to verify at; the others: Kernel.default_sizes
    seed: int = 0
    verify: bool = True
    show: str = "changed"  # 'changed' | 'all' | 'before:PASS' | 'after:PASS'
    fmt: str = "text"
    out_dir: Path | None = None
    command: str = ""


def pass_names(naive: bool = False) -> list[str]:
    return ["lower"] + [p.name for p in (pipeline.NON_SYMMETRY if naive else pipeline.PASSES)]


def _selected(k: Kernel, show: str) -> list[int]:
    names = [s.name for s in k.stages]
    if show == "all":
        return list(range(len(names)))
    if show == "changed":
        return [n for n, s in enumerate(k.stages) if s.changed]
    kind, _, name = show.partition(":")
    if name not in names:
        raise SystecError(f"no pass named '{name}' in this pipeline (passes: {', '.join(names)})")
    n = names.index(name)
    return [max(0, n - 1)] if kind == "before" else [n]


def _counts_text(report: CheckReport | None, n: int) -> str:
    if report is None:
        return "not verified (--no-verify)"
    s = report.stages[n]
    c = s.counts
    verdict = "agrees with the previous stage and the definition" if s.vs_previous.ok and s.vs_definition.ok \
        else f"DISAGREES: previous {s.vs_previous.detail or 'ok'}; definition {s.vs_definition.detail or 'ok'}"
    reads = " ".join(f"{k}:{v}" for k, v in sorted(c.reads.items()))
    missed = f"; {len(c.never_ran)} of {len(c.runs)} assignments never ran" if c.never_ran else ""
    return f"{verdict}; mults {c.mults}, adds {c.adds}, work {c.work}, reads {reads}{missed}"


def explain(k: Kernel, opts: ExplainOptions, console: Console) -> int:
    report = check_stages(k, k.random_inputs(k.default_sizes(opts.sizes), seed=opts.seed)) if opts.verify else None
    chosen = _selected(k, opts.show)
    texts = [print_program(s.program) for s in k.stages]
    if opts.fmt == "json":
        sys.stdout.write(json.dumps(_as_json(k, report), indent=2, sort_keys=True) + "\n")
    elif opts.fmt == "dot" and opts.out_dir is None:
        for n in chosen:
            sys.stdout.write(stage_dot(to_graph(k.stages[n].program), f"{n:02d} {k.stages[n].name}", opts.command))
    else:
        _terminal(k, report, chosen, texts, console)
    if opts.out_dir is not None:
        _write_dir(k, report, texts, opts, console)
    elif opts.fmt in ("svg", "png"):
        raise SystecError(f"--format {opts.fmt} writes files: give --out-dir DIR")
    return 0 if report is None or report.ok else 1


def _terminal(k: Kernel, report: CheckReport | None, chosen: list[int], texts: list[str], console: Console) -> None:
    console.print(f"kernel {k.name} from {k.ast.path}: {len(k.stages)} stages, showing {len(chosen)}",
                  markup=False)
    for n in chosen:
        st = k.stages[n]
        console.rule(Text(f"{n:02d} {st.name}: {st.note}", style="bold"))
        prev = texts[n - 1] if n > 0 else ""
        for mark, line in (line_diff(prev, texts[n]) if n > 0 else [(" ", x) for x in texts[n].splitlines()]):
            style = {"+": "green", "-": "red"}.get(mark, "")
            console.print(Text(f"{mark} {line}", style=style))
        console.print(Text(f"   {_counts_text(report, n)}", style="cyan"))
    t = Table(title=f"{k.name}: all stages", title_justify="left")
    for col in ("#", "stage", "changed", "agrees", "mults", "work", "reads"):
        t.add_column(col, justify="right" if col in ("#", "mults", "work") else "left")
    for n, st in enumerate(k.stages):
        if report is not None:
            s = report.stages[n]
            ok = "yes" if s.vs_previous.ok and s.vs_definition.ok else "NO"
            c = s.counts
            t.add_row(str(n), st.name, "yes" if st.changed else "no", ok, str(c.mults), str(c.work),
                      " ".join(f"{a}:{b}" for a, b in sorted(c.reads.items())))
        else:
            t.add_row(str(n), st.name, "yes" if st.changed else "no", "-", "", "", "")
    console.print(t)
    for note in report.never_ran_notes() if report is not None else ():
        console.print(note, markup=False)
    console.rule(Text("generated C (final stage)", style="bold"))
    source = k.c_source()
    if console.is_terminal and not console.no_color:
        console.print(Syntax(source, "c", theme="ansi_dark", background_color="default"))
    else:
        console.print(source, markup=False, highlight=False, end="")


def _as_json(k: Kernel, report: CheckReport | None) -> dict:
    out = {"kernel": k.name, "stages": []}
    for n, st in enumerate(k.stages):
        d = {"index": n, "name": st.name, "changed": st.changed, "note": st.note,
             "program": print_program(st.program)}
        if report is not None:
            s = report.stages[n]
            d["agrees"] = bool(s.vs_previous.ok and s.vs_definition.ok)
            d["counts"] = s.counts.summary()
            d["never_ran"] = list(s.unexercised)  # positions of assignments that never ran (Counts.never_ran)
        out["stages"].append(d)
    return out


def _write_dir(k: Kernel, report: CheckReport | None, texts: list[str], opts: ExplainOptions,
               console: Console) -> None:
    d = opts.out_dir
    if d is None:
        raise InternalError("explain: asked to write files without an output directory")
    d.mkdir(parents=True, exist_ok=True)
    head = f"# {opts.command}\n" if opts.command else ""
    dot_ok = have_dot()
    img_fmt = "png" if opts.fmt == "png" else "svg"
    graphs = [to_graph(s.program) for s in k.stages]
    entries = []
    for n, st in enumerate(k.stages):
        stem = f"{n:02d}-{st.name}"
        (d / f"{stem}.txt").write_text(head + f"# stage {n}: {st.name}: {st.note}\n" + texts[n])
        dot = stage_dot(graphs[n], f"{n:02d} {st.name}: {st.note}", opts.command)
        (d / f"{stem}.dot").write_text(dot)
        sheet = None
        if n > 0 and st.changed:
            sb, sa = tree_diff(graphs[n - 1], graphs[n])
            sdot = pass_dot(graphs[n - 1], graphs[n], sb, sa, f"pass {st.name}: {st.note}",
                            f"before ({k.stages[n - 1].name})", f"after ({st.name})", opts.command)
            sheet = f"{stem}.pass"
            (d / f"{sheet}.dot").write_text(sdot)
        if dot_ok:
            render(dot, d / f"{stem}.{img_fmt}", img_fmt, opts.command)
            if sheet:
                render((d / f"{sheet}.dot").read_text(), d / f"{sheet}.{img_fmt}", img_fmt, opts.command)
        entries.append((n, st, stem, sheet))
    c_name = f"{k.name}.c"
    source = k.c_source()
    (d / c_name).write_text(f"/* {opts.command} */\n" + source if opts.command else source)
    (d / "index.html").write_text(_index_html(k, report, texts, entries, img_fmt if dot_ok else None, c_name,
                                              opts.command))
    if opts.fmt == "json":
        doc = {"command": opts.command, **_as_json(k, report)}
        (d / "stages.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    print(f"wrote {d}/ ({len(entries)} stages, index.html)", file=sys.stderr)
    if not dot_ok:
        print(DOT_HINT, file=sys.stderr)


def _index_html(k: Kernel, report: CheckReport | None, texts: list[str], entries, img: str | None, c_name: str,
                command: str) -> str:
    e = html.escape
    rows = []
    for n, st, _stem, _ in entries:
        if report is not None:
            s = report.stages[n]
            ok = "yes" if s.vs_previous.ok and s.vs_definition.ok else "NO"
            c = s.counts
            counts = f"{c.mults}</td><td>{c.work}</td><td>{e(' '.join(f'{a}:{b}' for a, b in sorted(c.reads.items())))}"
        else:
            ok, counts = "-", "</td><td></td><td>"
        rows.append(f'<tr><td>{n}</td><td><a href="#s{n}">{e(st.name)}</a></td><td>{"yes" if st.changed else "no"}'
                    f"</td><td>{ok}</td><td>{counts}</td><td>{e(st.note)}</td></tr>")
    sections = []
    for n, st, stem, sheet in entries:
        pics = ""
        if img:
            pics += f'<figure><img src="{stem}.{img}" alt="loop nest after {e(st.name)}"><figcaption>' \
                    f"loop nest after {e(st.name)}</figcaption></figure>"
            if sheet:
                pics += f'<figure><img src="{sheet}.{img}" alt="before/after {e(st.name)}"><figcaption>' \
                        f"before / after: green added, red removed, gold changed</figcaption></figure>"
        else:
            pics = f'<p>Diagrams: <a href="{stem}.dot">{stem}.dot</a> (Graphviz not installed)</p>'
        verdict = e(_counts_text(report, n))
        sections.append(f'<section id="s{n}"><h2>{n:02d} {e(st.name)}</h2><p class="note">{e(st.note)}</p>'
                        f'<p class="verdict">{verdict}</p>{pics}<pre>{e(texts[n])}</pre></section>')
    return f"""<!DOCTYPE html>
<!-- {e(command)} -->
<html lang="en"><head><meta charset="utf-8"><title>systec_ref explain: {e(k.name)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 110em; }}
pre {{ background: #f6f6f6; padding: 1em; overflow-x: auto; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 0.2em 0.6em; }}
figure {{ margin: 1em 0; }} img {{ max-width: 100%; border: 1px solid #ddd; }}
.note {{ font-style: italic; }} .verdict {{ color: #045; }}
</style></head><body>
<h1>kernel {e(k.name)}</h1>
<p>Reproduce with: <code>{e(command)}</code></p>
<table><tr><th>#</th><th>stage</th><th>changed</th><th>agrees</th><th>mults</th><th>work</th><th>reads</th>
<th>note</th></tr>
{chr(10).join(rows)}
</table>
{chr(10).join(sections)}
<section id="c"><h2>generated C</h2><p><a href="{c_name}">{c_name}</a></p><pre>{e(k.c_source())}</pre></section>
<script>
// a self-check a headless browser (or a reader) can see: how many diagrams failed to load
window.addEventListener("load", () => {{
  const imgs = Array.from(document.images);
  const broken = imgs.filter(i => !i.complete || i.naturalWidth === 0).length;
  document.body.dataset.images = imgs.length;
  document.body.dataset.brokenImages = broken;
}});
</script>
</body></html>
"""


def reproduce_command(argv: list[str], prog: str = "python -m systec_ref") -> str:
    """The command line that wrote these files, under the name the user called the program by."""
    return f"{prog} " + shlex.join(argv)
