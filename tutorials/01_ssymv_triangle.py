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
# # 1. The canonical triangle and `restrict-iteration` (SSYMV)
#
# `y[i] += A[i,j] * x[j]` with `A` symmetric. Every element above the diagonal has a twin below it,
# so half of `A` carries all the information. This tutorial follows the compiler from the naive
# nest to a nest that reads each element of the upper triangle once, and then shows what happens
# when the diagonal — the one place where the two halves meet — is handled wrongly.
#
# Passes taught here: `identify-symmetry`, `restrict-iteration` (and a first look at
# `define-assignments` and `normalize`, the subjects of tutorials 2 and 3).

# %%
import numpy as np
import tutorials_support as ts

import systec_ref
from systec_ref.ir.nodes import Assign, Block, DimSize, Elem, IConst, Idx, Loop, Mul, Program, Read
from systec_ref.ir.printer import print_program

k = systec_ref.load(ts.EXAMPLES / "ssymv.ein")
n = 8
inputs = k.random_inputs({"n": n}, seed=0)

# %% [markdown]
# ## The identity behind it
#
# Take the two loop variables `(i, j)`. Every point of the full square is *one* point with sorted
# coordinates, `i ≤ j` — the **canonical triangle** — together with one *distinct* rearrangement of
# those coordinates: a point off the diagonal has two (`(i,j)` and `(j,i)`), a point on it only one.
# So a sum over the square is a sum over the triangle of a sum over the distinct rearrangements.
# This needs no symmetry at all — it is bookkeeping — and we can count it:

# %%
triangle = [(i, j) for i in range(n) for j in range(i, n)]
rearrangements = {p: len({p, p[::-1]}) for p in triangle}
print(f"n = {n}: {n * n} points in the square, {len(triangle)} in the canonical triangle")
print("points with 2 distinct rearrangements:", sum(r == 2 for r in rearrangements.values()),
      "  with 1 (the diagonal):", sum(r == 1 for r in rearrangements.values()))
assert sum(rearrangements.values()) == n * n
assert len(triangle) == n * (n + 1) // 2

# %% [markdown]
# ## identify-symmetry
#
# The compiler first finds the **permutable set**: the loop variables at the symmetric positions of
# a symmetric read — here `A[i,j]` proposes `{i,j}`. The pass changes no loop; it records what it
# found as *facts* (typed fields of the program, printed as `#   permutable: ...` lines of its
# header, hence `header=True`). Its before/after diagram is therefore unchanged; the facts are the
# change.

# %%
ts.show_pass(k, "identify-symmetry", header=True)

# %% [markdown]
# ## restrict-iteration
#
# Now the loops over the set get triangular bounds (`for j in i..n`), and the body is wrapped in a
# "for each distinct rearrangement" node. By the identity above, this program computes exactly what
# the naive one does — whatever the statement. It is still a program the interpreter runs.

# %%
ts.show_pass(k, "restrict-iteration")

# %% [markdown]
# The counts prove the point: the loops run fewer iterations (the triangle, not the square), but
# every update of the full space is still done — nothing has been saved yet, and nothing lost.

# %%
report = ts.verify(k, inputs)
ts.counts_table(report, ["lower", "identify-symmetry", "restrict-iteration"])
c0, c3 = ts.stage_counts(report, "lower"), ts.stage_counts(report, "restrict-iteration")
assert c3.updates == c0.updates == n * n and c3.iterations < c0.iterations

# %% [markdown]
# ## Where the saving comes from
#
# `define-assignments` spells the rearrangements out: one block per *equality pattern* (`i < j` and
# `i == j`), each with its distinct rearrangements of the whole statement — the left-hand side
# included, so the off-diagonal block also updates `y[j]`. Then `normalize` sorts the subscripts of
# every symmetric read, so `A[j,i]` becomes `A[i,j]`: now **only the canonical triangle of A is
# ever read**.

# %%
ts.show_pass(k, "define-assignments")

# %%
ts.show_pass(k, "normalize")

# %% [markdown]
# Watch the column *distinct elements read*: after `normalize` only the upper triangle of `A` is
# touched. The total number of reads drops to the same figure once `hoist-reads` (tutorial 7) loads
# `A[i,j]` once for the two updates that use it.

# %%
ts.counts_table(report)
c_norm, c_final = ts.stage_counts(report, "normalize"), report.stages[-1].counts
print(f"\ndistinct elements of A read: naive {c0.distinct['A']}, after normalize {c_norm.distinct['A']}; "
      f"reads of A in the final nest: {c_final.reads['A']} (= n(n+1)/2 = {n * (n + 1) // 2})")
assert c0.distinct["A"] == n * n
assert c_norm.distinct["A"] == c_final.reads["A"] == n * (n + 1) // 2

# %% [markdown]
# ## Only the triangle is read: a test you can see
#
# Counting reads is one proof; here is another. Fill the lower triangle of `A` with `NaN` and run
# with `check=False` (which skips the check that `A` really is symmetric). Any read of the lower
# triangle would poison the result with `NaN`. The optimized nest gives exactly the right answer;
# the naive nest does not.

# %%
A_nan = inputs["A"].copy()
A_nan[np.tril_indices(n, -1)] = np.nan
y_right = k.run(**inputs)
y_opt = k.run(A=A_nan, x=inputs["x"], check=False)
y_naive = k.run(A=A_nan, x=inputs["x"], check=False, optimize=False)
print("optimized nest, lower triangle NaN: equal to the right answer:", bool(np.array_equal(y_opt, y_right)))
print("naive nest,     lower triangle NaN: NaN entries in y:", int(np.isnan(y_naive).sum()), "of", n)
assert np.array_equal(y_opt, y_right) and np.isnan(y_naive).any()

# %% [markdown]
# Without `check=False`, inputs are checked first, and the error says where the asymmetry is:

# %%
try:
    k.run(A=A_nan, x=inputs["x"])
except systec_ref.InputError as e:
    print(e)

# %% [markdown]
# ## What it costs to get the diagonal wrong
#
# The classic hand-written "symmetric" kernel loops over the triangle and applies *both*
# rearrangements everywhere — forgetting that a diagonal point has only one. A loop nest is data,
# so we can write that kernel directly in the IR and let the same interpreter run it:

# %%
i, j, N = Idx("i"), Idx("j"), DimSize("n")
by_hand = Program("ssymv_by_hand", k.naive.tensors, Block((
    Loop("i", IConst(0), N, Block((
        Loop("j", i, N, Block((
            Assign(Elem("y", (i,)), "+", Mul((Read("A", (i, j)), Read("x", (j,))))),
            Assign(Elem("y", (j,)), "+", Mul((Read("A", (i, j)), Read("x", (i,))))),
        ))),
    ))),
)))
print(print_program(by_hand, header=False))
wrong = k.interpret(inputs, stage=by_hand).value
verdict = systec_ref.agree(wrong, k.definition(inputs).value, "float64")
print("agrees with the definition:", verdict.ok, "-", verdict.detail)
diagonal_terms = np.diag(inputs["A"]) * inputs["x"]
print("error == diag(A) * x (to rounding):", bool(systec_ref.agree(wrong - y_right, diagonal_terms, "float64")))

# %% [markdown]
# Each diagonal term is counted twice. On small random tests with entries of both signs this is
# glaring. But tests are often written with `np.random.rand` (entries in [0, 1)), and a *relative*
# tolerance: then the diagonal is one term among `n` of the same sign, and the relative error
# shrinks like `1/n`. The published artifact's test accepted a 10% relative error — so it could not
# see this bug once `n` was moderately large. Our comparison (`systec_ref.agree`, 1e-12) always does:

# %%
rng = np.random.default_rng(7)
rows = []
for size in (4, 8, 16, 32):
    M = rng.random((size, size))
    data = {"A": np.triu(M) + np.triu(M, 1).T, "x": rng.random(size)}
    got = k.interpret(data, stage=by_hand).value
    want = k.definition(data).value
    rel = float(np.max(np.abs(got - want) / np.abs(want)))
    ours = bool(systec_ref.agree(got, want, "float64"))
    rows.append([size, f"{rel:.3f}", "passes" if rel <= 0.10 else "fails", ours])
print(ts.table(["n", "largest relative error", "a 10% test", "systec_ref.agree"], rows))
assert any(r[2] == "passes" for r in rows) and not any(r[3] for r in rows)

# %% [markdown]
# The compiler cannot make this mistake: the diagonal is its own equality pattern with its own
# (single) rearrangement, and `split-diagonals` (tutorial 5) gives it its own loop, with no test in
# the hot loop:

# %%
ts.show(k, "split-diagonals")

# %% [markdown]
# ## Exercise
#
# Fix `by_hand`: keep the two updates for `j` in `i+1..n` (use `IPlus(i, 1)` from
# `systec_ref.ir.nodes` as the lower bound) and add a second loop over `i` for the diagonal with the
# single update `y[i] += A[i,i] * x[i]`. Check it with
# `systec_ref.agree(k.interpret(inputs, stage=fixed).value, k.definition(inputs).value, "float64")`,
# and check with `k.interpret(inputs, stage=fixed).counts` that it reads `A` as often as the
# compiler's `split-diagonals` stage.
