# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 10. From loop nest to C: reading it, validating it, measuring it
#
# Any stage compiles to one C99 function — `restrict` pointers, `int64_t` indices, no globals —
# built with the system compiler, loaded with `ctypes` and cached on disk. This tutorial reads the
# C of SSYMV, checks the C of several kernels against the interpreter, and then times it against
# the same compiler with the symmetry passes off and against numpy/scipy. **The timings are
# measured live on your machine**: in the recorded document they show as `⟨machine-dependent⟩`;
# run `python tutorials/10_c_backend.py` to see yours.

# %%
import numpy as np
import tutorials_support as ts
from scipy.linalg.blas import dsymv
from threadpoolctl import threadpool_limits

import systec_ref
from systec_ref.bench.machine import cpu_model
from systec_ref.bench.timing import measure

ssymv = systec_ref.load(ts.EXAMPLES / "ssymv.ein")

# %% [markdown]
# ## Reading the generated code
#
# `Kernel.c_source()` is the C of the final stage. Compare it with the loop nest of tutorial 7: the
# same strict nest, unrolled by six rows and jammed, with the `temp` accumulators of the
# `workspace` pass, then the diagonal face. Comments name the pass and the equality pattern each
# block came from; the header repeats the program's declarations and facts. The drawing is the
# loop nest the C is generated from (blue loops, orange tests, grey `let`s, yellow block comments).

# %%
ts.stage_diagram(ssymv, "unroll-and-jam")
print(ssymv.c_source())

# %% [markdown]
# `c_source("baseline")` is the C of the same compiler with the symmetry passes off (every other
# pass on) — the reference for speedups. Any stage compiles too, e.g. `c_source("split-diagonals")`.

# %%
print(ssymv.c_source("baseline"))
assert "A[(j) * n + i]" not in ssymv.c_source()  # the symmetric kernel never reads below the diagonal

# %% [markdown]
# ## Validating it
#
# `Kernel.run(backend="c")` compiles on first use (then loads from the cache) and runs the C. The C
# of each kernel must agree with the interpreter, and the baseline C with the definition — with the
# same 1e-12 tolerance as everything else:

# %%
rows = []
for name, sizes in (("ssymv", {"n": 37}), ("ssyrk", {"n": 13, "m": 7}), ("ttm", {"n": 9, "r": 4}),
                    ("mttkrp3", {"n": 11, "r": 5}), ("bellman", {"n": 29}), ("coulomb", {"n": 6})):
    kern = systec_ref.load(ts.EXAMPLES / f"{name}.ein")
    data = kern.random_inputs(sizes, seed=1, density=0.3)
    dtype = kern.ast.output.dtype
    c_sym = systec_ref.agree(kern.run(backend="c", **data), kern.run(**data), dtype)
    c_base = systec_ref.agree(kern.run(backend="c", optimize=False, **data), kern.definition(data).value, dtype)
    rows.append([name, " ".join(f"{a}={b}" for a, b in sizes.items()), c_sym.ok, c_base.ok])
print(ts.table(["kernel", "sizes", "C (symmetric) == interpreter", "C (baseline) == definition"], rows))
assert all(r[2] and r[3] for r in rows)

# %% [markdown]
# ## Measuring it
#
# Single thread (BLAS pinned to one thread too), every implementation timed in the same rounds,
# interleaved, median of the rounds (`systec_ref.bench.timing.measure`). The inputs are checked
# once; the timed calls pass `check=False`. First SSYMV, against the baseline, numpy's `A @ x`
# (reads all of `A`) and OpenBLAS `dsymv` (reads one triangle — the bar for dense SSYMV):

# %%
print("machine:", ts.live(cpu_model()))


def timed(fns, reference):
    """Time fns (name -> callable) and print a table with the ratio of each to `reference`."""
    t = measure(fns, repeats=5)
    base = t[reference].median
    print(ts.table(["implementation", "median", "time / " + reference],
                   [[name, ts.live(v.median * 1e3, "{:.3f} ms"), ts.live(v.median / base, "{:.2f}x")]
                    for name, v in t.items()]))


n = 2000
A, x = (ssymv.random_inputs({"n": n}, seed=0)[key] for key in ("A", "x"))
A_F = A.T  # the same symmetric matrix, Fortran-ordered: given A itself, scipy would copy it for BLAS first
y = ssymv.run(backend="c", A=A, x=x)
assert np.allclose(y, A @ x) and np.allclose(y, dsymv(1.0, A_F, x))
with threadpool_limits(1):
    timed({"systec_ref C (symmetric)": lambda: ssymv.run(backend="c", check=False, A=A, x=x),
           "systec_ref C (symmetry off)": lambda: ssymv.run(backend="c", check=False, optimize=False, A=A, x=x),
           "numpy A @ x": lambda: A @ x,
           "scipy dsymv (OpenBLAS)": lambda: dsymv(1.0, A_F, x)}, "systec_ref C (symmetric)")

# %% [markdown]
# SSYMV is memory bound: the best a symmetric kernel can do is read half of `A`, about 2x fewer
# bytes. MTTKRP-3 does more arithmetic per element of `A`, and symmetry removes half of it: the sum
# over the pair `k <= l` of `A[i,k,l] * B[l,j] * B[k,j]` (each pair once, doubled off the diagonal),
# computed as matrix products (the last section shows how). The library comparison is
# `numpy.einsum` with `optimize=True` (which hands the work to BLAS):

# %%
mttkrp3 = systec_ref.load(ts.EXAMPLES / "mttkrp3.ein")
data3 = mttkrp3.random_inputs({"n": 60, "r": 16}, seed=0)
A3, B3 = data3["A"], data3["B"]
C3 = mttkrp3.run(backend="c", **data3)
assert np.allclose(C3, np.einsum("ikl,lj,kj->ij", A3, B3, B3, optimize=True))
with threadpool_limits(1):
    timed({"systec_ref C (symmetric)": lambda: mttkrp3.run(backend="c", check=False, **data3),
           "systec_ref C (symmetry off)": lambda: mttkrp3.run(backend="c", check=False, optimize=False, **data3),
           "numpy.einsum(optimize=True)": lambda: np.einsum("ikl,lj,kj->ij", A3, B3, B3, optimize=True)},
          "systec_ref C (symmetric)")

# %% [markdown]
# What the interpreter's counts predict for the same kernel at a small size (exact, so recorded),
# to set against the measured ratio above: the work of the optimized nest against the baseline's,
# and how many different elements of `A` each reads. (A BLAS call's counts are those of the loop
# nest it stands for, which the interpreter runs: its reads of `A` are not hoisted out of the
# innermost loop as `hoist-reads` does for a nest, so count the *different* elements read.)

# %%
small = mttkrp3.random_inputs({"n": 12, "r": 4}, seed=0)
c_opt = mttkrp3.interpret(small).counts
c_base = mttkrp3.interpret(small, stage=mttkrp3.baseline[-1].program).counts
print(ts.table(["program (n=12, r=4)", "mults", "different elements of A read"],
               [["symmetric (final stage)", c_opt.mults, c_opt.distinct["A"]],
                ["baseline (symmetry off)", c_base.mults, c_base.distinct["A"]]]))
print(f"\nmultiplications: {c_base.mults / c_opt.mults:.2f}x fewer; elements of A read: "
      f"{c_base.distinct['A'] / c_opt.distinct['A']:.2f}x fewer")
assert c_opt.mults < c_base.mults and c_opt.distinct["A"] < c_base.distinct["A"]

# %% [markdown]
# ## Dense kernels at library speed: tiles and BLAS
#
# A plain loop nest runs at a fraction of the speed of a BLAS matrix product, so computing half of a
# symmetric output is not enough to beat a library that computes all of it. `blas-calls` recognizes
# nests that *are* BLAS operations. SYR2K (`C = A Bᵀ + B Aᵀ`, `examples/syr2k.ein`): its strict
# triangle and its diagonal together are one symmetric rank-2k update, one `dsyr2k` call. The call
# keeps the loop nest it replaces as its meaning (printed under it): the interpreter runs that nest,
# so every stage is still checked against the definition.

# %%
syr2k = systec_ref.load(ts.EXAMPLES / "syr2k.ein")
ts.show_pass(syr2k, "blas-calls", draw=False)

# %% [markdown]
# Add a third product, `A Aᵀ`, and no single BLAS routine computes the triangle. `tile` then cuts
# the strict triangle `i < j` into tiles (here of 4, to print; the default is 128): the tiles right
# of the diagonal are rectangles, only the diagonal tiles stay triangular ...

# %%
mixed = systec_ref.compile("kernel mixed\nin A[n, m]\nin B[n, m]\nout C[n, n]\n"
                           "C[i, j] += A[i, k] * B[j, k] + B[i, k] * A[j, k] + A[i, k] * A[j, k]\n", tile=4)
ts.show_pass(mixed, "tile")

# %% [markdown]
# ... and `blas-calls` makes each row of tiles right of the diagonal three `dgemm` calls over the
# whole row (BLAS blocks for its cache itself), and each row of a diagonal tile three `dgemv`s.

# %%
ts.show_pass(mixed, "blas-calls")
small = mixed.random_inputs({"n": 10, "m": 3}, seed=1)
assert systec_ref.check(mixed, small).ok
A_, B_ = small["A"], small["B"]
assert np.allclose(mixed.run(backend="c", **small), A_ @ B_.T + B_ @ A_.T + A_ @ A_.T)

# %% [markdown]
# Symmetry can stand in BLAS's way. TTM (`C[i,j,l] += A[k,j,l] * B[k,i]`, A symmetric in all three
# modes) visits the canonical points `k <= j <= l` of A and makes three scattered updates at each:
# `n³/2` multiply-adds per column of B, no BLAS shape. C is symmetric in `(j,l)` (because A is), and
# computing only its triangle `j <= l` costs the same `n³/2`: the sum index `k` is the only one of
# A's set that C does not keep, so the full set saves reads of A but no arithmetic. The first pass,
# `gemm-form`, takes that trade: it declares A symmetric in `(j,l)` only, reads it as `A[j,l,k]`
# (the same value) and puts the triangle outermost; each row `j` of the triangle then is one
# `dgemm`, its diagonal entry a `dgemv`.

# %%
ttm = systec_ref.load(ts.EXAMPLES / "ttm.ein")
ts.show_pass(ttm, "gemm-form")
ts.show_pass(ttm, "blas-calls", draw=False)
small = ttm.random_inputs({"n": 7, "r": 3}, seed=2)
assert systec_ref.check(ttm, small).ok

# %% [markdown]
# MTTKRP (`C[i,j] += A[i,k,l] * B[l,j] * B[k,j]`) is the other way round: the output keeps one index
# of A's set, `i`, and the symmetry of the two summed ones, `k <= l`, costs as many multiply-adds as
# the whole set. With `k` outermost, the sum over `l` of `2 * A[k,l,i] * B[l,j] * B[k,j]` is a matrix
# product once the factor `B[k,j]`, which does not move with `l`, is folded into a copy of `B`:
# `blas-calls` writes that copy as a nest of its own (counted like any copy, run by the interpreter)
# and calls `dgemm` on it.

# %%
mttkrp3 = systec_ref.load(ts.EXAMPLES / "mttkrp3.ein")
ts.show_pass(mttkrp3, "blas-calls", draw=False)
small = mttkrp3.random_inputs({"n": 7, "r": 3}, seed=2)
assert systec_ref.check(mttkrp3, small).ok

# %% [markdown]
# ## Holding only the canonical entries: packed storage
#
# A symmetric input is determined by its canonical entries, `n(n+1)(n+2)/6` of `n³` for MTTKRP's A.
# `PackedTensor` holds just those, in one flat array (the layout is in `systec_ref/storage/packed.py`),
# and a kernel handed one is compiled for it: the C reads each entry at its offset in that array.

# %%
big = mttkrp3.random_inputs({"n": 60, "r": 32}, seed=3)
A_packed = systec_ref.PackedTensor.from_dense(big["A"], ((0, 1, 2),))
print(A_packed.report("A"))
assert np.allclose(mttkrp3.run(A=A_packed, B=big["B"]), mttkrp3.run(**big))

# %% [markdown]
# BLAS cannot read a packed array, so `blas-calls` copies the slab each `dgemm` multiplies,
# `A_S0[l,i] = A[k,l,i]`, out of it first — a nest of its own, split where `i` passes `k` and `l`
# so that each piece reads its entries in an order the loops prove sorted (no sorting per read).
# With fewer than 24 columns in the product (`r` here) the copy would cost more than the matrix
# product saves, and the kernel runs the whole symmetric set's nests instead.

# %%
packed_kernel = mttkrp3.for_data(mttkrp3.bind({"A": A_packed, "B": big["B"]})[0])
ts.show_pass(packed_kernel, "blas-calls", draw=False)

# %% [markdown]
# The C is cached under `$SYSTEC_REF_CACHE` (default `~/.cache/systec_ref`), keyed by a hash of the
# source, the compiler's version and the flags (`$CC`, `$CFLAGS`); a second run of this tutorial
# compiles nothing.
#
# ## Exercise
#
# Time SYPRD (`examples/syprd.ein`, `s = xᵀAx`) the same way for `n = 2000`, against its baseline
# and against numpy's `x @ (A @ x)`. Before you run it: the symmetric kernel reads half of `A`,
# like SSYMV — do you expect the same ratio to the baseline? Check the C with
# `systec_ref.load("examples/syprd.ein").c_source()` and the counts with `kernel.interpret(...).counts`.
