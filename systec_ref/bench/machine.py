"""What a benchmark ran on: recorded next to every result."""

from __future__ import annotations

import os
import platform


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def describe() -> dict[str, object]:
    import numpy
    import scipy

    from ..emit.build import toolchain

    info: dict[str, object] = {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "(unset)"),
    }
    try:
        tc = toolchain()
        info["compiler"] = tc.describe()
        info["cflags"] = " ".join(tc.cflags)
    except Exception as e:  # no compiler: the benchmark itself will say so
        info["compiler"] = f"unavailable: {e}"
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [{k: p.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
                        for p in threadpool_info()]
    except ImportError:
        info["blas"] = "threadpoolctl not installed"
    info["libraries"] = library_versions()
    info["threads"] = {v: os.environ.get(v, "(unset)") for v in
                       ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}
    info["threads"]["timed with"] = "threadpoolctl.threadpool_limits(1); our kernels are single-threaded C"
    return info


def library_versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for dist in ("numpy", "scipy", "networkx", "pyamg", "scikit-learn", "pyscf", "opt_einsum", "sparse", "tensora",
                 "numba", "matplotlib", "rich"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


#: elements per array of the bandwidth measurement: 64 MiB of float64 each, twice a 32 MiB
#: last-level cache, so every pass streams from memory
STREAM_ELEMENTS = 1 << 23


def stream_bandwidth(n: int = STREAM_ELEMENTS, repeats: int = 5) -> dict[str, float]:
    """The single-thread memory bandwidth, in GB/s (1e9 bytes), measured once per bench run as the
    STREAM benchmark counts it: numpy copy ``a[:] = b`` moves 16 bytes per element (one read, one
    write) and add ``a = b + c`` 24 (write-allocate traffic is not counted, as in STREAM).

    ``reference`` is the larger of the two: a kernel's fraction of it is then a lower bound of how
    close it comes to what this machine streams (median of ``repeats`` interleaved rounds)."""
    import numpy as np

    from .timing import measure

    a, b, c = np.zeros(n), np.full(n, 1.5), np.full(n, 2.5)  # filled: every page is mapped before timing
    t = measure({"copy": lambda: np.copyto(a, b), "add": lambda: np.add(b, c, out=a)}, repeats=repeats)
    copy, add = 16 * n / t["copy"].median / 1e9, 24 * n / t["add"].median / 1e9
    return {"copy GB/s": copy, "add GB/s": add, "reference GB/s": max(copy, add), "array MiB": 8 * n / 2**20}
