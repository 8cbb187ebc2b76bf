"""Run kernels compiled with AddressSanitizer and UndefinedBehaviorSanitizer on edge-case inputs.

Python is not instrumented, so this must run in a process started with the ASan runtime
preloaded (``tests/test_sanitize.py`` does it)::

    SYSTEC_REF_SANITIZE=1 LD_PRELOAD=$(cc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 \\
        python tests/sanitize_driver.py examples/*.ein examples/sparse/*.ein

For every ``.ein`` file given (and with ``--extra``, a few kernels that exercise code the
examples do not), its dense and its sparse variant, and for each the optimized C
(``Kernel.c_function()``) and the baseline (``Kernel.c_function("baseline")``): run on sizes
0, 1, 2 and 3 (and a zero-sized rank), with tensors that are empty (density 0: all fill),
all-diagonal, half full and full, sparse inputs passed both as arrays and as ``SparseTensor``,
dense symmetric inputs both as arrays and packed (``PackedTensor``);
compare with ``Kernel.definition``.  ``--faces compact`` compiles with compact faces.  A memory
error or undefined behaviour aborts the process with the sanitizer's report (exit status 1); a
wrong result is reported and exits with status 3.  One line per kernel on stdout.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import helpers  # noqa: E402

import systec_ref  # noqa: E402
from systec_ref.emit import build  # noqa: E402
from systec_ref.storage import PackedTensor, SparseTensor  # noqa: E402
from systec_ref.tensors import symmetrize_index  # noqa: E402

#: kernels the examples do not cover: float32, a transposed copy (a temporary the C allocates and
#: frees), a sparse input whose other operands do not share its dimension, partial symmetry, a union of three,
#: sparse outputs
EXTRA = {
    "single": ("kernel single\nin A[n, n] symmetric float32\nin x[n] float32\nout y[n] float32\n"
               "y[i] += A[i, j] * x[j]\n"),
    "transposed": "kernel transposed\nin A[n, n]\nin x[n]\nout y[n]\norder j i\ny[i] += A[i, j] * x[j]\n",
    "rowsum": "kernel rowsum\nin A[n, m] sparse\nout y[n]\ny[i] += A[i, j] * 2\n",
    "partial": ("kernel partial\nin A[n, n, m] symmetric(0,1) sparse\nin x[m]\nout y[n]\n"
                "y[i] += A[i, j, k] * x[k]\n"),
    # a merge of three sparse inputs by union (an exhausted operand's coordinate reads as INT64_MAX)
    "union3": ("kernel union3\nin A[n, m] sparse\nin B[n, m] sparse\nin D[n, m] sparse\nout C[n, m]\n"
               "C[i, j] += A[i, j] + 2 * B[i, j] - D[i, j]\n"),
    # sparse outputs: an order-3 symmetric one (the buffer, radix-sorted), a min-plus one (rows finished
    # from the buffer) and a product with no output symmetry (the loops run twice)
    "spout3": "kernel spout3\nin A[n, m]\nout C[n, n, n] sparse\nC[i, j, l] += A[i, k] * A[j, k] * A[l, k]\n",
    "spoutmin": "kernel spoutmin\nin A[n, n] symmetric\nout D[n, n] sparse fill inf\nD[i, j] min= A[i, k] + A[k, j]\n",
    "spoutgemm": "kernel spoutgemm\nin A[n, m]\nin B[m, n]\nout C[n, n] sparse\nC[i, j] += A[i, k] * B[k, j]\n",
}

SIZES = [(0, 0), (0, 2), (1, 1), (1, 2), (2, 0), (2, 2), (3, 2)]
PATTERNS = ("empty", "diagonal", "half", "full")


def variants(text: str) -> list[str]:
    out = []
    for v in (helpers.dense_variant(text), helpers.sparse_variant(text)):
        if v not in out:
            out.append(v)
    return out


def edge_inputs(k: systec_ref.Kernel, n: int, r: int, pattern: str, seed: int) -> dict[str, object]:
    """Inputs for sizes n (and r for dims named r or m) where every input of order >= 2 follows
    ``pattern``: nothing but its fill, only points with all subscripts equal, half or all of its
    (canonical) entries."""
    sizes = helpers.sizes_for(k, n, r)
    density = {"empty": 0.0, "half": 0.5}.get(pattern, 1.0)
    full = k.random_inputs(sizes, seed=seed)
    thinned = k.random_inputs(sizes, seed=seed, density=density)  # sparse inputs: fill where not kept
    out: dict[str, object] = {}
    for d in k.ast.inputs:
        a = full[d.name]
        if d.order >= 2:
            # what random_inputs puts where nothing is stored (an int64 tensor cannot hold inf)
            fill = d.fill if d.format == "sparse" and (d.dtype != "int64" or np.isfinite(d.fill)) else 0
            if d.format == "sparse":
                a = thinned[d.name]
            elif pattern != "full":
                a = np.where(np.random.default_rng(seed).random(a.shape) < density, a, 0).astype(a.dtype)
            if pattern == "diagonal":
                idx = np.indices(a.shape)
                a = np.where((idx == idx[0]).all(axis=0), a, fill).astype(a.dtype)
            if d.symmetry and a.size:
                a = a[symmetrize_index(a.shape, d.symmetry)]
            if d.format == "sparse" and seed % 2:  # every other case: compressed, never densified
                a = SparseTensor.from_dense(a, d.symmetry, d.fill, name=d.name)
            elif d.symmetry and seed % 2:  # every other case: a dense symmetric input packed
                a = PackedTensor.from_dense(a, d.symmetry, name=d.name)
        out[d.name] = a
    return out


def run_kernel(label: str, text: str, faces: str = "split") -> int:
    # tiles of 2 at sizes up to 3: diagonal and off-diagonal tiles, partial ones, BLAS calls on each
    k = systec_ref.compile(text, label, faces=faces, tile=2)
    dtype = k.ast.output.dtype
    t0 = time.perf_counter()
    fns = {"optimized": k.c_function(), "baseline": k.c_function("baseline")}
    for fn in fns.values():
        assert "-fsanitize=address,undefined" in build.toolchain().cflags, "not compiled with sanitizers"
        assert fn.program.name == k.name
    calls = 0
    failures = 0
    for seed, (n, r) in enumerate(SIZES):
        for pattern in PATTERNS:
            s = seed * len(PATTERNS) + PATTERNS.index(pattern)
            inputs = edge_inputs(k, n, r, pattern, s)
            want = k.definition(inputs).value
            for stage, fn in fns.items():
                arrays, dims = k.bind(inputs)
                packed = tuple(sorted(n for n, a in arrays.items() if isinstance(a, PackedTensor)))
                if packed:  # compiled for those inputs packed (read through the packed layout's offsets)
                    fn = k.with_packed(packed).c_function(None if stage == "optimized" else "baseline")
                got = k.call(fn, arrays, dims)
                calls += 1
                verdict = systec_ref.agree(got, want, dtype)
                if not verdict.ok:
                    failures += 1
                    print(f"WRONG {label} {stage} n={n} r={r} {pattern}: {verdict}", flush=True)
    print(f"ok {label}: {calls} sanitized calls in {time.perf_counter() - t0:.1f}s"
          if not failures else f"FAILED {label}: {failures} of {calls} calls wrong", flush=True)
    return failures


def main(argv: list[str]) -> int:
    if not build.sanitizing():
        print("set SYSTEC_REF_SANITIZE=1 (and preload the ASan runtime, see the module docstring)", file=sys.stderr)
        return 2
    faces = "split"
    sources: list[tuple[str, str]] = []
    args = iter(argv)
    for arg in args:
        if arg == "--extra":
            sources += [(f"extra/{name}", text) for name, text in EXTRA.items()]
        elif arg == "--faces":
            faces = next(args)
        else:
            sources.append((f"{Path(arg).parent.name}/{Path(arg).stem}", Path(arg).read_text()))
    failures = 0
    seen: set[str] = set()
    for label, text in sources:
        for n, v in enumerate(variants(text)):
            same = "\n".join(line for line in v.splitlines() if not line.lstrip().startswith("#"))
            if same not in seen:  # e.g. examples/sparse/X.ein is the sparse variant of examples/X.ein
                seen.add(same)
                failures += run_kernel(f"{label}:{'dense' if n == 0 else 'sparse'}"
                                       f"{'' if faces == 'split' else ':' + faces}", v, faces)
    return 3 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
