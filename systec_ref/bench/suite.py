"""The benchmark command: the dense and the sparse suites, one table per case, ``results.json``."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from ..errors import SystecError
from . import dense, sparse
from .machine import describe, stream_bandwidth

SUITES = ("dense", "sparse")


def _limit_threads():
    """One thread for every BLAS and OpenMP runtime of the process.  threadpoolctl limits the libraries loaded
    when it is entered, so scipy's own OpenBLAS (behind ``scipy.linalg.blas`` and the ``cython_blas`` routines
    our BLAS calls use, a different library from numpy's) is loaded first: imported lazily by a case, it ran
    on every core."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency
        return contextlib.nullcontext()
    import scipy.linalg.blas  # noqa: F401 - loads scipy's OpenBLAS before the limit
    import scipy.linalg.cython_blas  # noqa: F401
    return threadpool_limits(1)


@contextlib.contextmanager
def _progress(console, total: int):
    """A progress bar over the cases (on a terminal; plain runs print the tables only)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if not console.is_terminal:
        yield lambda label: None
        return
    with Progress(TextColumn("[bold]bench[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("", total=total)
        started = [False]

        def advance(label: str | None) -> None:
            if started[0]:
                bar.advance(task)
            started[0] = True
            bar.update(task, description=label or "done")
        yield advance


def run(kernels: list[str] | None, quick: bool, repeats: int, out_dir: Path, console,
        suites: tuple[str, ...] = SUITES) -> dict:
    from rich.table import Table

    chosen = [(dense, c) for c in dense.select(kernels) if "dense" in suites]
    chosen += [(sparse, c) for c in sparse.select(kernels) if c.suite in suites]
    known = {c.kernel for c in dense.CASES} | {c.name for c in sparse.CASES}
    known |= {n.split("/")[0] for n in known}
    unknown = sorted(set(kernels or ()) - known)
    if unknown:
        have = ", ".join(sorted({n.split("/")[0] for n in known}))
        raise SystecError(f"no benchmark named {', '.join(unknown)} (kernels: {have}; or kernel/input, e.g. "
                          f"ssymv/poisson2d)")
    results = []
    with _limit_threads(), _progress(console, len(chosen)) as advance:
        # once, single-threaded like the kernels, before any case fills memory (fewer rounds at quick sizes)
        stream = stream_bandwidth(repeats=3 if quick else 7)
        console.print(f"stream bandwidth (one thread): copy {stream['copy GB/s']:.1f} GB/s, add "
                      f"{stream['add GB/s']:.1f} GB/s", markup=False)
        for module, case in chosen:
            label = case.kernel if module is dense else case.name
            advance(label)
            r = module.run_case(case, quick, repeats)
            r.setdefault("suite", "dense" if module is dense else case.suite)
            with_bandwidth(r, stream["reference GB/s"])
            results.append(r)
            console.print(_table(r, repeats, Table))
            for line in _extra_lines(r):
                console.print(line, markup=False)
        advance(None)
        machine = describe()  # inside the limit: records the thread counts the timings ran with
        machine["stream bandwidth"] = stream
    doc = {"machine": machine, "quick": quick, "repeats": repeats, "cases": results}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    console.print(f"wrote {out_dir / 'results.json'}")
    from .plot import plot

    png = plot(doc, out_dir / "speedup.png")
    console.print(f"wrote {png}" if png else "no plot: matplotlib is not installed (pip install -e '.[bench]')")
    return doc


def with_bandwidth(r: dict, stream_gbps: float) -> None:
    """Add, to each implementation whose bytes moved are known (SpMV-class cases), the rate its
    median call moves them at and its fraction of the machine's stream bandwidth."""
    for v in r["results"].values():
        if "bytes_moved" in v:
            v["GB_per_s"] = v["bytes_moved"] / v["median_s"] / 1e9
            v["fraction_of_stream"] = v["GB_per_s"] / stream_gbps


def _table(r: dict, repeats: int, Table):
    what = r.get("sizes") or r.get("input")
    t = Table(title=f"{r['suite']} {r['kernel']} {what}: median of {repeats}, single thread", title_justify="left")
    traffic = any("bytes_moved" in v for v in r["results"].values())
    cols = ["implementation", "median ms", "min ms", "max ms", "time / symmetric", "agrees"]
    cols += ["bytes / stored entry", "GB/s", "of stream"] if traffic else []
    for col in cols:
        t.add_column(col, justify="left" if col == "implementation" else "right")
    for name, v in r["results"].items():
        row = [name, f"{v['median_s'] * 1e3:.3f}", f"{v['min_s'] * 1e3:.3f}", f"{v['max_s'] * 1e3:.3f}",
               f"{v['ratio_to_symmetric']:.2f}x", "yes" if v["agrees"] else "NO"]
        if traffic:
            row += _traffic_cells(v)
        t.add_row(*row)
    return t


def _traffic_cells(v: dict) -> list[str]:
    if "bytes_moved" not in v:
        return ["", "", ""]
    share = f"{v['fraction_of_stream']:.0%}" if "fraction_of_stream" in v else ""
    gbps = f"{v['GB_per_s']:.1f}" if "GB_per_s" in v else ""
    return [f"{v['bytes_per_stored_entry']:.1f}", gbps, share]


def _extra_lines(r: dict) -> list[str]:
    out = []
    mem = r.get("memory") or {}
    if "canonical bytes" in mem:
        line = (f"  memory: canonical {mem['canonical bytes'] / 2**20:.1f} MiB ({mem['stored canonical']} entries) vs "
                f"full storage {mem['full storage bytes'] / 2**20:.1f} MiB ({mem['stored full']} entries)")
        if "scipy CSR bytes" in mem:
            line += f" vs scipy CSR {mem['scipy CSR bytes'] / 2**20:.1f} MiB"
        out.append(line)
    held = {k: v for k, v in mem.items() if ": " in k}
    if held:
        out.append("  held: " + ", ".join(f"{k} {v / 2**20:.2f} MiB" for k, v in held.items()))
    for name, why in sorted((r.get("unavailable") or {}).items()):
        out.append(f"  not timed: {name} ({why})")
    if r.get("setup_s"):
        out.append("  setup (not timed above): " + ", ".join(f"{k} {v:.2f} s" for k, v in r["setup_s"].items()))
    return out


#: the row of the symmetric kernel (its variants: the same with ", <what>" before the parenthesis)
SYMMETRIC = "systec_ref (symmetric)"

#: below this a call is dominated by the ctypes call, not by the kernel (~2 µs here)
TIMEABLE_S = 1e-4


def summary(doc: dict) -> str:
    """One line per case and variant of the symmetric kernel (packed, sparse output) large enough to time:
    speedup over symmetry off and over the fastest other baseline (library or compiler) run on the same
    input."""
    lines = ["| case | input | symmetric ms | vs symmetry off | fastest other baseline | vs it |",
             "|---|---|---|---|---|---|"]
    for c in doc["cases"]:
        r = c["results"]
        others = {k: v for k, v in r.items() if not k.startswith("systec_ref")}
        best = min(others.items(), key=lambda kv: kv[1]["median_s"]) if others else None
        what = c.get("sizes") or c.get("input") or {}
        what = ", ".join(f"{k}={v}" for k, v in sorted(what.items()) if k != "matrix")
        # the symmetric kernel, then each variant of it ("systec_ref (symmetric, packed)": its input held
        # packed; "..., sparse output"), against its own symmetry-off run where there is one
        for key in sorted(k for k in r if k == SYMMETRIC or k.startswith(SYMMETRIC[:-1] + ", ")):
            t = r[key]["median_s"]
            if t < TIMEABLE_S:
                continue
            variant = key[len(SYMMETRIC) + 1:-1] if key != SYMMETRIC else ""
            own = f"systec_ref (symmetry off, {variant})"
            off = r[own if own in r else "systec_ref (symmetry off)"]["median_s"]
            vs_best = f"{best[1]['median_s'] / t:.2f}x" if best else "—"
            lines.append(f"| {c.get('suite', 'dense')} {c['kernel']}{f' ({variant})' if variant else ''} | {what} "
                         f"| {t * 1e3:.3g} | {off / t:.2f}x | {best[0] if best else '—'} | {vs_best} |")
    return "\n".join(lines)


def markdown(doc: dict) -> str:
    """The results as Markdown tables (one per suite), for the README and closing notes."""
    quick = " (quick sizes)" if doc["quick"] else ""
    summary_lines = ["**Summary** (cases of at least 0.1 ms; `vs`: time of the other / time of the symmetric kernel)",
                     "", summary(doc), ""]

    def machine(m: dict, repeats: int, label: str = "") -> str:
        return (f"Machine{label}: {m.get('cpu')}, {m.get('cores')} cores; {m.get('platform')}; "
                f"Python {m.get('python')}, numpy {m.get('numpy')}, scipy {m.get('scipy')}; "
                f"compiler: {m.get('compiler')}. "
                f"Medians of {repeats} interleaved rounds, single thread{quick}.")
    # suites merged from runs on different machines (results.json's "runs": each suite's machine) say so
    runs = doc.get("runs") or {}
    keys = {s: tuple(str(r["machine"].get(k)) for k in ("cpu", "platform", "python", "compiler"))
            for s, r in runs.items()}
    if len(set(keys.values())) > 1:
        lines = [machine(runs[s]["machine"], runs[s].get("repeats", doc["repeats"]), f" ({s} suite)")
                 for s in SUITES if s in runs]
        lines = [x for line in lines for x in (line, "")] + summary_lines
    else:
        lines = [machine(doc["machine"], doc["repeats"]), "", *summary_lines]
    for suite in SUITES:
        cases = [c for c in doc["cases"] if c.get("suite", "dense") == suite]
        if not cases:
            continue
        lines += [f"**{suite}**", "",
                  "| case | input | symmetric ms | symmetry off ms | speedup | other baselines: ms (time / symmetric) "
                  "| memory canonical / full |",
                  "|---|---|---|---|---|---|---|"]
        for c in cases:
            r = c["results"]
            sym, off = r["systec_ref (symmetric)"], r["systec_ref (symmetry off)"]
            libs = "; ".join(f"{k} {v['median_s'] * 1e3:.3g} ({v['ratio_to_symmetric']:.2f}x)"
                             for k, v in r.items() if k not in ("systec_ref (symmetric)", "systec_ref (symmetry off)"))
            what = c.get("sizes") or c.get("input") or {}
            what = ", ".join(f"{k}={v}" for k, v in sorted(what.items()))
            mem = c.get("memory") or {}
            mem_text = (f"{mem['canonical bytes'] / 2**20:.1f} / {mem['full storage bytes'] / 2**20:.1f} MiB"
                        if "canonical bytes" in mem and "full storage bytes" in mem else "")
            bad = "" if all(v["agrees"] for v in r.values()) else " **DISAGREES**"
            lines.append(f"| {c['kernel']}{bad} | {what} | {sym['median_s'] * 1e3:.3g} | {off['median_s'] * 1e3:.3g} "
                         f"| {off['ratio_to_symmetric']:.2f}x | {libs} | {mem_text} |")
        lines.append("")
    return "\n".join(lines + traffic_table(doc))


def traffic_table(doc: dict) -> list[str]:
    """SpMV-class cases: each implementation's compulsory bytes per stored entry of its own layout,
    the rate its median call moves them at and the fraction of the measured stream bandwidth."""
    stream = (doc["machine"].get("stream bandwidth") or {}).get("reference GB/s")
    rows = [(c, name, v) for c in doc["cases"] if c["results"]["systec_ref (symmetric)"]["median_s"] >= TIMEABLE_S
            for name, v in c["results"].items() if "bytes_moved" in v]
    if not rows:
        return []
    head = (f"**memory traffic** (SpMV-class cases of at least 0.1 ms; stream bandwidth {stream:.1f} GB/s, one "
            f"thread; bytes: every stored array and vector read once, the output written once)" if stream else
            "**memory traffic**")
    out = [head, "", "| case | implementation | ms | MB moved | bytes / stored entry | GB/s | of stream |",
           "|---|---|---|---|---|---|---|"]
    for c, name, v in rows:
        gbps = f"{v['GB_per_s']:.1f}" if "GB_per_s" in v else ""
        share = f"{v['fraction_of_stream']:.0%}" if "fraction_of_stream" in v else ""
        out.append(f"| {c['kernel']} | {name} | {v['median_s'] * 1e3:.3g} | {v['bytes_moved'] / 1e6:.1f} "
                   f"| {v['bytes_per_stored_entry']:.1f} | {gbps} | {share} |")
    return [*out, ""]
