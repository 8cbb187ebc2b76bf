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
# # 6. `lookup-table` (MTTKRP-5): sixteen faces, one body, and why the key must be a bitmask
#
# MTTKRP of a symmetric 5-tensor, `C[i,j] += A[i,k,l,m,o] * B[l,j] * B[k,j] * B[m,j] * B[o,j]`: a
# permutable set of five variables, `2^4` equality patterns. With `faces="split"` that is sixteen
# loop nests. With `faces="compact"` the strict part keeps its own nest and the fifteen diagonal
# faces share one; `consolidate-blocks` (tutorial 5) merges the faces with equal decoupled
# updates; `lookup-table` then notices that the remaining blocks have the same body and differ
# only in a constant factor — so one body remains, multiplied by `table[key]`, where the key says
# which face the current point is on. Only the all-equal face, whose factor would be the fraction
# `1/5`, keeps its own branch: every table entry is an integer, so no result is rounded.
#
# The published artifact built that key by **summing primes** — and two different faces got the
# same key. Ours is a **bitmask**. We will compute both, find the collision, and watch the
# interpreter catch the wrong table.

# %%
import itertools
import math

import tutorials_support as ts

import systec_ref
from systec_ref.ir.nodes import Lookup
from systec_ref.term import postwalk

path = ts.EXAMPLES / "mttkrp5.ein"
ts.show_source(path)
# blas=False: the passes of the paper on A's whole symmetric set (with BLAS calls on, `gemm-form`
# first keeps only the part of it that makes matrix products: tutorial 10)
k = systec_ref.load(path, faces="compact", blas=False)
k_split = systec_ref.load(path, blas=False)
for name in ("split-diagonals", "consolidate-blocks", "lookup-table"):
    print(f"{name}: {k.stage(name).note}")

# %% [markdown]
# ## The pass
#
# Before: a chain of consolidated blocks, each with the five decoupled updates times its own
# factor. After: the all-equal face's branch, then one guard (`some neighbours are equal`) and one
# body whose factor is read from a table indexed by the equality bits of the neighbours.

# %%
ts.show_pass(k, "lookup-table", tag="compact")

# %% [markdown]
# ## The table, by hand and by the compiler
#
# The key has bit `t` set when the `t`-th and `(t+1)`-th variables of `(i,k,l,m,o)` are equal. On a
# face with runs of equal values of sizes `r1, r2, …`, each of the five updates carries the
# decoupled factor `4!/(r1!·r2!·…)` (the strict part's factor `(5-1)!` divided by the repeats; see
# tutorial 5). The strict part (key 0) has its own nest, so its entry here is never used and the
# compiler stores 0; so does the all-equal face (key 15), whose factor `4!/5! = 1/5` is not an
# integer: five updates of one element, each times a rounded `0.2`, would not add up exactly, so that
# face keeps its own branch (one update, coefficient 1). Let us compute the sixteen entries and
# compare them with the `Lookup` node the compiler wrote:

# %%
names = ("i", "k", "l", "m", "o")


def runs(bits):
    sizes, size = [], 1
    for t in range(4):
        if bits >> t & 1:
            size += 1
        else:
            sizes.append(size)
            size = 1
    return sizes + [size]


def face(bits):
    return names[0] + "".join((" == " if bits >> t & 1 else " < ") + names[t + 1] for t in range(4))


factor = [math.factorial(4) / math.prod(math.factorial(x) for x in runs(b)) for b in range(16)]
by_hand = [f if b and f.is_integer() else 0 for b, f in enumerate(factor)]

lookups = []
postwalk(lambda node: lookups.append(node) if isinstance(node, Lookup) else None)(k.stage("lookup-table").program)
table = lookups[0].values
assert all(t.values == table for t in lookups)  # the five updates share one table
print(f"{len(lookups)} Lookup nodes, one table of {len(table)} entries")
print(ts.table(["key (bits)", "face", "by hand", "compiler"],
               [[f"{b:2d} ({b:04b})", face(b), f"{by_hand[b]:g}", f"{table[b]:g}"] for b in range(16)]))
assert list(table) == by_hand

# %% [markdown]
# ## Why a bitmask
#
# The artifact gave the four neighbour pairs the primes 2, 3, 5, 7 and used the *sum* of the primes
# of the equal pairs as the key. Different faces can have the same sum; when their factors differ,
# one of them gets the other's factor. A bitmask gives every face its own key by construction.

# %%
primes = (2, 3, 5, 7)


def prime_key(bits):
    return sum(p for t, p in enumerate(primes) if bits >> t & 1)


collisions = [(a, b) for a, b in itertools.combinations(range(16), 2) if prime_key(a) == prime_key(b)]
rows = [[prime_key(a), face(a), face(b), f"{by_hand[a]:g} vs {by_hand[b]:g}"] for a, b in collisions]
print(ts.table(["prime-sum key", "face", "collides with face", "factors"], rows))
assert collisions  # while the 16 bitmask keys 0..15 are distinct by construction
assert any(by_hand[a] != by_hand[b] for a, b in collisions)

# %% [markdown]
# Now build the artifact's table — one entry per prime-sum key, the last face written wins — put it
# into the compiled program in place of ours (a loop nest is data; `postwalk` rewrites it), and let
# the interpreter compare with the definition:

# %%
by_sum = {}
for b in range(16):
    by_sum[prime_key(b)] = by_hand[b]
wrong_values = tuple(by_sum[prime_key(b)] for b in range(16))
wrong = postwalk(lambda node: Lookup(wrong_values, node.bits) if isinstance(node, Lookup) else None)(
    k.stage("lookup-table").program)
print("entries that differ:", [face(b) for b in range(16) if wrong_values[b] != table[b]])

n, r = 5, 2
inputs = k.random_inputs({"n": n, "r": r}, seed=0)
want = k.definition(inputs).value
ours = systec_ref.agree(k.interpret(inputs, stage="lookup-table").value, want, "float64")
theirs = systec_ref.agree(k.interpret(inputs, stage=wrong).value, want, "float64")
print("bitmask table  agrees with the definition:", ours.ok)
print("prime-sum table agrees with the definition:", theirs.ok, "-", theirs.detail)
assert ours.ok and not theirs.ok

# %% [markdown]
# ## What compact faces and the table buy, and cost
#
# Both ways are checked stage by stage. Compact faces make the code much smaller; the diagonal nest
# does more work (tests, and all five updates at every diagonal point), which matters little
# because the diagonal faces hold few points once `n` is large.

# %%
rows = []
for kern, label in ((k_split, "split"), (k, "compact")):
    rep = ts.verify(kern, inputs, label=f"mttkrp5, faces={label}")
    c = rep.stages[-1].counts
    rows.append([label, len(kern.final.body.body), len(kern.c_source().splitlines()), c.updates, c.mults])
print(ts.table(["faces", "top-level nests", "lines of C", "updates", "mults"], rows))
assert rows[0][1] == 2 ** 4 and rows[1][2] < rows[0][2]

# %% [markdown]
# ## Exercise
#
# Write an order-6 MTTKRP (`C[i,j] += A[i,k,l,m,o,p] * B[k,j] * B[l,j] * B[m,j] * B[o,j] * B[p,j]`,
# `A[n,n,n,n,n,n] symmetric`) with `systec_ref.compile(text, faces="compact")`. How many entries
# does its table have, and which faces keep their own branch because their factor `5!/(r1!·r2!·…)` is
# not an integer (the pass note names them)? Check
# by extracting the `Lookup` node as above from `kernel.stage("lookup-table").program` (compiling
# is quick; you do not need to run it). Then find the smallest pair of faces whose prime-sum keys
# collide when the primes are 2, 3, 5, 7, 11.
