"""The front door's costs: per-call overhead of a prepared kernel, and an iterative loop.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/front_door.py

1. Overhead: for small inputs, the time of ``prepared()`` minus the time of the bare compiled
   function on the same packed arguments (what the kernel itself takes), and of ``einsum(...)``
   (validation, symmetry check, packing on every call).
2. A symmetric CP power iteration: 30 MTTKRP-4 steps ``C = A(1) (B ⊙ B ⊙ B)`` with B renormalized
   each step, by ``numpy.einsum(optimize=True)``, by ``systec_ref.einsum`` per step, and by a
   prepared expression (``einsum_prepare``) that only replaces B.

Single thread (BLAS pinned to one), medians of interleaved rounds in one process.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

import systec_ref


def _median_us(f, calls: int, rounds: int = 7) -> float:
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(calls):
            f()
        out.append((time.perf_counter() - t) / calls * 1e6)
    return statistics.median(out)


def overhead() -> None:
    k = systec_ref.load("ssymv") if _by_name() else systec_ref.load("examples/ssymv.ein")
    ins = k.random_inputs({"n": 8}, seed=0)
    p = k.prepare(backend="c", **ins)
    fn = k.c_function()
    arrays, dims = k.bind(ins)
    bare = fn.prepare(arrays, dims, {})
    A, x = ins["A"], ins["x"]
    rows = {"bare compiled call": lambda: bare(), "prepared()": lambda: p(),
            "einsum per call": lambda: systec_ref.einsum("ij,j->i", A, x, symmetric={0: True}),
            "numpy A @ x": lambda: A @ x}
    times = {name: [] for name in rows}
    for _ in range(7):  # interleaved rounds
        for name, f in rows.items():
            times[name].append(_median_us(f, 2000, rounds=1))
    print("SSYMV n=8 (µs per call, median of 7 interleaved rounds):")
    for name in rows:
        print(f"  {name:20s} {statistics.median(times[name]):8.2f}")
    print(f"  prepared overhead    {statistics.median(times['prepared()']) - statistics.median(times['bare compiled call']):8.2f}")


def _by_name() -> bool:
    try:
        systec_ref.load("ssymv")
        return True
    except systec_ref.SystecError:
        return False


def cp_loop(n: int = 30, r: int = 8, steps: int = 30) -> None:
    rng = np.random.default_rng(0)
    k = systec_ref.load("examples/mttkrp4.ein")
    # nonnegative: the power iteration converges (with signs it can wander, and amplify rounding)
    A = np.abs(k.random_inputs({"n": n, "r": r}, seed=1)["A"])
    B0 = rng.random((n, r))
    spec = "ijkl,jm,km,lm->im"

    def numpy_loop():
        B = B0
        for _ in range(steps):
            C = np.einsum(spec, A, B, B, B, optimize=True)
            B = C / np.linalg.norm(C, axis=0)
        return B

    def einsum_loop():
        B = B0
        for _ in range(steps):
            C = systec_ref.einsum(spec, A, B, B, B, symmetric={0: True})
            B = C / np.linalg.norm(C, axis=0)
        return B

    expr = systec_ref.einsum_prepare(spec, A, B0, B0, B0, symmetric={0: True})

    def prepared_loop():
        B = B0
        for _ in range(steps):
            C = expr(A, B, B, B)
            B = C / np.linalg.norm(C, axis=0)
        return B

    loops = {"numpy.einsum(optimize=True)": numpy_loop, "systec_ref.einsum": einsum_loop,
             "einsum_prepare": prepared_loop}
    ref = numpy_loop()
    for name, f in loops.items():
        assert np.allclose(f(), ref, rtol=1e-9), name
    times = {name: [] for name in loops}
    for _ in range(7):
        for name, f in loops.items():
            t = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - t)
    print(f"CP power iteration, MTTKRP-4, n={n}, r={r}, {steps} steps (s, median of 7 interleaved rounds):")
    base = statistics.median(times["numpy.einsum(optimize=True)"])
    for name in loops:
        m = statistics.median(times[name])
        print(f"  {name:30s} {m:8.4f}   ({base / m:5.1f}x numpy)")


if __name__ == "__main__":
    with threadpool_limits(1):
        overhead()
        cp_loop()
