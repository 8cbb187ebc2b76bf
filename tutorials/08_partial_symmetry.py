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
# # 8. Partial symmetry: a 4-tensor symmetric in (0,1) and in (2,3)
#
# Electron-repulsion integrals `(ij|kl)` of quantum chemistry are a 4-tensor that is symmetric
# under `i↔j` and, separately, under `k↔l` (and also under `(ij)↔(kl)`, which we leave aside). The
# Coulomb matrix of a density `D` is `J[i,j] = Σ_kl (ij|kl) D[k,l]`. The compiler handles such
# *partial* symmetry as a product: one canonical triangle per group, rearrangements that are
# products of the per-group rearrangements.
#
# **About the data.** `pyscf`, which would compute real integrals of a real molecule, is not
# installed here, so this tutorial **generates** a tensor with the same pair symmetry from a 1-D
# model: Gaussian basis functions on a grid, their pair densities `ρ_ij = φ_i φ_j`, and a
# softened Coulomb interaction `1/sqrt(Δx² + 1)`. It is a genuine two-electron integral of that
# model, not random numbers — but it is a model, not a molecule.

# %%
import numpy as np
import tutorials_support as ts

import systec_ref
from systec_ref.storage import SparseTensor

n = 6                                             # basis functions
grid = np.linspace(-8.0, 8.0, 161)
h = grid[1] - grid[0]
centers = np.linspace(-2.5, 2.5, n)
exponents = np.linspace(0.6, 1.4, n)
phi = np.exp(-exponents[:, None] * (grid[None, :] - centers[:, None]) ** 2)  # phi[a, x]
V = 1.0 / np.sqrt((grid[:, None] - grid[None, :]) ** 2 + 1.0)               # soft Coulomb

pairs = [(i, j) for i in range(n) for j in range(i, n)]                      # canonical pairs i <= j
rho = np.array([phi[i] * phi[j] for i, j in pairs])                          # pair densities
eri_canonical = (rho @ V @ rho.T) * h * h                                     # (ij|kl) for i<=j, k<=l
index = {p: t for t, p in enumerate(pairs)}
G = np.empty((n, n, n, n))
for i in range(n):
    for j in range(n):
        for k in range(n):
            for l in range(n):
                G[i, j, k, l] = eri_canonical[index[min(i, j), max(i, j)], index[min(k, l), max(k, l)]]

print("G[i,j,k,l] == G[j,i,k,l] exactly:", bool(np.array_equal(G, G.transpose(1, 0, 2, 3))))
print("G[i,j,k,l] == G[i,j,l,k] exactly:", bool(np.array_equal(G, G.transpose(0, 1, 3, 2))))
print("(ij|kl) == (kl|ij) to rounding (the symmetry we do not use):",
      bool(np.allclose(G, G.transpose(2, 3, 0, 1), rtol=1e-12, atol=0)))

# %% [markdown]
# A density matrix from the two lowest eigenvectors of the model's overlap matrix — any matrix
# would do, `D` is not declared symmetric in the kernel:

# %%
S = phi @ phi.T * h
_, vecs = np.linalg.eigh(S)
occupied = vecs[:, :2]
D = 2.0 * occupied @ occupied.T
ts.show_source(ts.EXAMPLES / "coulomb.ein")
k = systec_ref.load(ts.EXAMPLES / "coulomb.ein")

# %% [markdown]
# ## Two permutable sets
#
# `G[i,j,k,l]` with the groups `(0,1)` and `(2,3)` proposes two disjoint sets, `{i,j}` and `{k,l}`.
# `restrict-iteration` makes both triangular — the iteration space is the *product* of two
# triangles — and the body runs once per distinct rearrangement of each group.

# %%
print("identify-symmetry:", k.stage("identify-symmetry").note)
ts.show_pass(k, "restrict-iteration")

# %% [markdown]
# `define-assignments` spells out the product: for each group, its two equality patterns (`<`,
# `==`); for each combination, the rearrangements of one group times those of the other — the
# outer block chooses the pattern of `(i,j)`, the inner block that of `(k,l)`:

# %%
ts.show_pass(k, "define-assignments")

# %% [markdown]
# `J` comes out symmetric too — `replicate-output` sees that the updates of `J[i,j]` and `J[j,i]`
# pair up (the symmetry of `G` in `(0,1)` makes it so) and keeps only the canonical triangle of `J`
# plus a mirror:

# %%
ts.show_pass(k, "replicate-output")

# %% [markdown]
# ## Checked on the model integrals, and counted
#
# Every stage agrees with the definition on the generated `G` and `D`, and with `numpy.einsum`.
# The reads of `G` show the product of the two triangles: `(n(n+1)/2)²` instead of `n⁴` — each
# canonical integral read exactly once.

# %%
inputs = {"G": G, "D": D}
report = ts.verify(k, inputs, label="coulomb on the model integrals")
ts.counts_table(report, ["lower", "normalize", "replicate-output", "unroll-and-jam"])
c0, c = report.stages[0].counts, report.stages[-1].counts
tri = n * (n + 1) // 2
print(f"\nreads of G: naive {c0.reads['G']} (= n^4), final {c.reads['G']} (= (n(n+1)/2)^2 = {tri * tri}), "
      f"distinct {c.distinct['G']}; mirror copies of J: {c.copies}")
assert c0.reads["G"] == n ** 4 and c.reads["G"] == c.distinct["G"] == tri * tri
assert c.copies == n * (n - 1) // 2
J = k.run(**inputs)
print("agrees with numpy.einsum('ijkl,kl->ij'):", bool(np.allclose(J, np.einsum("ijkl,kl->ij", G, D))))
print("J is exactly symmetric:", bool(np.array_equal(J, J.T)))

# %% [markdown]
# ## Memory
#
# The same product structure applies to storage: keeping only canonical entries (sorted within each
# group) stores `(n(n+1)/2)²` numbers. `SparseTensor` (tutorial 9) does that, with the declared
# groups, and reports what it saves — here against the same compressed format holding every
# permutation:

# %%
stored = SparseTensor.from_dense(G, symmetry=((0, 1), (2, 3)), name="G")
print(stored.report("G"))
assert stored.stored == tri * tri

# %% [markdown]
# The remaining symmetry, `(ij|kl) = (kl|ij)`, would save another factor of about 2. It is not a
# product of full symmetric groups (it swaps *pairs* of modes), which the compiler does not handle
# yet — a possible extension.
#
# ## Exercise
#
# A density matrix *is* symmetric. Declare it so (`in  D[n, n]  symmetric`, with
# `systec_ref.compile(text)` on a copy of `examples/coulomb.ein`), pass `(D + D.T) / 2`, and
# predict what changes in the counts: the reads of `D`, the number of updates into the
# accumulators (`local_updates`) and the multiplications. Check with `systec_ref.check` as above
# and look at `group-assignments` with `ts.show_pass`.
