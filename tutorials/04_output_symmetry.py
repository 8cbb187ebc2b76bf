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
# # 4. Output symmetry: visible (SSYRK), invisible (TTM), and `replicate-output`
#
# Sometimes it is the *output* that is symmetric. Then only its canonical triangle needs to be
# computed; a final loop mirrors it onto the rest. There are two ways to know that an output is
# symmetric:
#
# * **visible**: swapping two output subscripts leaves the right-hand side unchanged, up to
#   commutativity of `*` — SSYRK, `C[i,j] += A[i,k] * A[j,k]`. A *swap test* on the text finds it,
#   before any expansion (`identify-symmetry`).
# * **invisible**: the output is symmetric only *because an input is* — TTM,
#   `C[i,j,l] += A[k,j,l] * B[k,i]` with `A` symmetric. The text alone does not show it; it appears
#   after `define-assignments` and `normalize`, when pairs of updates have equal right-hand sides
#   and swapped output subscripts (`replicate-output`).

# %%
import numpy as np
import tutorials_support as ts

import systec_ref
from systec_ref.ir.printer import fmt_value

ssyrk = systec_ref.load(ts.EXAMPLES / "ssyrk.ein")
# blas=False: the passes of the paper on A's whole symmetric set (with BLAS calls on, `gemm-form`
# first keeps only the part of it that makes matrix products: tutorial 10)
ttm = systec_ref.load(ts.EXAMPLES / "ttm.ein", blas=False)
ts.show_source(ts.EXAMPLES / "ssyrk.ein")
print()
ts.show_source(ts.EXAMPLES / "ttm.ein")

# %% [markdown]
# ## The swap test, by hand
#
# Write each right-hand side as a multiset of reads (a product commutes), swap two output
# subscripts, and compare — knowing nothing about any tensor's symmetry:


# %%
def swap_test(reads, a, b):
    """Is the product of `reads` unchanged when index names a and b are swapped?"""
    swap = {a: b, b: a}
    swapped = [(t, tuple(swap.get(x, x) for x in idx)) for t, idx in reads]
    return sorted(swapped) == sorted(reads)


print("SSYRK, swap i<->j:", swap_test([("A", ("i", "k")), ("A", ("j", "k"))], "i", "j"))
print("TTM,   swap j<->l:", swap_test([("A", ("k", "j", "l")), ("B", ("k", "i"))], "j", "l"))

# %% [markdown]
# The compiler's `identify-symmetry` agrees. For SSYRK it reports *visible output symmetry* and
# makes `{i,j}` the permutable set. For TTM it only sees the input symmetry of `A`, which proposes
# the larger set `{k,j,l}` — including the reduced index `k`:

# %%
for kern in (ssyrk, ttm):
    print(f"{kern.name}: {kern.stage('identify-symmetry').note}")

# %% [markdown]
# ## SSYRK: visible symmetry, replicate-output
#
# With `{i,j}` permutable, `define-assignments` gives the strict block two updates, `C[i,j]` and
# `C[j,i]`, with the same right-hand side. `replicate-output` keeps the one that writes the
# canonical triangle (`i ≤ j`) — **not doubled**: the other half is supplied by a mirror loop
# added at the end, which copies the canonical triangle onto the rest of `C`.

# %%
ts.show_pass(ssyrk, "replicate-output", header=True)

# %%
n, m = 5, 3
report = ts.verify(ssyrk, ssyrk.random_inputs({"n": n, "m": m}, seed=0))
ts.counts_table(report, ["lower", "group-assignments", "replicate-output", "unroll-and-jam"])
before, after = ts.stage_counts(report, "group-assignments"), ts.stage_counts(report, "replicate-output")
print(f"\nupdates: {before.updates} -> {after.updates} (= m * n(n+1)/2 = {m * n * (n + 1) // 2}); "
      f"mirror copies: {after.copies} (= n(n-1)/2 = {n * (n - 1) // 2})")
assert before.updates == m * n * n and after.updates == m * n * (n + 1) // 2
assert after.copies == n * (n - 1) // 2
C = ssyrk.run(**ssyrk.random_inputs({"n": n, "m": m}, seed=0))
print("C is exactly symmetric:", bool(np.array_equal(C, C.T)))

# %% [markdown]
# ## TTM: invisible symmetry, found after expansion
#
# After `normalize`, every read of `A` in a block is the same canonical read, and updates that
# write `C[i,j,l]` and `C[i,l,j]` now carry identical right-hand sides. Let us look for those pairs
# ourselves in the `normalize` stage. An output subscript pair is *canonical* when it is sorted in
# the order of the permutable set `(k, j, l)` (inside the simplex `k ≤ j ≤ l`); an update outside it
# with a partner inside it is redundant.

# %%
rank = {"k": 0, "j": 1, "l": 2}
blocks = {}
for face, u in ts.updates(ttm.stage("normalize").program):
    target = tuple(x.name for x in u.target.idx)
    blocks.setdefault(face, []).append((target, fmt_value(u.value)))
rows, redundant = [], 0
for face, ups in blocks.items():
    have = set(ups)
    for (i_, a, b), rhs in ups:
        partner = ((i_, b, a), rhs) in have
        drop = partner and rank[a] > rank[b]
        redundant += drop
        rows.append([face, f"C[{i_},{a},{b}] += {rhs}", "yes" if partner else "no", "dropped" if drop else "kept"])
print(ts.table(["face", "update", "swapped partner (or itself)", "replicate-output"], rows))
print(f"\nredundant updates found by hand: {redundant} of {len(rows)}")

# %% [markdown]
# The compiler finds the same pairs (its note counts the updates it dropped), and adds the mirror
# over modes `(1,2)` of `C`:

# %%
ts.show_pass(ttm, "replicate-output")
note = ttm.stage("replicate-output").note
print()
print("compiler:", note)
assert f"{redundant} of {len(rows)} updates dropped" in note

# %% [markdown]
# The counts, and the proof that the output is symmetric although nothing in the text says so:

# %%
n, r = 5, 2
inputs = ttm.random_inputs({"n": n, "r": r}, seed=0)
report = ts.verify(ttm, inputs)
ts.counts_table(report, ["lower", "normalize", "replicate-output", "unroll-and-jam"])
c_norm, c_rep = ts.stage_counts(report, "normalize"), ts.stage_counts(report, "replicate-output")
print(f"\nupdates: {c_norm.updates} -> {c_rep.updates}; mirror copies: {c_rep.copies} (= r * n(n-1)/2 = "
      f"{r * n * (n - 1) // 2})")
assert c_rep.copies == r * n * (n - 1) // 2 and c_rep.updates < c_norm.updates
C = ttm.run(**inputs)
print("C[i] is exactly symmetric for every i:", bool(np.array_equal(C, C.transpose(0, 2, 1))))

# %% [markdown]
# ## Exercise
#
# `examples/coulomb.ein` computes `J[i,j] += G[i,j,k,l] * D[k,l]` with `G` symmetric in `(0,1)` and
# in `(2,3)`. Is `J` symmetric, and is that visible or invisible? Run the swap test above on its
# reads, then check with `systec_ref.load("examples/coulomb.ein").stage("replicate-output").note`
# and count the mirror copies for `n = 4` with `systec_ref.check`. (Tutorial 8 is about this kernel.)
