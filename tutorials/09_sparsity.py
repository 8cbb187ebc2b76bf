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
# # 9. Sparsity: canonical-only storage, faces, and sparse loop nests
#
# A sparse tensor lets a kernel skip everything that is zero; a symmetric one lets it skip every
# non-canonical permutation. Together: store **only the canonical entries** (sorted subscripts in
# each symmetry group), which saves up to `k!` memory, and split them **by face** — the strict
# part and each diagonal face — so that each of the nests `split-diagonals` made (tutorial 5)
# iterates exactly the entries of its own face, with no equality test. This tutorial uses
# `systec_ref.storage.SparseTensor` directly, then the `sparse-iterate` pass that makes loop nests
# iterate it.

# %%
import itertools

import networkx as nx
import numpy as np
import tutorials_support as ts

import systec_ref
from systec_ref.storage import SparseTensor

# %% [markdown]
# ## Three ways in: `from_coo`, `from_dense`, `from_scipy`
#
# A symmetric sparse 3-tensor given by its canonical entries only (coordinates sorted), as COO.
# `check=False` says "these are the canonical entries, trust them"; the tensor they stand for has
# every permutation of each entry.

# %%
coords = np.array([[0, 1, 2], [0, 0, 3], [1, 1, 1], [1, 2, 2], [2, 3, 4], [0, 2, 4], [3, 3, 3], [1, 4, 4]])
values = np.arange(1.0, len(coords) + 1)
t = SparseTensor.from_coo(coords, values, (5, 5, 5), symmetry=((0, 1, 2),), check=False, name="T")
print(t.report("T"))
print("stored entries:", t.stored)
dense = t.to_dense()
full = sum(len(set(itertools.permutations(c))) for c in coords.tolist())
print(f"nonzeros of the full tensor: {np.count_nonzero(dense)} (= distinct permutations of the entries: {full})")
assert np.count_nonzero(dense) == full and t.stored == len(coords)

# %% [markdown]
# Going back and forth: `from_dense` of the full array finds the same canonical entries (and checks
# that the array really is symmetric). Given as COO with only *some* permutations, the conversion
# refuses, naming the largest difference and where; exact duplicate coordinates are summed, as in
# `scipy.sparse`.

# %%
again = SparseTensor.from_dense(dense, symmetry=((0, 1, 2),), name="T")
print("from_dense stores", again.stored, "entries; same tensor:", bool(np.array_equal(again.to_dense(), dense)))
try:
    SparseTensor.from_coo(coords, values, (5, 5, 5), symmetry=((0, 1, 2),), name="T")
except systec_ref.InputError as e:
    print(e)
dup = SparseTensor.from_coo([[0, 1], [0, 1], [1, 0], [1, 0]], [1.0, 2.0, 1.0, 2.0], (2, 2), symmetry=((0, 1),))
print("duplicates summed:", dup.to_dense().tolist())

# %% [markdown]
# ## Faces
#
# Stored entries are grouped by face: for each group, the equality pattern of its sorted
# subscripts as a bitmask (bit `t` set when the `t`-th and `(t+1)`-th are equal — the key of
# tutorial 6). Each face is its own compressed (CSF) tensor. Classifying the coordinates by hand
# gives the same split:

# %%
by_hand = {}
for c in coords.tolist():
    key = sum(1 << b for b in range(2) if c[b] == c[b + 1])
    by_hand[key] = by_hand.get(key, 0) + 1
rows = [[str(key), t.face_name(key), f.nnz, by_hand[key[0]]] for key, f in sorted(t.faces.items())]
print(ts.table(["face key", "face", "stored", "by hand"], rows))
assert {key[0]: f.nnz for key, f in t.faces.items()} == by_hand

# %% [markdown]
# ## A real graph: memory
#
# The karate-club graph (bundled with `networkx`) as a `scipy.sparse` adjacency matrix. Canonical
# storage keeps the upper triangle; the report compares with the same format holding every entry.

# %%
G = nx.karate_club_graph()
M = nx.to_scipy_sparse_array(G, nodelist=sorted(G), weight=None, format="csr").astype(np.float64)
A = SparseTensor.from_scipy(M, symmetry=((0, 1),), name="A")
print(A.report("A"))
print(f"the whole matrix has {M.nnz} stored entries, the canonical storage {A.stored}")
assert A.stored * 2 == M.nnz  # no self-loops: every edge stored once instead of twice

# %% [markdown]
# ## Sparse loop nests: `sparse-iterate` (SSYMV)
#
# Declare `A` `sparse`. After `split-diagonals`, each nest reads `A` on one face only; `sparse-iterate`
# turns its loops over `A`'s modes into iteration over the stored entries of that face: `for (_q0, i)
# in A<strict>.level0` binds a position `_q0` in the first level and its coordinate `i`, and so on;
# `A<strict>.vals[_q1]` is the stored value. The storage itself is built from the input by the same
# `SparseTensor` code, in the interpreter and in C.

# %%
sparse_ssymv = systec_ref.compile("""
kernel sparse_ssymv
in  A[n, n]  symmetric sparse
in  x[n]
out y[n]
y[i] += A[i, j] * x[j]
""")
ts.show_pass(sparse_ssymv, "sparse-iterate", header=True)

# %%
x = np.arange(1.0, M.shape[0] + 1)
report = ts.verify(sparse_ssymv, {"A": M, "x": x}, label="sparse SSYMV on the karate club")
ts.counts_table(report, ["lower", "split-diagonals", "sparse-iterate", "unroll-and-jam"])
c0, c = report.stages[0].counts, report.stages[-1].counts
print(f"\nreads of A: naive {c0.reads['A']} (= n^2), final {c.reads['A']} (= canonical entries stored: {A.stored}); "
      f"multiplications {c0.mults} -> {c.mults} (= entries of the full matrix: {M.nnz})")
assert c0.reads["A"] == M.shape[0] ** 2 and c.reads["A"] == A.stored and c.mults == M.nnz
print("equal to scipy's A @ x:", bool(systec_ref.agree(sparse_ssymv.run(A=M, x=x), M @ x, "float64")))

# %% [markdown]
# ## How a kernel is handed the storage: formats chosen from the data (`fuse-faces`)
#
# The stages above index the storage with 64-bit positions and coordinates and iterate every level
# as compressed: the compile knows nothing of the data. `run`, `prepare` and `einsum` do see it, and
# choose a *storage format* for it: 32-bit indices where they fit, and a **dense first level** (every
# coordinate, no coordinate array) where a face is nearly full — for a matrix with no empty row,
# the rows of the strict triangle, and the diagonal as a plain vector. A 2-D Poisson matrix (the
# 5-point Laplacian on a 6×6 grid) has both. `Kernel.for_data` gives the kernel compiled for the
# chosen format; its `sparse-iterate` note names it.

# %%
import scipy.sparse as sp  # noqa: E402

line = sp.diags([-np.ones(5), 2 * np.ones(6), -np.ones(5)], [-1, 0, 1])
P = (sp.kron(line, sp.eye(6)) + sp.kron(sp.eye(6), line)).tocsr()
Pt = SparseTensor.from_scipy(P, symmetry=((0, 1),), name="P")
print(Pt.report("P"))
xs = np.arange(1.0, P.shape[0] + 1)
chosen = sparse_ssymv.for_data({"A": Pt, "x": xs})
print(chosen.stage("sparse-iterate").note)

# %% [markdown]
# The strict nest and the diagonal nest now both run over every row `i = 0 .. n-1`: `fuse-faces`
# makes them one loop, so `x` and `y` are swept once instead of twice (and `hoist-reads` then
# reads `x[i]` once for both). The fused bodies only add into `y`, which neither reads: running
# them in one loop only reorders additions.

# %%
ts.show_pass(chosen, "fuse-faces")

# %% [markdown]
# With every row in one loop, the order of the rows can be chosen: swept from the **last** row to the
# first (`reverse-sweep`), row `i` scatters `A[i,j] * x[i]` only into rows `j > i` that are already
# done, and nothing has touched `y[i]` before its own row runs, so the row *assigns* `y[i]` — and `y`
# needs no zeroing pass before the kernel (the header says `no init`). The interpreter starts such an
# output at NaN: an element that were not assigned first would show in every check.

# %%
ts.show_pass(chosen, "reverse-sweep")
report_p = ts.verify(chosen, {"A": Pt, "x": xs}, label="sparse SSYMV, formats chosen from the data")
print("equal to scipy's P @ x:", bool(systec_ref.agree(sparse_ssymv.run(A=P, x=xs), P @ xs, "float64")))

# %% [markdown]
# ## Sparse MTTKRP-3: one storage face per nest
#
# For a sparse symmetric 3-tensor each of the four nests of `split-diagonals` iterates its own
# face — the strict nest the strict entries, the face `i < k == l` the entries stored under
# `m1==m2`, and so on — so no nest ever tests for equality.

# %%
sparse_mttkrp3 = systec_ref.compile(
    (ts.EXAMPLES / "mttkrp3.ein").read_text(encoding="utf-8").replace("symmetric", "symmetric sparse"))
ts.show(sparse_mttkrp3, "sparse-iterate")

# %%
inputs = sparse_mttkrp3.random_inputs({"n": 9, "r": 2}, seed=3, density=0.25)
A3 = SparseTensor.from_dense(inputs["A"], symmetry=((0, 1, 2),), name="A")
print(A3.report("A"))
report3 = ts.verify(sparse_mttkrp3, inputs, label="sparse MTTKRP-3")
ts.counts_table(report3, ["lower", "split-diagonals", "sparse-iterate", "unroll-and-jam"])
c3 = report3.stages[-1].counts
print(f"\nreads of A in the final nest: {c3.reads['A']} = canonical entries stored: {A3.stored}")
assert c3.reads["A"] == A3.stored

# %% [markdown]
# ## Sparse TTM: a mirror sized to the work
#
# `replicate-output` computes TTM's output `C[i,j,l]` on its canonical triangle `j <= l` and then
# mirrors it over the whole output: `r*n*n` steps, however few entries `A` stores. The last pass,
# `mirror-written`, repeats the nests over the stored entries with each update turned into a copy
# onto its mirror image, and chooses at run time: those copies when there are fewer of them than
# elements of `C`, the full mirror otherwise.

# %%
sparse_ttm = systec_ref.load(ts.EXAMPLES / "sparse" / "ttm.ein")
ts.show_pass(sparse_ttm, "mirror-written")

# %%
for density in (0.01, 1.0):
    inputs = sparse_ttm.random_inputs({"n": 12, "r": 2}, seed=1, density=density)
    res = sparse_ttm.interpret(inputs)
    assert systec_ref.agree(res.value, sparse_ttm.definition(inputs).value, "float64")
    print(f"density {density}: {res.counts.copies} copies for {res.counts.work} updates "
          f"(the full mirror alone visits {2 * 12 * 12} elements)")

# %% [markdown]
# ## Exercise
#
# A *dense* symmetric `n×n×n` tensor, converted with `SparseTensor.from_dense(a, symmetry=((0, 1, 2),))`,
# stores how many entries, and how many on each face? (Count the multisets of size 3 from `n`
# values, then split them by which neighbours are equal.) Check with `.stored` and `.faces` for
# `a = systec_ref.load("examples/mttkrp3.ein").random_inputs({"n": 6, "r": 1})["A"]`, and compare
# `.report()`'s ratio with `3! = 6`: why is it smaller?
