"""Dense benchmarks: the paper's kernels against the same compiler with the
symmetry passes off and against what a Python user calls today.

Every implementation is checked against the others before it is timed; all
of them run single-threaded (BLAS pinned to one thread), in one process,
interleaved (see :mod:`.timing`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .. import bundled
from ..api import Kernel
from ..api import compile as compile_kernel
from ..compare import agree
from ..storage.packed import PackedTensor
from .timing import measure

#: our kernel reading its symmetric inputs packed (canonical entries only)
PACKED = "systec_ref (symmetric, packed)"


def _khatri_rao(B: np.ndarray, times: int) -> np.ndarray:
    out = B
    for _ in range(times - 1):
        out = (out[:, None, :] * B[None, :, :]).reshape(-1, B.shape[1])
    return out


def _lapack_packed(A: np.ndarray) -> np.ndarray:
    """A symmetric matrix in LAPACK's packed lower triangle (column-major ``AP``, ``uplo='L'``): the same
    array as our packed layout, the upper triangle row by row (:mod:`systec_ref.storage.packed`)."""
    return PackedTensor.from_dense(A, ((0, 1),), check=False).values


def _libs_ssymv(x: dict) -> dict[str, Callable]:
    from scipy.linalg.blas import dspmv, dsymv

    A, v = x["A"], x["x"]
    F = A.T  # Fortran order without a copy (A is symmetric); given C order, scipy copies A on every call
    ap, n = _lapack_packed(A), len(v)
    return {"OpenBLAS dsymv": lambda: dsymv(1.0, F, v),
            "OpenBLAS dspmv (packed)": lambda: dspmv(n, 1.0, ap, v, lower=1), "numpy A @ x": lambda: A @ v}


def _libs_syprd(x: dict) -> dict[str, Callable]:
    from scipy.linalg.blas import dspmv, dsymv

    A, v = x["A"], x["x"]
    F = A.T  # Fortran order, no copy per call (see _libs_ssymv)
    ap, n = _lapack_packed(A), len(v)
    return {"numpy x @ (A @ x)": lambda: v @ (A @ v), "x @ dsymv(A, x)": lambda: v @ dsymv(1.0, F, v),
            "x @ dspmv(packed A, x)": lambda: v @ dspmv(n, 1.0, ap, v, lower=1)}


def _libs_ssyrk(x: dict) -> dict[str, Callable]:
    from scipy.linalg.blas import dsyrk

    A = x["A"]
    F = A.T  # (A')' A' = A A', with A' a Fortran-ordered view: no copy per call
    return {"OpenBLAS dsyrk (one triangle)": lambda: dsyrk(1.0, F, trans=1), "numpy A @ A.T": lambda: A @ A.T}


def _libs_syr2k(x: dict) -> dict[str, Callable]:
    from scipy.linalg.blas import dsyr2k

    A, B = x["A"], x["B"]
    FA, FB = A.T, B.T  # Fortran-ordered views, no copy per call (see _libs_ssyrk)
    return {"OpenBLAS dsyr2k (one triangle)": lambda: dsyr2k(1.0, FA, FB, trans=1),
            "numpy A @ B.T + B @ A.T": lambda: A @ B.T + B @ A.T}


def _libs_ttm(x: dict) -> dict[str, Callable]:
    A, B = x["A"], x["B"]
    n, r = B.shape
    return {"numpy.einsum(optimize=True)": lambda: np.einsum("kjl,ki->ijl", A, B, optimize=True),
            "unfolding B.T @ A(1)": lambda: (B.T @ A.reshape(n, n * n)).reshape(r, n, n),
            **_opt_einsum("kjl,ki->ijl", A, B)}


def _opt_einsum(spec: str, *operands) -> dict[str, Callable]:
    try:
        import opt_einsum
    except ImportError:  # an optional baseline: pip install -e '.[bench]'
        return {}
    return {"opt_einsum.contract": lambda: opt_einsum.contract(spec, *operands)}


def _libs_mttkrp(order: int) -> Callable[[dict], dict[str, Callable]]:
    spec = {3: "ikl,lj,kj->ij", 4: "iklm,lj,kj,mj->ij", 5: "iklmo,lj,kj,mj,oj->ij"}[order]

    def libs(x: dict) -> dict[str, Callable]:
        A, B = x["A"], x["B"]
        n = B.shape[0]
        kr = _khatri_rao(B, order - 1)
        return {"numpy.einsum(optimize=True)": lambda: np.einsum(spec, A, *([B] * (order - 1)), optimize=True),
                "unfolding A(1) @ Khatri-Rao": lambda: A.reshape(n, -1) @ kr,
                **_opt_einsum(spec, A, *([B] * (order - 1)))}
    return libs


@dataclass(frozen=True)
class Case:
    kernel: str
    sizes: dict[str, int]
    quick: dict[str, int]
    libs: Callable[[dict], dict[str, Callable]]
    notes: str = ""
    extra: dict = field(default_factory=dict)


CASES = [
    Case("ssymv", {"n": 8000}, {"n": 2000}, _libs_ssymv, "memory bound: the ideal is 2x fewer reads of A"),
    Case("syprd", {"n": 8000}, {"n": 2000}, _libs_syprd, "memory bound: the ideal is 2x"),
    Case("ssyrk", {"n": 1500, "m": 1500}, {"n": 400, "m": 400}, _libs_ssyrk, "ideal 2x"),
    Case("ssyrk", {"n": 500, "m": 20000}, {"n": 100, "m": 4000}, _libs_ssyrk, "ideal 2x; short and wide A (A' tall and "
         "skinny: its Gram matrix)"),
    Case("syr2k", {"n": 1500, "m": 1500}, {"n": 400, "m": 400}, _libs_syr2k, "ideal 2x: tiles right of the diagonal "
         "are two GEMMs, the diagonal tiles loop nests"),
    Case("ttm", {"n": 200, "r": 32}, {"n": 60, "r": 16}, _libs_ttm, "ideal 2x (output symmetry)"),
    Case("mttkrp3", {"n": 300, "r": 64}, {"n": 80, "r": 16}, _libs_mttkrp(3), "ideal 3! = 6 in reads, 2 per update"),
    Case("mttkrp4", {"n": 100, "r": 32}, {"n": 30, "r": 16}, _libs_mttkrp(4), "ideal 4! = 24 in reads, 6 per update"),
    Case("mttkrp5", {"n": 40, "r": 16}, {"n": 16, "r": 8}, _libs_mttkrp(5), "ideal 5! = 120 in reads, 24 per update"),
]


def _inputs(k: Kernel, sizes: dict[str, int]) -> dict[str, np.ndarray]:
    return k.random_inputs(sizes, seed=0)


def run_case(case: Case, quick: bool, repeats: int) -> dict:
    k = compile_kernel(*bundled.read(case.kernel))  # the bundled example: found in an installed wheel too
    sizes = case.quick if quick else case.sizes
    inputs = _inputs(k, sizes)
    arrays, dims = k.bind(inputs)  # verified symmetric once; the timed calls skip the check
    opt, naive = k.c_function(), k.c_function("baseline")
    out = k.ast.output.name
    fns: dict[str, Callable] = {"systec_ref (symmetric)": opt.prepare(arrays, dims),
                                "systec_ref (symmetry off)": naive.prepare(arrays, dims)}
    memory: dict = {}
    symmetric = [d for d in k.ast.inputs if d.symmetry and d.format == "dense"]
    if symmetric:  # the same kernel on its symmetric inputs packed: compiled for them (no gemm-form, no BLAS on them)
        packed = {d.name: PackedTensor.from_dense(arrays[d.name], d.symmetry, check=False) for d in symmetric}
        held = {**arrays, **packed}
        fns[PACKED] = k.for_data(held).c_function().prepare(held, dims)
        memory = {"canonical bytes": sum(p.memory_bytes() for p in packed.values()),
                  "full storage bytes": sum(p.full_memory_bytes() for p in packed.values()),
                  "stored canonical": sum(len(p.values) for p in packed.values()),
                  "stored full": sum(arrays[n].size for n in packed)}
    libs = case.libs(inputs)
    want = fns["systec_ref (symmetry off)"]()[out]
    checks = {name: bool(agree(fns[name]()[out], want, k.ast.output.dtype))
              for name in ("systec_ref (symmetric)", PACKED) if name in fns}
    for name, f in libs.items():
        r = np.asarray(f())
        if "one triangle" in name:
            r = np.triu(r) + np.triu(r, 1).T
        checks[name] = bool(agree(r, want, "float64")) or bool(np.allclose(r, want, rtol=1e-9, atol=1e-9))
    fns.update(libs)
    timings = measure(fns, repeats=repeats)
    base = timings["systec_ref (symmetric)"].median
    return {
        "kernel": case.kernel, "sizes": sizes, "notes": case.notes, **({"memory": memory} if memory else {}),
        "results": {name: {**t.as_dict(), "ratio_to_symmetric": t.median / base, "agrees": checks.get(name, True)}
                    for name, t in timings.items()},
    }


def select(names: list[str] | None) -> list[Case]:
    return [c for c in CASES if not names or c.kernel in names]
