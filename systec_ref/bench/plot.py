"""The benchmark picture: speedup of the symmetric kernel over the same compiler with the symmetry
passes off, per kernel and input, with the paper's geometric mean and the ideal drawn in.

Needs matplotlib (the ``[bench]`` extra); without it the benchmark still writes ``results.json``
and says how to get the plot.
"""

from __future__ import annotations

from pathlib import Path

#: SySTeC's published numbers (CGO 2025): its speedup over its own symmetry-off compiler,
#: geometric means over its inputs
PAPER_GEOMEAN = {"ssymv": 1.43, "syprd": 1.78, "ssyrk": 2.20, "ttm": 1.36, "mttkrp3": 2.83, "mttkrp4": 6.17,
                 "mttkrp5": 16.3}
#: how many times fewer entries of the symmetric input are read (k! for order k; the output
#: symmetry of SSYRK/TTM halves the work; Coulomb's two pair symmetries make 4)
IDEAL = {"ssymv": 2, "syprd": 2, "bellman": 2, "ssyrk": 2, "ttm": 2, "mttkrp3": 6, "mttkrp4": 24, "mttkrp5": 120,
         "coulomb": 4}
ORDER = ["ssymv", "syprd", "bellman", "ssyrk", "ttm", "mttkrp3", "mttkrp4", "mttkrp5", "coulomb"]


def speedups(doc: dict) -> dict[str, list[tuple[str, float]]]:
    """Per kernel: (label of the input, time symmetry off / time symmetric), in the order run."""
    out: dict[str, list[tuple[str, float]]] = {}
    for c in doc["cases"]:
        kernel, _, inp = c["kernel"].partition("/")
        label = f"{c.get('suite', 'dense')}: {inp or 'random'}"
        r = c["results"]
        out.setdefault(kernel, []).append((label, r["systec_ref (symmetry off)"]["median_s"]
                                           / r["systec_ref (symmetric)"]["median_s"]))
    return out


def plot(doc: dict, path: Path) -> Path | None:
    """Write the figure to ``path`` (PNG); None if matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib import ticker
    except ImportError:
        return None
    data = speedups(doc)
    kernels = [k for k in ORDER if k in data] + sorted(k for k in data if k not in ORDER)
    cols = 3
    rows = (len(kernels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), squeeze=False)
    for ax, k in zip(axes.flat, kernels):
        labels = [lab for lab, _ in data[k]]
        values = [v for _, v in data[k]]
        ax.bar(range(len(values)), values, color=["#4c72b0" if v >= 1 else "#c44e52" for v in values])
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(ticker.FormatStrFormatter("%gx"))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        ax.axhline(1.0, color="black", linewidth=0.8)
        if k in PAPER_GEOMEAN:
            ax.axhline(PAPER_GEOMEAN[k], color="#dd8452", linestyle="--", label=f"paper geomean {PAPER_GEOMEAN[k]}")
        if k in IDEAL:
            ax.axhline(IDEAL[k], color="#55a868", linestyle=":", label=f"ideal {IDEAL[k]}x fewer reads")
        ax.set_xticks(range(len(values)))
        ax.set_xticklabels(labels, rotation=35, ha="right", fontsize=7)
        ax.set_title(k)
        ax.set_ylabel("speedup over symmetry off")
        ax.legend(fontsize=7, loc="upper left")
    for ax in list(axes.flat)[len(kernels):]:
        ax.axis("off")
    m = doc.get("machine", {})
    fig.suptitle(f"systec_ref: symmetric vs symmetry-off C, single thread ({m.get('cpu', '?')}; medians of "
                 f"{doc.get('repeats')}{', quick sizes' if doc.get('quick') else ''})", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
