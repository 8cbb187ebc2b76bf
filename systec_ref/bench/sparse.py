"""Sparse benchmarks: symmetric sparse kernels on canonical-only storage against the same compiler
with the symmetry passes off (reading full storage: every permutation of every entry) and, for
matrices, against ``scipy.sparse``.

Inputs: pyamg matrices (Poisson, linear elasticity, the real 'bar' example), networkx graphs,
random symmetric tensors shaped like the paper's, and moment tensors of scikit-learn's bundled
data.  Building the storage is timed apart from the kernel (a user converts once and keeps the
tensor); the memory each layout takes is reported.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .. import bundled
from ..api import Kernel
from ..api import compile as compile_kernel
from ..compare import agree
from ..errors import SystecError
from ..storage import PackedTensor, SparseTensor, for_program
from .dense import PACKED
from .timing import measure


# -- inputs ------------------------------------------------------------------------------------
def random_symmetric(n: int, order: int, density: float, seed: int = 0) -> SparseTensor:
    """A fully symmetric ``n^order`` tensor holding ``density`` of its canonical entries (uniform
    values in [-1, 1)); drawn as canonical coordinates directly, never dense."""
    rng = np.random.default_rng(seed)
    want = round(density * math.comb(n + order - 1, order))
    got = np.zeros((0, order), dtype=np.int64)
    while len(got) < want:
        draw = np.sort(rng.integers(0, n, size=(int((want - len(got)) * 1.3) + 16, order)), axis=1)
        got = np.unique(np.concatenate([got, draw]), axis=0)
    got = got[np.sort(rng.permutation(len(got))[:want])]
    vals = rng.uniform(-1.0, 1.0, size=len(got))
    return SparseTensor.from_coo(got, vals, (n,) * order, (tuple(range(order)),), check=False)


def moment_tensor(X: np.ndarray, order: int, chunk: int = 4096) -> SparseTensor:
    """The empirical moment ``mean_s x_s (x) ... (x) x_s`` of the rows of ``X``, a real fully symmetric
    tensor; computed on canonical coordinates only (exact zeros, e.g. of always-blank pixels, are
    not stored)."""
    import itertools

    X = np.asarray(X, dtype=np.float64)
    d = X.shape[1]
    Xt = np.ascontiguousarray(X.T)
    coords = np.array(list(itertools.combinations_with_replacement(range(d), order)), dtype=np.int64)
    vals = np.empty(len(coords))
    for s in range(0, len(coords), chunk):
        c = coords[s:s + chunk]
        prod = Xt[c[:, 0]].copy()
        for m in range(1, order):
            prod *= Xt[c[:, m]]
        vals[s:s + chunk] = prod.mean(axis=1)
    return SparseTensor.from_coo(coords, vals, (d,) * order, (tuple(range(order)),), check=False)


def _pyamg():
    try:
        import pyamg
    except ImportError:
        raise SystecError("the sparse matrix benchmarks need pyamg: pip install -e '.[bench]'") from None
    return pyamg


def _graph(name: str):
    import networkx as nx
    import scipy.sparse as sp

    g = getattr(nx, name)()
    m = nx.to_scipy_sparse_array(g, nodelist=sorted(g.nodes), weight="weight", format="csr")
    return sp.csr_matrix(m, dtype=np.float64)


def _matrix(name: str, quick: bool):
    import scipy.sparse as sp

    if name == "poisson2d":
        m = _pyamg().gallery.poisson((120, 120) if quick else (1000, 1000), format="csr")
    elif name == "poisson3d":
        m = _pyamg().gallery.poisson((20, 20, 20) if quick else (100, 100, 100), format="csr")
    elif name == "elasticity2d":
        m = _pyamg().gallery.linear_elasticity((60, 60) if quick else (500, 500), format="csr")[0]
    elif name in REAL_MATRICES:
        m = _pyamg().gallery.load_example(name)["A"]
        if name in NEARLY_SYMMETRIC:  # asymmetric at round-off level (see REAL_MATRICES): symmetrized
            m = (m + m.T) / 2
    elif name == "random-d0.1":  # density 0.1: 10M stored entries at n = 10000 (far beyond the caches)
        n = 400 if quick else 10000
        c, v = random_symmetric(n, 2, 0.1, seed=3).full_coo()
        m = sp.csr_matrix((v, (c[:, 0], c[:, 1])), shape=(n, n))
    else:
        m = _graph(name)
    m = sp.csr_matrix(m, dtype=np.float64)
    m.sum_duplicates()
    m.eliminate_zeros()
    return m


def _digits(order: int, quick: bool) -> SparseTensor:
    try:
        from sklearn.datasets import load_breast_cancer, load_digits
    except ImportError:
        raise SystecError("the moment-tensor benchmarks need scikit-learn: pip install -e '.[bench]'") from None
    X = load_digits().data if order == 3 or not quick else load_breast_cancer().data[:, :12]
    X = (X - X.mean(axis=0)) / np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0)
    return moment_tensor(X[:400] if quick else X, order)


# -- cases -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    name: str  # kernel/input, as selected with --kernel (either part)
    kernel: str  # a file under examples/ (sparse/<k>.ein or <k>.ein)
    make: Callable[[bool], tuple[dict, dict[str, str]]]  # quick -> (inputs, description)
    libs: Callable[[dict, dict], dict[str, Callable]] | None = None  # (inputs, bound inputs) -> calls
    notes: str = ""
    suite: str = "sparse"
    #: SpMV-class (one pass over the stored matrix, vectors in and out): memory bound, so each
    #: implementation's bytes moved are reported and, in the suite, its share of the stream bandwidth
    traffic: bool = False


@dataclass(frozen=True)
class Baseline:
    """A library call to time, with what it reads and holds (reported next to its time).

    ``reads``: the scipy matrix the call streams (its arrays are the matrix bytes it moves);
    ``dense``: how to make the timed call's result comparable when it is not an array (a sparse
    product: the conversion is not timed); ``memory``: bytes of what it holds, by label."""

    call: Callable[[], object]
    reads: object | None = None
    dense: Callable[[object], object] | None = None
    memory: dict[str, int] | None = None

    def __call__(self) -> object:
        return self.call()

    def result(self) -> object:
        got = self.call()
        return self.dense(got) if self.dense else got


def _matrix_case(kernel: str, matrix: str, libs=None, notes: str = "") -> Case:
    def make(quick: bool):
        m = _matrix(matrix, quick)
        if kernel == "bellman":  # edge weights: |value|; no stored entry = no edge (fill inf)
            m = abs(m).tocsr()
        rng = np.random.default_rng(1)
        return {"A": m, "x": rng.uniform(-1.0, 1.0, m.shape[0])}, {"matrix": matrix, "shape": str(m.shape)}
    return Case(f"{kernel}/{matrix}", f"{'' if kernel == 'bellman' else 'sparse/'}{kernel}", make, libs, notes,
                traffic=True)


def _tensor_case(kernel: str, order: int, n: int, density: float, quick_n: int, rank: int | str = 10) -> Case:
    """Paper-shaped random symmetric tensor; ``rank="n"`` makes the factor square."""
    def make(quick: bool):
        size = quick_n if quick else n
        r = size if rank == "n" else rank
        A = random_symmetric(size, order, density, seed=0)
        B = np.random.default_rng(1).uniform(-1.0, 1.0, (size, r))
        return {"A": A, "B": B}, {"n": str(size), "density": str(density), "rank": str(r)}
    suffix = "-rank-n" if rank == "n" else ""
    return Case(f"{kernel}/random-d{density:g}{suffix}", f"sparse/{kernel}", make, _tensor_libs(kernel))


def _moment_case(kernel: str, order: int, rank: int = 10) -> Case:
    def make(quick: bool):
        A = _digits(order, quick)
        B = np.random.default_rng(1).uniform(-1.0, 1.0, (A.shape[0], rank))
        src = "digits" if order == 3 or not quick else "breast_cancer[:, :12]"
        return {"A": A, "B": B}, {"data": f"sklearn {src} moment M{order}", "n": str(A.shape[0]), "rank": str(rank)}
    return Case(f"{kernel}/moments{order}", f"sparse/{kernel}", make, _tensor_libs(kernel))


def _with_indices(A, dtype: type):
    """The same CSR matrix with indices of ``dtype``.  scipy keeps 32-bit indices when they fit but
    promotes to 64-bit on some paths (e.g. building from int64 coordinates), so the baseline states
    its width instead of inheriting it."""
    B = A.copy()
    B.indices, B.indptr = B.indices.astype(dtype), B.indptr.astype(dtype)
    return B


def _int32_indices(A):
    """A with 32-bit indices when they fit: scipy's fastest and smallest CSR, what a user gets by default."""
    fits = max(A.nnz, *A.shape) <= np.iinfo(np.int32).max
    return _with_indices(A, np.int32) if fits else A


def _scipy_matvec(x: dict, bound: dict) -> dict[str, Callable]:
    A, v = _int32_indices(x["A"]), x["x"]
    B = _with_indices(A, np.int64)  # the index width of our CSF storage today
    return {"scipy CSR A @ x": Baseline(lambda: A @ v, reads=A),
            "scipy CSR A @ x (64-bit indices)": Baseline(lambda: B @ v, reads=B),
            **_tensora("y(i) = A(i,j) * x(j)", "d", {"A": ("ds", A), "x": ("d", v)})}


def _scipy_quadratic(x: dict, bound: dict) -> dict[str, Callable]:
    A, v = _int32_indices(x["A"]), x["x"]
    return {"scipy CSR x @ (A @ x)": Baseline(lambda: v @ (A @ v), reads=A),
            **_tensora("s() = x(i) * A(i,j) * z(j)", "", {"A": ("ds", A), "x": ("d", v), "z": ("d", v)})}


def _tensora(assignment: str, out_format: str, operands: dict[str, tuple[str, object]]) -> dict[str, Callable]:
    """The kernel through tensora, a TACO-style compiler (no symmetry), if it is installed.

    ``operands`` maps each name to (TACO format, value): 'd' dense and 's' compressed per mode;
    a value is a numpy array, a scipy matrix or a SparseTensor (then every entry is given)."""
    try:
        from tensora import Tensor, tensor_method
    except ImportError:
        return {}
    args = {}
    for name, (fmt, value) in operands.items():
        if isinstance(value, SparseTensor):
            c, v = value.full_coo()
            args[name] = Tensor.from_soa(tuple(c[:, m] for m in range(c.shape[1])), v, dimensions=value.shape,
                                         format=fmt)
        elif hasattr(value, "tocoo"):
            args[name] = Tensor.from_scipy_sparse(value, format=fmt)
        else:
            args[name] = Tensor.from_numpy(np.asarray(value, dtype=np.float64), format=fmt)
    out = assignment.split("=")[0].split("(")[0].strip()
    formats = {out: out_format, **{n: f for n, (f, _) in operands.items()}}
    method = tensor_method(assignment, formats)

    class Call:
        """Times the kernel only; the result is converted to numpy for the agreement check (tensora's
        conversion is a Python loop over the elements, which would dominate the timing)."""

        def __call__(self):
            return method(**args)

        def result(self):
            return method(**args).to_numpy()
    return {"tensora (TACO-style, no symmetry)": Call()}


def _pydata_sparse(spec: str, A: SparseTensor, factors: list[np.ndarray], limit: int = 400_000) -> dict[str, Callable]:
    """``sparse.einsum`` (pydata) on every entry of A, if installed and A is small enough: on the
    paper-shaped inputs (10M+ entries) one call takes 40-80 s here, too slow to repeat."""
    try:
        import sparse as pydata
    except ImportError:
        return {}
    c, v = A.full_coo()
    if len(v) > limit:
        return {}
    S = pydata.COO(c.T, v, shape=A.shape)

    def call():
        out = pydata.einsum(spec, S, *factors)
        return out.todense() if hasattr(out, "todense") else np.asarray(out)
    return {"pydata sparse.einsum": call}


_SPECS = {"ttm": ("kjl,ki->ijl", "C(i,j,l) = A(k,j,l) * B(k,i)", "ddd"),
          "mttkrp3": ("ikl,lj,kj->ij", "C(i,j) = A(i,k,l) * B(l,j) * D(k,j)", "dd"),
          "mttkrp4": ("iklm,lj,kj,mj->ij", "C(i,j) = A(i,k,l,m) * B(l,j) * D(k,j) * E(m,j)", "dd"),
          "mttkrp5": ("iklmo,lj,kj,mj,oj->ij", "C(i,j) = A(i,k,l,m,o) * B(l,j) * D(k,j) * E(m,j) * F(o,j)", "dd")}


def _tensor_libs(kernel: str) -> Callable[[dict, dict], dict[str, Callable]]:
    spec, assignment, out_format = _SPECS[kernel]

    def libs(x: dict, bound: dict) -> dict[str, Callable]:
        A, B = bound["A"], x["B"]
        factors = [B] * (len(spec.split(",")) - 1)
        names = ["B", "D", "E", "F"][:len(factors)]
        ops = {"A": ("s" * len(A.shape), A), **{n: ("dd", B) for n in names}}
        return {**_tensora(assignment, out_format, ops), **_pydata_sparse(spec, A, factors)}
    return libs


def _numpy_min_plus(x: dict, bound: dict) -> dict[str, Callable]:
    """The fastest numpy formulation we measured of ``y[i] = min_j A[i,j] + x[j]`` on CSR: gather
    ``x`` by column with fancy indexing on ``intp`` indices (32-bit ones are converted on every
    call, and ``np.take(..., out=)`` is slower still), add the values in place, then
    ``minimum.reduceat`` over the row starts.  reduceat returns the next entry, not the identity,
    for an empty row, so rows without edges are masked and set to +inf."""
    A, v = _with_indices(x["A"], np.intp), x["x"]
    n = A.shape[0]
    nonempty = np.diff(A.indptr) > 0
    starts = np.ascontiguousarray(A.indptr[:-1][nonempty])
    every_row = bool(nonempty.all())

    def step() -> np.ndarray:
        got = v[A.indices]
        got += A.data
        if every_row:
            return np.minimum.reduceat(got, starts)
        out = np.full(n, np.inf)
        out[nonempty] = np.minimum.reduceat(got, starts)
        return out
    return {"numpy min-plus on CSR (reduceat)": Baseline(step, reads=A)}


#: pyamg's bundled real matrices that are symmetric: exactly, or (NEARLY_SYMMETRIC) up to round-off
#: (unit_square 2e-16, local_disc_galerkin_diffusion 2e-12), which we symmetrize as (A + A')/2
REAL_MATRICES = ("airfoil", "bar", "knot", "unit_cube", "unit_square", "local_disc_galerkin_diffusion")
NEARLY_SYMMETRIC = ("unit_square", "local_disc_galerkin_diffusion")
MATRICES = ("poisson2d", "poisson3d", "elasticity2d", "random-d0.1", *REAL_MATRICES, "karate_club_graph",
            "les_miserables_graph")
CASES = [
    *(_matrix_case("ssymv", m, _scipy_matvec, "memory bound: half of A read") for m in MATRICES),
    *(_matrix_case("syprd", m, _scipy_quadratic, "memory bound: half of A read") for m in MATRICES),
    *(_matrix_case("bellman", m, _numpy_min_plus, "min-plus: one relaxation step")
      for m in ("poisson2d", "random-d0.1", "les_miserables_graph")),
    *(_tensor_case("ttm", 3, 500, d, 40) for d in (0.1, 0.0001)),
    *(_tensor_case("mttkrp3", 3, 500, d, 40) for d in (0.1, 0.0001)),
    *(_tensor_case("mttkrp4", 4, 100, d, 20) for d in (0.1, 0.0001)),
    *(_tensor_case("mttkrp5", 5, 40, d, 12) for d in (0.1, 0.0001)),
    *(_tensor_case(k, o, n, d, qn, rank="n") for k, o, n, qn in (("mttkrp3", 3, 500, 40), ("mttkrp4", 4, 100, 20),
                                                               ("mttkrp5", 5, 40, 12)) for d in (0.1, 0.0001)),
    _moment_case("ttm", 3), _moment_case("mttkrp3", 3), _moment_case("mttkrp4", 4),
]


#: SSYRK inputs: (full size, quick size) of each; the pyamg grids are picked so that n is about
#: 1500 like the random matrix
SSYRK_INPUTS = {"random-d0.1": (1500, 300), "poisson2d": (38, 12), "elasticity2d": (27, 8)}


def _ssyrk_matrix(name: str, quick: bool):
    import scipy.sparse as sp

    size = SSYRK_INPUTS[name][1 if quick else 0]
    if name == "random-d0.1":
        A = sp.random(size, size, density=0.1, random_state=np.random.default_rng(2), format="csr")
    elif name == "poisson2d":
        A = _pyamg().gallery.poisson((size, size), format="csr")
    else:
        A = _pyamg().gallery.linear_elasticity((size, size), format="csr")[0]
    A = sp.csr_matrix(A, dtype=np.float64)
    A.sum_duplicates()
    A.eliminate_zeros()
    return A


#: the row of the SSYRK cases that returns C sparse (canonical entries, no mirror)
SPARSE_OUTPUT = "systec_ref (symmetric, sparse output)"
#: the same kernel compiled with symmetry off (every other optimization on): C sparse, every entry stored
SPARSE_OUTPUT_OFF = "systec_ref (symmetry off, sparse output)"


def _ssyrk_case(matrix: str) -> Case:
    def make(quick: bool):
        A = _ssyrk_matrix(matrix, quick)
        nnz_density = A.nnz / (A.shape[0] * A.shape[1])
        return {"A": A}, {"matrix": matrix, "shape": str(A.shape), "density": f"{nnz_density:.3g}"}

    def libs(x: dict, bound: dict) -> dict[str, Callable]:
        A = _int32_indices(x["A"])
        product = A @ A.T  # once, for the memory it holds
        # the same product with C sparse too (examples/sparse/ssyrk_sparse.ein): its canonical entries only
        k = compile_kernel(*bundled.read("sparse/ssyrk_sparse"))
        sparse_out = k.prepare(A=x["A"])
        C = sparse_out()
        arrays, dims = k.bind({"A": x["A"]})
        off = Kernel.prepare_call(k.for_data(arrays, "baseline").c_function("baseline"), arrays, dims)
        return {SPARSE_OUTPUT: Baseline(sparse_out, memory={"C (canonical, sparse) bytes": C.memory_bytes()}),
                SPARSE_OUTPUT_OFF: Baseline(off, memory={"C (every entry, sparse) bytes": off().memory_bytes()}),
                "scipy CSR A @ A.T": Baseline(lambda: A @ A.T, dense=lambda C: C.toarray(),
                                              memory={"A (CSR) bytes": _bytes_of_scipy(A),
                                                      "A A' (CSR) bytes": _bytes_of_scipy(product)}),
                **_tensora("C(i,j) = A(i,k) * B(j,k)", "dd", {"A": ("ds", A), "B": ("ds", A)})}
    return Case(f"ssyrk/{matrix}", "sparse/ssyrk", make, libs,
                notes="A[i,k] * A[j,k] in Gustavson's order i k j: A's rows, each k looked up in A's stored "
                      "transposed copy, j walking that column from i+1 (binary search); output symmetry (one "
                      "triangle, mirrored; with the sparse output, each row reduced in one dense row when the "
                      "loop moves on, stored canonical-only)")


def _eri_case() -> Case:
    """Partial symmetry on real data: electron-repulsion integrals (ij|kl) of water computed by pyscf,
    symmetric in (i,j) and in (k,l); the Coulomb matrix J = sum_kl (ij|kl) D[k,l]."""
    def make(quick: bool):
        try:
            from pyscf import gto
        except ImportError:
            raise SystecError("the partial-symmetry benchmark needs pyscf: pip install -e '.[bench]'") from None
        from ..tensors import symmetrize_index

        basis = "sto-3g" if quick else "cc-pvtz"
        mol = gto.M(atom="O 0 0 0; H 0 0.757 0.587; H 0 -0.757 0.587", basis=basis, verbose=0)
        G = mol.intor("int2e", aosym="s1")
        # equal up to round-off (1e-15); take the canonical entry of each pair so the symmetry is exact
        G = np.ascontiguousarray(G[symmetrize_index(G.shape, ((0, 1), (2, 3)))])
        n = G.shape[0]
        D = np.random.default_rng(1).uniform(-1.0, 1.0, (n, n))
        return {"G": G, "D": D}, {"data": f"pyscf ERI of water, {basis}", "n": str(n)}

    def libs(x: dict, bound: dict) -> dict[str, Callable]:
        G, D = x["G"], x["D"]
        n = D.shape[0]
        out = {"numpy.einsum(optimize=True)": lambda: np.einsum("ijkl,kl->ij", G, D, optimize=True),
               "BLAS G(ij,kl) @ D(kl)": lambda: (G.reshape(n * n, n * n) @ D.reshape(-1)).reshape(n, n)}
        try:
            import opt_einsum
        except ImportError:
            return out
        return {**out, "opt_einsum.contract": lambda: opt_einsum.contract("ijkl,kl->ij", G, D)}
    return Case("coulomb/eri-water", "coulomb", make, libs, "4-fold pair symmetry of the integrals; 8-fold in "
                                                             "nature (ij|kl)=(kl|ij), which the kernel does not "
                                                             "declare", suite="dense")


CASES += [*(_ssyrk_case(m) for m in SSYRK_INPUTS), _eri_case()]


def select(names: list[str] | None) -> list[Case]:
    if not names:
        return list(CASES)
    chosen = [c for c in CASES if c.name in names or c.name.split("/")[0] in names]
    return chosen


# -- running -----------------------------------------------------------------------------------
def _bytes_of_scipy(m) -> int:
    return int(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes)


def _handed_bytes(fn, storage: dict, dense: dict) -> int:
    """Bytes of every input array a compiled kernel is handed: its dense inputs and, per stored face
    it iterates, the arrays its storage format passes (at the format's index widths, so a change of
    format shows here without a change to the benchmark)."""
    from ..dtypes import numpy_type
    from ..storage import formats

    total = sum(int(dense[n].nbytes) for n in fn.dense)
    if fn.faces:
        fmt = formats.get(fn.program.facts.sparse_format)
        dtype = np.dtype(numpy_type(fn.program.dtype))
        for tensor, face in fn.faces:
            total += sum(int(a.nbytes) for a in fmt.arrays(storage[tensor], face, dtype).values())
    return total


def _traffic(moved: int, stored: int) -> dict[str, float]:
    """Compulsory traffic of one call: every stored array and dense operand read once, the output
    written once; temporaries a formulation makes are not counted (they show as a lower GB/s)."""
    return {"bytes_moved": moved, "stored_entries": stored, "bytes_per_stored_entry": moved / max(stored, 1)}


def _build_libs(case: Case, inputs: dict, arrays: dict) -> tuple[dict[str, Callable], dict[str, str]]:
    """The other baselines for a case; one that cannot be built (a library's own error) is recorded
    with its reason instead of stopping the run."""
    if not case.libs:
        return {}, {}
    try:
        return case.libs(inputs, arrays), {}
    except SystecError:
        raise
    except Exception as e:
        return {}, {"library baselines": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}


def run_case(case: Case, quick: bool, repeats: int) -> dict:
    k: Kernel = compile_kernel(*bundled.read(case.kernel))  # the bundled example: found in an installed wheel too
    t0 = time.perf_counter()
    inputs, described = case.make(quick)
    seconds = {"make input": time.perf_counter() - t0}
    raw = inputs.get("A")
    t0 = time.perf_counter()
    arrays, dims = k.bind(inputs)  # canonical-only storage, symmetry verified (scipy input) once
    seconds["to canonical storage (incl. symmetry check)"] = time.perf_counter() - t0
    # each compiled for the storage formats chosen from the data (32-bit indices, dense levels)
    opt, naive = k.for_data(arrays).c_function(), k.for_data(arrays, "baseline").c_function("baseline")
    t0 = time.perf_counter()
    st_naive = for_program(naive.program, arrays)  # the baseline's layout: every entry (built once, kept)
    seconds["to full storage (baseline)"] = time.perf_counter() - t0
    st_opt = for_program(opt.program, arrays)
    out = k.ast.output.name
    dense_opt = {n: a for n, a in arrays.items() if n in opt.dense}
    dense_naive = {n: a for n, a in arrays.items() if n in naive.dense}
    for fn, have in ((opt, dense_opt), (naive, dense_naive)):
        missing = [n for n in fn.dense if n not in have or not isinstance(have[n], np.ndarray)]
        if missing:  # read element by element: the only case where a sparse input is expanded
            for n in missing:
                have[n] = arrays[n].to_dense()
    fns: dict[str, Callable] = {"systec_ref (symmetric)": opt.prepare(dense_opt, dims, st_opt),
                                "systec_ref (symmetry off)": naive.prepare(dense_naive, dims, st_naive)}
    # a dense symmetric input (the integrals of Coulomb) also handed packed: its canonical entries only
    packed = {d.name: PackedTensor.from_dense(arrays[d.name], d.symmetry, check=False) for d in k.ast.inputs
              if d.symmetry and d.format == "dense" and isinstance(arrays[d.name], np.ndarray)}
    if packed:
        held = {**arrays, **packed}
        fn_packed = k.for_data(held).c_function()
        fns[PACKED] = fn_packed.prepare(held, dims, for_program(fn_packed.program, held))
    t0 = time.perf_counter()
    libs, unavailable = _build_libs(case, inputs, arrays)
    seconds["library inputs (converted for the other baselines)"] = time.perf_counter() - t0
    want = fns["systec_ref (symmetry off)"]()[out]
    got = fns["systec_ref (symmetric)"]()[out]
    checks = {"systec_ref (symmetric)": bool(agree(got, want, k.ast.output.dtype))}
    if PACKED in fns:
        checks[PACKED] = bool(agree(fns[PACKED]()[out], want, k.ast.output.dtype))
    for name, f in list(libs.items()):
        try:
            got_lib = f.result() if hasattr(f, "result") else f()
            checks[name] = bool(agree(got_lib, want, "float64"))
        except Exception as e:  # a library that fails on this input is reported, not fatal
            unavailable[name] = f"{type(e).__name__}: {e}"
            del libs[name]
    fns.update(libs)
    timings = measure(fns, repeats=repeats)
    base = timings["systec_ref (symmetric)"].median
    A = arrays.get("A")
    memory: dict[str, int] = {}
    full = None
    if isinstance(A, SparseTensor):
        full = st_naive.get("A") or A.with_symmetry(())
        memory = {"canonical bytes": A.memory_bytes(), "full storage bytes": full.memory_bytes(),
                  "stored canonical": A.stored, "stored full": full.stored}
        if hasattr(raw, "indptr"):
            # at the 32-bit indices of the scipy baseline, counted rather than converted
            memory["scipy CSR bytes"] = int(raw.data.nbytes) + 4 * (raw.nnz + raw.shape[0] + 1)
    out_bytes = int(np.asarray(want).nbytes)
    # what each implementation holds: ours its operands as handed (a sparse A read element by
    # element is handed dense) and its output
    memory["systec_ref (symmetric): operands bytes"] = _handed_bytes(opt, st_opt, dense_opt)
    memory["systec_ref: output bytes"] = out_bytes
    if packed:
        memory[f"{PACKED}: operands bytes"] = sum(p.memory_bytes() for p in packed.values()) + sum(
            int(a.nbytes) for n, a in arrays.items() if n not in packed and isinstance(a, np.ndarray))
    for name, f in libs.items():
        for label, size in (getattr(f, "memory", None) or {}).items():
            memory[f"{name}: {label}"] = size
    traffic: dict[str, dict[str, float]] = {}
    if case.traffic and isinstance(A, SparseTensor):
        vectors = sum(int(v.nbytes) for v in inputs.values() if isinstance(v, np.ndarray)) + out_bytes
        traffic["systec_ref (symmetric)"] = _traffic(memory["systec_ref (symmetric): operands bytes"] + out_bytes,
                                                     A.stored)
        traffic["systec_ref (symmetry off)"] = _traffic(_handed_bytes(naive, st_naive, dense_naive) + out_bytes,
                                                        full.stored)
        for name, f in libs.items():
            m = getattr(f, "reads", None)
            if m is not None:
                traffic[name] = _traffic(_bytes_of_scipy(m) + vectors, int(m.nnz))
    return {
        "kernel": case.name, "suite": case.suite, "file": f"examples/{case.kernel}.ein", "input": described,
        "notes": case.notes,
        "memory": memory, "setup_s": seconds, "unavailable": unavailable,
        "formats": {"symmetric": dict(opt.program.facts.tensor_formats) or opt.program.facts.sparse_format,
                    "symmetry off": dict(naive.program.facts.tensor_formats) or naive.program.facts.sparse_format},
        "results": {name: {**t.as_dict(), "ratio_to_symmetric": t.median / base, "agrees": checks.get(name, True),
                           **traffic.get(name, {})}
                    for name, t in timings.items()},
    }
