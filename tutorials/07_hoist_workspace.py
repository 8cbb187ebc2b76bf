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
# # 7. `hoist-reads`, shared partial products, `workspace` and `unroll-and-jam`: the last factor
#
# The symmetry passes decide *what* is computed. The last passes decide how often each value is
# loaded and multiplied, and where partial sums live — they do not depend on symmetry and run in
# the baseline too (`symmetry=False`), so a speedup over the baseline is never a speedup over a
# deliberately slow loop. They matter more after symmetrization, because the rearranged updates of
# one canonical point share almost all their operands.
#
# * `hoist-reads`: read each element once; compute loop-invariant factors once; share prefix and
#   suffix products between updates that each multiply all but one of the same factors;
# * `workspace`: an update whose target does not move with its loop accumulates in a scalar that is
#   written back once (the `temp` of BLAS `dsymv`);
# * `unroll-and-jam`: rows of a triangular nest share one sweep of the inner loop (register blocking).

# %%
import dataclasses

import tutorials_support as ts

import systec_ref
from systec_ref.ir.nodes import Block
from systec_ref.ir.printer import print_program

# %% [markdown]
# ## hoist-reads (MTTKRP-3)
#
# Three things happen in the pass below: `2 * A[i,k,l]` does not depend on `j`, so it is computed
# once per canonical point, before the `j` loop (a `let`); `B[k,j]`, `B[l,j]`, `B[i,j]` are each
# loaded once for the three updates that use them; and the three products of "all factors but one"
# share partial products.

# %%
# blas=False: the passes of the paper on A's whole symmetric set (with BLAS calls on, `gemm-form`
# first keeps only the part of it that makes matrix products: tutorial 10)
k3 = systec_ref.load(ts.EXAMPLES / "mttkrp3.ein", blas=False)
ts.show_pass(k3, "hoist-reads")

# %% [markdown]
# ## Shared partial products, counted (MTTKRP-5)
#
# In the strict part of an order-5 MTTKRP, each canonical point makes five updates per column `j`,
# each the product of the (hoisted) `24·A` with four of the five rows `B[i,j] … B[o,j]`. Done
# separately that is `m(m-1)` multiplications for `m = 5` factors; with prefix and suffix products
# it is `3m-4`. Each top-level nest is a program of its own, so we run the strict nest alone,
# before and after the pass, and count:

# %%
k5 = systec_ref.load(ts.EXAMPLES / "mttkrp5.ein", blas=False)
n, r = 7, 3
inputs5 = k5.random_inputs({"n": n, "r": r}, seed=0)


def strict_nest(stage):
    prog = k5.stage(stage).program
    first = prog.body.body[0]
    assert first.comment.startswith("strict part")
    return dataclasses.replace(prog, body=Block((first,)))


before = k5.interpret(inputs5, stage=strict_nest("sparse-iterate")).counts
after = k5.interpret(inputs5, stage=strict_nest("hoist-reads")).counts
print(print_program(strict_nest("hoist-reads"), header=False))
points = before.updates // (5 * r)  # canonical strict points: C(n, 5)
m = 5
print(ts.table(["strict nest", *ts.COUNT_HEADERS], [["before hoist-reads", *ts.counts_row(before)],
                                                    ["after hoist-reads", *ts.counts_row(after)]]))
print(f"\n{points} strict points x {r} columns")
print(f"mults per point and column before: {before.mults / (points * r):g} (= 5 updates x 5 = {5 * 5})")
print(f"mults per point and column after:  {(after.mults - points) / (points * r):g} (= 3m-4 = {3 * m - 4}), "
      f"plus {after.mults - points * r * (3 * m - 4)} for 24*A, once per point")
print(f"reads of B per point and column: {before.reads['B'] // (points * r)} -> {after.reads['B'] // (points * r)}; "
      f"reads of A per point: {before.reads['A'] // points} -> {after.reads['A'] // points}")
assert before.mults == points * r * 5 * 5
assert after.mults == points * (1 + r * (3 * m - 4))
assert after.reads["B"] == points * r * m and after.reads["A"] == points

# %% [markdown]
# ## workspace (SSYMV)
#
# After the symmetry passes, the strict nest of SSYMV updates `y[i]` inside the loop over `j` —
# a target that does not move with `j`. `workspace` accumulates it in a scalar that starts at the
# identity of `+` and is written back once after the loop: exactly BLAS `dsymv`'s `temp`.

# %%
ssymv = systec_ref.load(ts.EXAMPLES / "ssymv.ein")
ts.show_pass(ssymv, "workspace")

# %%
n = 9
report = ts.verify(ssymv, ssymv.random_inputs({"n": n}, seed=0))
ts.counts_table(report, ["lower", "hoist-reads", "workspace", "unroll-and-jam"])
h, w = ts.stage_counts(report, "hoist-reads"), ts.stage_counts(report, "workspace")
print(f"\nupdates of y in memory: {h.updates} -> {w.updates}; into the scalar: {w.local_updates}; "
      f"write-backs: {w.flushes}")
assert w.local_updates == n * (n - 1) // 2 and w.flushes == n and w.updates == h.updates - w.local_updates

# %% [markdown]
# ## unroll-and-jam (SSYMV)
#
# The strict nest loads and stores `y[j]` once per element of `A` it reads. Doing six rows `i..i+5`
# in one sweep over `j` loads and stores each `y[j]` (and loads `x[j]`) once for all six: the
# register blocking of `dsymv`. The first elements of the upper rows, which the lower rows do not
# have, are peeled into short loops; the last rows (fewer than six) run one at a time.

# %%
ts.show_pass(ssymv, "unroll-and-jam")

# %% [markdown]
# The arithmetic is unchanged; the inner loop runs about a sixth as many times, each time doing six
# rows' work:

# %%
u = ts.stage_counts(report, "unroll-and-jam")
print(f"mults {w.mults} -> {u.mults}; loop-body executions {w.iterations} -> {u.iterations}")
assert u.mults == w.mults and u.iterations < w.iterations

# %% [markdown]
# Tutorial 10 measures what these passes are worth in compiled C.
#
# ## Exercise
#
# MTTKRP-4's strict part makes four updates per canonical point and column. Predict its
# multiplications per point and column after `hoist-reads` (the formula above with `m = 4`), then
# check by running its strict nest alone, as `strict_nest` does here for MTTKRP-5.
