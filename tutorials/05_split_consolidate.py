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
# # 5. `split-diagonals` and `consolidate-blocks`: strict loops without tests, and code size
#
# After `group-assignments`, the canonical-simplex nest holds a chain of tests — `if i < k and
# k < l: … elif i < k and k == l: …` — evaluated at every canonical point, including the strict
# points, where most of the work is once `n` is large. `split-diagonals` turns each branch into its own loop nest:
# the strict part gets strict bounds (`k in i+1..n`) and no test at all; a face with an equality
# loses a loop. The price is code size: `2^(k-1)` nests for a set of `k` variables. Under the
# compile option `faces="compact"`, the diagonal faces stay together instead, and
# `consolidate-blocks` merges the faces whose updates are equal once *decoupled* from their pattern.

# %%
import dataclasses
import math
from collections import Counter

import tutorials_support as ts

import systec_ref
from systec_ref.ir.nodes import Block, If, Loop

# blas=False: the passes of the paper on A's whole symmetric set (with BLAS calls on, `gemm-form`
# first keeps only the part of it that makes matrix products: tutorial 10)
k3 = systec_ref.load(ts.EXAMPLES / "mttkrp3.ein", blas=False)
n, r = 6, 2
inputs3 = k3.random_inputs({"n": n, "r": r}, seed=0)

# %% [markdown]
# ## split-diagonals (MTTKRP-3)

# %%
ts.show_pass(k3, "split-diagonals")


# %% [markdown]
# Two things to measure. **Tests**: how many `if` nodes the program has, and how deep inside the
# loops they sit. **Work per nest**: each top-level nest after the split is itself a program the
# interpreter can run, so we can run them one at a time and see where the work is.

# %%
def tests(program):
    """(number of `if` nodes, deepest loop depth at which one sits)."""
    found = []

    def walk(s, depth):
        if isinstance(s, Block):
            for x in s.body:
                walk(x, depth)
        elif isinstance(s, Loop):
            walk(s.body, depth + 1)
        elif isinstance(s, If):
            found.append(depth)
            walk(s.then, depth)
            if s.orelse is not None:
                walk(s.orelse, depth)
    walk(program.body, 0)
    return len(found), max(found, default=0)


for stage in ("group-assignments", "split-diagonals"):
    count, depth = tests(k3.stage(stage).program)
    print(f"{stage:<18}: {count} if-nodes, the deepest inside {depth} loops")
assert tests(k3.stage("split-diagonals").program)[0] == 0


# %%
def loop_depth(s):
    if isinstance(s, Block):
        return max((loop_depth(x) for x in s.body), default=0)
    if isinstance(s, Loop):
        return 1 + loop_depth(s.body)
    return 0


split = k3.stage("split-diagonals").program
rows = []
for nest in split.body.body:
    one = dataclasses.replace(split, body=Block((nest,)))
    c = k3.interpret(inputs3, stage=one).counts
    rows.append([nest.comment.removesuffix(" (split-diagonals)"), loop_depth(nest), c.iterations, c.updates])
print(ts.table(["nest", "loops deep", "iterations", "updates"], rows))
total = k3.interpret(inputs3, stage="split-diagonals").counts
assert sum(row[3] for row in rows) == total.updates
assert [row[1] for row in rows] == [4, 3, 3, 2]  # the j loop, plus one loop per '<' of the pattern
print(f"\nthe strict part does {rows[0][3]} of {total.updates} updates")

# %% [markdown]
# All stages agree with the definition, and the split changes no arithmetic (the same mults and
# updates); what it removes is every test from the loops:

# %%
report3 = ts.verify(k3, inputs3)
ts.counts_table(report3, ["group-assignments", "split-diagonals"])
grouped, split_counts = ts.stage_counts(report3, "group-assignments"), ts.stage_counts(report3, "split-diagonals")
assert (grouped.mults, grouped.updates, grouped.reads) == (split_counts.mults, split_counts.updates, split_counts.reads)

# %% [markdown]
# ## Code size, and `faces="compact"` (MTTKRP-4)
#
# A set of `k` variables has `2^(k-1)` patterns, so `split-diagonals` writes that many nests:

# %%
k4 = systec_ref.load(ts.EXAMPLES / "mttkrp4.ein", blas=False)
k4c = systec_ref.load(ts.EXAMPLES / "mttkrp4.ein", faces="compact", blas=False)
for kern, label in ((k4, "split"), (k4c, "compact")):
    print(f"faces={label:<8} split-diagonals: {kern.stage('split-diagonals').note}")

# %% [markdown]
# With `faces="compact"` the strict part still gets its own test-free nest, but the diagonal faces
# share one nest over the canonical simplex with a chain of tests. `consolidate-blocks` shrinks that
# chain. **Decoupling**: on a face with runs of equal values of sizes `r1, r2, …`, the distinct
# rearrangements are the `k!` permutations each counted `r1!·r2!·…` times, so the face computes
# exactly the strict part's updates, written in the original variables, times
# `1/(r1!·r2!·…)`. Faces with the same product have *equal* decoupled updates and merge under one
# disjunction of their patterns.

# %%
ts.show_pass(k4c, "consolidate-blocks", tag="compact")

# %% [markdown]
# By hand: the strict factor of an order-4 MTTKRP update is `(4-1)!`; a diagonal face's decoupled
# factor is that divided by the product of its run sizes' factorials. Group the faces by factor:

# %%
names = ("i", "k", "l", "m")
diagonal = []
for bits in range(1, 2 ** 3):  # bit t: names[t] == names[t+1]
    runs, size = [], 1
    for t in range(3):
        if bits >> t & 1:
            size += 1
        else:
            runs.append(size)
            size = 1
    runs.append(size)
    face = names[0] + "".join((" == " if bits >> t & 1 else " < ") + names[t + 1] for t in range(3))
    diagonal.append((face, math.factorial(3) / math.prod(math.factorial(x) for x in runs)))
groups = Counter(f for _, f in diagonal)
print(ts.table(["diagonal face", "decoupled factor"], [[face, f"{f:g}"] for face, f in diagonal]))
merged = len(diagonal) - len(groups)
print(f"\n{len(diagonal)} diagonal faces, {len(groups)} distinct factors: {merged} blocks merge into others")
note = k4c.stage("consolidate-blocks").note
print("compiler:", note)
assert note.startswith(f"{merged} face blocks merged")

# %% [markdown]
# ## The trade-off, measured
#
# Compact faces give smaller code, but every point of the diagonal nest runs the chain of tests and
# all four decoupled updates. Both are checked against the definition; the counts and the size of
# the generated C say what each costs:

# %%
inputs4 = k4.random_inputs({"n": n, "r": r}, seed=0)
rows = []
for kern, label in ((k4, "split"), (k4c, "compact")):
    rep = ts.verify(kern, inputs4, label=f"mttkrp4, faces={label}")
    c = rep.stages[-1].counts
    rows.append([label, len(kern.final.body.body), len(kern.c_source().splitlines()), c.updates, c.mults,
                 c.iterations])
print(ts.table(["faces", "top-level nests", "lines of C", "updates", "mults", "iterations"], rows))
assert rows[1][2] < rows[0][2] and rows[1][3] > rows[0][3]

# %% [markdown]
# ## Exercise
#
# MTTKRP-5 (`examples/mttkrp5.ein`) has a set of five variables. How many loop nests does
# `split-diagonals` write with the default `faces="split"`? With `faces="compact"`, how many of its
# diagonal face blocks does `consolidate-blocks` merge into others (group the faces by
# `4!/(r1!·r2!·…)`)? Check with `systec_ref.load(path, faces=...).stage(name).note`. Tutorial 6
# shows what `lookup-table` then does with the blocks that remain.
