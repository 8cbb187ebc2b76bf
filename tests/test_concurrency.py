"""Concurrency: one compiled kernel called from several threads at once on
different inputs gives each thread its own correct result.

ctypes releases the GIL for the duration of a call, so the calls really run at the same time
(checked: Python keeps running in another thread while a kernel runs); each call gets fresh
output arrays and the C keeps no state between calls.  Every concurrent result must be bitwise
equal to the result of the same call made alone (and those agree with numpy), then and after all
threads are done.  Eight processes compiling one kernel at once: see
``test_processes_compiling_the_same_kernel`` in test_c_cache.py.
"""

from __future__ import annotations

import threading
import time

import helpers
import numpy as np
import pytest
import scipy.sparse as sp

import systec_ref
from systec_ref.storage import SparseTensor

pytestmark = pytest.mark.usefixtures("c_compiler")

THREADS = 8
ROUNDS = 6


def hammer(calls: list, expected: list[np.ndarray]) -> list[str]:
    """Run every call in ``calls`` ROUNDS times from THREADS threads at once (thread t starts at call t,
    so different threads work on different inputs of the same shape at the same moment); return the
    mismatches (at once, and once all are done)."""
    barrier = threading.Barrier(THREADS)
    errors: list[str] = []
    kept: list[tuple[str, int, np.ndarray]] = []
    lock = threading.Lock()

    def worker(t: int) -> None:
        barrier.wait()
        for r in range(ROUNDS):
            for q in range(len(calls)):
                c = (t + q + r) % len(calls)
                got = calls[c]()
                with lock:
                    kept.append((f"thread {t} round {r}", c, got))
                    if got.shape != expected[c].shape or not np.array_equal(got, expected[c]):
                        errors.append(f"thread {t} round {r}: input {c} gave a different result")

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=300)
    assert not any(th.is_alive() for th in threads), "a thread hung"
    # a result handed out must stay what it was: no later call may write into it
    errors += [f"{who}: the result for input {c} changed after it was returned"
               for who, c, got in kept if not np.array_equal(got, expected[c])]
    return errors


def test_a_call_releases_the_gil():
    """While one thread is inside a compiled kernel, another keeps running Python: the calls of
    several threads really execute at the same time.  With the GIL held during a call, the main
    thread would stop for the whole call (the longest pause between its ticks would be a call)."""
    k = systec_ref.load(helpers.example("ssyrk"))
    arrays, dims = k.bind({"A": np.ones((1200, 1200))})
    call = k.c_function().prepare(arrays, dims)
    durations: list[float] = []
    ticks: list[float] = []

    def worker() -> None:
        for _ in range(3):
            t0 = time.perf_counter()
            call()
            durations.append(time.perf_counter() - t0)

    th = threading.Thread(target=worker)
    th.start()
    while th.is_alive():
        ticks.append(time.perf_counter())
    th.join()
    longest_pause = float(np.max(np.diff(ticks))) if len(ticks) > 1 else float("inf")
    assert min(durations) > 0.02, durations  # long enough to tell a pause from scheduling noise
    assert longest_pause < min(durations) / 2, (
        f"the main thread stopped for {longest_pause * 1e3:.0f} ms while calls took "
        f"{[round(d * 1e3) for d in durations]} ms: is the GIL held during a call?")


def test_one_dense_kernel_from_many_threads():
    k = systec_ref.load(helpers.example("mttkrp3"))
    fn = k.c_function()
    inputs = [k.random_inputs({"n": 64, "r": 16}, seed=s) for s in range(THREADS)]
    bound = [k.bind(x) for x in inputs]
    calls = [lambda a=a, d=d: fn(a, d)["C"] for a, d in bound]
    calls += [lambda x=x: k.run(backend="c", **x) for x in inputs[:3]]  # through the API, too
    expected = [c().copy() for c in calls]  # alone, one after the other
    for x, want in zip(inputs, expected):
        ref = np.einsum("ikl,lj,kj->ij", x["A"], x["B"], x["B"])
        assert systec_ref.agree(want, ref, "float64").ok
    errors = hammer(calls, expected)
    assert not errors, errors[:10]


def test_one_sparse_kernel_from_many_threads():
    """Sparse ssymv, each thread on its own SparseTensor (and the baseline's full storage)."""
    k = systec_ref.load(helpers.EXAMPLES_DIR / "sparse" / "ssymv.ein")
    fns = {"optimized": k.c_function(), "baseline": k.c_function("baseline")}
    calls, refs = [], []
    for s in range(THREADS):
        rng = np.random.default_rng(s)
        n = 30_000
        m = sp.random(n, n, density=4e-4, random_state=rng, format="csr")
        m = (m + m.T).tocsr()
        x = rng.uniform(-1, 1, n)
        A = SparseTensor.from_scipy(m, ((0, 1),), check=False, name="A")
        arrays, dims = k.bind({"A": A, "x": x}, check=False)
        fn = fns["baseline" if s % 2 else "optimized"]
        calls.append(lambda fn=fn, arrays=arrays, dims=dims: k.call(fn, arrays, dims))
        refs.append(m @ x)
    expected = [c().copy() for c in calls]
    for want, ref in zip(expected, refs):
        assert systec_ref.agree(want, ref, "float64").ok
    errors = hammer(calls, expected)
    assert not errors, errors[:10]


def test_first_use_from_many_threads():
    """Threads that all ask a fresh Kernel for its C at once (compiled, or loaded from the cache)
    get working functions and correct results."""
    k = systec_ref.load(helpers.example("ssymv"))
    inputs = [k.random_inputs({"n": 30 + s}, seed=s) for s in range(THREADS)]
    wants = [k.definition(x).value for x in inputs]
    barrier = threading.Barrier(THREADS)
    results: dict[int, np.ndarray] = {}

    def worker(t: int) -> None:
        barrier.wait()
        results[t] = k.run(backend="c", optimize=t % 2 == 0, **inputs[t])

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=300)
    assert sorted(results) == list(range(THREADS))
    for t in range(THREADS):
        assert systec_ref.agree(results[t], wants[t], "float64").ok, t
